"""Key budgets that cannot be overspent: reserve, then settle or release.

Before a call, its estimated cost (the prompt's tokens plus ``max_tokens``, priced at
the dearest models the request may pay for together: :func:`estimate_request`) is *reserved*
against the key's budget for the current period, atomically: a reservation is
admitted only when ``spent + held + estimate <= budget``. After the call the hold is
*settled* to the real cost, or *released* when nothing was spent. So concurrent
requests can never together pass the budget; the overruns left are a call whose real
cost beats its estimate (a prompt longer in tokens than four characters each), and a
streamed answer cut mid-way and finished by another attempt, which pays the cut part
too (each less than one request's estimate).

Amounts are whole pico-dollars (see :func:`~turnout.tracing.rows.cost_to_pico`), so
the arithmetic is exact. Holds expire after ``hold_ttl_s`` (a replica that died
mid-call does not keep its hold for ever). :class:`MemoryBudgets` is the one-process
twin of :class:`~turnout.limits.budget_redis.RedisBudgets`.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from turnout.errors import BudgetExceeded
from turnout.execution.budget import estimate_tokens
from turnout.keys.model import Period, format_time
from turnout.limits.periods import Window, window_of
from turnout.pricing.cost import Price
from turnout.tracing.rows import cost_to_pico, pico_to_cost
from turnout.types import ChatRequest

SOFT_LIMIT = 0.8
"""Past this share of the budget (spent + held), a request is admitted with a warning."""
HOLD_TTL_S = 900.0


@dataclass(frozen=True, slots=True)
class PaidCall:
    """One call a request may pay for: its pool model, that model's price, and how many
    other calls' answers its prompt carries (an ensemble's judge reads every member's)."""

    model: str
    price: Price
    reads: int = 0


def estimate_request(plans: Iterable[Iterable[PaidCall]], request: ChatRequest) -> Decimal:
    """The reservation for a request that may pay for any one of ``plans`` (each the
    calls one request may pay for together: an ensemble's members and judge, a cascade's
    chain, or one model): the dearest plan's estimate, each call priced at the prompt's
    tokens (plus ``max_tokens`` for every answer it reads) in and ``max_tokens`` out (see
    :func:`~turnout.execution.budget.estimate_cost`)."""
    prompt, output = estimate_tokens(request)
    return max(
        (
            sum((c.price.estimate(prompt + c.reads * output, output) for c in plan), Decimal(0))
            for plan in plans
        ),
        default=Decimal(0),
    )


@dataclass(frozen=True, slots=True)
class KeyBudget:
    """A key's cap for one period."""

    name: str
    budget_usd: Decimal
    period: Period = Period.MONTH
    pico: int = field(init=False, repr=False, compare=False)
    """``budget_usd`` in whole pico-dollars."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pico", cost_to_pico(self.budget_usd))


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A key's budget as seen by one decision."""

    budget: KeyBudget
    window: str
    spent_pico: int
    held_pico: int
    resets_at: float | None
    shared: bool = True

    @property
    def remaining_pico(self) -> int:
        return max(0, self.budget.pico - self.spent_pico - self.held_pico)

    @property
    def remaining_usd(self) -> Decimal:
        return pico_to_cost(self.remaining_pico)

    @property
    def spent_usd(self) -> Decimal:
        return pico_to_cost(self.spent_pico)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on a key's budget, to be settled or released exactly once."""

    budget: KeyBudget
    window: str
    hold_id: str
    estimate_pico: int
    state: BudgetState
    shared: bool = True


class KeyBudgetExceeded(BudgetExceeded):
    """A key's budget for its period would be passed: 429 ``budget_exceeded``."""

    def __init__(self, state: BudgetState, estimate: Decimal) -> None:
        self.state = state
        b = state.budget
        self.never = cost_to_pico(estimate) > b.pico
        """The request alone is more than the whole budget: no reset will let it pass."""
        self.resets_at = None if self.never else state.resets_at
        when = format_time(state.resets_at)
        resets = f"; it resets at {when}" if when else " (a total budget never resets)"
        if self.never:
            resets = "; it alone is more than the whole budget, however much is left"
        per = "in total" if b.period.value == "total" else f"a {b.period.value}"
        super().__init__(
            f"key {b.name!r}: this request (up to ${estimate:.6f}) would pass the budget of "
            f"${b.budget_usd} {per} (${state.remaining_usd:.6f} left){resets}",
            scope="key",
        )


class KeyBudgets(Protocol):
    async def reserve(self, budget: KeyBudget, estimate: Decimal) -> Reservation:
        """Hold ``estimate``; :class:`KeyBudgetExceeded` when it does not fit."""

    async def settle(self, reservation: Reservation, cost: Decimal) -> None:
        """Give the hold back and charge the real ``cost``."""

    async def release(self, reservation: Reservation) -> None:
        """Give the hold back, charging nothing."""

    def finish_soon(self, reservation: Reservation, cost: Decimal) -> None:
        """Settle (``cost`` > 0) or release without waiting for the shared state."""

    async def state(self, budget: KeyBudget) -> BudgetState: ...

    async def aclose(self) -> None: ...


class _Account:
    __slots__ = ("holds", "seeded", "spent", "window")

    def __init__(self, window: str, spent: int = 0) -> None:
        self.window = window
        self.spent = spent
        self.holds: dict[str, tuple[int, float]] = {}
        self.seeded = False  # started from the trace store's spend (open)

    def held(self, now: float) -> int:
        expired = [h for h, (_, until) in self.holds.items() if until <= now]
        for hold in expired:
            del self.holds[hold]
        return sum(amount for amount, _ in self.holds.values())


SpentWatcher = Callable[[KeyBudget, int], None]
"""Told a budget and what its key has spent in the current period (pico-dollars), as
the state holding it says once holds are settled."""


class MemoryBudgets:
    """Key budgets in this process (at most ``max_keys`` accounts, least recently used
    dropped). ``seed`` is asked for a key's spend when its account is first made (the
    last spend Redis reported, when standing in for it)."""

    def __init__(
        self,
        *,
        hold_ttl_s: float = HOLD_TTL_S,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
        seed: Callable[[str, str], int] | None = None,
    ) -> None:
        self.hold_ttl_s = hold_ttl_s
        self.max_keys = max_keys
        self._clock = clock
        self._seed = seed
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self._ids = itertools.count(1)
        self.on_spent: SpentWatcher | None = None
        """Hears a budget's spend in its period each time holds are settled."""

    def _account(self, name: str, window: str) -> _Account:
        account = self._accounts.get(name)
        if account is None or account.window != window:
            spent = self._seed(name, window) if self._seed is not None else 0
            account = self._accounts[name] = _Account(window, spent)
            if len(self._accounts) > self.max_keys:
                self._accounts.popitem(last=False)
        self._accounts.move_to_end(name)
        return account

    def window(self, budget: KeyBudget) -> Window:
        """The period ``budget`` is in now."""
        return window_of(budget.period, self._clock())

    def seeded(self, name: str, window: str) -> bool:
        """Whether key ``name``'s account for ``window`` was started from the trace store
        (:meth:`open`)."""
        account = self._accounts.get(name)
        return account is not None and account.window == window and account.seeded

    def saw_spent(self, name: str, window: str, spent: int) -> None:
        """The shared state says key ``name`` spent ``spent`` in ``window``: an account
        kept for it here (the twin of a shared state, from an earlier outage) counts no
        less."""
        account = self._accounts.get(name)
        if account is not None and account.window == window and account.spent < spent:
            account.spent = spent

    def open(self, name: str, window: str, spent: int) -> None:
        """Start key ``name``'s account for ``window`` from ``spent`` (what the trace store
        has of it; an account already counting keeps the larger)."""
        account = self._account(name, window)
        account.spent = max(account.spent, spent)
        account.seeded = True

    def state_now(self, budget: KeyBudget) -> BudgetState:
        now = self._clock()
        window = window_of(budget.period, now)
        account = self._account(budget.name, window.id)
        return BudgetState(
            budget, window.id, account.spent, account.held(now), window.ends_at, shared=False
        )

    def reserve_now(self, budget: KeyBudget, estimate: Decimal) -> Reservation:
        now = self._clock()
        window = window_of(budget.period, now)
        account = self._account(budget.name, window.id)
        amount = cost_to_pico(estimate)
        held = account.held(now)
        state = BudgetState(budget, window.id, account.spent, held, window.ends_at, shared=False)
        if account.spent + held + amount > budget.pico:
            raise KeyBudgetExceeded(state, estimate)
        hold_id = f"m{next(self._ids)}"
        account.holds[hold_id] = (amount, now + self.hold_ttl_s)
        after = BudgetState(
            budget, window.id, account.spent, held + amount, window.ends_at, shared=False
        )
        return Reservation(budget, window.id, hold_id, amount, after, shared=False)

    def finish_now(self, reservation: Reservation, cost: Decimal) -> None:
        current = window_of(reservation.budget.period, self._clock()).id
        if reservation.window != current:
            return  # that period has ended: nothing left to hold or to charge in it
        account = self._account(reservation.budget.name, current)
        account.holds.pop(reservation.hold_id, None)
        account.spent += cost_to_pico(cost)
        if self.on_spent is not None:
            self.on_spent(reservation.budget, account.spent)

    async def reserve(self, budget: KeyBudget, estimate: Decimal) -> Reservation:
        return self.reserve_now(budget, estimate)

    def finish_soon(self, reservation: Reservation, cost: Decimal) -> None:
        self.finish_now(reservation, cost)

    async def settle(self, reservation: Reservation, cost: Decimal) -> None:
        self.finish_now(reservation, cost)

    async def release(self, reservation: Reservation) -> None:
        self.finish_now(reservation, Decimal(0))

    async def state(self, budget: KeyBudget) -> BudgetState:
        return self.state_now(budget)

    async def aclose(self) -> None:
        self._accounts.clear()
