"""Deciding from scores; a target picks the threshold on out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pytest

from turnout.learn.calibrate import choose, parse_target, route_many, threshold_for


@pytest.mark.parametrize(
    ("p", "threshold", "expected"),
    [
        ([0.9, 0.95], 0.1, 0),  # cheap within 0.1 of strong
        ([0.5, 0.95], 0.1, 1),
        ([0.5, 0.55, 0.95], 0.5, 0),
        ([0.2, 0.9, 0.95], 0.1, 1),  # the middle one is close enough
        ([0.2, 0.5, 0.95], 0.1, 2),
        ([0.99, 0.5], 0.0, 0),  # cheap predicted better than strong
        ([0.0, 1.0], 1.0, 0),  # threshold 1: always the cheapest
    ],
)
def test_choose_the_cheapest_model_close_enough_to_the_strongest(
    p: list[float], threshold: float, expected: int
) -> None:
    assert choose(np.array(p), threshold) == expected
    assert route_many(np.array([p]), threshold)[0] == expected


# 10 prompts, two models: strong passes all; cheap passes where its p_pass is high
P = np.array([[0.95, 0.99], [0.9, 0.99], [0.85, 0.99], [0.8, 0.99], [0.7, 0.99],
              [0.6, 0.99], [0.4, 0.99], [0.3, 0.99], [0.2, 0.99], [0.1, 0.99]])  # fmt: skip
PASSED = np.array([[1, 1]] * 6 + [[0, 1]] * 4, dtype=float)


def _routed(t: float) -> tuple[float, float]:
    chosen = route_many(P, t)
    return float(PASSED[np.arange(10), chosen].mean()), float((chosen == 1).mean())


def test_quality_target_keeps_the_share_of_strong_quality_at_the_lowest_cost() -> None:
    t = threshold_for({"quality": 0.95}, P, PASSED)
    quality, share = _routed(t)
    assert quality >= 0.95
    assert share == pytest.approx(0.4)  # the four the cheap model fails; no more
    assert t < 0.59 and _routed(0.59)[0] < 0.95  # one step cheaper misses the target


def test_quality_target_below_the_cheap_rate_goes_all_cheap() -> None:
    assert _routed(threshold_for({"quality": 0.5}, P, PASSED))[1] == 0.0


def test_strong_share_target_sends_at_most_that_share_up() -> None:
    t = threshold_for({"strong_share": 0.3}, P, PASSED)
    assert _routed(t)[1] == pytest.approx(0.3)
    assert _routed(threshold_for({"strong_share": 0.0}, P, PASSED))[1] == 0.0
    assert _routed(threshold_for({"strong_share": 1.0}, P, PASSED))[1] <= 1.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"quality": 0.9, "strong_share": 0.2}, "one of"),
        ({"speed": 0.5}, "unknown target 'speed'"),
        ({"quality": 1.5}, "in [0, 1]"),
    ],
)
def test_bad_targets(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_target(raw)
