"""What :mod:`turnout.providers.openai_errors` keeps of an upstream's error beyond its
class: the Retry-After of any status."""

from __future__ import annotations

import json

import pytest

from turnout.errors import ProviderError, RateLimited, ServerError
from turnout.providers import openai_errors


def classify(status: int, headers: dict[str, str], body: object = None) -> ProviderError:
    raw = json.dumps(body or {"error": {"message": "busy", "type": "server_error"}}).encode()
    return openai_errors.classify_http(status, raw, headers, provider="up", model="m")


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
