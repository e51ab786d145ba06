"""Observed speed, as policies see it, and the one rule that ranks models by it.

The executor keeps exponentially weighted estimates per model
(:class:`~turnout.execution.speed.SpeedBoard`) and hands policies a read-only
:class:`SpeedSnapshot` inside :class:`~turnout.policies.base.PoolHealth`. A policy
never measures anything itself: the same snapshot gives the same decision, which is
what makes ``kind: fastest`` and ``within_tier: fastest`` testable and replayable.

:func:`rank_fastest` is shared by ``kind: fastest`` and the in-tier choice
(:mod:`turnout.policies.tiers`):

- a candidate's **estimate** for the metric is ``ttft`` (seconds to the first token),
  ``per_token`` (seconds per output token) or ``total`` (``ttft + per_token x
  max_tokens``, the request's ``max_tokens`` or ``default_tokens``);
- candidates with an estimate are ranked fastest first; ties keep the list order;
  candidates without one follow, in list order (so a cold pool routes by list order);
- **exploration**: a candidate is *thin* (fewer than ``min_samples`` samples, none
  at all included) or *stale* (no sample for ``stale_s`` seconds). When some
  candidates are thin or stale, a share ``explore`` of requests goes to one of
  them: the request's hash (:func:`~turnout.policies.ab.bucket` of its run, step and
  the snapshot's sample count) falls below ``explore``, and the explored model is
  the one that needs it most (fewest samples, then the oldest sample, then list
  order). The choice is a pure function of the request and the snapshot, so tests
  can pin it, while real traffic (whose snapshot changes every call) spreads the
  explored share evenly over time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Metric = Literal["ttft", "per_token", "total"]
METRICS: tuple[Metric, ...] = ("ttft", "per_token", "total")
DEFAULT_TOKENS = 256
"""Output tokens a ``total`` estimate assumes when the request sets no ``max_tokens``."""


@dataclass(frozen=True, slots=True)
class SpeedEstimate:
    """One model's observed speed: exponentially weighted over successful attempts."""

    ttft_s: float
    """Seconds to the first token (an unstreamed answer's first token is its whole latency)."""
    per_token_s: float | None
    """Seconds per output token after the first (None until a streamed answer measured it)."""
    samples: int
    updated_at: float
    """Epoch seconds of the latest sample."""

    def value(self, metric: Metric, tokens: int) -> float | None:
        if metric == "ttft":
            return self.ttft_s
        if metric == "per_token":
            return self.per_token_s
        return self.ttft_s + (self.per_token_s or 0.0) * tokens


_NO_ESTIMATES: Mapping[str, SpeedEstimate] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SpeedSnapshot:
    """Every model's estimate at ``as_of`` (epoch seconds), read-only."""

    estimates: Mapping[str, SpeedEstimate] = field(default_factory=lambda: _NO_ESTIMATES)
    as_of: float = 0.0

    def get(self, model: str) -> SpeedEstimate | None:
        return self.estimates.get(model)

    @property
    def samples(self) -> int:
        return sum(e.samples for e in self.estimates.values())


NO_SPEEDS = SpeedSnapshot()


@dataclass(frozen=True, slots=True)
class FastestRule:
    """How to rank by speed (see the module docstring)."""

    metric: Metric = "ttft"
    explore: float = 0.05
    min_samples: int = 3
    stale_s: float = 300.0
    default_tokens: int = DEFAULT_TOKENS


def fastest_rule(options: Mapping[str, Any]) -> FastestRule:
    """A rule from config options: ``metric``, ``explore``, ``min_samples``, ``stale_s``,
    ``default_tokens`` (each optional)."""
    d = FastestRule()
    return FastestRule(
        metric=options.get("metric") or d.metric,
        explore=float(options.get("explore", d.explore)),
        min_samples=int(options.get("min_samples", d.min_samples)),
        stale_s=float(options.get("stale_s", d.stale_s)),
        default_tokens=int(options.get("default_tokens", d.default_tokens)),
    )


@dataclass(frozen=True, slots=True)
class Ranked:
    models: tuple[str, ...]
    """Every candidate, the chosen one first."""
    why: str
    explored: bool = False


def rank_fastest(
    candidates: Sequence[str],
    speeds: SpeedSnapshot,
    rule: FastestRule,
    *,
    max_tokens: int | None = None,
    key: str = "",
) -> Ranked:
    """The candidates ordered by ``rule`` under ``speeds``; ``key`` identifies the request
    (for the exploration draw). The reason names each candidate's estimate and samples."""
    tokens = max_tokens or rule.default_tokens
    known: list[tuple[float, int, str]] = []
    unknown: list[str] = []
    needy: list[tuple[int, float, int, str]] = []
    parts: list[str] = []
    for i, m in enumerate(candidates):
        est = speeds.get(m)
        v = est.value(rule.metric, tokens) if est is not None else None
        if est is None or v is None:
            unknown.append(m)
            parts.append(f"{m} no estimate")
            needy.append((est.samples if est else 0, est.updated_at if est else 0.0, i, m))
            continue
        known.append((v, i, m))
        stale = speeds.as_of - est.updated_at > rule.stale_s
        note = ", stale" if stale else ""
        parts.append(f"{m} {_secs(v, rule.metric)} n={est.samples}{note}")
        if est.samples < rule.min_samples or stale:
            needy.append((est.samples, est.updated_at, i, m))
    known.sort()
    order = [m for _, _, m in known] + unknown
    head = f"fastest by {rule.metric}: {', '.join(parts)}"
    if needy and known and rule.explore > 0:
        from turnout.policies.ab import bucket

        if bucket("fastest", f"{key}\x00{speeds.samples}") < rule.explore:
            pick = min(needy)[3]
            rest = [m for m in order if m != pick]
            return Ranked((pick, *rest), f"{head} -> explore {pick}", explored=True)
    if not known:
        return Ranked(tuple(order), f"{head} -> {order[0]} (cold start, list order)")
    return Ranked(tuple(order), f"{head} -> {order[0]}")


def _secs(v: float, metric: Metric) -> str:
    if metric == "per_token":
        return f"{v * 1000:.2f}ms/token"
    return f"{v:.3f}s"


def request_key(run: str | None, step: str | None) -> str:
    """What identifies a request for the exploration draw: its run and step."""
    return f"{run or ''}\x00{step or ''}"
