"""Observed speed per model, kept by the executor for policies to read.

After every successful attempt that really called a model (not a cache hit) the
executor records it here (:meth:`SpeedBoard.observe`): time to first token, and
seconds per output token after the first. Each is an exponentially weighted
moving average (weight ``alpha`` on the newest sample, 0.2 by default: the last
ten samples carry about 90% of the weight), with the sample count and the time of
the latest sample so that policies can tell thin or stale estimates apart.

- A streamed answer (or the local engine, which measures it) gives both figures.
  An unstreamed answer arrives all at once: its time to first token is its whole
  latency, and it says nothing about the per-token speed.
- Recording costs about a microsecond (a lock, a dictionary look-up and a few
  float operations; ``benchmarks/speed_estimates.py``). :meth:`SpeedBoard.snapshot`
  hands out a read-only :class:`~turnout.policies.speed.SpeedSnapshot`, rebuilt only
  when something changed since the last one.
- :func:`seed_from_store` replays recent successful attempts from the trace store
  at start-up, so a fresh process does not start blind.

With ``executor.state: redis`` a :class:`~turnout.execution.speed_redis.RedisSpeedBoard`
shares the estimates between processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from turnout.errors import StoreError
from turnout.policies.speed import NO_SPEEDS, SpeedEstimate, SpeedSnapshot
from turnout.tracing.store import TraceStore

log = logging.getLogger("turnout.speed")

DEFAULT_ALPHA = 0.2


class Sample(NamedTuple):
    """One successful attempt's timing, as recorded (and as shared through Redis). A named
    tuple, not a dataclass: one is made per attempt, on the hot path."""

    model: str
    ttft_s: float
    per_token_s: float | None
    at: float


class _Cell:
    """One model's running estimate (mutable, private to the board)."""

    __slots__ = ("per_token", "samples", "ttft", "updated_at")

    def __init__(self, ttft: float, per_token: float | None, samples: int, at: float) -> None:
        self.ttft = ttft
        self.per_token = per_token
        self.samples = samples
        self.updated_at = at


def sample_of(
    model: str, latency_s: float, ttft_s: float | None, output_tokens: int, at: float
) -> Sample:
    """An attempt's timing as a sample: an unstreamed answer's first token is its whole
    latency; the per-token figure needs a measured first token and two tokens or more."""
    if ttft_s is None:
        return Sample(model, latency_s, None, at)
    per = (latency_s - ttft_s) / (output_tokens - 1) if output_tokens > 1 else None
    return Sample(model, ttft_s, max(per, 0.0) if per is not None else None, at)


class SpeedBoard:
    """Exponentially weighted speed estimates per model, in this process."""

    def __init__(self, *, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._cells: dict[str, _Cell] = {}
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._estimates: Mapping[str, SpeedEstimate] = NO_SPEEDS.estimates

    # -- recording (the hot path) ---------------------------------------------------------

    def observe(
        self, model: str, latency_s: float, ttft_s: float | None, output_tokens: int, at: float
    ) -> None:
        """Record one successful attempt (``at``: epoch seconds it ended)."""
        if ttft_s is None:
            self.add(Sample(model, latency_s, None, at))
        else:
            per = (latency_s - ttft_s) / (output_tokens - 1) if output_tokens > 1 else None
            self.add(Sample(model, ttft_s, None if per is None else max(per, 0.0), at))

    def add(self, s: Sample) -> None:
        """Fold one sample into its model's estimate."""
        model, ttft, per, at = s
        with self._lock:
            cell = self._cells.get(model)
            if cell is None:
                self._cells[model] = _Cell(ttft, per, 1, at)
            else:
                a = self.alpha
                cell.ttft += a * (ttft - cell.ttft)
                if per is not None:
                    p = cell.per_token
                    cell.per_token = per if p is None else p + a * (per - p)
                cell.samples += 1
                if at > cell.updated_at:
                    cell.updated_at = at
            self._dirty.add(model)

    def seed(self, samples: Iterable[Sample]) -> int:
        """Replay samples (oldest first) into the local estimates; returns how many."""
        n = 0
        for s in samples:
            SpeedBoard.add(self, s)  # local only, never shared again
            n += 1
        return n

    def replace(self, estimates: Mapping[str, SpeedEstimate]) -> None:
        """Take over estimates kept elsewhere (the shared ones, from Redis)."""
        with self._lock:
            for model, e in estimates.items():
                self._cells[model] = _Cell(e.ttft_s, e.per_token_s, e.samples, e.updated_at)
            self._dirty.update(estimates)

    # -- reading --------------------------------------------------------------------------

    def snapshot(self) -> SpeedSnapshot:
        """Every model's estimate now, read-only; only the models that changed since the
        last snapshot are copied anew."""
        if self._dirty:
            with self._lock:
                fresh = dict(self._estimates)
                for m in self._dirty:
                    c = self._cells[m]
                    fresh[m] = SpeedEstimate(c.ttft, c.per_token, c.samples, c.updated_at)
                self._dirty.clear()
                self._estimates = MappingProxyType(fresh)
        return SpeedSnapshot(self._estimates, time.time())

    async def aclose(self) -> None:
        """Nothing to release in memory (the Redis board flushes what it holds)."""


_SEED_SQL = (
    "SELECT model, ttft_s, latency_s, output_tokens, started_at FROM attempts "
    "WHERE started_at >= ? AND status = 'ok' AND cache IS NULL "
    "ORDER BY started_at DESC LIMIT ?"
)


def seed_from_store(
    board: SpeedBoard,
    store: TraceStore,
    *,
    window_s: float = 86400.0,
    limit: int = 2000,
    now: float | None = None,
) -> int:
    """Replay the most recent ``limit`` successful attempts of the last ``window_s`` seconds
    into ``board``; returns how many. A store that cannot be read seeds nothing (a warning
    on ``turnout.speed``): the estimates then start from live traffic."""
    if limit <= 0 or window_s <= 0:
        return 0
    since = (time.time() if now is None else now) - window_s
    try:
        rows = store.query(_SEED_SQL, (since, limit))
    except StoreError as exc:
        log.warning("speed estimates not seeded from the trace store: %s", exc)
        return 0
    samples = [
        sample_of(str(m), float(lat or 0.0), None if ttft is None else float(ttft),
                  int(out or 0), float(at) + float(lat or 0.0))
        for m, ttft, lat, out, at in reversed(rows)
    ]  # fmt: skip
    return board.seed(samples)
