"""Key budgets in one process: reserve, settle, release; never past the cap."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from turnout.keys.model import Period
from turnout.limits.budget import (
    KeyBudget,
    KeyBudgetExceeded,
    MemoryBudgets,
    PaidCall,
    estimate_request,
)
from turnout.limits.periods import window_of
from turnout.pricing.cost import Price
from turnout.types import ChatRequest, Message


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t


async def test_reserve_settle_release() -> None:
    budgets = MemoryBudgets(clock=Clock())
    b = KeyBudget("team-a", Decimal("1"), Period.DAY)
    r1 = await budgets.reserve(b, Decimal("0.6"))
    with pytest.raises(KeyBudgetExceeded) as info:
        await budgets.reserve(b, Decimal("0.5"))  # 0.6 held
    assert info.value.resets_at == datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    assert "resets at 2026-12-02T00:00:00+00:00" in str(info.value)
    await budgets.settle(r1, Decimal("0.2"))
    state = await budgets.state(b)
    assert (state.spent_usd, state.remaining_usd) == (Decimal("0.2"), Decimal("0.8"))
    r2 = await budgets.reserve(b, Decimal("0.7"))
    assert r2.state.spent_pico + r2.state.held_pico == 900_000_000_000  # 0.2 + 0.7 held
    await budgets.release(r2)
    assert (await budgets.state(b)).remaining_usd == Decimal("0.8")


async def test_concurrent_reservations_never_pass_the_cap() -> None:
    budgets = MemoryBudgets()
    b = KeyBudget("k", Decimal("0.01"), Period.TOTAL)
    estimate = Decimal("0.0007")

    async def one() -> bool:
        try:
            r = await budgets.reserve(b, estimate)
        except KeyBudgetExceeded:
            return False
        await asyncio.sleep(0.001)
        await budgets.settle(r, estimate)
        return True

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(results) == 14  # floor(0.01 / 0.0007)
    assert (await budgets.state(b)).spent_usd <= b.budget_usd


async def test_period_rollover_and_expired_holds() -> None:
    clock = Clock()
    budgets = MemoryBudgets(clock=clock, hold_ttl_s=60)
    b = KeyBudget("k", Decimal("1"), Period.DAY)
    await budgets.reserve(b, Decimal("1"))  # never settled: its replica died
    with pytest.raises(KeyBudgetExceeded):
        await budgets.reserve(b, Decimal("0.1"))
    clock.t += 61
    r = await budgets.reserve(b, Decimal("0.5"))
    await budgets.settle(r, Decimal("0.5"))
    clock.t += 86_400
    assert (await budgets.state(b)).spent_usd == 0


def test_windows() -> None:
    t = datetime(2026, 12, 3, 15, tzinfo=UTC).timestamp()  # a Thursday
    assert window_of(Period.DAY, t).id == "2026-12-03"
    week = window_of(Period.WEEK, t)
    assert week.id == "2026-W49" and week.ends_at == datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    month = window_of(Period.MONTH, t)
    assert month.id == "2026-12" and month.ends_at == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert window_of(Period.TOTAL, t).ends_at is None


def test_remembered_windows_change_exactly_at_the_boundary() -> None:
    new_year = datetime(2027, 1, 1, tzinfo=UTC).timestamp()  # a Friday
    for _ in range(2):  # computed, then remembered
        assert window_of(Period.DAY, new_year - 0.001).id == "2026-12-31"
        assert window_of(Period.DAY, new_year).id == "2027-01-01"
        assert window_of(Period.MONTH, new_year - 0.001).id == "2026-12"
        assert window_of(Period.MONTH, new_year + 59.9).id == "2027-01"
        assert window_of(Period.WEEK, new_year - 0.001).id == "2026-W53"


def test_estimate_is_the_dearest_set_of_models_paid_together() -> None:
    request = ChatRequest(messages=(Message("user", "x" * 376),), max_tokens=100)
    cheap, dear = Price.of(1, 1), Price.of(5, 25)
    # 100 prompt tokens (376 characters + 12 framing + 12 reply priming, four a token) + 100 output tokens
    one, other = PaidCall("cheap", cheap), PaidCall("dear", dear)
    assert estimate_request([[one], [other]], request) == Decimal("0.003")
    assert estimate_request([[one], [one, other]], request) == Decimal("0.0032")
    assert estimate_request([[]], request) == estimate_request([], request) == 0
    # a judge reading two answers: 100 + 2 x 100 tokens in, 100 out, at $5/$25 a million
    judge = PaidCall("dear", dear, reads=2)
    assert estimate_request([[one, one, judge]], request) == Decimal("0.0044")
