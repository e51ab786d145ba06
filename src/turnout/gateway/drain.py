"""A graceful stop that does not wait on a request the server never took up.

aiohttp's own stop waits up to its shutdown timeout for every open connection; a
request that reaches a keep-alive connection just as the stop begins is sometimes never
handled nor answered (aiohttp 3.14, reproduced without turnout), so the stop waited the
whole timeout (30 s) and that client hung as long. Here the gateway counts the requests
its handlers hold (:class:`Drain`, :func:`counted`): on stop it closes its listening
sockets, waits up to ``gateway.shutdown_timeout_s`` for those requests to finish (each
answered meanwhile closes its connection after it, so clients go elsewhere), then gives
aiohttp :data:`CLOSE_S` to close what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

CLOSE_S = 1.0
"""aiohttp's shutdown timeout once the gateway's own requests are done: what is left is
idle, or a request that will never be handled."""


class Drain:
    """The requests a gateway's handlers hold, to let them finish before it stops."""

    __slots__ = ("_idle", "draining", "under_way")

    def __init__(self) -> None:
        self.under_way = 0
        self.draining = False
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.under_way += 1

    def exit(self) -> None:
        self.under_way -= 1
        if self.under_way == 0 and self._idle is not None:
            self._idle.set()

    async def idle(self, timeout_s: float) -> bool:
        """From now on, draining; True once no request is under way, False when
        ``timeout_s`` passed first."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.under_way:  # a request may come on a kept-alive connection meanwhile
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._idle.wait()
        return True


DRAIN: web.AppKey[Drain] = web.AppKey("drain", Drain)


@web.middleware
async def counted(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count the request while its handler holds it; while the gateway stops, its
    connection is closed once it is answered."""
    drain = request.app[DRAIN]
    drain.enter()
    try:
        response: web.StreamResponse = await handler(request)
    finally:
        drain.exit()
    if drain.draining:
        response.force_close()
    return response
