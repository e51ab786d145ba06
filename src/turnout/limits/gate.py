"""Everything a request takes from the shared state before its call, in one place: the
key-change generation, the rate limit and the budget hold.

:class:`LocalGate` asks each part in turn (in-process state, or the Redis parts one
call each); :class:`~turnout.limits.gate_redis.RedisGate` does all three in one Lua
script, so a request pays one Redis round trip before its call (and settles its hold
after the answer is sent, off the request path).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from turnout.limits.budget import (
    KeyBudget,
    KeyBudgetExceeded,
    MemoryBudgets,
    Reservation,
    SpentWatcher,
)
from turnout.limits.rate import MemoryRateLimiter, RateDecision, RateLimit

if TYPE_CHECKING:
    from turnout.keys.cache import KeyEvents
    from turnout.limits.ledger import SpendLedger


@dataclass(frozen=True, slots=True)
class GateResult:
    """What the shared state said: ``generation`` of key changes (None: unknown), the
    rate decision (None: no limit), and either a budget hold or why there is none."""

    generation: int | None
    rate: RateDecision | None
    reservation: Reservation | None = None
    over_budget: KeyBudgetExceeded | None = None
    scope: str = ""
    tokens: int = 0
    member: str = ""
    """The id of this admission in the shared state (to take it back)."""
    unseeded: bool = False
    """Nothing was decided: the budget's state for this period has not counted what the
    trace store holds yet (:mod:`turnout.limits.ledger`)."""

    @property
    def admitted(self) -> bool:
        return (self.rate is None or self.rate.allowed) and self.over_budget is None


class Gate(Protocol):
    async def admit(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
    ) -> GateResult:
        """Read the generation; count the request if ``limit`` allows it; then hold
        ``estimate`` against ``budget`` if it fits. Nothing is held when refused."""

    def start_admit(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
        *,
        at_once: bool = True,
    ) -> Later[GateResult]:
        """:meth:`admit`, started now where that lets the shared state decide while the
        caller goes on (a Redis script sent at once); awaited for its answer (awaited
        again, the same answer, nothing decided twice). Not awaited, nothing more
        happens (what was sent stands). ``at_once=False`` when other requests are under
        way in this process: the script goes out with theirs at the end of this turn of
        the loop, in one write, not in one of its own; ``at_once=True`` when it is the
        only one: written now, even while the reply to a batch sent off the request path
        is still on its way."""

    async def undo(self, result: GateResult) -> None:
        """Take an admission back entirely (it was decided on a key since changed)."""

    async def settle(self, reservation: Reservation, cost: Decimal) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...

    def finish_soon(self, reservation: Reservation, cost: Decimal) -> None:
        """Settle (``cost`` > 0) or release the hold without waiting (off the request
        path: batched to the shared state)."""

    def watch_spent(self, watcher: SpentWatcher) -> None:
        """Tell ``watcher`` each key's spend as the state says it once holds are settled
        (the budget-remaining gauge)."""

    def recount_soon(self, result: GateResult, used: int) -> None:
        """Recount an admission's tokens to the ``used`` its calls really used, without
        waiting (off the request path)."""

    async def bump(self) -> None:
        """A key changed: tell every process sharing this state."""

    async def generation(self) -> int | None:
        """The generation of key changes alone (None: unknown, Redis away)."""

    async def aclose(self) -> None: ...


T = TypeVar("T")


class Later(Generic[T]):
    """An awaitable that makes its coroutine only when awaited: one never awaited
    leaves no coroutine behind to warn of. ``sent``: its work was already sent to the
    shared state before it was awaited; ``started``: it has been awaited (its work may
    hold something, even if that await was given up). Its answer, once had, is kept:
    awaited again, the same answer, nothing decided twice. (A gate whose await can be
    given up part-way makes its own work safe to join again: see
    :class:`~turnout.limits.gate_redis.RedisGate`.)"""

    __slots__ = ("_answer", "_make", "sent", "started")

    def __init__(self, make: Callable[[], Awaitable[T]], *, sent: bool = False) -> None:
        self._make = make
        self.sent = sent
        self.started = False
        self._answer: tuple[T] | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._awaited().__await__()

    async def _awaited(self) -> T:
        if self._answer is None:
            self.started = True
            self._answer = (await self._make(),)
        return self._answer[0]


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done callback for work a caller may stop waiting for: its error, if no one
    reads it, is not logged as never retrieved."""
    if not future.cancelled():
        future.exception()


def admit_in_process(
    limiter: MemoryRateLimiter,
    budgets: MemoryBudgets,
    generation: int | None,
    scope: str,
    limit: RateLimit,
    tokens: int,
    budget: KeyBudget | None,
    estimate: Decimal,
) -> GateResult:
    """The rate limit, then the budget hold, in this process (one process, or Redis down):
    a request over budget gives its rate-limit slot back."""
    tokens = max(0, tokens)
    rate = limiter.admit_now(scope, limit, tokens) if limit else None
    if (rate is not None and not rate.allowed) or budget is None:
        return GateResult(generation, rate, scope=scope, tokens=tokens)
    try:
        reservation = budgets.reserve_now(budget, estimate)
    except KeyBudgetExceeded as exc:
        if rate is not None:
            limiter.undo_now(scope, rate.entry)
        return GateResult(generation, rate, over_budget=exc, scope=scope, tokens=tokens)
    return GateResult(generation, rate, reservation, scope=scope, tokens=tokens)


async def start_from_ledger(budgets: MemoryBudgets, ledger: SpendLedger, budget: KeyBudget) -> None:
    """Start ``budget``'s account in ``budgets`` for this period from what the trace store
    holds of the key's spend, once; a store that cannot say leaves it to a later call."""
    window = budgets.window(budget)
    if budgets.seeded(budget.name, window.id):
        return
    spent = await ledger.spent(budget.name, window)
    if spent is not None:
        budgets.open(budget.name, window.id, spent)


class _Closing(Protocol):
    async def aclose(self) -> None: ...


class _Settling(Protocol):
    on_spent: SpentWatcher | None

    async def settle(self, reservation: Reservation, cost: Decimal) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...

    def finish_soon(self, reservation: Reservation, cost: Decimal) -> None: ...

    async def aclose(self) -> None: ...


L = TypeVar("L", bound=_Closing)
B = TypeVar("B", bound=_Settling)


class GateParts(ABC, Generic[L, B]):
    """What every gate does through its parts alike: settle and release budget holds, tell
    other processes of a key change, close."""

    limiter: L
    budgets: B
    events: KeyEvents

    @abstractmethod
    def start_admit(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
        *,
        at_once: bool = True,
    ) -> Later[GateResult]: ...

    async def admit(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
    ) -> GateResult:
        """:meth:`start_admit`, awaited."""
        return await self.start_admit(scope, limit, tokens, budget, estimate)

    async def settle(self, reservation: Reservation, cost: Decimal) -> None:
        await self.budgets.settle(reservation, cost)

    async def release(self, reservation: Reservation) -> None:
        await self.budgets.release(reservation)

    def finish_soon(self, reservation: Reservation, cost: Decimal) -> None:
        self.budgets.finish_soon(reservation, cost)

    def watch_spent(self, watcher: SpentWatcher) -> None:
        self.budgets.on_spent = watcher

    async def bump(self) -> None:
        await self.events.bump()

    async def generation(self) -> int | None:
        return await self.events.generation()

    async def aclose(self) -> None:
        await self.limiter.aclose()
        await self.budgets.aclose()


class LocalGate(GateParts[MemoryRateLimiter, MemoryBudgets]):
    """The gate in this process: the in-process limiter and budgets, asked in turn."""

    def __init__(
        self,
        events: KeyEvents,
        limiter: MemoryRateLimiter,
        budgets: MemoryBudgets,
        ledger: SpendLedger | None = None,
    ) -> None:
        self.events = events
        self.limiter = limiter
        self.budgets = budgets
        self.ledger = ledger
        """Where a key's spend in a period starts from (none: from $0)."""

    async def _admit(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
    ) -> GateResult:
        generation = await self.events.generation()
        if budget is not None and self.ledger is not None and self.ledger.available():
            await start_from_ledger(self.budgets, self.ledger, budget)
        return admit_in_process(
            self.limiter, self.budgets, generation, scope, limit, tokens, budget, estimate
        )

    def start_admit(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
        *,
        at_once: bool = True,
    ) -> Later[GateResult]:
        """:meth:`admit` once awaited: in this process nothing is gained by starting
        sooner."""
        return Later(lambda: self._admit(scope, limit, tokens, budget, estimate))

    async def undo(self, result: GateResult) -> None:
        if result.rate is not None and result.rate.allowed:
            self.limiter.undo_now(result.scope, result.rate.entry)
        if result.reservation is not None:
            self.budgets.finish_now(result.reservation, Decimal(0))

    def recount_soon(self, result: GateResult, used: int) -> None:
        if counts_tokens(result):
            assert result.rate is not None
            self.limiter.recount_now(result.scope, result.rate.entry, used)


def counts_tokens(result: GateResult) -> bool:
    """Whether ``result`` admitted a request whose tokens its rate log counts."""
    return result.rate is not None and result.rate.allowed and bool(result.rate.limit.tpm)
