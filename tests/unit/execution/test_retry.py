"""Retry timing (:mod:`turnout.execution.retry`): backoff, and the provider's Retry-After."""

from __future__ import annotations

import random

import pytest

from turnout.errors import (
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from turnout.execution.retry import RetryPolicy


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("429", retry_after=2.0),
        ServerError("503", status=503, retry_after=2.0),
        ServerError("529", status=529, retry_after=2.0),
        ServerError("500", status=500, retry_after=2.0),
        ProviderTimeout("408", status=408, retry_after=2.0),
        MalformedResponse("half a body", retry_after=2.0),
    ],
)
def test_retry_after_is_honoured_on_any_error_that_carries_it(error: ProviderError) -> None:
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=0.02)
    assert policy.delay(1, error, random.Random(0)) == 2.0


def test_without_retry_after_the_backoff_applies() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4, jitter=0.25)
    assert 0.375 <= policy.delay(1, ServerError("503", status=503), random.Random(0)) <= 0.625


def test_a_retry_after_up_to_the_cap_is_waited() -> None:
    assert RetryPolicy(max_retry_after_s=30).delay(1, RateLimited("x", retry_after=30)) == 30


@pytest.mark.parametrize(
    "error", [RateLimited("x", retry_after=120), ServerError("x", status=503, retry_after=31)]
)
def test_a_retry_after_past_the_cap_means_not_again(error: ProviderError) -> None:
    assert RetryPolicy(max_retry_after_s=30).delay(1, error) is None
