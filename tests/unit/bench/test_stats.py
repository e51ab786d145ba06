"""Statistics against known values: Wilson (1927), Newcombe (1998) method 10,
linear-interpolation quantiles, and the percentile bootstrap's coverage."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from turnout.bench.stats import (
    Interval,
    bootstrap,
    bootstrap_ratio,
    bootstrap_ratio_of_ratios,
    newcombe,
    quantile,
    wilson,
    z_value,
)


def close(iv: Interval | None, low: float, high: float, tol: float = 5e-5) -> bool:
    assert iv is not None
    return abs(iv.low - low) < tol and abs(iv.high - high) < tol


def test_z_values() -> None:
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.90) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        z_value(95)


@pytest.mark.parametrize(
    ("s", "n", "level", "low", "high"),
    [
        (8, 10, 0.95, 0.4902, 0.9433),
        (0, 10, 0.95, 0.0, 0.2775),
        (10, 10, 0.95, 0.7225, 1.0),
        (1, 10, 0.95, 0.0179, 0.4042),
        # Newcombe (1998), Two-sided confidence intervals for the single proportion,
        # Statistics in Medicine 17, 857-872: the Wilson (method 3) column of table II
        (81, 263, 0.95, 0.2553, 0.3662),
        (15, 148, 0.95, 0.0624, 0.1605),
        (0, 20, 0.95, 0.0, 0.1611),
        (1, 29, 0.95, 0.0061, 0.1718),
        # by hand: z = 1.6449, centre 0.7361, half-width 0.1953
        (8, 10, 0.90, 0.5408, 0.9314),
    ],
)
def test_wilson_known_values(s: int, n: int, level: float, low: float, high: float) -> None:
    assert close(wilson(s, n, level), low, high, tol=1e-4)


def test_wilson_edges() -> None:
    assert wilson(0, 0) == Interval(0.0, 1.0)
    assert wilson(0, 10).low == 0.0
    assert wilson(10, 10).high == 1.0
    wider = wilson(8, 10, 0.99)
    narrower = wilson(8, 10, 0.90)
    assert wider.low < narrower.low and wider.high > narrower.high
    with pytest.raises(ValueError, match=r"within 0\.\.n"):
        wilson(11, 10)
    with pytest.raises(ValueError, match=r"within 0\.\.n"):
        wilson(-1, 10)


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "diff", "low", "high"),
    [
        # Newcombe 1998, table II, method 10 (score, no continuity correction)
        (56, 70, 48, 80, 0.2000, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.6000, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.5714, 0.0582, 0.8062),
        (5, 56, 0, 29, 0.0893, -0.0381, 0.1926),
        (0, 10, 0, 20, 0.0, -0.1611, 0.2775),
        (0, 10, 0, 10, 0.0, -0.2775, 0.2775),
        (10, 10, 0, 20, 1.0, 0.6791, 1.0),
        (10, 10, 0, 10, 1.0, 0.6075, 1.0),
    ],
)
def test_newcombe_method_10_table_ii(
    s1: int, n1: int, s2: int, n2: int, diff: float, low: float, high: float
) -> None:
    d, iv = newcombe(s1, n1, s2, n2)
    assert d == pytest.approx(diff, abs=1e-4)
    assert close(iv, low, high, tol=1e-4)


def test_newcombe_significance_and_symmetry() -> None:
    d, iv = newcombe(56, 70, 48, 80)
    assert iv.excludes(0.0)
    d2, iv2 = newcombe(48, 80, 56, 70)
    assert d2 == pytest.approx(-d)
    assert iv2.low == pytest.approx(-iv.high) and iv2.high == pytest.approx(-iv.low)
    _, small = newcombe(2, 3, 1, 3)
    assert not small.excludes(0.0)
    _, empty = newcombe(0, 0, 5, 10)
    assert not empty.excludes(0.0)


def test_quantile_linear_interpolation() -> None:
    xs = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert quantile(xs, 0.0) == 15.0
    assert quantile(xs, 1.0) == 50.0
    assert quantile(xs, 0.5) == 35.0
    assert quantile(xs, 0.4) == pytest.approx(29.0)  # numpy.percentile(xs, 40)
    assert quantile(xs, 0.95) == pytest.approx(48.0)
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.5  # unsorted input
    assert quantile([7.0], 0.95) == 7.0
    assert quantile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        quantile([1.0], 1.5)


def test_bootstrap_is_deterministic_with_a_seed() -> None:
    rng = random.Random(7)
    costs = [rng.random() for _ in range(50)]
    oks = [1.0 if rng.random() < 0.7 else 0.0 for _ in range(50)]
    a = bootstrap_ratio(costs, oks, n_boot=500, seed=3)
    b = bootstrap_ratio(costs, oks, n_boot=500, seed=3)
    c = bootstrap_ratio(costs, oks, n_boot=500, seed=4)
    assert a == b and a != c
    r1 = bootstrap_ratio_of_ratios(costs, oks, costs, oks, n_boot=300, seed=1)
    assert r1 == bootstrap_ratio_of_ratios(costs, oks, costs, oks, n_boot=300, seed=1)
    m1 = bootstrap(statistics.fmean, costs, n_boot=300, seed=9)
    assert m1 == bootstrap(statistics.fmean, costs, n_boot=300, seed=9)


def test_bootstrap_ratio_brackets_the_estimate() -> None:
    costs = [0.01 * (1 + i % 3) for i in range(40)]
    oks = [0.0 if i % 5 == 0 else 1.0 for i in range(40)]
    iv = bootstrap_ratio(costs, oks, n_boot=1000)
    point = sum(costs) / sum(oks)
    assert iv is not None and iv.low < point < iv.high


def test_bootstrap_none_without_enough_evidence() -> None:
    # fewer runs than the minimum
    assert bootstrap_ratio([1.0, 1.0], [1.0, 1.0]) is None
    # no successes at all: every resample is skipped
    assert bootstrap_ratio([1.0] * 20, [0.0] * 20) is None
    # one success in 20: about a third of resamples have none -> too few usable
    assert bootstrap_ratio([1.0] * 20, [1.0] + [0.0] * 19) is None
    # a baseline that costs nothing has no ratio
    assert bootstrap_ratio_of_ratios([1.0] * 10, [1.0] * 10, [0.0] * 10, [1.0] * 10) is None
    assert bootstrap(statistics.fmean, [1.0, 2.0]) is None
    assert bootstrap(lambda xs: None, [1.0] * 10) is None


def test_bootstrap_ratio_constant_data_gives_a_point() -> None:
    iv = bootstrap_ratio([2.0] * 10, [1.0] * 10, n_boot=200)
    assert iv == Interval(2.0, 2.0)


def test_bootstrap_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ratio([1.0] * 5, [1.0] * 6)


def _synthetic_runs(
    rng: random.Random, n: int, p: float, mean_cost: float
) -> tuple[list[float], list[float]]:
    costs = [rng.uniform(0, 2 * mean_cost) for _ in range(n)]
    oks = [1.0 if rng.random() < p else 0.0 for _ in range(n)]
    return costs, oks


def test_bootstrap_ratio_coverage_on_a_known_answer() -> None:
    # cost ~ U(0, 2) (mean 1), success with p = 0.8: cost per success -> 1 / 0.8 = 1.25
    truth = 1.25
    rng = random.Random(2024)
    hits = total = 0
    for rep in range(120):
        costs, oks = _synthetic_runs(rng, 60, 0.8, 1.0)
        iv = bootstrap_ratio(costs, oks, level=0.90, n_boot=400, seed=rep)
        assert iv is not None
        total += 1
        hits += iv.low <= truth <= iv.high
    coverage = hits / total
    assert 0.80 <= coverage <= 0.97, coverage


def test_bootstrap_ratio_of_ratios_coverage_on_a_known_answer() -> None:
    # policy: mean cost 0.4, p 0.9 -> 0.444..; baseline: mean 1.0, p 0.95 -> 1.0526..
    truth = (0.4 / 0.9) / (1.0 / 0.95)
    rng = random.Random(99)
    hits = 0
    reps = 100
    for rep in range(reps):
        a = _synthetic_runs(rng, 50, 0.9, 0.4)
        b = _synthetic_runs(rng, 50, 0.95, 1.0)
        iv = bootstrap_ratio_of_ratios(*a, *b, level=0.90, n_boot=400, seed=rep)
        assert iv is not None
        hits += iv.low <= truth <= iv.high
    assert 0.80 <= hits / reps <= 0.97, hits / reps


def test_bootstrap_mean_coverage() -> None:
    rng = random.Random(5)
    hits = 0
    for rep in range(100):
        xs = [rng.expovariate(1.0) for _ in range(40)]
        iv = bootstrap(statistics.fmean, xs, level=0.90, n_boot=300, seed=rep)
        assert iv is not None
        hits += iv.low <= 1.0 <= iv.high
    assert 0.78 <= hits / 100 <= 0.97


def test_bootstrap_is_fast_enough() -> None:
    rng = random.Random(1)
    a = _synthetic_runs(rng, 300, 0.8, 1.0)
    b = _synthetic_runs(rng, 300, 0.9, 2.0)
    t0 = time.perf_counter()
    assert bootstrap_ratio(*a, n_boot=2000) is not None
    t1 = time.perf_counter()
    assert bootstrap_ratio_of_ratios(*a, *b, n_boot=2000) is not None
    t2 = time.perf_counter()
    # typically ~0.1 s and ~0.2 s; generous bounds for a shared CI machine
    assert t1 - t0 < 1.0
    assert t2 - t1 < 2.0
