"""Small, dependency-free statistics for bench results.

Everything here is plain Python (no numpy) and deterministic given a seed:

- :func:`wilson`: the Wilson score interval for a proportion (Wilson 1927);
- :func:`newcombe`: the difference of two independent proportions with
  Newcombe's hybrid score interval (Newcombe 1998, method 10);
- :func:`quantile`: linear-interpolation quantiles (Hyndman and Fan 1996,
  definition 7, numpy's default);
- :func:`bootstrap`, :func:`bootstrap_ratio`, :func:`bootstrap_ratio_of_ratios`:
  Efron's percentile bootstrap (Efron and Tibshirani 1993, ch. 13), the last two
  specialised for *per successful run* figures, which are ratios of sums;
  :func:`resample_sums` keeps a ratio's resamples so that one policy's draws
  serve both its own interval and its comparisons (:func:`ratio_interval`,
  :func:`ratio_of_ratios_interval`).

References:
    E. B. Wilson (1927). Probable inference, the law of succession, and
    statistical inference. JASA 22(158), 209-212.
    R. G. Newcombe (1998). Interval estimation for the difference between
    independent proportions: comparison of eleven methods. Statistics in
    Medicine 17, 873-890.
    B. Efron and R. J. Tibshirani (1993). An Introduction to the Bootstrap.
    Chapman & Hall.
    R. J. Hyndman and Y. Fan (1996). Sample quantiles in statistical packages.
    The American Statistician 50(4), 361-365.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

T = TypeVar("T")

MIN_BOOT_N = 5
"""Fewer observations than this give no bootstrap interval (it would be too narrow to trust)."""
MIN_USABLE = 0.9
"""Share of resamples that must yield a statistic for the interval to be reported."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A two-sided confidence interval ``[low, high]``."""

    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """True when ``value`` lies outside the interval (the test is significant)."""
        return value < self.low or value > self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def z_value(level: float) -> float:
    """The two-sided standard normal quantile for ``level`` (1.959964 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, not {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for ``successes`` out of ``n`` (Wilson 1927).

    With ``p = successes / n`` and ``z`` the two-sided normal quantile::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)
        [centre - half, centre + half]

    It never leaves [0, 1] and stays sensible at 0/n and n/n, unlike the Wald
    interval. ``n == 0`` gives (0.0, 1.0): no evidence either way.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"successes must be within 0..n (got {successes} of {n})")
    z = z_value(level)
    if n == 0:
        return Interval(0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high)


def newcombe(s1: int, n1: int, s2: int, n2: int, level: float = 0.95) -> tuple[float, Interval]:
    """Difference ``p1 - p2`` of two independent proportions and its hybrid
    score interval (Newcombe 1998, method 10).

    With ``(l1, u1)`` and ``(l2, u2)`` the Wilson intervals of ``p1`` and ``p2``::

        d     = p1 - p2
        lower = d - sqrt((p1 - l1)² + (u2 - p2)²)
        upper = d + sqrt((u1 - p1)² + (p2 - l2)²)

    The paper's example (a), 56/70 vs 48/80, gives d = 0.2000 and
    (0.0524, 0.3339). An empty group counts as rate 0 with the interval (0, 1),
    so the difference is never significant without evidence.
    """
    p1 = s1 / n1 if n1 else 0.0
    p2 = s2 / n2 if n2 else 0.0
    w1, w2 = wilson(s1, n1, level), wilson(s2, n2, level)
    d = p1 - p2
    lower = d - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
    upper = d + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
    return d, Interval(max(-1.0, lower), min(1.0, upper))


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile with linear interpolation between order statistics
    (Hyndman and Fan 1996, definition 7; numpy's default)::

        h = (n - 1) q;  x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])
    """
    if not values:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, not {q}")
    xs = sorted(values)
    return _sorted_quantile(xs, q)


def _sorted_quantile(xs: Sequence[float], q: float) -> float:
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def percentile_interval(stats: Sequence[float], level: float) -> Interval:
    """Efron's percentile interval: the (1-level)/2 and (1+level)/2 quantiles of
    the bootstrap distribution of the statistic (ends to 12 significant digits)."""
    xs = sorted(stats)
    alpha = (1.0 - level) / 2.0
    return Interval(_tidy(_sorted_quantile(xs, alpha)), _tidy(_sorted_quantile(xs, 1.0 - alpha)))


def _tidy(x: float) -> float:
    """Drop floating-point noise from resampled sums (12 significant digits), so
    constant data gives exactly its value back."""
    return float(f"{x:.12g}")


def bootstrap(
    statistic: Callable[[Sequence[T]], float | None],
    values: Sequence[T],
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    min_n: int = MIN_BOOT_N,
    min_usable: float = MIN_USABLE,
) -> Interval | None:
    """Percentile bootstrap interval of any ``statistic`` of ``values`` (Efron 1993).

    Draws ``n_boot`` resamples of ``len(values)`` with replacement from
    ``random.Random(seed)``; a resample whose statistic is ``None`` is skipped.
    Returns ``None`` with fewer than ``min_n`` values or when fewer than
    ``min_usable`` of the resamples were usable.
    """
    z_value(level)
    n = len(values)
    if n < max(1, min_n) or n_boot < 1:
        return None
    rng = random.Random(seed)
    stats: list[float] = []
    for _ in range(n_boot):
        s = statistic(rng.choices(values, k=n))
        if s is not None:
            stats.append(s)
    if not stats or len(stats) < min_usable * n_boot:
        return None
    return percentile_interval(stats, level)


@dataclass(frozen=True, slots=True)
class Resampled:
    """The bootstrap distribution of a ratio of sums, kept so it can be reused.

    ``sums[b]`` is ``sum(num) + sum(den)·i`` over the runs drawn for resample
    ``b`` (a complex number sums both parts at once, which keeps the pure-Python
    bootstrap fast). One policy's resamples give the interval of its own cost
    per successful run and, paired by resample index with another policy's, the
    interval of the ratio of the two (see :func:`ratio_of_ratios_interval`).
    """

    n: int
    """Observations each resample drew from."""
    n_boot: int
    sums: tuple[complex, ...]

    def ratios(self) -> list[float]:
        """``sum(num) / sum(den)`` of every resample whose denominator is not 0."""
        return [z.real / z.imag for z in self.sums if z.imag]


def resample_sums(
    num: Sequence[float], den: Sequence[float], *, n_boot: int = 2000, seed: int = 0
) -> Resampled:
    """Draw ``n_boot`` resamples of the paired observations ``(num[i], den[i])``
    with replacement from ``random.Random(seed)``, keeping each resample's sums."""
    if len(num) != len(den):
        raise ValueError("numerators and denominators differ in length")
    zs = [complex(a, b) for a, b in zip(num, den, strict=True)]
    n = len(zs)
    if n == 0 or n_boot < 1:
        return Resampled(n, max(n_boot, 0), ())
    choices = random.Random(seed).choices
    return Resampled(n, n_boot, tuple(sum(choices(zs, k=n)) for _ in range(n_boot)))


def ratio_interval(
    r: Resampled,
    *,
    level: float = 0.95,
    min_n: int = MIN_BOOT_N,
    min_usable: float = MIN_USABLE,
) -> Interval | None:
    """Percentile interval of a ratio of sums from its resamples; ``None`` with
    fewer than ``min_n`` observations or fewer than ``min_usable`` of the
    resamples usable (denominator not 0)."""
    z_value(level)
    if r.n < max(1, min_n) or not r.sums:
        return None
    draws = r.ratios()
    if not draws or len(draws) < min_usable * r.n_boot:
        return None
    return percentile_interval(draws, level)


def ratio_of_ratios_interval(
    a: Resampled,
    b: Resampled,
    *,
    level: float = 0.95,
    min_n: int = MIN_BOOT_N,
    min_usable: float = MIN_USABLE,
) -> Interval | None:
    """Percentile interval of ``ratio_a / ratio_b`` for two independent groups,
    pairing their resamples by index: resample ``k`` gives
    ``(sum num_a / sum den_a) / (sum num_b / sum den_b)`` over group a's
    ``k``-th and group b's ``k``-th draws. A pair where either denominator is 0,
    or group b's ratio is not positive, is skipped. ``None`` as in
    :func:`ratio_interval`.
    """
    z_value(level)
    if min(a.n, b.n) < max(1, min_n) or not a.sums or not b.sums:
        return None
    out: list[float] = []
    for za, zb in zip(a.sums, b.sums, strict=False):
        if za.imag and zb.imag and zb.real > 0:
            out.append((za.real / za.imag) / (zb.real / zb.imag))
    if not out or len(out) < min_usable * min(a.n_boot, b.n_boot):
        return None
    return percentile_interval(out, level)


def bootstrap_ratio(
    num: Sequence[float],
    den: Sequence[float],
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    min_n: int = MIN_BOOT_N,
    min_usable: float = MIN_USABLE,
) -> Interval | None:
    """Percentile bootstrap interval of a ratio of sums over paired observations.

    Each resample draws runs with replacement and computes
    ``sum(num[i]) / sum(den[i])``. With ``num`` the runs' costs (or latencies)
    and ``den`` 1 for a successful run and 0 otherwise this is the cost (or
    latency) per successful run; a resample with no success is skipped, and the
    interval is ``None`` when fewer than ``min_usable`` of the resamples were
    usable (too few successes to say) or there are fewer than ``min_n`` runs.
    """
    z_value(level)
    r = resample_sums(num, den, n_boot=n_boot, seed=seed)
    return ratio_interval(r, level=level, min_n=min_n, min_usable=min_usable)


def bootstrap_ratio_of_ratios(
    num_a: Sequence[float],
    den_a: Sequence[float],
    num_b: Sequence[float],
    den_b: Sequence[float],
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    min_n: int = MIN_BOOT_N,
    min_usable: float = MIN_USABLE,
) -> Interval | None:
    """Percentile bootstrap interval of ``ratio_a / ratio_b`` for two independent
    groups, each ratio a ratio of sums as in :func:`bootstrap_ratio`.

    Each group's runs are resampled independently (with replacement, each its
    own size; group a from ``seed``, group b from ``seed + 1``) and the
    resamples are paired by index (:func:`ratio_of_ratios_interval`). For cost
    per successful run of a policy against a baseline the saving is
    ``1 - ratio`` and its interval ``(1 - high, 1 - low)``; it is significant
    when that interval excludes 0.
    """
    z_value(level)
    a = resample_sums(num_a, den_a, n_boot=n_boot, seed=seed)
    b = resample_sums(num_b, den_b, n_boot=n_boot, seed=seed + 1)
    return ratio_of_ratios_interval(a, b, level=level, min_n=min_n, min_usable=min_usable)
