"""Shared state that never becomes an outage: a Redis call with a timeout, and the
in-process twin when Redis fails.

Every call to Redis runs under ``timeout_s`` (on top of the client's own socket
timeouts). When one fails (timeout, connection refused, any Redis error), the call is
served by the in-process twin instead, the first failure of an outage is logged as a
warning (the recovery as info), and :attr:`Degrader.degraded` counts the calls served
locally (``on_degrade`` tells a metric). After a failure Redis is left alone for
``retry_after_s``; then one call tries it again (the probe) while the others stay local
until it succeeds. So a dead Redis costs one attempt a second, not one a request, and a
frozen one (it accepts connections but never answers) delays one call a second by
``timeout_s``, not every call that arrives meanwhile.

The twins keep bounded state (see :class:`~turnout.limits.rate.MemoryRateLimiter`),
so an outage never grows memory without bound.

Every part of a process that talks to one Redis server learns of its outage together
(:data:`OUTAGES`, by server): once one call finds it unreachable (a timeout, a refused
or lost connection), the others go local at once instead of each waiting out its own
timeout first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("turnout.limits")


class Outages:
    """The Redis servers this process found unreachable lately, and until when (on
    ``time.monotonic``) they are left alone."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def failed(self, server: str, until: float) -> None:
        self._until[server] = max(until, self._until.get(server, 0.0))

    def answered(self, server: str) -> None:
        self._until.pop(server, None)

    def until(self, server: str) -> float:
        """When ``server`` may be tried again (0.0: it is not known to be down)."""
        until = self._until.get(server, 0.0)
        if until and until <= time.monotonic():
            del self._until[server]
            return 0.0
        return until


OUTAGES = Outages()
"""This process's :class:`Outages`."""


def server_of(client: object) -> str | None:
    """Which Redis server a redis-py client talks to (``host:port/db``, or a socket
    path), or None when it cannot tell."""
    pool = getattr(client, "connection_pool", None)
    kw = getattr(pool, "connection_kwargs", None)
    if not isinstance(kw, dict):
        return None
    where = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{where}/{kw.get('db', 0) or 0}"


def unreachable(exc: BaseException) -> bool:
    """A failure that says the server cannot be reached (not a refused command)."""
    if isinstance(exc, (TimeoutError, OSError, ConnectionError)):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is what this module is for
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError))


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
        server: str | None = None,
    ) -> None:
        self.what = what
        self.server = server
        """The Redis server (:func:`server_of`): its outages are shared with every other
        part of the process that talks to it (on ``time.monotonic``, not ``clock``)."""
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.on_degrade = on_degrade
        self.degraded = 0
        self.failures = 0
        self._clock = clock
        self._down_until = 0.0
        self._down = False
        self._probing = False
        self._errors = redis_errors()

    @property
    def down(self) -> bool:
        return self._down

    def _shared_outage(self) -> None:
        """Take on an outage another part of the process found."""
        if self.server is None:
            return
        until = OUTAGES.until(self.server)
        if not until:
            return
        until = self._clock() + (until - time.monotonic())
        if until > self._down_until:
            self._down_until = until
            if not self._down:
                self._down = True
                log.warning(
                    "%s: Redis unreachable; using per-process state until it is back", self.what
                )

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._down_until = self._clock() + self.retry_after_s
        if self.server is not None and unreachable(exc):
            OUTAGES.failed(self.server, time.monotonic() + self.retry_after_s)

    def healthy(self) -> bool:
        """Whether a shared call would be made now (Redis is not known to be away)."""
        self._shared_outage()
        return not self._down

    async def run(
        self,
        shared: Callable[[], Awaitable[T]],
        local: Callable[[], T],
        *,
        bounded: bool = False,
        sent: bool = False,
    ) -> T:
        """``shared``'s answer, or ``local``'s when Redis fails or is away. ``bounded``:
        ``shared`` ends within the timeout by itself (a pipelined connection's reply
        deadline), so no timer of its own is set. ``sent``: ``shared`` waits for a
        command already sent (when :meth:`healthy`): its answer is waited for even if
        Redis was found away meanwhile, so what it did there is known."""
        probe = False
        self._shared_outage()
        if self._down and not sent:
            if self._probing or self._clock() < self._down_until:
                return self._local(local)
            self._probing = probe = True  # this call tries Redis; the others stay local
        try:
            if bounded:
                result = await shared()
            else:
                async with asyncio.timeout(self.timeout_s):
                    result = await shared()
        except self._errors as exc:
            self._failed(exc)
            if not self._down:
                self._down = True
                log.warning(
                    "%s: Redis unreachable (%s); using per-process state until it is back",
                    self.what,
                    type(exc).__name__,
                )
            return self._local(local)
        finally:
            if probe:
                self._probing = False
        if self.server is not None:
            OUTAGES.answered(self.server)
        if self._down:
            self._down = False
            log.info("%s: Redis is back; shared state again", self.what)
        return result

    async def attempt(self, shared: Callable[[], Awaitable[None]]) -> bool:
        """A shared call with nothing to fall back to (giving back a hold): True when done."""
        self._shared_outage()
        if self._down and self._clock() < self._down_until:
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                await shared()
        except self._errors as exc:
            self._failed(exc)
            return False
        if self.server is not None:
            OUTAGES.answered(self.server)
        return True

    def _local(self, local: Callable[[], T]) -> T:
        self.degraded += 1
        if self.on_degrade is not None:
            self.on_degrade(self.what)
        return local()
