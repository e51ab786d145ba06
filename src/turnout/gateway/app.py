"""``create_app(settings)``: the gateway as an aiohttp application. Nothing happens at
import time; the façade (:class:`turnout.Turnout`) is opened when the app starts and
closed (traces flushed) when it stops."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from turnout.config.settings import Settings
from turnout.gateway import admin, routes
from turnout.gateway.config import CorsConfig, GatewayConfig
from turnout.gateway.drain import DRAIN, Drain, counted
from turnout.gateway.engine import Engine
from turnout.gateway.feedback import post_feedback
from turnout.gateway.team import Team
from turnout.tracing.spill import SpillFile, claim_spill
from turnout.tracing.writer import TraceWriter
from turnout.wire.errors import error_body
from turnout.wire.jsonio import encode
from turnout.workflows.runner import new_run_id

WORKER_ENV = "TURNOUT_WORKER"
"""The worker's number (0, 1, ...) under ``turnout serve --workers N``."""
WORKERS_ENV = "TURNOUT_WORKERS"
"""N, under ``turnout serve --workers N``."""

EXPOSED = ", ".join(
    [
        "x-request-id",
        "x-turnout-policy",
        "x-turnout-model",
        "x-turnout-reason",
        "x-turnout-attempts",
        "x-turnout-cost-usd",
        "x-turnout-usage-estimated",
        "x-turnout-budget-remaining-usd",
        "x-turnout-budget-warning",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
    ]
)
"""The response headers a browser page may read: turnout's, and the limits' OpenAI's."""


def create_app(
    settings: Settings,
    *,
    store: str | None = None,
    engine: Engine | None = None,
    config: GatewayConfig | None = None,
    host: str | None = None,
) -> web.Application:
    """The gateway for ``settings``. ``engine`` replaces the façade (tests); ``store`` is
    the trace store URL or path (default: the config's ``storage``, then SQLite); ``host``
    the interface served (``gateway.auth`` defaults to keys off loopback)."""
    config = config or GatewayConfig.from_settings(settings)
    config.auth_for(host or config.host)  # `auth: none` off loopback: refused before serving
    middlewares: list[Any] = [counted, _request_id, routes.openai_errors]
    if config.cors is not None:
        middlewares.insert(2, _cors(config.cors))
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=middlewares)
    app[DRAIN] = Drain()
    app[routes.SETTINGS] = settings
    app[routes.CONFIG] = config
    app[routes.READY] = asyncio.Event()
    app.cleanup_ctx.append(_engine_ctx(settings, config, store, engine))
    app.cleanup_ctx.append(_team_ctx(settings, config, host or config.host))
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    app.router.add_post("/chat/completions", routes.chat_completions)
    app.router.add_get("/v1/models", routes.list_models)
    app.router.add_get("/v1/models/{model:.+}", routes.retrieve_model)
    app.router.add_get("/health/live", routes.live)
    app.router.add_get("/health/ready", routes.ready)
    app.router.add_post("/turnout/v1/feedback", post_feedback)
    admin.add_routes(app)
    return app


def _engine_ctx(
    settings: Settings, config: GatewayConfig, store: str | None, engine: Engine | None
) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if engine is not None:
            app[routes.ENGINE] = engine
            app[routes.READY].set()
            yield
            return
        from turnout.facade import Turnout  # the library façade the CLI also sits on

        spill = _spill(config, store or settings.storage)
        async with Turnout(
            settings, store=store, on_stream_cut=config.on_stream_cut, spill=spill
        ) as turnout:
            turnout.defer = asyncio.get_running_loop().call_soon  # traces: after the answer
            app[routes.ENGINE] = turnout
            app[routes.READY].set()
            yield
            app[routes.READY].clear()

    return ctx


def _team_ctx(settings: Settings, config: GatewayConfig, host: str) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = app[routes.ENGINE]
        store = getattr(engine, "store", None)
        writer = getattr(engine, "writer", None)
        behind = writer.behind if isinstance(writer, TraceWriter) else None
        team = await Team.open(settings, config, host=host, store=store, behind=behind)
        if isinstance(writer, TraceWriter) and writer.spill is not None:
            team.watch_spill(writer.spill)
        app[routes.TEAM] = team
        try:
            yield
        finally:
            await team.aclose()

    return ctx


def _spill(config: GatewayConfig, store: str | None) -> SpillFile | None:
    """The spill file: one per process beside ``gateway.spill`` (``<spill>-N``, N the
    worker's number), else beside a PostgreSQL store's gateway
    (``.turnout/spill-N.jsonl``); ``none``: no spilling. Files no live process claims
    are adopted and replayed (:func:`~turnout.tracing.spill.claim_spill`)."""
    path = config.spill
    if path == "none":
        return None
    if path is None:
        if not (store or "").lower().startswith(("postgresql://", "postgres://")):
            return None
        path = ".turnout/spill.jsonl"
    index = int(os.environ.get(WORKER_ENV, "0"))
    workers = int(os.environ.get(WORKERS_ENV, "0"))  # 0: not under --workers
    return claim_spill(
        path,
        index=index,
        first_free=max(workers, index + 1),
        adopt_from=workers,
        max_bytes=config.spill_max_bytes,
    )


@web.middleware
async def _request_id(request: web.Request, handler: Any) -> web.StreamResponse:
    """``x-request-id`` on every response: a request's trace id where it has one (set by
    its handler), else a fresh id (an unknown route, health, metrics, the admin API)."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:  # one no middleware turned into a reply
        exc.headers.setdefault("x-request-id", new_run_id())
        raise
    if not response.prepared:  # a stream sent its headers with its own id
        response.headers.setdefault("x-request-id", new_run_id())
    return response


def _cors(cors: CorsConfig) -> Any:
    """CORS for ``gateway.cors.allow_origins``. A preflight from another origin gets 403
    without CORS headers, as aiohttp-cors answers it (Starlette: 400): the browser then
    refuses the request, and the caller reads why."""
    allow_any = "*" in cors.allow_origins

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("origin")
        allowed = origin is not None and (allow_any or origin in cors.allow_origins)
        preflight = (
            request.method == "OPTIONS"
            and origin is not None
            and "access-control-request-method" in request.headers
        )
        if preflight and not allowed:
            body = error_body(403, f"CORS: origin {origin!r} is not allowed",
                              "cors_origin_not_allowed", "permission_error")  # fmt: skip
            return web.Response(status=403, body=encode(body), content_type="application/json")
        if request.method == "OPTIONS" and allowed:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["access-control-allow-methods"] = "GET, POST, OPTIONS"
            response.headers["access-control-allow-headers"] = ", ".join(cors.allow_headers)
            response.headers["access-control-max-age"] = str(cors.max_age_s)
        else:
            response = await handler(request)
        if allowed and origin is not None:
            response.headers["access-control-allow-origin"] = "*" if allow_any else origin
            response.headers["access-control-expose-headers"] = EXPOSED
            response.headers["vary"] = "origin"
        return response

    return middleware
