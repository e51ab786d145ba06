"""Cache counters, and what happens when a cache backend fails.

A cache is an optimization: when its backend (Redis) is down, look-ups are
misses and stores are skipped, and the request goes on to the model. After a
failure the backend is left alone for ``RETRY_AFTER_S`` (so a dead Redis does not
cost a connection attempt per request). The first failure is logged as a
warning on the ``turnout.cache`` logger, the recovery as info;
``CacheStats.errors`` counts every failure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

log = logging.getLogger("turnout.cache")
RETRY_AFTER_S = 1.0


if TYPE_CHECKING:
    from turnout.execution.cache.answer import CachedAnswer


@dataclass(slots=True)
class CacheStats:
    """Counters since the cache was made (per process, not shared between replicas)."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    skipped: int = 0  # look-ups of requests that were not cacheable
    errors: int = 0  # backend failures (each one served as a miss / a skipped store)
    saved_usd: Decimal = field(default_factory=Decimal)
    last_error: str | None = None  # set while the backend is failing
    retry_at: float = 0.0  # time.monotonic() before which the backend is not tried

    def backend_resting(self) -> bool:
        """True shortly after a failure: skip the backend (a miss, a skipped store)."""
        return self.retry_at > 0.0 and time.monotonic() < self.retry_at

    def failed(self, cache: str, op: str, exc: Exception) -> None:
        self.errors += 1
        self.retry_at = time.monotonic() + RETRY_AFTER_S
        if self.last_error is None:
            log.warning("%s cache: %s failed, going on without the cache: %s", cache, op, exc)
        self.last_error = f"{op}: {type(exc).__name__}: {exc}"[:300]

    def ok(self, cache: str) -> None:
        self.retry_at = 0.0
        if self.last_error is not None:
            log.info("%s cache: backend is answering again", cache)
            self.last_error = None

    def looked_up(self, answer: CachedAnswer | None) -> CachedAnswer | None:
        """Count one look-up's outcome (a hit adds what it saved) and pass it on."""
        if answer is None:
            self.misses += 1
        else:
            self.hits += 1
            self.saved_usd += answer.cost_usd
        return answer

    def stored(self, cache: str) -> None:
        """Count one answer written to ``cache``'s backend."""
        self.ok(cache)
        self.stores += 1
