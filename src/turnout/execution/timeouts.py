"""Timeouts, the one wrapper that bounds every wait of a decision, streamed or not.

``attempt_s`` bounds one attempt's wait for its provider: the whole answer of an
unstreamed call, the first token and every silence between two chunks of a
streamed one (a long answer that keeps coming is never cut). ``total_s`` bounds
the whole decision in wall-clock time: queueing, every attempt, the pauses
between them (and, streamed, the caller's own pace). Both are enforced by one
:class:`~turnout.execution.watchdog.Watchdog` per wait source, never by a timer
per chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from turnout.errors import ProviderTimeout
from turnout.execution.watchdog import Expired, Watchdog

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``attempt_s`` bounds one call (streamed: each wait for the next chunk);
    ``total_s`` bounds a whole decision, retries and pauses included."""

    attempt_s: float | None = None
    total_s: float | None = None


class TotalExpired(Exception):
    """The decision's ``total_s`` passed. Internal: the caller gets a ProviderTimeout."""


class Deadline:
    """The decision's total deadline (event-loop time), fixed when the decision starts."""

    __slots__ = ("at", "total_s")

    def __init__(self, total_s: float | None) -> None:
        self.total_s = total_s
        self.at = None if total_s is None else asyncio.get_running_loop().time() + total_s

    def expired(self) -> bool:
        return self.at is not None and asyncio.get_running_loop().time() >= self.at

    async def within(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` (a queue, a pause) no later than the deadline, else TotalExpired."""
        if self.at is None:
            return await aw
        watch = Watchdog(None, self.at)
        try:
            return await watch.wait(aw)
        except Expired:
            raise TotalExpired from None
        finally:
            watch.close()

    def watchdog(self, attempt_s: float | None) -> Watchdog:
        """A watchdog for one attempt's waits: ``attempt_s`` each, never past the deadline."""
        return Watchdog(attempt_s, self.at)

    def error(self, *, started: bool = False) -> ProviderTimeout:
        """What a decision ends with when ``total_s`` passes."""
        limit = f"the total timeout of {self.total_s:g}s"
        if started:
            return ProviderTimeout(f"the streamed answer did not finish within {limit}")
        return ProviderTimeout(f"no answer within {limit}")
