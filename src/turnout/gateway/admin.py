"""``/admin/keys`` (virtual keys over REST, guarded by the admin key) and ``GET /metrics``.

The admin key is read from the environment variable ``gateway.admin_key_env``
(``TURNOUT_ADMIN_KEY``); without it the admin API answers 404, as if it did not exist.
It is sent as ``Authorization: Bearer ...`` and compared in constant time.

======================================  ============================================
``GET /admin/keys``                     every key (``?active=1``: neither revoked
                                        nor expired)
``POST /admin/keys``                    create: ``{"name", "budget_usd", "period",
                                        "rpm", "tpm", "policies", "models",
                                        "expires"}``; the answer holds ``key``, once
``GET /admin/keys/{name}``              one key, with what it spent in its period
``PATCH /admin/keys/{name}``            change any of the fields above (at least
                                        one; a revoked key: 409)
``POST /admin/keys/{name}/revoke``      revoke (``DELETE /admin/keys/{name}`` too)
======================================  ============================================

The fields are read by the rules ``turnout keys`` reads its options by
(:func:`turnout.keys.model.key_changes`): null, ``"none"`` or ``0`` (``rpm``, ``tpm``)
clears a limit, ``"never"`` an expiry; an amount may be a number or its text.

A change bumps the shared key-change generation, so every replica rereads the key
before its next request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from turnout.errors import ConfigError, StoreError
from turnout.keys.model import KEY_FIELDS, check_scopes, key_changes
from turnout.keys.store import KeyRevokedError, KeyStore, key_summary
from turnout.wire.errors import error_body
from turnout.wire.jsonio import encode, load_json

log = logging.getLogger("turnout.gateway")


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=encode(body), content_type="application/json")


def _error(status: int, message: str, code: str, param: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return _json(status, error_body(status, message, code, kind, param))


def _store(request: web.Request) -> KeyStore | web.Response:
    from turnout.gateway.routes import TEAM

    team = request.app[TEAM]
    if team.admin_hash is None:
        return _error(404, f"no route {request.method} {request.path}", "not_found")
    if not team.is_admin(request.headers.get("authorization")):
        return _error(401, "the admin API needs the admin key", "invalid_admin_key")
    if team.keys is None:
        return _error(503, "no key store: the gateway runs without a trace store", "no_store")
    return team.keys


def _changes(body: Any) -> dict[str, Any]:
    """The body's changes, by the rules ``turnout keys`` reads its options by
    (:func:`~turnout.keys.model.key_changes`: ``0`` or null removes a rate limit,
    ``"none"`` clears a budget, ``"never"`` an expiry, ...)."""
    if not isinstance(body, dict):
        raise ConfigError("expected a JSON object", field="body")
    return key_changes(
        {field: value for field, value in body.items() if field != "name"}, also=("name",)
    )


def _known(request: web.Request, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` if the policies and models they name are this gateway's."""
    from turnout.gateway.routes import TEAM

    team = request.app[TEAM]
    check_scopes(changes, policies=team.reach, models=team.prices)
    return changes


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return load_json(raw, what="the request body") if raw.strip() else {}
    except ValueError as exc:
        raise ConfigError(str(exc), field="body") from None


async def _run(request: web.Request, work: Any) -> web.Response:
    """Key-store work off the event loop, its errors in OpenAI's shape."""
    from turnout.gateway.routes import TEAM

    try:
        status, body, changed = await asyncio.to_thread(work)
    except KeyRevokedError as exc:
        return _error(409, str(exc), "key_revoked")
    except ConfigError as exc:
        if exc.field == "NAME":  # no such key
            return _error(404, exc.detail, "key_not_found")
        return _error(400, str(exc), "invalid_request", exc.field)
    except StoreError as exc:
        log.warning("admin: the key store failed: %s", exc)
        return _error(503, "the key store failed (see the gateway's log)", "store_error")
    if changed:
        await request.app[TEAM].key_changed()
    return _json(status, body)


async def list_keys(request: web.Request) -> web.Response:
    keys = _store(request)
    if isinstance(keys, web.Response):
        return keys
    active = request.query.get("active") in ("1", "true")
    return await _run(
        request,
        lambda: (200, {"object": "list", "data": [key_summary(k) for k in
                                                  keys.list(active=active)]}, False),
    )  # fmt: skip


async def create_key(request: web.Request) -> web.Response:
    keys = _store(request)
    if isinstance(keys, web.Response):
        return keys
    try:
        body = await _body(request)
        changes = _known(request, _changes(body))
    except ConfigError as exc:
        return _error(400, str(exc), "invalid_request", exc.field)
    name = body.get("name")
    if not isinstance(name, str):
        return _error(400, "name: required", "invalid_request", "name")

    def create() -> tuple[int, Any, bool]:
        secret, key = keys.create(name, **changes)
        return 201, {"key": secret, **key_summary(key)}, False

    return await _run(request, create)


async def show_key(request: web.Request) -> web.Response:
    keys = _store(request)
    if isinstance(keys, web.Response):
        return keys
    name = request.match_info["name"]

    def show() -> tuple[int, dict[str, Any], bool]:
        key = keys.require(name)
        return 200, {**key_summary(key), **keys.spend(key)}, False

    return await _run(request, show)


async def update_key(request: web.Request) -> web.Response:
    keys = _store(request)
    if isinstance(keys, web.Response):
        return keys
    try:
        body = await _body(request)
        changes = _known(request, _changes(body))
        name = request.match_info["name"]
        if isinstance(body, dict) and body.get("name", name) != name:
            raise ConfigError("a key's name cannot change (create a new key)", field="name")
        if not changes:
            raise ConfigError(f"nothing to change: give at least one of {', '.join(KEY_FIELDS)}")
    except ConfigError as exc:
        return _error(400, str(exc), "invalid_request", exc.field)
    return await _run(request, lambda: (200, key_summary(keys.update(name, **changes)), True))


async def revoke_key(request: web.Request) -> web.Response:
    keys = _store(request)
    if isinstance(keys, web.Response):
        return keys
    name = request.match_info["name"]
    return await _run(request, lambda: (200, key_summary(keys.revoke(name)), True))


async def metrics(request: web.Request) -> web.Response:
    from turnout.gateway.routes import ENGINE, TEAM

    team = request.app[TEAM]
    if team.metrics is None:
        return _error(404, "metrics need prometheus-client: pip install 'turnout[metrics]'",
                      "not_found")  # fmt: skip
    executor = getattr(request.app[ENGINE], "executor", None)
    breakers = getattr(executor, "breakers", None)
    if breakers is not None:  # breaker state as of this scrape (shared ones: from Redis)
        try:
            for model, status in (await breakers.snapshot()).items():
                team.metrics.set_breaker(model, status.state)
        except Exception:  # a breaker store that cannot answer leaves the last values
            pass
    body, content_type = await asyncio.to_thread(team.metrics.render)
    response = web.Response(status=200, body=body)
    response.headers["content-type"] = content_type
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_post("/admin/keys", create_key)
    app.router.add_get("/admin/keys/{name}", show_key)
    app.router.add_patch("/admin/keys/{name}", update_key)
    app.router.add_post("/admin/keys/{name}/revoke", revoke_key)
    app.router.add_delete("/admin/keys/{name}", revoke_key)
