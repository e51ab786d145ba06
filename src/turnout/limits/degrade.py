"""Shared state that never becomes an outage: a Redis call with a timeout, and the
in-process twin when Redis fails.

Every call to Redis runs under ``timeout_s`` (on top of the client's own socket
timeouts). When one fails (timeout, connection refused, any Redis error), the call is
served by the in-process twin instead, the first failure of an outage is logged as a
warning (the recovery as info), and :attr:`Degrader.degraded` counts the calls served
locally (``on_degrade`` tells a metric). After a failure Redis is left alone for
``retry_after_s``, so a dead Redis costs one attempt a second, not one a request.

The twins keep bounded state (see :class:`~turnout.limits.rate.MemoryRateLimiter`),
so an outage never grows memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("turnout.limits")


def redis_errors() -> tuple[type[BaseException], ...]:
    """What counts as "Redis is unwell": its own errors, timeouts, socket errors."""
    errors: tuple[type[BaseException], ...] = (TimeoutError, OSError, ConnectionError)
    try:
        from redis.exceptions import RedisError

        errors = (*errors, RedisError)
    except ImportError:  # pragma: no cover - redis is what this module is for
        pass
    return errors


class Degrader:
    """Runs shared calls, falling back to local ones while Redis is unwell."""

    def __init__(
        self,
        what: str,
        *,
        timeout_s: float = 0.5,
        retry_after_s: float = 1.0,
        on_degrade: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.on_degrade = on_degrade
        self.degraded = 0
        self.failures = 0
        self._clock = clock
        self._down_until = 0.0
        self._down = False
        self._errors = redis_errors()

    @property
    def down(self) -> bool:
        return self._down

    async def run(self, shared: Callable[[], Awaitable[T]], local: Callable[[], T]) -> T:
        if self._down and self._clock() < self._down_until:
            return self._local(local)
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await shared()
        except self._errors as exc:
            self.failures += 1
            self._down_until = self._clock() + self.retry_after_s
            if not self._down:
                self._down = True
                log.warning(
                    "%s: Redis unreachable (%s); using per-process state until it is back",
                    self.what,
                    type(exc).__name__,
                )
            return self._local(local)
        if self._down:
            self._down = False
            log.info("%s: Redis is back; shared state again", self.what)
        return result

    async def attempt(self, shared: Callable[[], Awaitable[None]]) -> bool:
        """A shared call with nothing to fall back to (giving back a hold): True when done."""
        if self._down and self._clock() < self._down_until:
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                await shared()
        except self._errors:
            self.failures += 1
            self._down_until = self._clock() + self.retry_after_s
            return False
        return True

    def _local(self, local: Callable[[], T]) -> T:
        self.degraded += 1
        if self.on_degrade is not None:
            self.on_degrade(self.what)
        return local()
