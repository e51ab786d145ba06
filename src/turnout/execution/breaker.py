"""Per-model circuit breakers: closed, open, half-open.

A breaker stops sending requests to a model that keeps failing, then lets one
request through to see whether it has recovered::

    closed --(failure rate >= threshold over the window, with >= min_requests)--> open
    open --(cooldown elapsed; the next allow() claims the single probe)--> half_open
    half_open --(probe succeeded)--> closed (window reset, cooldown back to base)
    half_open --(probe failed)--> open (a FRESH cooldown, growing by cooldown_multiplier
                                        up to max_cooldown_s)

The failure rate is counted over a rolling window (``window_s``) made of
``bucket_s``-wide buckets, so memory per model is bounded and old failures are
forgotten. While half-open, every caller but the probe is refused; a probe that
never reports back (its caller was cancelled) is given up after
``probe_timeout_s`` and the next caller becomes the probe.

Results recorded while a breaker is open are ignored. While half-open, the next
``record`` is taken as the probe's result (the API has no probe tokens; a
straggler that started before the breaker opened may decide the probe, which is
still evidence about the model).

One :class:`BreakerBoard` per pool. Its methods are async so that the same
calls work with the in-process store (the default: one event loop, well under
10 µs a call) and with :class:`turnout.execution.breaker_redis.RedisBreakerStore`
(state shared by gateway replicas)::

    board = BreakerBoard(BreakerConfig())
    if await board.allow("opus"):
        ok = ...  # call the model
        await board.record("opus", ok)
    health = PoolHealth(unavailable=await board.unavailable())
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How a breaker decides. Times are in seconds.

    ``failure_rate`` is the threshold: the breaker opens when, over the last
    ``window_s``, at least ``min_requests`` results were recorded and the share of
    failures among them is at least ``failure_rate``.
    """

    window_s: float = 30.0
    bucket_s: float = 1.0
    min_requests: int = 5
    failure_rate: float = 0.5
    cooldown_s: float = 30.0
    cooldown_multiplier: float = 1.0
    max_cooldown_s: float = 300.0
    probe_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("window_s", "bucket_s", "cooldown_s", "probe_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"breaker: {name} must be > 0, got {getattr(self, name)!r}")
        if self.bucket_s > self.window_s:
            raise ValueError(f"breaker: bucket_s ({self.bucket_s}) exceeds window_s")
        if self.min_requests < 1:
            raise ValueError(f"breaker: min_requests must be >= 1, got {self.min_requests!r}")
        if not 0 < self.failure_rate <= 1:
            raise ValueError(f"breaker: failure_rate must be in (0, 1], got {self.failure_rate!r}")
        if self.cooldown_multiplier < 1:
            raise ValueError(
                f"breaker: cooldown_multiplier must be >= 1, got {self.cooldown_multiplier!r}"
            )
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError("breaker: max_cooldown_s must be >= cooldown_s")

    @property
    def buckets(self) -> int:
        """How many buckets make up the window."""
        return max(1, math.ceil(self.window_s / self.bucket_s - 1e-9))

    def next_cooldown(self, previous: float) -> float:
        """The cooldown after a failed probe, given the one that just ended."""
        return min(max(previous, self.cooldown_s) * self.cooldown_multiplier, self.max_cooldown_s)


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One model's breaker, for display (``turnout`` status pages, logs)."""

    model: str
    state: BreakerState
    requests: int = 0
    failures: int = 0
    retry_in_s: float | None = None
    cooldown_s: float = 0.0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class BreakerStore(Protocol):
    """Where breaker state lives. Implementations apply the transitions above
    atomically: two callers can never both claim the half-open probe."""

    async def allow(self, model: str, config: BreakerConfig) -> bool: ...

    async def record(self, model: str, ok: bool, config: BreakerConfig) -> BreakerState: ...

    async def state(self, model: str, config: BreakerConfig) -> BreakerState: ...

    async def unavailable(self, config: BreakerConfig) -> frozenset[str]: ...

    async def retry_in(self, model: str, config: BreakerConfig) -> float | None: ...

    async def snapshot(self, config: BreakerConfig) -> Mapping[str, BreakerStatus]: ...

    async def reset(self, model: str | None = None) -> None: ...


class BreakerBoard:
    """The breakers of one pool: one per model, created on first use."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        store: BreakerStore | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        """``store`` defaults to an in-process one using ``clock`` (``time.monotonic``)."""
        if store is not None and clock is not None:
            raise ValueError("breaker: pass clock= to the store, not to the board")
        self.config = config or BreakerConfig()
        self.store: BreakerStore = (
            store if store is not None else MemoryBreakerStore(clock or time.monotonic)
        )

    async def allow(self, model: str) -> bool:
        """May a request go to ``model`` now? Claims the half-open probe when one is due."""
        return await self.store.allow(model, self.config)

    async def record(self, model: str, ok: bool) -> BreakerState:
        """Record a call's outcome; returns the breaker's state afterwards."""
        return await self.store.record(model, ok, self.config)

    async def state(self, model: str) -> BreakerState:
        """``open`` whose cooldown has elapsed reads as ``half_open`` (a probe is due)."""
        return await self.store.state(model, self.config)

    async def unavailable(self) -> frozenset[str]:
        """Models a policy should avoid now (for :class:`~turnout.policies.PoolHealth`):
        open and cooling down, or half-open with the probe in flight."""
        return await self.store.unavailable(self.config)

    async def retry_in(self, model: str) -> float | None:
        """Seconds until ``model``'s breaker lets a call through again at the latest: the
        rest of an open breaker's cooldown, or of the timeout of a half-open breaker's
        probe in flight (its result may close the breaker sooner); 0 when one would be let
        through now; None when it is closed."""
        return await self.store.retry_in(model, self.config)

    async def snapshot(self) -> Mapping[str, BreakerStatus]:
        return await self.store.snapshot(self.config)

    async def reset(self, model: str | None = None) -> None:
        """Forget one model's breaker (or all): back to closed with an empty window."""
        await self.store.reset(model)


# -- in-process store ---------------------------------------------------------------------


class _Breaker:
    """One model's state. The window is a ring of buckets with running totals;
    advancing to a new bucket clears the buckets it skips (amortised O(1))."""

    __slots__ = (
        "cooldown",
        "epoch",
        "fails",
        "n",
        "oks",
        "open_until",
        "probe_at",
        "state",
        "total_fail",
        "total_ok",
    )

    def __init__(self, n: int) -> None:
        self.n = n
        self.oks = [0] * n
        self.fails = [0] * n
        self.epoch = -1  # the bucket number most recently written
        self.total_ok = 0
        self.total_fail = 0
        self.state: BreakerState = "closed"
        self.open_until = 0.0
        self.cooldown = 0.0
        self.probe_at = 0.0

    def advance(self, epoch: int) -> None:
        if epoch <= self.epoch:
            return
        if epoch - self.epoch >= self.n:
            self.clear()
        else:
            for e in range(self.epoch + 1, epoch + 1):
                i = e % self.n
                self.total_ok -= self.oks[i]
                self.total_fail -= self.fails[i]
                self.oks[i] = self.fails[i] = 0
        self.epoch = epoch

    def clear(self) -> None:
        self.oks = [0] * self.n
        self.fails = [0] * self.n
        self.total_ok = self.total_fail = 0


class MemoryBreakerStore:
    """Breaker state in this process (one event loop; not shared between threads).

    ``clock`` defaults to ``time.monotonic``; tests pass a fake one.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self._tripped: set[str] = set()  # models not closed: what unavailable() looks at

    def _get(self, model: str, config: BreakerConfig) -> _Breaker:
        b = self._breakers.get(model)
        if b is None:
            b = self._breakers[model] = _Breaker(config.buckets)
        return b

    async def allow(self, model: str, config: BreakerConfig) -> bool:
        b = self._breakers.get(model)
        if b is None or b.state == "closed":
            return True
        now = self._clock()
        if b.state == "open":
            if now < b.open_until:
                return False
            b.state = "half_open"
        elif now - b.probe_at < config.probe_timeout_s:
            return False  # half-open, the probe is in flight
        b.probe_at = now
        return True

    async def record(self, model: str, ok: bool, config: BreakerConfig) -> BreakerState:
        b = self._get(model, config)
        now = self._clock()
        if b.state == "half_open":
            if ok:
                b.state, b.cooldown, b.probe_at = "closed", 0.0, 0.0
                b.clear()
                b.epoch = -1
                self._tripped.discard(model)
            else:
                b.cooldown = config.next_cooldown(b.cooldown)
                b.state, b.open_until = "open", now + b.cooldown
            return b.state
        if b.state == "open":
            return "open"  # a straggler's result: ignored while cooling down
        b.advance(int(now // config.bucket_s))
        i = b.epoch % b.n
        if ok:
            b.oks[i] += 1
            b.total_ok += 1
            return "closed"
        b.fails[i] += 1
        b.total_fail += 1
        total = b.total_ok + b.total_fail
        if total >= config.min_requests and b.total_fail >= config.failure_rate * total:
            b.state, b.cooldown, b.open_until = "open", config.cooldown_s, now + config.cooldown_s
            b.clear()
            b.epoch = -1
            self._tripped.add(model)
        return b.state

    async def state(self, model: str, config: BreakerConfig) -> BreakerState:
        b = self._breakers.get(model)
        if b is None:
            return "closed"
        if b.state == "open" and self._clock() >= b.open_until:
            return "half_open"
        return b.state

    async def unavailable(self, config: BreakerConfig) -> frozenset[str]:
        if not self._tripped:
            return frozenset()
        now = self._clock()
        return frozenset(
            m for m in self._tripped if _blocked(self._breakers[m], now, config.probe_timeout_s)
        )

    async def retry_in(self, model: str, config: BreakerConfig) -> float | None:
        b = self._breakers.get(model)
        if b is None or b.state == "closed":
            return None
        until = b.open_until if b.state == "open" else b.probe_at + config.probe_timeout_s
        return max(0.0, until - self._clock())

    async def snapshot(self, config: BreakerConfig) -> Mapping[str, BreakerStatus]:
        """Each model's breaker. ``retry_in_s`` is the time left in the cooldown
        (0 when a probe is due) and None while the probe is in flight."""
        now = self._clock()
        out: dict[str, BreakerStatus] = {}
        for model, b in sorted(self._breakers.items()):
            state: BreakerState = b.state
            retry: float | None = None
            if state == "closed":
                b.advance(int(now // config.bucket_s))
            elif state == "open":
                retry = max(0.0, b.open_until - now)
                state = "half_open" if retry == 0.0 else "open"
            elif not _blocked(b, now, config.probe_timeout_s):
                retry = 0.0
            out[model] = BreakerStatus(
                model, state, b.total_ok + b.total_fail, b.total_fail, retry, b.cooldown
            )
        return out

    async def reset(self, model: str | None = None) -> None:
        if model is None:
            self._breakers.clear()
            self._tripped.clear()
        else:
            self._breakers.pop(model, None)
            self._tripped.discard(model)


def _blocked(b: _Breaker, now: float, probe_timeout_s: float) -> bool:
    if b.state == "open":
        return now < b.open_until
    if b.state == "half_open":
        return now - b.probe_at < probe_timeout_s
    return False
