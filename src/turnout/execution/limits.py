"""Per-model concurrency limits (``max_concurrency``): the wait is queueing, not latency."""

from __future__ import annotations

import asyncio
import time

from turnout.execution.timeouts import Deadline


class ConcurrencyGate:
    """One attempt's slot in its model's limit: taken before the call, given back after."""

    __slots__ = ("_held", "_sem")

    def __init__(self, sem: asyncio.Semaphore | None) -> None:
        self._sem = sem
        self._held = False

    async def acquire(self, deadline: Deadline) -> float:
        """Take a slot (no later than the deadline); return the seconds spent queued."""
        if self._sem is None:
            return 0.0
        t0 = time.perf_counter()
        await deadline.within(self._sem.acquire())
        self._held = True
        return time.perf_counter() - t0

    def release(self) -> None:
        if self._held:
            self._held = False
            assert self._sem is not None
            self._sem.release()
