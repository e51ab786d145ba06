"""APGR / CPT: the cost-quality curve, every distinct score a threshold."""

from __future__ import annotations

import numpy as np
import pytest

from turnout.learn.evaluate import evaluate, sweep


def test_a_random_scorer_scores_about_a_half() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    cheap = (rng.random(n) < 0.5).astype(float)
    strong = np.maximum(cheap, rng.random(n) < 0.6)
    runs = [evaluate(rng.random(n), cheap, strong).apgr for _ in range(5)]
    assert np.mean(runs) == pytest.approx(0.5, abs=0.01)


def test_the_oracle_scorer_is_the_best_any_scorer_reaches() -> None:
    # 10 prompts: 3 need the strong model, 1 only the cheap one passes, 6 tie
    cheap = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 1], dtype=float)
    strong = np.array([1, 1, 1, 0, 1, 1, 1, 0, 0, 1], dtype=float)
    oracle = evaluate(strong - cheap, cheap, strong)
    assert oracle.apgr == pytest.approx(oracle.oracle_apgr)
    # gap = 0.2; PGR 1.5 at share 0.3 (beats strong), stays 1.5 to share 0.9, 1 at 1.0
    expected = 0.3 * 1.5 / 2 + 0.6 * 1.5 + 0.1 * (1.5 + 1) / 2
    assert oracle.apgr == pytest.approx(expected)
    rng = np.random.default_rng(1)
    for _ in range(200):
        assert evaluate(rng.random(10), cheap, strong).apgr <= oracle.apgr + 1e-12
    assert oracle.oracle_rate == pytest.approx(0.8)


def test_with_no_prompt_only_the_cheap_model_passes_the_oracle_recovers_the_gap_at_its_share() -> (
    None
):
    cheap = np.array([0, 0, 1, 1], dtype=float)
    strong = np.ones(4)
    ev = evaluate(strong - cheap, cheap, strong)
    assert ev.apgr == pytest.approx(1 - 0.5 / 2)  # 1 - g/2 with g = 0.5
    assert ev.cpt50 == pytest.approx(0.25)
    assert ev.cpt80 == pytest.approx(0.4)


def test_ties_move_together_and_every_distinct_score_is_a_threshold() -> None:
    cheap = np.zeros(4)
    strong = np.ones(4)
    curve = sweep(np.array([0.9, 0.5, 0.5, 0.1]), cheap, strong)
    assert curve.shares == (0.0, 0.25, 0.75, 1.0)
    assert curve.pgr == (0.0, 0.25, 0.75, 1.0)
    assert curve.thresholds[0] == float("inf")


def test_an_inverted_scorer_scores_below_a_half_and_cost_per_pass() -> None:
    cheap = np.array([1, 1, 0, 0], dtype=float)
    strong = np.ones(4)
    ev = evaluate(
        np.array([0.9, 0.8, 0.1, 0.0]), cheap, strong, threshold=0.5,
        costs=(np.full(4, 1.0), np.full(4, 10.0)),
    )  # fmt: skip
    assert ev.apgr is not None and ev.apgr < 0.5
    assert ev.strong_share == 0.5
    assert ev.quality == 0.5  # the two sent to strong were passing on cheap anyway
    assert ev.cost_per_pass == pytest.approx((10 + 10 + 1 + 1) / 2)


def test_no_gap_means_no_apgr() -> None:
    ev = evaluate([0.1, 0.2], [1, 1], [1, 0])
    assert ev.apgr is None and ev.cpt50 is None
