"""Turn an OpenAI-compatible endpoint's failure into the right :mod:`turnout.errors` class.

Servers disagree on error bodies: OpenAI and LiteLLM send
``{"error": {"message", "type", "code"}}``, Ollama ``{"error": "text"}``, older
vLLM ``{"object": "error", "message", "code": 400}``, proxies an HTML page. The
context-window and content-filter cases are recognised by ``code`` first and by
the message patterns those servers use otherwise.

Every message built here names the HTTP status and carries the provider's own
message, redacted (see :mod:`turnout.providers.redact`) and then truncated.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from turnout.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextLengthExceeded,
    EndpointNotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from turnout.providers.redact import Secret, redact, truncate

MESSAGE_LIMIT = 300
FIELD_LIMIT = 100
"""The longest ``code``, ``type`` or ``param`` kept of a provider's error object."""

_CONTEXT_CODES = frozenset(
    {"context_length_exceeded", "context_window_exceeded", "exceed_context_size_error"}
)
_CONTEXT_TEXT = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|context[ _]window"
    r"|exceeds? (?:the )?(?:available |maximum |model'?s? )?context"
    r"|context size|prompt is too long|input is too long|reduce the length of the messages"
    r"|input token count.{0,40}exceeds|`inputs` tokens \+ `max_new_tokens`"
)
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "content_filtered"})
_FILTER_TEXT = re.compile(r"content management policy|content[ _]policy|content[ _]filter")
_HTML_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What an error body said: the provider's message, and its code, type and param if
    any."""

    message: str
    code: str | None = None
    type: str | None = None
    param: str | None = None


def error_info(body: bytes | str) -> ErrorInfo:
    """Read the message, code and type out of any of the common error body shapes."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        if "<" in text and ">" in text:
            text = _HTML_TAG.sub(" ", text)
        return ErrorInfo(" ".join(text.split()) or "(empty body)")
    return error_info_from(data)


def error_info_from(data: Any) -> ErrorInfo:
    """Like :func:`error_info`, for an already-parsed body or ``error`` object."""
    if not isinstance(data, dict):
        return ErrorInfo(_text(data))
    err = data.get("error", data)
    if isinstance(err, str):
        return ErrorInfo(err, _opt(data.get("code")), _opt(data.get("type")))
    if not isinstance(err, dict):
        return ErrorInfo(_text(data))
    message = err.get("message") or err.get("detail") or data.get("message") or data.get("detail")
    return ErrorInfo(
        _text(message) if message is not None else _text(data),
        _opt(err.get("code")),
        _opt(err.get("type")),
        _opt(err.get("param")),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def is_context_length(info: ErrorInfo) -> bool:
    if info.code in _CONTEXT_CODES or info.type in _CONTEXT_CODES:
        return True
    return bool(_CONTEXT_TEXT.search(info.message.lower()))


def is_content_filter(info: ErrorInfo, *, by_message: bool = True) -> bool:
    if info.code in _FILTER_CODES or info.type in _FILTER_CODES:
        return True
    return by_message and bool(_FILTER_TEXT.search(info.message.lower()))


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = _number(lower.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    value = lower.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def classify(
    status: int | None,
    info: ErrorInfo,
    *,
    provider: str,
    model: str | None,
    secrets: Iterable[str | Secret | None] = (),
    headers: Mapping[str, str] | None = None,
    where: str | None = None,
) -> ProviderError:
    """The ProviderError for an HTTP error (``status``) or an in-stream error (``None``).

    ``where`` says where the error came from when it was not an HTTP status (see
    :func:`classify_embedded`); the message then says so instead of ``HTTP <status>``.
    A ``Retry-After`` in ``headers`` is kept whatever the class (a 503 or 529 sends one
    as a 429 does): the executor honours it on any error it retries. The error object's
    ``code``, ``type`` and ``param`` are kept too (redacted, truncated), for a gateway to
    pass on.
    """
    secrets = tuple(secrets)
    error = _classified(status, info, provider=provider, model=model, secrets=secrets,
                        where=where)  # fmt: skip
    if headers is not None:
        error.retry_after = parse_retry_after(headers)
    error.provider_code, error.provider_type, error.provider_param = (
        None if v is None else truncate(redact(v, secrets), FIELD_LIMIT)
        for v in (info.code, info.type, info.param)
    )
    return error


def _classified(
    status: int | None,
    info: ErrorInfo,
    *,
    provider: str,
    model: str | None,
    secrets: Iterable[str | Secret | None],
    where: str | None,
) -> ProviderError:
    said = truncate(redact(info.message, secrets), MESSAGE_LIMIT)
    code = f" [{redact(info.code, secrets)}]" if info.code else ""
    if where is None:
        where = f"HTTP {status}" if status is not None else "error event in the stream"
    message = f"{where} from {provider}: {said}{code}"
    client_error = status is not None and 400 <= status < 500
    if status == 429 or (status is None and info.code in ("rate_limit_exceeded", "429")):
        return RateLimited(message, model=model, status=status)
    if status in (401, 403):
        return AuthenticationError(message, model=model, status=status)
    if is_context_length(info) and (status is None or status >= 400):
        return ContextLengthExceeded(message, model=model, status=status)
    if is_content_filter(info, by_message=client_error):
        return ContentFiltered(message, model=model, status=status)
    if status == 408:  # it gave up waiting for the request: never read, never billed
        unread = ProviderTimeout(message, model=model, status=status)
        unread.sent = False
        return unread
    if status in (404, 405):  # no such endpoint or model there: turnout's config, not the request
        return EndpointNotFound(message, model=model, status=status)
    if client_error or (status is not None and status < 400):
        return BadRequest(message, model=model, status=status)
    return ServerError(message, model=model, status=status)


def classify_http(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
    secrets: Iterable[str | Secret | None] = (),
) -> ProviderError:
    """The ProviderError for an HTTP response whose status is not 2xx."""
    return classify(
        status, error_info(body), provider=provider, model=model, secrets=secrets, headers=headers
    )


EMBEDDED_WHERE = {
    "body": "error in the body of an HTTP 200 answer",
    "stream": "error event in the stream",
}


def classify_embedded(
    info: ErrorInfo,
    origin: str,
    *,
    provider: str,
    model: str | None,
    secrets: Iterable[str | Secret | None] = (),
) -> ProviderError:
    """The ProviderError for an error object that came with HTTP 200: in the body
    (``origin="body"``) or as an event of a stream (``"stream"``).

    A numeric ``code`` (``"502"``, ``529``) chooses the error class as that status
    would (so a 5xx stays retryable), but the error is not reported as that HTTP
    status: its ``status`` is 200 for a body and None for a stream event, and the
    provider's code is kept apart in ``provider_code``.
    """
    number = int(info.code) if info.code and info.code.isdigit() else None
    error = classify(
        number if number is not None and number >= 400 else None,
        info,
        provider=provider,
        model=model,
        secrets=secrets,
        where=EMBEDDED_WHERE[origin],
    )
    error.status = 200 if origin == "body" else None
    return error
