"""OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``.

The official SDK picks its exception class from the HTTP status alone; ``type``
and ``code`` are what a caller inspects afterwards, so each status gets the
``type`` OpenAI itself sends with it. (Reading other servers' error bodies, the
client direction, is :mod:`turnout.providers.openai_errors`.)
"""

from __future__ import annotations

import math
from typing import Any

_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "permission_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    413: ("Request body too large.", "invalid_request_error", "request_too_large"),
    429: ("Rate limit reached for requests. Please try again later.", "requests", None),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_body(
    status: int,
    message: str | None = None,
    code: str | None = None,
    error_type: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The error body for ``status``; unset parts take OpenAI's usual ones for it."""
    default_message, default_type, default_code = _DEFAULTS.get(
        status, (f"HTTP {status}.", "server_error", None)
    )
    return {
        "error": {
            "message": message or default_message,
            "type": error_type or default_type,
            "param": param,
            "code": code or default_code,
        }
    }


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` header's value: whole seconds, rounded up, at least 1 (a 0 would
    send a client straight back)."""
    return str(max(1, math.ceil(seconds)))
