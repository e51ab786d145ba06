"""A key's spend in a period from the trace store, and in-process budgets started from it."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.keys.cache import LocalKeyEvents
from turnout.keys.model import Period
from turnout.limits.budget import KeyBudget, MemoryBudgets
from turnout.limits.gate import LocalGate
from turnout.limits.ledger import SpendLedger
from turnout.limits.periods import Window, window_of
from turnout.limits.rate import MemoryRateLimiter, RateLimit
from turnout.tracing.sqlite import SQLiteStore


def spend(store: SQLiteStore, run_id: str, key: str | None, started_at: float, pico: int) -> None:
    store.execute(
        "INSERT INTO runs (run_id, workflow, policy, status, started_at, key_name, "
        "cost_picousd) VALUES (?, 'gateway', 'p', 'succeeded', ?, ?, ?)",
        (run_id, started_at, key, pico),
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "traces.db")


async def test_the_spend_of_one_key_in_one_period(store: SQLiteStore) -> None:
    now = time.time()
    today = window_of(Period.DAY, now)
    assert today.starts_at is not None and today.starts_at <= now < today.ends_at  # type: ignore[operator]
    spend(store, "a1", "team-a", today.starts_at, 5)  # the period's first moment counts
    spend(store, "a2", "team-a", now, 7)
    spend(store, "a3", "team-a", today.starts_at - 1, 1_000)  # yesterday
    spend(store, "b1", "team-b", now, 1_000)
    spend(store, "n1", None, now, 1_000)
    ledger = SpendLedger(store, offload=False)
    assert await ledger.spent("team-a", today) == 12
    assert await ledger.spent("team-a", window_of(Period.TOTAL, now)) == 1_012
    assert await ledger.spent("nobody", today) == 0
    offloaded = SpendLedger(store, offload=True)
    assert await offloaded.spent("team-a", today) == 12


async def test_a_store_that_fails_is_left_alone(store: SQLiteStore) -> None:
    store.close()  # every query now fails
    t = [0.0]
    ledger = SpendLedger(store, offload=False, retry_after_s=30, clock=lambda: t[0])
    today = window_of(Period.DAY, time.time())
    assert await ledger.spent("team-a", today) is None
    assert await ledger.spent("team-a", today) is None
    assert ledger.reads == 1  # not asked again within retry_after_s
    t[0] = 31
    assert await ledger.spent("team-a", today) is None
    assert ledger.reads == 2


async def test_in_process_budgets_start_from_the_store(store: SQLiteStore) -> None:
    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    spend(store, "a1", "team-a", time.time(), 95_000_000)
    ledger = SpendLedger(store, offload=False)
    gate = LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets(), ledger)
    refused = await gate.admit("team-a", RateLimit(rpm=10), 0, budget, Decimal("0.00001"))
    assert refused.over_budget is not None and refused.reservation is None
    assert refused.over_budget.state.spent_pico == 95_000_000
    admitted = await gate.admit("team-a", RateLimit(rpm=10), 0, budget, Decimal("0.000004"))
    assert admitted.reservation is not None
    assert ledger.reads == 1  # once per key and period
    assert (await gate.limiter.admit("team-a", RateLimit(rpm=10))).remaining_requests == 8


async def test_a_period_the_store_could_not_say_is_started_once_it_answers(
    tmp_path: Path,
) -> None:
    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    t = [0.0]
    down = SQLiteStore(tmp_path / "down.db")
    down.close()  # every query fails
    ledger = SpendLedger(down, offload=False, retry_after_s=30, clock=lambda: t[0])
    gate = LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets(), ledger)
    asked = [0]
    spent = ledger.spent

    async def counted(name: str, window: Window) -> int | None:
        asked[0] += 1
        return await spent(name, window)

    ledger.spent = counted  # type: ignore[method-assign]
    first = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
    assert first.reservation is not None  # the store cannot say: counted from $0
    await gate.settle(first.reservation, Decimal("0.00001"))
    assert (await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0"))).admitted
    assert ledger.reads == asked[0] == 1  # left alone meanwhile, not even asked
    with SQLiteStore(tmp_path / "up.db") as up:
        spend(up, "a1", "team-a", time.time(), 95_000_000)
        ledger.store = up  # the store answers again
        t[0] = 31
        refused = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
        assert refused.over_budget is not None  # started from the store's spend now
        assert refused.over_budget.state.spent_pico == 95_000_000
        assert (await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.000001"))).admitted
        assert ledger.reads == 2  # once it answered, not again for the period


async def test_the_store_cannot_say_while_a_spill_file_holds_records(store: SQLiteStore) -> None:
    spend(store, "a1", "team-a", time.time(), 95_000_000)
    t, behind = [0.0], [True]
    ledger = SpendLedger(store, offload=False, clock=lambda: t[0], behind=lambda: behind[0])
    today = window_of(Period.DAY, time.time())
    assert await ledger.spent("team-a", today) is None  # the spill is not replayed yet
    assert not ledger.available() and ledger.reads == 0
    behind[0] = False
    assert await ledger.spent("team-a", today) is None  # asked again a second later
    t[0] = 1.0
    assert ledger.available()
    assert await ledger.spent("team-a", today) == 95_000_000


async def test_a_spill_file_that_cannot_be_read_counts_as_holding_records(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    def unreadable() -> bool:
        raise NotADirectoryError(20, "Not a directory")

    ledger = SpendLedger(store, offload=False, behind=unreadable)
    with caplog.at_level("WARNING", logger="turnout.limits"):
        assert await ledger.spent("team-a", window_of(Period.DAY, time.time())) is None
    assert "spill file" in caplog.text and ledger.reads == 0
