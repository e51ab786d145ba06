"""A timer that bounds each wait of a stream, for the executor's timeouts.

``asyncio.timeout`` would arm and cancel a timer for every chunk of a stream (a
few microseconds each); :class:`Watchdog` keeps one timer per stream and moves
it only when it goes off early, so a chunk costs a clock read.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Expired(Exception):
    """One of the executor's limits passed while waiting (``total``: the decision's, else
    the attempt's). Internal to the executor: callers see a ProviderTimeout."""

    def __init__(self, total: bool) -> None:
        super().__init__("total" if total else "attempt")
        self.total = total


class Watchdog:
    """Bounds each wait: at most ``limit`` seconds, and not past ``deadline`` (loop time).

    A wait that outlasts its bound is cancelled and raises :class:`Expired` (an outside
    cancellation still raises CancelledError, a TimeoutError of the awaited call's own
    passes through), as with ``asyncio.timeout``. That would arm and cancel a timer for
    every chunk of a stream, though; this keeps one timer for the whole stream and moves
    it only when it goes off early, at most once per ``limit``: a chunk costs a clock
    read. One wait at a time."""

    def __init__(self, limit: float | None, deadline: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._deadline = deadline
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0
        self._task: asyncio.Task[Any] | None = None  # the task waiting now, if any
        self._ends = 0.0
        self._fired = False

    async def wait(self, aw: Awaitable[T]) -> T:
        if self._limit is None and self._deadline is None:
            return await aw
        ends = math.inf if self._limit is None else self._loop.time() + self._limit
        total = self._deadline is not None and self._deadline <= ends
        if self._deadline is not None and total:
            ends = self._deadline
        if ends <= self._loop.time():  # already past (the caller took its time): no wait
            if inspect.iscoroutine(aw):
                aw.close()
            raise Expired(total)
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self._task, self._ends = task, ends
        if self._handle is None or self._armed > ends:
            self._arm(ends)
        try:
            return await aw
        except asyncio.CancelledError:
            if self._fired:
                self._fired = False
                if task.uncancel() <= cancelling:  # ours alone, not the caller's
                    raise Expired(total) from None
            raise
        finally:
            self._task = None
            if self._fired:  # cancelled, yet ``aw`` answered (or raised): withdraw it
                self._fired = False
                task.uncancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        self.close()
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self._task is None:
            return  # between waits: the next one arms it again
        if self._armed < self._ends:  # set for an earlier wait: this one has time left
            self._arm(self._ends)
            return
        self._fired = True
        self._task.cancel()
