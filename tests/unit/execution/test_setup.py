"""build_executor: the executor and caches that ``turnout.yaml``'s ``executor:`` describes."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config.loader import settings_from_dict
from turnout.errors import ConfigError
from turnout.execution.cache import ExactCache, SemanticCache
from turnout.execution.cache.embedding import MiniLMEmbedder, semantic_available
from turnout.execution.setup import build_executor


def config(cache: dict[str, Any]) -> dict[str, Any]:
    return {
        "providers": {"hosted": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {
            "haiku": {
                "provider": "hosted",
                "id": "h",
                "tier": "efficient",
                "price": {"input": 1, "output": 5},
            }
        },
        "executor": {"cache": cache},
    }


async def test_exact_cache_only_by_default() -> None:
    executor, resources = build_executor(settings_from_dict(config({})))
    assert [type(c) for c in executor.cache.caches] == [ExactCache]
    await resources.aclose()


@pytest.mark.skipif(not semantic_available(), reason="the semantic extra is not installed")
@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
async def test_semantic_cache_engine_from_config(engine: str) -> None:
    settings = settings_from_dict(
        config({"semantic": {"enabled": True, "threshold": 0.9, "engine": engine, "threads": 1}})
    )
    executor, resources = build_executor(settings)
    semantic = [c for c in executor.cache.caches if isinstance(c, SemanticCache)]
    assert len(semantic) == 1
    embedder = semantic[0].embedder
    assert isinstance(embedder, MiniLMEmbedder)
    assert embedder.engine == engine  # loaded at build time, not on the first request
    assert semantic[0].threshold == 0.9
    assert not build_executor(settings, use_cache=False)[0].cache.caches
    await resources.aclose()


def test_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"executor\.cache\.semantic\.engine"):
        settings_from_dict(config({"semantic": {"enabled": True, "engine": "torch"}}))
