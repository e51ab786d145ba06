"""Retry timing: exponential backoff with jitter that honours Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass

from turnout.errors import ProviderError, RateLimited


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` counts every call to one model, the first one included."""

    max_attempts: int = 3
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    jitter: float = 0.25
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, error: ProviderError, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` starts at 1)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after_s)
        base = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        r = float((rng or random).uniform(-self.jitter, self.jitter))
        return max(0.0, base * (1 + r))
