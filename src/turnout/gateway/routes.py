"""The HTTP endpoints: ``POST /v1/chat/completions`` (JSON and SSE), ``GET /v1/models``,
``GET /health/live`` and ``GET /health/ready``.

A stream's status and headers are sent with its first event, so a request whose
every attempt fails before the first token gets a plain error reply (the same as
unstreamed); after it, a failure the façade could not repair ends the stream with an
in-band error event and no ``data: [DONE]``. A client that hangs up cancels the
handler (``handler_cancellation``), which cancels the upstream call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from turnout.config.settings import Settings
from turnout.errors import ConfigError, TurnoutError
from turnout.execution.stream_cut import Restart
from turnout.gateway import failures
from turnout.gateway.bursts import bursts
from turnout.gateway.config import GatewayConfig
from turnout.gateway.context import (
    PREFIX,
    CallContext,
    ModelNotFound,
    Route,
    call_context,
    resolve,
)
from turnout.gateway.engine import Answer, AnswerStream, Engine
from turnout.gateway.failures import ErrorReply
from turnout.gateway.replies import ChunkEncoder, answer_headers, completion_body, header_value
from turnout.gateway.team import Team
from turnout.keys.guard import Admitting
from turnout.keys.model import VirtualKey
from turnout.keys.refusals import Refused, bearer_token, missing_key
from turnout.types import StreamEnd
from turnout.wire.jsonio import encode, load_json
from turnout.wire.requests import IncomingRequest, WireError, decode_request
from turnout.workflows.runner import new_run_id

log = logging.getLogger("turnout.gateway")

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
CONFIG: web.AppKey[GatewayConfig] = web.AppKey("gateway_config", GatewayConfig)
ENGINE = web.AppKey[Engine]("engine")
READY: web.AppKey[asyncio.Event] = web.AppKey("ready", asyncio.Event)
TEAM: web.AppKey[Team] = web.AppKey("team", Team)


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=encode(body), content_type="application/json", headers=headers
    )


def error_response(reply: ErrorReply, run_id: str | None = None) -> web.Response:
    headers = dict(reply.headers)
    if run_id:
        headers["x-request-id"] = run_id
    return json_response(reply.status, reply.body, headers)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    team = request.app[TEAM]
    team.in_flight += 1
    try:
        return await _chat_completions(request, team)
    finally:
        team.in_flight -= 1


async def _chat_completions(request: web.Request, team: Team) -> web.StreamResponse:
    settings, config = request.app[SETTINGS], request.app[CONFIG]
    started = time.perf_counter()
    run_id = new_run_id()  # the trace's run id, sortable by time
    parent = trace_parent(request.headers)
    authorization = request.headers.get("authorization")
    if team.guard is not None and bearer_token(authorization) is None:  # before the body
        team.refused(Route(), None, "invalid_api_key", started, run_id, parent)
        return refused_response(Refused(missing_key()), run_id)
    try:
        raw = await _read_body(request, config.max_body_bytes)
        incoming = decode_request(_parse(raw))
        route = resolve(incoming.model, settings, config)
        ctx = call_context(request.headers, incoming)
    except (WireError, ModelNotFound, web.HTTPRequestEntityTooLarge) as exc:
        # A request that cannot be served: a key that is not valid hears so first (401,
        # as OpenAI answers), and the names a key is shown are those it may use.
        try:
            key = await team.identify(authorization)
        except Refused as refused:
            team.refused(
                Route(), refused.refusal.key, refused.refusal.code, started, run_id, parent
            )
            return refused_response(refused, run_id)
        if isinstance(exc, WireError):
            reply = failures.bad_request(exc)
        elif isinstance(exc, ModelNotFound):
            known = [n["id"] for n in nameable(settings, team, key)]
            reply = failures.model_not_found(exc.name, known)
        else:
            reply = failures.too_large(config.max_body_bytes)
        code = str(reply.body["error"].get("code") or reply.body["error"]["type"])
        team.refused(Route(), key.name if key else None, code, started, run_id, parent)
        return error_response(reply, run_id)
    try:  # the key checked now; its limits and budget while the call is prepared
        admitting = await team.start_admit(authorization, incoming.request, route)
    except Refused as exc:
        team.refused(route, exc.refusal.key, exc.refusal.code, started, run_id, parent)
        return refused_response(exc, run_id)
    options = _options(incoming, route, ctx, run_id)
    if admitting is not None:
        _admitted_options(options, admitting)
        if incoming.stream:
            options["on_cut_spend"] = team.cut_spend(admitting)
    engine = request.app[ENGINE]

    def done(answer: Answer | None, error: str | None) -> None:
        latency_s = time.perf_counter() - started
        started_at = time.time() - latency_s  # when it came, however late it is counted
        admission = admitting.admission if admitting is not None else None
        if admitting is not None and admission is None:
            admitting.abandon()  # given up before admitted: its hold given back
        asyncio.get_running_loop().call_soon(  # counted once the answer has gone out
            lambda: team.done(route=route, admission=admission, answer=answer,
                              latency_s=latency_s, error_class=error, streamed=incoming.stream,
                              max_tokens=incoming.request.max_tokens, run_id=run_id,
                              started_at=started_at, parent=parent)
        )  # fmt: skip

    def refuse(exc: Refused) -> web.Response:
        team.refused(route, exc.refusal.key, exc.refusal.code, started, run_id, parent)
        return refused_response(exc, run_id)

    if admitting is not None and admitting.wary:  # refused lately: decided before routing
        refusal = await _refusal(admitting)
        if refusal is not None:
            return refuse(refusal)
    if incoming.stream:
        return await _stream(
            request, engine, incoming, route, options, run_id, admitting, done, refuse
        )
    abandoned: list[Answer] = []  # the answer so far of a request the client hung up on
    try:
        answer = await engine.chat(
            incoming.request.messages, **options, on_abandon=abandoned.append
        )
    except Refused as exc:  # the key's limits or budget: nothing was called
        return refuse(exc)
    except asyncio.CancelledError:  # the client hung up: the hold settled to what was paid
        done(abandoned[0] if abandoned else None, "abandoned")
        raise
    except ConfigError as exc:  # a policy that cannot decide for this request (or not
        refusal = await _refusal(admitting)  # on the models the key may use): a key
        if refusal is not None:  # refused hears that first
            return refuse(refusal)
        done(None, failures.failure_class(exc))
        return error_response(failures.unusable(exc), run_id)
    refusal = await _refusal(admitting)  # decided already (the façade waited for it)
    if refusal is not None:
        return refuse(refusal)
    done(answer, None if answer.ok else failures.failure_class(answer.error or RuntimeError()))
    admission = admitting.admission if admitting is not None else None
    extra = admission.headers_after(answer.cost) if admission is not None else {}
    if not answer.ok:  # counting what it cost (often nothing), as an answer does
        return _failed(answer, run_id, extra)
    body = completion_body(answer, f"chatcmpl-{run_id}")
    return json_response(200, body, {**answer_headers(answer, run_id), **extra})


def _admitted_options(options: dict[str, Any], admitting: Admitting) -> None:
    """The façade's options for a request through a key: its name a tag (never the key),
    the models it may use (a policy's choices outside them are dropped), and the go-ahead
    of its limits and budget, awaited before anything is traced or sent."""
    options["tags"]["key"] = admitting.key.name

    def allowed() -> tuple[str, ...] | None:
        return admitting.key.models or None  # the key as decided on (it may be re-read)

    async def admitted() -> None:
        await admitting

    options["allowed_models"] = allowed
    options["admitted"] = admitted


async def _refusal(admitting: Admitting | None) -> Refused | None:
    """The key's refusal, once its admission is decided (None: let through)."""
    if admitting is None:
        return None
    try:
        await admitting
    except Refused as exc:
        return exc
    return None


def trace_parent(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The caller's W3C trace context (``traceparent``, ``tracestate``), to make the
    request's span a child of the caller's; None without one."""
    traceparent = headers.get("traceparent")
    if not traceparent:
        return None
    tracestate = headers.get("tracestate")
    return {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}


def refused_response(exc: Refused, run_id: str | None = None) -> web.Response:
    refusal = exc.refusal
    headers = dict(refusal.headers)
    if run_id:
        headers["x-request-id"] = run_id
    return json_response(refusal.status, refusal.body(), headers)


async def _stream(
    request: web.Request,
    engine: Engine,
    incoming: IncomingRequest,
    route: Route,
    options: dict[str, Any],
    run_id: str,
    admitting: Admitting | None,
    done: Callable[[Answer | None, str | None], None],
    refuse: Callable[[Refused], web.Response],
) -> web.StreamResponse:
    stream = engine.stream(incoming.request.messages, **options)
    error: str | None = None
    refusal: Refused | None = None
    encoder = ChunkEncoder(f"chatcmpl-{run_id}", route.label, include_usage=incoming.include_usage)
    response: web.StreamResponse | None = None
    end: StreamEnd | None = None
    events = bursts(aiter(stream))  # what arrived together goes out in one write
    try:
        async for burst in events:
            out: list[bytes] = []
            restarted = False
            for event in burst:
                if isinstance(event, Restart):  # the client already has text it cannot drop
                    out.append(encoder.error(failures.cannot_restart(event).body))
                    restarted = True
                    break
                if response is None:
                    extra = _admission_headers(admitting)
                    response = await _start_stream(request, route, run_id, stream, extra)
                if stream.model is not None:  # the pool model answering (it may change on a cut)
                    encoder.model = stream.model
                if isinstance(event, StreamEnd):
                    end = event  # written once the façade has the answer's cost
                else:
                    out.append(encoder.delta(event))
            if out:
                assert response is not None
                await response.write(b"".join(out))
            if restarted:
                break
        else:
            if end is not None and response is not None:
                answer = stream.answer
                if answer is not None:
                    encoder.model = answer.model or encoder.model
                cost = answer.cost if answer is not None else Decimal(0)
                await response.write(encoder.end(end, cost))
    except Refused as exc:  # the key's limits or budget, before anything was called
        refusal = exc
    except TurnoutError as exc:
        error = failures.failure_class(exc)
        tried = stream.answer.attempts if stream.answer is not None else ()
        reply = (
            failures.unusable(exc)
            if isinstance(exc, ConfigError)
            else failures.from_failure(exc, tried)
        )
        if response is None:
            refusal = await _refusal(admitting)  # a key refused hears that first
            if refusal is None:
                headers = {**answer_headers(stream.answer, run_id), **reply.headers}
                extra = _admission_headers(admitting)
                return json_response(reply.status, reply.body, {**headers, **extra})
        else:
            await response.write(encoder.error(reply.body))
    except asyncio.CancelledError:
        error = "abandoned"
        raise
    finally:
        await events.aclose()  # a hang-up or an abandoned stream: stop the upstream call now
        answer = stream.answer
        if error is None and answer is not None and not answer.ok:
            error = failures.failure_class(answer.error or RuntimeError())
        if refusal is None:
            done(answer, error)
    if refusal is not None:
        return refuse(refusal)
    if response is None:  # an empty stream: nothing came, not even its end
        return error_response(failures.from_failure(RuntimeError()), run_id)
    await response.write_eof()
    return response


async def _start_stream(
    request: web.Request,
    route: Route,
    run_id: str,
    stream: AnswerStream,
    extra: Mapping[str, str],
) -> web.StreamResponse:
    """Status and headers, sent with the first event: the policy, its reason and the model
    answering then (a cut continued on another model: the chunks' ``model`` says so;
    attempts and cost are in the usage chunk and the trace)."""
    headers = {"x-request-id": run_id, "cache-control": "no-cache", **extra}
    decision = stream.decision
    if decision is not None:
        headers["x-turnout-policy"] = header_value(decision.policy)
        headers["x-turnout-reason"] = header_value(decision.reason)
    elif route.policy:
        headers["x-turnout-policy"] = route.policy
    model = stream.model or (None if route.policy else route.label)
    if model:
        headers["x-turnout-model"] = header_value(model)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "text/event-stream"
    await response.prepare(request)
    return response


def _admission_headers(admitting: Admitting | None) -> Mapping[str, str]:
    admission = admitting.admission if admitting is not None else None
    return admission.headers if admission is not None else {}


def _failed(answer: Answer, run_id: str, extra: Mapping[str, str]) -> web.Response:
    reply = failures.from_failure(answer.error or RuntimeError(), answer.attempts)
    headers = {**answer_headers(answer, run_id), **extra, **reply.headers}
    return json_response(reply.status, reply.body, headers)


def _options(
    incoming: IncomingRequest, route: Route, ctx: CallContext, run_id: str
) -> dict[str, Any]:
    """The façade's options: routing context, run id and the request's own fields."""
    r = incoming.request
    return {
        "policy": route.policy,
        "model": route.model,
        "tags": dict(ctx.tags),
        "latency": ctx.latency,
        "step": ctx.step,
        "workflow": ctx.workflow,
        "session": ctx.session,
        "annotation": ctx.annotation,
        "run_id": run_id,
        "max_tokens": r.max_tokens,
        "max_tokens_param": r.max_tokens_param,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "stop": r.stop,
        "seed": r.seed,
        "tools": r.tools,
        "tool_choice": r.tool_choice,
        "response_format": r.response_format,
        "extra": r.extra,
    }


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await request.read()


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        raise WireError("the request body is empty: expected a JSON object")
    try:
        return load_json(raw, what="the request body")
    except ValueError as exc:
        raise WireError(str(exc)) from None


async def list_models(request: web.Request) -> web.Response:
    """Pool models (``tier``) and policies (``policy_kind``), in OpenAI's list shape; with
    keys, only to a key, and only those it may name."""
    settings, team = request.app[SETTINGS], request.app[TEAM]
    try:
        key = await team.identify(request.headers.get("authorization"))
    except Refused as exc:
        return refused_response(exc)
    return json_response(200, {"object": "list", "data": nameable(settings, team, key)})


async def retrieve_model(request: web.Request) -> web.Response:
    """One entry of :func:`list_models` (``turnout/NAME`` names a policy too); a model
    the key may not name is as unknown as one that does not exist."""
    settings, team = request.app[SETTINGS], request.app[TEAM]
    try:
        key = await team.identify(request.headers.get("authorization"))
    except Refused as exc:
        return refused_response(exc)
    asked = request.match_info["model"]
    known = nameable(settings, team, key)
    name = asked.removeprefix(PREFIX)
    found = next(
        (m for m in known if m["id"] == name and ("policy_kind" in m or name == asked)), None
    )
    if found is None:
        return error_response(failures.model_not_found(asked, [m["id"] for m in known]))
    return json_response(200, found)


def nameable(settings: Settings, team: Team, key: VirtualKey | None) -> list[dict[str, Any]]:
    """The policies (``policy_kind``) and pool models (``tier``) a request may name as
    its model, in OpenAI's model-list shape: with a key, only those it may use."""
    data: list[dict[str, Any]] = [
        {
            "id": p.name,
            "object": "model",
            "created": 0,
            "owned_by": "turnout",
            "policy_kind": p.kind,
        }
        for p in settings.policies.values()
        if key is None or (key.allows_policy(p.name) and team.may_answer(key, p.name))
    ]
    data += [
        {
            "id": m.name,
            "object": "model",
            "created": 0,
            "owned_by": m.provider,
            "tier": m.tier.value,
        }
        for m in settings.models.values()
        if key is None or key.may_name_model(m.name)
    ]
    return data


async def live(request: web.Request) -> web.Response:
    return json_response(200, {"status": "live"})


async def ready(request: web.Request) -> web.Response:
    if not request.app[READY].is_set():
        return json_response(503, {"status": "starting"})
    return json_response(200, {"status": "ready"})


@web.middleware
async def openai_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown routes and wrong methods in OpenAI's error shape; no traceback ever."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            return error_response(failures.not_route(request.method, request.path, exc.status))
        if exc.status == 413:
            return error_response(failures.too_large(request.app[CONFIG].max_body_bytes))
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        request_id = new_run_id()
        log.exception("gateway: %s %s failed (x-request-id %s)", request.method, request.path,
                      request_id)  # fmt: skip
        return error_response(failures.internal(), request_id)
