"""The gate in this process: an admission awaited again reads the answer it had, and is
never decided twice."""

from __future__ import annotations

from decimal import Decimal

from turnout.keys.cache import LocalKeyEvents
from turnout.keys.model import Period
from turnout.limits import MemoryBudgets, MemoryRateLimiter
from turnout.limits.budget import KeyBudget
from turnout.limits.gate import Later, LocalGate
from turnout.limits.rate import RateLimit


async def test_an_admission_awaited_twice_is_decided_once() -> None:
    gate = LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets())
    budget = KeyBudget("team-a", Decimal("0.01"), Period.DAY)
    later = gate.start_admit("team-a", RateLimit(rpm=2), 0, budget, Decimal("0.004"))
    assert not later.started and not later.sent  # in this process: decided when awaited
    first = await later
    assert later.started
    again = await later  # e.g. to give back what a client that hung up held
    assert again is first
    second = await gate.admit("team-a", RateLimit(rpm=2), 0, budget, Decimal("0.004"))
    assert second.rate is not None and second.rate.requests == 2  # one each, not three
    assert second.reservation is not None
    assert second.reservation.state.held_pico == 8_000_000_000  # two holds of $0.004


async def test_a_later_never_awaited_starts_nothing() -> None:
    made: list[int] = []

    async def make() -> int:
        made.append(1)
        return 1

    later = Later(make)
    assert not later.started and made == []
    assert await later == 1 and await later == 1 and made == [1]
