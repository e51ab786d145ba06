"""Retry timing: exponential backoff with jitter that honours Retry-After.

The one home of the executor's retry defaults (``executor.retries`` in
``turnout.yaml`` overrides them field by field).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from turnout.errors import ProviderError

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` counts every call to one model, the first one included."""

    max_attempts: int = 3
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    jitter: float = 0.25
    max_retry_after_s: float = 30.0

    def delay(
        self, attempt: int, error: ProviderError, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before asking the same model again after its attempt number
        ``attempt`` (from 1) failed with ``error``: the provider's Retry-After when it gave
        one, else exponential backoff with jitter.

        None when the provider asked to be left alone for longer than
        ``max_retry_after_s``: the model is not asked again within this decision (its
        strategy moves on to its next model, or the decision fails at once, keeping the
        provider's Retry-After for the caller) rather than asked early into a limit
        that is still on.
        """
        if error.retry_after is not None:  # a 429, 503, 529 ... that said how long
            wait = max(error.retry_after, 0.0)
            return wait if wait <= self.max_retry_after_s else None
        base = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        r = float((rng or random).uniform(-self.jitter, self.jitter))
        return max(0.0, base * (1 + r))


class Backoff:
    """The pause before asking the same model again, the same in both modes."""

    __slots__ = ("_rng", "_sleep", "policy")

    def __init__(
        self, policy: RetryPolicy, *, sleep: Sleep = asyncio.sleep, rng: random.Random | None = None
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._rng = rng or random.Random()

    def delay(self, attempt: int, error: ProviderError) -> float | None:
        """:meth:`RetryPolicy.delay`, with this backoff's jitter."""
        return self.policy.delay(attempt, error, self._rng)

    def pause(self, seconds: float) -> Awaitable[None]:
        return self._sleep(seconds)
