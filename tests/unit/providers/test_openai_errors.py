"""What :mod:`turnout.providers.openai_errors` keeps of an upstream's error beyond its
class: the Retry-After of any status; the error object's code, type and param."""

from __future__ import annotations

import json

import pytest

from turnout.errors import ProviderError, RateLimited, ServerError
from turnout.providers import openai_errors

KEY = "sk-proj-abcdefghijklmnop0123456789"


def classify(status: int, headers: dict[str, str], body: object = None) -> ProviderError:
    raw = json.dumps(body or {"error": {"message": "busy", "type": "server_error"}}).encode()
    return openai_errors.classify_http(
        status, raw, headers, provider="up", model="m", secrets=[KEY]
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"Retry-After": "12"}, 12.0), ({"retry-after-ms": "1500"}, 1.5), ({}, None)],
)
def test_a_server_error_keeps_its_retry_after(
    status: int, headers: dict[str, str], seconds: float | None
) -> None:
    exc = classify(status, headers)
    assert isinstance(exc, ServerError) and exc.retryable
    assert exc.retry_after == seconds


def test_a_server_error_keeps_an_http_date_retry_after() -> None:
    headers = {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}
    exc = classify(503, headers)
    assert exc.retry_after is not None and exc.retry_after > 3600


def test_a_rate_limit_still_keeps_it() -> None:
    exc = classify(429, {"Retry-After": "7"})
    assert isinstance(exc, RateLimited) and exc.retry_after == 7.0


def test_code_type_and_param_are_kept() -> None:
    body = {"error": {"message": "Rate limit reached for tokens per min", "type": "tokens",
                      "param": None, "code": "rate_limit_exceeded"}}  # fmt: skip
    exc = classify(429, {}, body)
    assert (exc.provider_code, exc.provider_type, exc.provider_param) == (
        "rate_limit_exceeded", "tokens", None,
    )  # fmt: skip
    body = {"error": {"message": "too long", "type": "invalid_request_error",
                      "param": "messages", "code": "context_length_exceeded"}}  # fmt: skip
    exc = classify(400, {}, body)
    assert (exc.provider_code, exc.provider_param) == ("context_length_exceeded", "messages")


def test_kept_fields_are_redacted_and_short() -> None:
    body = {"error": {"message": "no", "type": "x" * 500, "param": f"key {KEY}", "code": None}}
    exc = classify(400, {}, body)
    assert exc.provider_param is not None and KEY not in exc.provider_param
    assert exc.provider_type is not None and len(exc.provider_type) <= 100
    assert exc.provider_code is None
