"""``single``: one model, retried (after backoff) on retryable failures, up to
``RetryPolicy.max_attempts`` calls; never sooner than the provider's Retry-After, and
not at all when that is longer than ``max_retry_after_s`` (see
:meth:`~turnout.execution.retry.RetryPolicy.delay`)."""

from __future__ import annotations

from turnout.errors import CircuitOpen, ProviderError
from turnout.types import ChatRequest, ChatResponse


class SingleRoute:
    judged = False

    def __init__(self, model: str, max_attempts: int) -> None:
        self.model = model
        self.max_attempts = max_attempts
        self.calls = 0

    def first(self) -> str:
        self.calls = 1
        return self.model

    def after_error(self, model: str, error: ProviderError, *, moving_on: bool) -> str | None:
        if isinstance(error, CircuitOpen) or not error.retryable or moving_on:
            return None
        if self.calls >= self.max_attempts:
            return None
        self.calls += 1
        return self.model

    def judge(self, model: str, request: ChatRequest, response: ChatResponse) -> str | None:
        return None

    def after_reject(self, model: str) -> str | None:
        return None

    def stopped(self, model: str, why: str) -> None:
        pass

    def note(self, answered: str | None, *, kept_rejected: bool = False) -> str | None:
        return None
