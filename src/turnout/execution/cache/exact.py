"""The exact-match cache: same model, same normalized messages, same parameters.

::

    cache = ExactCache(MemoryBackend(), ttl_s=3600)
    hit = await cache.lookup(request)          # CachedAnswer | None
    if hit is None:
        response = ...                         # call the model
        await cache.store(request, response, cost)

Only deterministic requests (temperature 0) are looked up or stored, unless
``force=True`` (config: cache sampled answers too). ``request.model`` must be
filled in: it is part of the key. A failing backend is a miss, never an
error (see :mod:`turnout.execution.cache.stats`).
"""

from __future__ import annotations

import time
from decimal import Decimal

from turnout.execution.cache.answer import CachedAnswer, decode_answer, encode_answer, storable
from turnout.execution.cache.backends import CacheBackend, Clock
from turnout.execution.cache.keys import exact_key, is_cacheable
from turnout.execution.cache.stats import CacheStats
from turnout.types import ChatRequest, ChatResponse


class ExactCache:
    def __init__(
        self,
        backend: CacheBackend,
        ttl_s: float = 3600.0,
        *,
        force: bool = False,
        clock: Clock = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"cache: ttl_s must be > 0, got {ttl_s!r}")
        self.backend = backend
        self.ttl_s = ttl_s
        self.force = force
        self.stats = CacheStats()
        self._clock = clock

    def key(self, request: ChatRequest) -> str | None:
        """The request's key, or None when it is not cacheable."""
        return exact_key(request) if is_cacheable(request, force=self.force) else None

    async def lookup(self, request: ChatRequest) -> CachedAnswer | None:
        key = self.key(request)
        if key is None:
            self.stats.skipped += 1
            return None
        if self.stats.backend_resting():
            self.stats.misses += 1
            return None
        try:
            raw = await self.backend.get(key)
        except Exception as exc:  # a cache outage must not fail the request
            self.stats.failed("exact", "get", exc)
            return None
        self.stats.ok("exact")
        answer = None if raw is None else decode_answer(raw, kind="exact", key=key)
        return self.stats.looked_up(answer)

    async def store(self, request: ChatRequest, response: ChatResponse, cost: Decimal) -> bool:
        """Store an answer; returns False when the request or answer is not cacheable."""
        key = self.key(request)
        if key is None or not storable(response) or self.stats.backend_resting():
            return False
        try:
            await self.backend.set(key, encode_answer(response, cost, self._clock()), self.ttl_s)
        except Exception as exc:
            self.stats.failed("exact", "set", exc)
            return False
        self.stats.stored("exact")
        return True
