"""Running the gateway: one process, one event loop (uvloop when installed), graceful
stop. SIGTERM or SIGINT stops accepting connections, lets in-flight requests finish
(up to ``gateway.shutdown_timeout_s``), then closes the façade, which flushes the
trace writer.

:class:`Gateway` is the server as an async context manager (what ``turnout serve``
runs, and what tests and benchmarks start on a free port)::

    async with Gateway(settings, port=0) as gw:
        client = AsyncOpenAI(base_url=gw.base_url, api_key="unused")
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.gateway.app import create_app
from turnout.gateway.config import GatewayConfig
from turnout.gateway.drain import CLOSE_S, DRAIN
from turnout.gateway.engine import Engine
from turnout.gateway.protocol import protocol_logger, quieten

log = logging.getLogger("turnout.gateway")

_GC_YOUNG_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (``pip install turnout[gateway]``), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Gateway:
    """The gateway listening on ``host:port`` (port 0: a free one) until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        store: str | None = None,
        engine: Engine | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.config = GatewayConfig.from_settings(settings)
        self.host = host or self.config.host
        self.port = self.config.port if port is None else port
        self.reuse_port = reuse_port
        self.app = create_app(
            settings, store=store, engine=engine, config=self.config, host=self.host
        )
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,  # a client that hangs up cancels the upstream call
            shutdown_timeout=CLOSE_S,  # once the requests under way are done (stop)
            logger=protocol_logger(),  # what an unreadable request sent is not logged
        )

    @property
    def listening(self) -> str:
        """Where it listens, as bound (``0.0.0.0:8000``)."""
        port = next((a[1] for a in self._runner.addresses if isinstance(a, tuple)), self.port)
        return f"{self.host or '0.0.0.0'}:{port}"

    def notes(self) -> list[str]:
        """What a person starting it should know: the trace store (where the keys are
        too), and whether the admin API is on."""
        from turnout.gateway import routes

        out: list[str] = []
        store = getattr(self.app.get(routes.ENGINE), "store", None)
        out.append(f"traces and keys in {store.display}" if store is not None else "no traces")
        if self.config.auth_for(self.host) == "keys":
            team = self.app.get(routes.TEAM)
            admin = team is not None and team.admin_hash is not None
            env = self.config.admin_key_env
            out.append(f"admin API on ({env})" if admin else f"admin API off ({env} unset)")
        return out

    @property
    def base_url(self) -> str:
        port = next((a[1] for a in self._runner.addresses if isinstance(a, tuple)), self.port)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{port}/v1"

    async def start(self) -> None:
        await self._runner.setup()
        if self._runner.server is not None:
            quieten(self._runner.server)  # nor quoted back in the reply
        try:
            site = web.TCPSite(
                self._runner, self.host, self.port, backlog=1024, reuse_port=self.reuse_port
            )
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            why = exc.strerror or str(exc)
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {why}") from None
        except BaseException:
            await self._runner.cleanup()
            raise

    async def stop(self) -> None:
        """Stop listening, drain in-flight requests (up to ``shutdown_timeout_s``), close
        what connections are left, close the façade (flush traces)."""
        for site in list(self._runner.sites):
            await site.stop()
        if not await self.app[DRAIN].idle(self.config.shutdown_timeout_s):
            log.warning(
                "gateway: %d request(s) still under way after %g s: cut off",
                self.app[DRAIN].under_way,
                self.config.shutdown_timeout_s,
            )
        await self._runner.cleanup()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(gateway: Gateway, *, on_ready: Callable[[Gateway], None] | None = None) -> None:
    """Serve until SIGTERM / SIGINT; ``on_ready`` gets the gateway once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with gateway:
            # What startup built (modules, config, the app) lives as long as the process:
            # moved out of the collector's sight, so that the full collections the
            # per-request garbage triggers do not walk it again and again.
            gc.collect()
            gc.freeze()
            # A request leaves a few dozen objects in reference cycles (tasks, frames,
            # responses): collected every 700 allocations that costs ~30 us a request,
            # every 10,000 about 4 us (a collection of a few ms every second or so).
            gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            if on_ready is not None:
                on_ready(gateway)
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def run(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    store: str | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """``turnout serve``: the gateway on uvloop until a signal stops it."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        gateway = Gateway(settings, host=host, port=port, store=store, reuse_port=reuse_port)
        loop.run_until_complete(serve(gateway, on_ready=on_ready))
    finally:
        loop.close()
