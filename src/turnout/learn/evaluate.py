"""The yardstick: the cost-quality curve of a two-model router on held-out outcomes.

A router gives every prompt a score (how much the strong model is needed: here
``p_pass(strong) - p_pass(cheap)``). Sweeping the threshold from all-cheap to
all-strong, with **every distinct score a threshold** (prompts with equal scores
move together), gives one point per threshold: the share of calls sent to the
strong model, and the quality (mean pass) of the routed answers. Then:

* **PGR** (performance gap recovered) at a point is
  ``(quality - cheap's) / (strong's - cheap's)``; it can pass 1 (a router that
  keeps the prompts only the cheap model passes beats the strong model).
* **APGR** is the area under the PGR curve over shares [0, 1], the points joined
  by straight lines (between two thresholds a router reaches any share by sending
  part of a tie group up): a random scorer scores about 0.5. An oracle scorer
  (strong exactly where only the strong model passes) reaches PGR 1 at the share
  ``g`` of prompts that need the strong model, so its APGR is ``1 - g/2`` plus what
  it gains on prompts only the cheap model passes: the best any scorer can do on
  that data, printed next to the router's (``oracle_apgr``). No curve that joins
  the points can give the oracle exactly 1.0 unless ``g`` is 0; a convention that
  did (each step taking the next point's PGR) would reward coarse scores, since
  a router could raise its area by merging its scores into two values.
* **CPT(x)**: the smallest share of strong calls at which PGR reaches x (on the
  joined curve).

The cost per passed answer at a threshold is what the routed answers cost,
divided by how many passed (when the outcomes carry ``cost_usd``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Curve:
    """Points of the threshold sweep, all-cheap first (share 0) to all-strong (share 1)."""

    thresholds: tuple[float, ...]
    """The score a prompt needs to go to the strong model (``inf`` for all-cheap)."""
    shares: tuple[float, ...]
    quality: tuple[float, ...]
    pgr: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    n: int
    cheap: str
    strong: str
    cheap_rate: float
    strong_rate: float
    oracle_rate: float
    apgr: float | None
    """None when the strong model is not better than the cheap one on these outcomes."""
    oracle_apgr: float | None
    cpt50: float | None
    cpt80: float | None
    curve: Curve
    threshold: float | None = None
    strong_share: float | None = None
    """Share of strong calls at ``threshold``."""
    quality: float | None = None
    cost_per_pass: float | None = None
    """USD per passed answer at ``threshold`` (None without costs or passes)."""

    def as_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "cheap": self.cheap,
            "strong": self.strong,
            "pass_rate": {self.cheap: self.cheap_rate, self.strong: self.strong_rate,
                          "oracle": self.oracle_rate},
            "apgr": self.apgr,
            "oracle_apgr": self.oracle_apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "threshold": self.threshold,
            "strong_share": self.strong_share,
            "quality": self.quality,
            "cost_per_pass": self.cost_per_pass,
        }  # fmt: skip


def sweep(scores: Sequence[float] | F64, cheap: F64, strong: F64) -> Curve:
    """The threshold sweep of ``scores`` (higher: more in need of the strong model)."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if n == 0:
        raise ValueError("no outcomes to evaluate")
    order = np.argsort(-s, kind="stable")
    ordered = s[order]
    gain = np.cumsum((strong - cheap)[order])
    # the last index of each group of equal scores
    ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    base = float(cheap.mean())
    quality = np.r_[base, base + gain[ends] / n]
    shares = np.r_[0.0, (ends + 1) / n]
    thresholds = np.r_[np.inf, ordered[ends]]
    gap = float(strong.mean()) - base
    pgr = (quality - base) / gap if gap > 0 else np.zeros_like(quality)
    return Curve(
        tuple(float(t) for t in thresholds),
        tuple(float(x) for x in shares),
        tuple(float(q) for q in quality),
        tuple(float(p) for p in pgr),
    )


def apgr(curve: Curve) -> float:
    """Area under the PGR curve, its points joined by straight lines."""
    shares, pgr = np.asarray(curve.shares), np.asarray(curve.pgr)
    return float(np.sum(np.diff(shares) * (pgr[1:] + pgr[:-1]) / 2))


def cpt(curve: Curve, level: float) -> float | None:
    """The smallest share of strong calls at which the joined PGR curve reaches ``level``."""
    prev_x, prev_p = curve.shares[0], curve.pgr[0]
    if prev_p >= level:
        return prev_x
    for x, p in zip(curve.shares[1:], curve.pgr[1:], strict=True):
        if p >= level - 1e-12:
            return prev_x + (x - prev_x) * (level - prev_p) / (p - prev_p)
        prev_x, prev_p = x, p
    return None


def evaluate(
    scores: Sequence[float] | F64,
    cheap_passed: Sequence[float] | F64,
    strong_passed: Sequence[float] | F64,
    *,
    names: tuple[str, str] = ("cheap", "strong"),
    threshold: float | None = None,
    costs: tuple[Sequence[float] | F64, Sequence[float] | F64] | None = None,
) -> Evaluation:
    """APGR, CPT(50%), CPT(80%) and the pass rates; at ``threshold`` (strong when the
    score is above it) the share, quality and cost per passed answer."""
    c = np.asarray(cheap_passed, dtype=np.float64)
    s = np.asarray(strong_passed, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if not (len(c) == len(s) == len(sc)):
        raise ValueError("scores and outcomes differ in length")
    curve = sweep(sc, c, s)
    gap = float(s.mean() - c.mean())
    share = quality = cost_per_pass = None
    if threshold is not None:
        to_strong = sc > threshold
        share = float(to_strong.mean())
        routed = np.where(to_strong, s, c)
        quality = float(routed.mean())
        if costs is not None:
            spent = float(np.where(to_strong, np.asarray(costs[1]), np.asarray(costs[0])).sum())
            cost_per_pass = spent / float(routed.sum()) if routed.sum() > 0 else None
    return Evaluation(
        n=len(sc),
        cheap=names[0],
        strong=names[1],
        cheap_rate=float(c.mean()),
        strong_rate=float(s.mean()),
        oracle_rate=float(np.maximum(c, s).mean()),
        apgr=apgr(curve) if gap > 0 else None,
        oracle_apgr=apgr(sweep(s - c, c, s)) if gap > 0 else None,
        cpt50=cpt(curve, 0.5) if gap > 0 else None,
        cpt80=cpt(curve, 0.8) if gap > 0 else None,
        curve=curve,
        threshold=threshold,
        strong_share=share,
        quality=quality,
        cost_per_pass=cost_per_pass,
    )
