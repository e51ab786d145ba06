"""What one process last learned of breakers kept elsewhere (Redis), trusted for a while.

:class:`~turnout.execution.breaker_redis.RedisBreakerStore` keeps one of these so that
the common path (a closed breaker) needs no round trip: ``allow`` of a model known to
be closed, and ``unavailable()`` while everything it knows is fresh, answer from here.
What the store learns from Redis (the state every script returns, the models set)
replaces what is here at once, so a change this process makes is seen here at once; a
change another replica makes is seen once the entry is older than the bound and the
next caller asks Redis again.

The bound is ``ttl_s``, and never more than half the breaker's ``cooldown_s``: an
entry that says "closed" can then not outlive a cooldown that began after it was
fetched (with room for the local and the Redis clock to disagree on a duration), so
when a probe becomes due every replica asks Redis, where the probe is claimed
atomically, by one caller.

Times here are on the local clock (``time.monotonic`` or the store's test clock);
a Redis time is turned into a local one through the ``now`` the script returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from turnout.execution.breaker import BreakerConfig, BreakerState, Clock


@dataclass(frozen=True, slots=True)
class Seen:
    """One model's breaker as Redis last told it.

    ``until`` is when it stops refusing (open: the end of the cooldown; half-open: when
    the probe in flight is given up), ``at`` when the question was sent; both local.
    """

    state: BreakerState
    until: float
    at: float


class BreakerView:
    """The breakers' states as last seen, and the models set, each with its age."""

    __slots__ = ("_clock", "_names", "_names_at", "_seen", "ttl_s")

    def __init__(self, ttl_s: float, clock: Clock) -> None:
        if ttl_s < 0:
            raise ValueError(f"breaker: view_ttl_s must be >= 0, got {ttl_s!r}")
        self.ttl_s = ttl_s
        self._clock = clock
        self._seen: dict[str, Seen] = {}
        self._names: frozenset[str] = frozenset()
        self._names_at = float("-inf")

    def now(self) -> float:
        return self._clock()

    def _fresh(self, at: float, config: BreakerConfig, now: float) -> bool:
        return now - at < min(self.ttl_s, config.cooldown_s / 2)

    @property
    def names(self) -> frozenset[str]:
        """The models set as last fetched."""
        return self._names

    def learn(
        self,
        model: str,
        state: BreakerState,
        until_remote: float,
        remote_now: float,
        at: float,
    ) -> None:
        """What a script returned about ``model``, asked at local time ``at``; an answer
        to an older question never replaces a newer one."""
        old = self._seen.get(model)
        if old is not None and old.at > at:
            return
        self._seen[model] = Seen(state, at + (until_remote - remote_now), at)
        if model not in self._names:
            self._names = self._names | {model}

    def learn_names(self, names: Iterable[str], at: float) -> None:
        """The models set as fetched at ``at``; models no longer in it are forgotten
        (unless learned of after ``at``)."""
        self._names = frozenset(names) | {m for m, s in self._seen.items() if s.at > at}
        self._names_at = at
        for gone in [m for m in self._seen if m not in self._names]:
            del self._seen[gone]

    def forget(self, model: str | None = None) -> None:
        """After a reset: nothing is known (of ``model``, or of any)."""
        if model is None:
            self._seen.clear()
            self._names = frozenset()
            self._names_at = float("-inf")
        else:
            self._seen.pop(model, None)
            self._names = self._names - {model}

    def closed(self, model: str, config: BreakerConfig) -> bool:
        """Known to be closed, freshly: a model the fresh models set lacks has no breaker
        state anywhere, so it is closed too."""
        now = self._clock()
        s = self._seen.get(model)
        if s is not None:
            return s.state == "closed" and self._fresh(s.at, config, now)
        return model not in self._names and self._fresh(self._names_at, config, now)

    def cooling(self, model: str, config: BreakerConfig) -> bool:
        """Known to be open, freshly, with its cooldown not over: refused without asking."""
        s = self._seen.get(model)
        if s is None or s.state != "open":
            return False
        now = self._clock()
        return now < s.until and self._fresh(s.at, config, now)

    def retry_in(self, model: str) -> float | None:
        """Seconds until ``model``'s breaker, as last seen, stops refusing; None when it was
        seen closed, or not at all."""
        s = self._seen.get(model)
        if s is None or s.state == "closed":
            return None
        return max(0.0, s.until - self._clock())

    def unavailable(self, config: BreakerConfig, *, any_age: bool = False) -> frozenset[str] | None:
        """The models refusing calls now, or None when any of it is too old to say
        (``any_age``: however old, None only when nothing was seen)."""
        now = self._clock()

        def known(at: float) -> bool:
            return at > float("-inf") if any_age else self._fresh(at, config, now)

        if not known(self._names_at):
            return None
        out: list[str] = []
        for model in self._names:
            s = self._seen.get(model)
            if s is None or not known(s.at):
                return None
            if s.state != "closed" and now < s.until:
                out.append(model)
        return frozenset(out)
