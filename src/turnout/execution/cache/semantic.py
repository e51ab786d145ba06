"""The semantic cache (opt-in): a stored answer for a question that means the same.

::

    cache = SemanticCache(MiniLMEmbedder(), MemoryVectorIndex(384), threshold=0.92)
    hit = await cache.lookup(request)          # CachedAnswer | None, hit.similarity
    if hit is None:
        response = ...                         # call the model
        await cache.store(request, response, cost)

What is embedded is the last message when it is a user message (whitespace
normalized). Everything else (model, parameters, and the messages before it)
forms the scope (see :func:`~turnout.execution.cache.keys.semantic_split`): a hit
is only ever an answer given to the same model, with the same parameters, after
the same conversation. A hit needs cosine similarity >= ``threshold``. A text
longer than the embedding model reads (256 tokens for MiniLM) is not used: its
truncated embedding would match any text with the same beginning.

Embedding is CPU work (a few ms for a short question); by default it runs in a
worker thread (``asyncio.to_thread``) so the event loop keeps serving other
requests, and meanwhile a shared index (Redis) fetches the scope's new entries.
The last few hundred embeddings are remembered, so the ``store`` after a missed
``lookup`` does not embed the same text again. A failing index (Redis down) is
a miss, never an error.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from turnout.execution.cache.answer import CachedAnswer, decode_answer, encode_answer, storable
from turnout.execution.cache.keys import is_cacheable, semantic_split
from turnout.execution.cache.stats import CacheStats
from turnout.execution.cache.vectors import Clock, VectorIndex
from turnout.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from turnout.execution.cache.vectors import F32

DEFAULT_THRESHOLD = 0.92


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, shape ``(len(texts), dim)``."""

    dim: int

    def embed(self, texts: Sequence[str]) -> F32: ...

    def fits(self, text: str) -> bool:
        """False when the text is longer than the model reads (it would be truncated)."""
        ...


class SemanticCache:
    def __init__(
        self,
        embedder: Embedder,
        index: VectorIndex,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        ttl_s: float = 3600.0,
        force: bool = False,
        context: bool = True,
        in_thread: bool = True,
        memo_size: int = 512,
        clock: Clock = time.time,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"semantic cache: threshold must be in (0, 1], got {threshold!r}")
        if ttl_s <= 0:
            raise ValueError(f"semantic cache: ttl_s must be > 0, got {ttl_s!r}")
        self.embedder = embedder
        self.index = index
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.force = force
        self.context = context
        self.in_thread = in_thread
        self.stats = CacheStats()
        self._clock = clock
        self._memo: OrderedDict[str, F32] = OrderedDict()
        self._fits_memo: OrderedDict[str, bool] = OrderedDict()
        self._memo_size = memo_size

    async def lookup(self, request: ChatRequest) -> CachedAnswer | None:
        split = self._split(request)
        if split is None:
            self.stats.skipped += 1
            return None
        if self.stats.backend_resting():
            self.stats.misses += 1
            return None
        scope, text = split
        if self.in_thread:  # the index's round trip overlaps the embedding (in a thread)
            vector, synced = await asyncio.gather(self.embed(text), self._sync(scope))
        else:
            vector, synced = await self.embed(text), False
        try:
            match = await self.index.search(scope, vector, self.threshold, synced=synced)
        except Exception as exc:  # a cache outage must not fail the request
            self.stats.failed("semantic", "search", exc)
            return None
        self.stats.ok("semantic")
        answer = None
        if match is not None:
            answer = decode_answer(
                match.payload, kind="semantic", key=scope, similarity=match.similarity
            )
        return self.stats.looked_up(answer)

    async def store(self, request: ChatRequest, response: ChatResponse, cost: Decimal) -> bool:
        """Store an answer; returns False when the request or answer is not cacheable."""
        split = self._split(request)
        if split is None or not storable(response) or self.stats.backend_resting():
            return False
        scope, text = split
        vector = await self.embed(text)
        payload = encode_answer(response, cost, self._clock())
        try:
            await self.index.add(scope, vector, payload, self.ttl_s)
        except Exception as exc:
            self.stats.failed("semantic", "add", exc)
            return False
        self.stats.stored("semantic")
        return True

    async def _sync(self, scope: str) -> bool:
        try:
            await self.index.sync(scope)
        except Exception:
            return False  # the search syncs again, and counts the failure if it persists
        return True

    async def embed(self, text: str) -> F32:
        """The embedding of one (already normalized) text, remembered for reuse."""
        known = self._memo.get(text)
        if known is not None:
            self._memo.move_to_end(text)
            return known
        if self.in_thread:
            rows = await asyncio.to_thread(self.embedder.embed, [text])
        else:
            rows = self.embedder.embed([text])
        vector: F32 = rows[0]
        if self._memo_size > 0:
            self._memo[text] = vector
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return vector

    def _split(self, request: ChatRequest) -> tuple[str, str] | None:
        if not is_cacheable(request, force=self.force):
            return None
        split = semantic_split(request, context=self.context)
        if split is None or not self._fits(split[1]):
            return None
        return split

    def _fits(self, text: str) -> bool:
        known = self._fits_memo.get(text)
        if known is None:
            known = self._fits_memo[text] = self.embedder.fits(text)
            while len(self._fits_memo) > self._memo_size:
                self._fits_memo.popitem(last=False)
        return known
