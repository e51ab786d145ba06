"""Running the gateway: one process, one event loop (uvloop when installed), graceful
stop. SIGTERM or SIGINT stops accepting connections, lets in-flight requests finish
(up to ``gateway.shutdown_timeout_s``), then closes the façade, which flushes the
trace writer."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from aiohttp import web

from turnout.config.settings import Settings
from turnout.gateway.app import create_app
from turnout.gateway.config import GatewayConfig


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (``pip install turnout[gateway]``), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    store: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM / SIGINT; ``on_ready`` gets the base URL once listening."""
    config = GatewayConfig.from_settings(settings)
    app = create_app(settings, store=store, config=config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=config.shutdown_timeout_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        if on_ready is not None:
            on_ready(base_url(runner, host))
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()


def base_url(runner: web.AppRunner, host: str) -> str:
    port = next((a[1] for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), 0)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/v1"


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    store: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    loop = new_event_loop()
    try:
        loop.run_until_complete(
            serve(settings, host=host, port=port, store=store, on_ready=on_ready)
        )
    finally:
        loop.close()
