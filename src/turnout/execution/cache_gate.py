"""The response caches (exact, semantic) as seen by one attempt, in both modes.

Looked up before the call: a hit answers at cost 0 (traced with what it saved)
and, streamed, is replayed as a stream. A successful answer is offered to every
cache after the call; each cache decides what it keeps (temperature-0 requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from turnout.execution.cache.answer import CachedAnswer
from turnout.types import ChatRequest, ChatResponse


class ResponseCache(Protocol):
    """What the executor needs of a cache (exact or semantic)."""

    async def lookup(self, request: ChatRequest) -> CachedAnswer | None: ...

    async def store(self, request: ChatRequest, response: ChatResponse, cost: Decimal) -> bool: ...


class CacheGate:
    __slots__ = ("caches",)

    def __init__(self, caches: Sequence[ResponseCache]) -> None:
        self.caches = tuple(caches)

    async def lookup(self, request: ChatRequest) -> CachedAnswer | None:
        for cache in self.caches:
            hit = await cache.lookup(request)
            if hit is not None:
                return hit
        return None

    async def store(self, request: ChatRequest, response: ChatResponse, cost: Decimal) -> None:
        for cache in self.caches:
            await cache.store(request, response, cost)
