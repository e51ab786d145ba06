"""Work queued off the request path and sent to the shared state in batches: every item
added within ``batch_s`` goes out together, by one task, not one task per item."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("turnout.limits")


class Batch(Generic[T]):
    """Items :meth:`add`-ed without waiting; ``send`` gets each batch (a failure is
    logged, never raised: what is batched here may be lost, never wrong)."""

    def __init__(
        self, send: Callable[[list[T]], Awaitable[None]], *, what: str, batch_s: float = 0.005
    ) -> None:
        self._send = send
        self.what = what
        self.batch_s = batch_s
        self._items: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._waiter: asyncio.Future[None] | None = None  # for the batch being queued

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._timer is None:  # the first of a batch: sent in batch_s
            self._timer = asyncio.get_running_loop().call_later(self.batch_s, self._send_now)

    async def sent(self) -> None:
        """Wait until what is queued now has gone out (or failed to)."""
        if not self._items:
            return
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    def _send_now(self) -> None:
        self._timer = None
        items, self._items = self._items, []
        waiter, self._waiter = self._waiter, None
        task = asyncio.ensure_future(self._send(items))
        self._sending.add(task)
        task.add_done_callback(lambda done: self._sent(done, waiter))

    def _sent(self, task: asyncio.Task[None], waiter: asyncio.Future[None] | None) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: sending a batch failed: %s", self.what, task.exception())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        """Send what is queued now and wait for every batch in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._items:
            self._send_now()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
