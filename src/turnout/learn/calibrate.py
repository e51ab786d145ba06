"""Deciding from scores, and choosing the threshold for a target.

Models are ordered cheapest first, strongest last. A model is **close enough**
when the strongest model's predicted pass probability exceeds its own by at
most ``threshold``; the decision is the cheapest model that is close enough
(the strongest always is). Threshold 0 keeps only models predicted at least as
good as the strongest; 1 always takes the cheapest.

A **target** picks the threshold on out-of-fold predictions (made at training
time, stored in the router file):

* ``{quality: 0.95}``: the largest threshold (the lowest cost) whose routed pass
  rate keeps at least 95% of the strongest model's;
* ``{strong_share: 0.3}``: the smallest threshold that sends at most 30% of the
  calls to the strongest model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
TARGETS = ("quality", "strong_share")


def choose(p: F64, threshold: float) -> int:
    """The index of the cheapest model whose p_pass is within ``threshold`` of the
    strongest's."""
    best = p[-1]
    for i in range(len(p) - 1):
        if best - p[i] <= threshold:
            return i
    return len(p) - 1


def route_many(p: F64, threshold: float) -> NDArray[np.intp]:
    """:func:`choose` for each row of ``p`` (prompts, models)."""
    close = (p[:, -1:] - p) <= threshold
    close[:, -1] = True
    out: NDArray[np.intp] = np.argmax(close, axis=1)
    return out


def parse_target(raw: Mapping[str, object]) -> tuple[str, float]:
    """``{quality: 0.95}`` or ``{strong_share: 0.3}``; ValueError otherwise."""
    if len(raw) != 1:
        raise ValueError("target takes one of quality: or strong_share:")
    ((name, value),) = raw.items()
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r} (known: quality, strong_share)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"target {name} must be a number in [0, 1]")
    return str(name), float(value)


def candidates(p: F64) -> F64:
    """Thresholds at which some decision changes (the gaps to the strongest), and 1."""
    gaps = (p[:, -1:] - p[:, :-1]).ravel()
    return np.unique(np.r_[gaps, 1.0, 0.0])


def threshold_for(target: Mapping[str, object], p: F64, passed: F64) -> float:
    """The threshold meeting ``target`` on (out-of-fold) predictions ``p`` and the
    outcomes ``passed`` (both (prompts, models))."""
    name, value = parse_target(target)
    cands = candidates(p)
    rows = np.arange(len(p))
    if name == "quality":
        goal = value * float(passed[:, -1].mean())
        best = 0.0
        for t in cands:  # ascending: cheaper as t grows
            if float(passed[rows, route_many(p, float(t))].mean()) >= goal - 1e-12:
                best = float(t)
        return best
    last = p.shape[1] - 1
    for t in cands:
        if float((route_many(p, float(t)) == last).mean()) <= value + 1e-12:
            return float(t)
    return 1.0
