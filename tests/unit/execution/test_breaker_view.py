"""The local view a shared breaker store keeps: what it trusts, and for how long."""

from __future__ import annotations

import pytest

from turnout.execution.breaker import BreakerConfig
from turnout.execution.breaker_view import BreakerView

CFG = BreakerConfig(cooldown_s=30, probe_timeout_s=60)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_nothing_known_means_ask() -> None:
    view = BreakerView(0.25, Clock())
    assert not view.closed("opus", CFG)
    assert not view.cooling("opus", CFG)
    assert view.unavailable(CFG) is None


def test_fresh_for_ttl_s() -> None:
    clock = Clock()
    view = BreakerView(0.25, clock)
    view.learn_names(["opus"], clock.t)
    view.learn("opus", "closed", 5000.0, 5000.0, clock.t)  # remote times: their own clock
    assert view.closed("opus", CFG)
    assert view.closed("haiku", CFG)  # not in the fresh models set: no breaker anywhere
    assert view.unavailable(CFG) == frozenset()
    clock.t += 0.25
    assert not view.closed("opus", CFG)
    assert not view.closed("haiku", CFG)
    assert view.unavailable(CFG) is None


def test_open_and_half_open_refuse_until_their_time() -> None:
    clock = Clock()
    view = BreakerView(10.0, clock)
    view.learn_names(["opus", "haiku"], clock.t)
    view.learn("opus", "open", 5030.0, 5000.0, clock.t)  # 30 s of cooldown left
    view.learn("haiku", "half_open", 5060.0, 5000.0, clock.t)  # the probe given up in 60 s
    assert view.cooling("opus", CFG) and not view.closed("opus", CFG)
    assert not view.cooling("haiku", CFG)  # half-open: ask Redis
    assert view.unavailable(CFG) == frozenset({"opus", "haiku"})


def test_the_bound_is_at_most_half_the_cooldown() -> None:
    clock = Clock()
    view = BreakerView(0.25, clock)
    view.learn("opus", "closed", 0.0, 0.0, clock.t)
    short = BreakerConfig(cooldown_s=0.2)
    clock.t += 0.15
    assert view.closed("opus", CFG)
    assert not view.closed("opus", short)


def test_an_older_answer_never_replaces_a_newer_one() -> None:
    clock = Clock()
    view = BreakerView(1.0, clock)
    view.learn("opus", "open", 30.0, 0.0, clock.t)
    view.learn("opus", "closed", 0.0, 0.0, clock.t - 0.01)  # asked earlier, answered later
    assert view.cooling("opus", CFG)


def test_names_and_forgetting() -> None:
    clock = Clock()
    view = BreakerView(1.0, clock)
    view.learn("opus", "open", 30.0, 0.0, clock.t - 0.5)
    view.learn("haiku", "open", 30.0, 0.0, clock.t)
    view.learn_names(["sonnet"], clock.t - 0.1)  # reset elsewhere: opus is gone
    assert view.names == frozenset({"sonnet", "haiku"})  # haiku was learned after the set
    assert not view.cooling("opus", CFG)
    view.forget("haiku")
    assert view.names == frozenset({"sonnet"})
    view.forget()
    assert view.unavailable(CFG) is None


def test_zero_ttl_trusts_nothing() -> None:
    clock = Clock()
    view = BreakerView(0.0, clock)
    view.learn_names([], clock.t)
    view.learn("opus", "closed", 0.0, 0.0, clock.t)
    assert not view.closed("opus", CFG)
    assert view.unavailable(CFG) is None
    with pytest.raises(ValueError, match="view_ttl_s"):
        BreakerView(-1.0, clock)


def test_retry_in_from_what_was_seen() -> None:
    clock = Clock()
    view = BreakerView(10.0, clock)
    view.learn("opus", "open", 5030.0, 5000.0, clock.t)
    view.learn("haiku", "closed", 5000.0, 5000.0, clock.t)
    clock.t += 12
    assert view.retry_in("opus") == pytest.approx(18)
    assert view.retry_in("haiku") is None and view.retry_in("nano") is None
    clock.t += 60
    assert view.retry_in("opus") == 0
