"""The circuit breaker as seen by one attempt: asked before the call, told after.

A refusal, a bad request or a rate limit is an answer: nothing against the model's
health (a 429 says the provider is up and when to come back; its Retry-After paces the
retries), but it is still recorded, or a half-open probe would stay in flight. Counted
as failures, a provider's 429s opened the breaker and its caller heard a 502 or 503 for
what was a rate limit. A stream
that was answering when it was cut (by the caller or the total timeout) counts
as healthy.
"""

from __future__ import annotations

from typing import Protocol

from turnout.errors import CircuitOpen, ProviderError, RateLimited


class Breakers(Protocol):
    """What the executor needs of a breaker board (see :mod:`turnout.execution.breaker`)."""

    async def allow(self, model: str) -> bool: ...

    async def record(self, model: str, ok: bool) -> object: ...

    async def unavailable(self) -> frozenset[str]: ...

    async def retry_in(self, model: str) -> float | None: ...


class BreakerGate:
    __slots__ = ("_board",)

    def __init__(self, board: Breakers | None) -> None:
        self._board = board

    async def admit(self, model: str) -> CircuitOpen | None:
        """None when the model may be called, else why not (and for how long, at most)."""
        if self._board is None or await self._board.allow(model):
            return None
        wait = await self._board.retry_in(model)
        return CircuitOpen("circuit breaker is open", model=model, retry_after=wait)

    async def succeeded(self, model: str) -> None:
        if self._board is not None:
            await self._board.record(model, True)

    async def failed(self, model: str, error: ProviderError) -> None:
        if self._board is not None:
            await self._board.record(model, isinstance(error, RateLimited) or not error.retryable)
