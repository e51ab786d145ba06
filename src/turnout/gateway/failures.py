"""What a failed request looks like on the wire: OpenAI's error body, the status the
official SDK maps to the right exception, and the headers that stop it retrying
what turnout already retried.

=================================================  ======  ==========================
failure                                            status  ``error.code``
=================================================  ======  ==========================
malformed JSON, a missing or ill-typed field       400     ``invalid_request``
                                                           (``param`` names the field)
``model`` neither a policy nor a pool model        404     ``model_not_found``
the policy chose only models the key may not use   403     ``model_not_allowed``
body over ``gateway.max_body_bytes``               413     ``request_too_large``
every attempt refused the request itself           400     ``context_length_exceeded``,
(context length, content filter, bad request)              ``content_filter``, else the
                                                           upstream's code (or
                                                           ``invalid_request``); ``param``
                                                           the upstream's
every attempt rate-limited                         429     ``rate_limit_exceeded``
                                                           + Retry-After (``type``: the
                                                           upstream's, else ``requests``)
a budget cap                                       429     ``budget_exceeded``
every model's breaker open                         503     ``circuit_open`` + Retry-After
any other mix of failed attempts                   502     ``all_attempts_failed``
=================================================  ======  ==========================

When turnout made the attempts (everything from 429 down), ``x-should-retry: false``
tells the SDK not to multiply them with its own retries. ``retry-after`` says how long
the failures asked for (a provider's Retry-After, an open breaker's time until it may
let a call through): the shortest; a 429 always has one (1 s when no provider said),
any other reply only when every failure said. A ``circuit_open`` reply keeps
``x-should-retry: false`` too: the SDK would otherwise sit out the breaker's cooldown
(up to a minute) twice before the caller heard anything; the caller, told how long by
``retry-after``, decides.

An attempt is a call made to a provider
(:attr:`~turnout.tracing.records.AttemptRecord.called`): the body's ``error.attempts``
lists each one (pool model, error class, HTTP status) and the ``x-turnout-attempts``
header counts them; ``error.skipped`` names the models not called because their breaker
was open. Messages are the error tree's own, which never carry secrets, without the
providers' URLs (those are in the traces); no traceback reaches a response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from turnout.errors import (
    AllAttemptsFailed,
    BadRequest,
    BudgetExceeded,
    CircuitOpen,
    ConfigError,
    ContentFiltered,
    ContextLengthExceeded,
    ModelNotAllowed,
    ProviderError,
    RateLimited,
    TurnoutError,
    error_class_of,
)
from turnout.execution.stream_cut import Restart
from turnout.tracing.records import AttemptRecord
from turnout.wire.errors import error_body, retry_after
from turnout.wire.requests import WireError

_CLIENT_FAULTS: Mapping[type[ProviderError], str | None] = {
    ContextLengthExceeded: "context_length_exceeded",
    ContentFiltered: "content_filter",
    BadRequest: None,  # the upstream's own code, else invalid_request
}


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def bad_request(err: WireError) -> ErrorReply:
    return ErrorReply(400, error_body(400, str(err), "invalid_request", param=err.param))


def model_not_found(name: str, known: Sequence[str]) -> ErrorReply:
    listed = ", ".join(known) or "none"
    message = f"The model {name!r} does not exist: name a policy or a pool model ({listed})."
    return ErrorReply(404, error_body(404, message, "model_not_found", param="model"))


def too_large(limit: int) -> ErrorReply:
    message = f"Request body is larger than gateway.max_body_bytes ({limit} bytes)."
    return ErrorReply(413, error_body(413, message, "request_too_large"))


def not_route(method: str, path: str, status: int) -> ErrorReply:
    message = f"No route for {method} {path}."
    return ErrorReply(status, error_body(status, message, "unknown_url", "invalid_request_error"))


def unusable(exc: ConfigError) -> ErrorReply:
    """A request the configuration cannot serve (a policy that cannot decide for it, or
    that chose only models the key may not use)."""
    if isinstance(exc, ModelNotAllowed):
        return ErrorReply(403, error_body(403, str(exc), "model_not_allowed", "permission_error"))
    return ErrorReply(400, error_body(400, str(exc), "invalid_request"))


def cannot_restart(event: Restart) -> ErrorReply:
    """The in-band error of a stream cut under ``on_stream_cut: restart``: text already
    sent cannot be taken back over SSE."""
    message = (
        f"{event.failed}: the stream broke after its first token "
        f"({public_message(event.error, [event.cause] if event.cause else [])}); "
        "on_stream_cut: restart cannot take back text already sent"
    )
    return _turnout_tried(502, message, "stream_cut", (), ())


def internal() -> ErrorReply:
    return ErrorReply(500, error_body(500, "The gateway failed unexpectedly (see its log)."))


def failure_class(exc: BaseException) -> str:
    """The class a failed request is counted under (metrics, spans): its error's, as
    traced, except that a request whose attempts all failed the same way is counted as
    that failure, however many attempts it made (as its reply says it); failures of
    mixed kinds stay ``all_attempts_failed``."""
    if isinstance(exc, AllAttemptsFailed):
        kinds = {e.error_class for e in exc.errors}
        if len(kinds) == 1:
            return kinds.pop()
    return error_class_of(exc)


def from_failure(exc: BaseException, attempts: Sequence[AttemptRecord] = ()) -> ErrorReply:
    """The reply for a request whose attempts all failed (or that was never sent).
    ``attempts``: what the request's trace holds; ``error.attempts`` lists its calls."""
    errors = _attempt_errors(exc)
    if isinstance(exc, BudgetExceeded):
        said = public_message(str(exc), errors)  # never where a provider is
        return _turnout_tried(429, said, "budget_exceeded", attempts, errors, "insufficient_quota")
    message = (
        public_message(str(exc), errors) if isinstance(exc, TurnoutError) else "The request failed."
    )
    if not errors:
        return _turnout_tried(502, message, "all_attempts_failed", attempts, errors)
    for kind, code in _CLIENT_FAULTS.items():
        if all(isinstance(e, kind) for e in errors):
            said = code or _agreed(_word(e.provider_code) for e in errors) or "invalid_request"
            param = _agreed(e.provider_param for e in errors)
            return _turnout_tried(
                400, message, said, attempts, errors, "invalid_request_error", param
            )
    waits = [e.retry_after for e in errors if e.retry_after is not None]
    if all(isinstance(e, RateLimited) for e in errors):
        limit = _agreed(e.provider_type for e in errors) or "requests"  # or "tokens"
        reply = _turnout_tried(429, message, "rate_limit_exceeded", attempts, errors, limit)
        return _waiting(reply, min(waits) if waits else 1.0)
    if len(waits) < len(errors):  # some failure did not say how long: no Retry-After
        waits = []
    if all(isinstance(e, CircuitOpen) for e in errors):
        reply = _turnout_tried(503, message, "circuit_open", attempts, errors)
        return _waiting(reply, min(waits)) if waits else reply
    reply = _turnout_tried(502, message, "all_attempts_failed", attempts, errors)
    return _waiting(reply, min(waits)) if waits else reply


def _waiting(reply: ErrorReply, seconds: float) -> ErrorReply:
    """``reply`` with ``retry-after``: whole seconds, at least 1."""
    return replace(reply, headers={**reply.headers, "retry-after": retry_after(seconds)})


def public_message(message: str, errors: Iterable[ProviderError]) -> str:
    """``message`` for a client: it names providers and models, not where they are (the
    operator finds the URL in the trace of the reply's ``x-request-id``)."""
    for endpoint in {e.endpoint for e in errors if e.endpoint}:
        message = message.replace(f" ({endpoint})", "").replace(endpoint, "(provider)")
    return message


def _agreed(values: Iterable[str | None]) -> str | None:
    """What every upstream that said anything said (None: none said, or they differ)."""
    said = {v for v in values if v}
    return said.pop() if len(said) == 1 else None


def _word(code: str | None) -> str | None:
    """A code a client can match on (``invalid_value``), not a bare status (``"400"``)."""
    return None if code is None or code.isdigit() else code


def _attempt_errors(exc: BaseException) -> list[ProviderError]:
    if isinstance(exc, AllAttemptsFailed):
        return list(exc.errors)
    if isinstance(exc, ProviderError):
        return [exc]
    return []


def _turnout_tried(
    status: int,
    message: str,
    code: str,
    attempts: Sequence[AttemptRecord],
    errors: Sequence[ProviderError],
    error_type: str | None = None,
    param: str | None = None,
) -> ErrorReply:
    """``error.attempts``: one entry per call made (what ``x-turnout-attempts`` counts);
    ``error.skipped``: the models not called because their breaker was open."""
    body = error_body(status, message, code, error_type, param)
    statuses = {e.attempt: e.status for e in errors if e.attempt is not None}
    body["error"]["attempts"] = [
        {"model": a.model, "error": a.error_class, "status": statuses.get(a.attempt)}
        for a in attempts
        if a.called
    ]
    body["error"]["skipped"] = [
        {"model": e.model, "error": e.error_class} for e in errors if isinstance(e, CircuitOpen)
    ]
    return ErrorReply(status, body, {"x-should-retry": "false"})
