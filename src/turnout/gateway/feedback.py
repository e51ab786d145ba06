"""``POST /turnout/v1/feedback``: whether a gateway request's answer was good.

Body: ``{"request_id": "...", "passed": true}`` (or ``"score": 0.7`` in [0, 1]),
optional ``"by"`` (who judged) and ``"step"`` (default ``chat``). The request id is
the ``x-request-id`` a response carried. ``turnout learn --since`` learns from it.

With keys (``gateway.auth: keys``) feedback needs a key, and only on the requests made
with that key (another key's request id is answered as unknown: 404).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from turnout.errors import ConfigError, StoreError
from turnout.gateway import failures
from turnout.gateway.routes import (
    ENGINE,
    TEAM,
    error_response,
    json_response,
    refused_response,
)
from turnout.keys.refusals import Refused
from turnout.wire.errors import error_body
from turnout.wire.jsonio import load_json
from turnout.wire.requests import WireError

MAX_BODY = 16_384


_KINDS: dict[str, tuple[type, ...]] = {"text": (str,), "bool": (bool,), "number": (int, float)}


def _field(body: dict[str, Any], name: str, kind: str) -> Any:
    """``body[name]`` if it is of ``kind`` (a bool is not a number here), or None."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, _KINDS[kind]) or (kind == "number" and isinstance(value, bool)):
        raise WireError(f"{name}: expected {kind}", name)
    return value


async def post_feedback(request: web.Request) -> web.Response:
    try:
        key = await request.app[TEAM].identify(request.headers.get("authorization"))
    except Refused as exc:
        return refused_response(exc)
    try:
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise WireError(f"the body is over {MAX_BODY} bytes")
        try:
            body = load_json(raw, what="the request body")
        except ValueError as exc:
            raise WireError(str(exc)) from None
        if not isinstance(body, dict):
            raise WireError("expected a JSON object")
        request_id = _field(body, "request_id", "text")
        if not request_id:
            raise WireError("request_id: required (the x-request-id of the answer)", "request_id")
        passed = _field(body, "passed", "bool")
        score = _field(body, "score", "number")
        by = _field(body, "by", "text") or "api"
        step = _field(body, "step", "text") or "chat"
        await request.app[ENGINE].feedback(
            request_id, passed=passed, score=score, by=by, step=step,
            key_name=key.name if key is not None else None,
        )  # fmt: skip
    except WireError as exc:
        return error_response(failures.bad_request(exc))
    except ConfigError as exc:
        why = str(exc).removeprefix("feedback: ")
        return error_response(failures.bad_request(WireError(why)))
    except StoreError as exc:
        return json_response(404, error_body(404, str(exc), "request_not_found"))
    reply = {"object": "turnout.feedback", "request_id": request_id, "recorded": True}
    return json_response(200, reply)
