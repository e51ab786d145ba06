"""Key budgets in Redis, shared by every replica: reserve, settle and release are each
one Lua script, so concurrent requests on any number of replicas cannot together pass a
budget (see :mod:`turnout.limits.budget`).

Keys, per key name and period (``2026-12``, ``2026-W49``, ``2026-12-01``, ``total``)::

    {prefix}:{name}:{window}    hash: spent, held (pico-dollars, HINCRBY: exact)
    {prefix}:{name}:{window}:h  sorted set of holds "<id>:<pico>" scored by expiry (ms)

A period's keys expire a day after the period ends (``total`` never does). Holds
expire after ``hold_ttl_s``; an expired hold is subtracted from ``held`` by the next
script that looks. Time is the Redis server's. Comparisons in Lua are doubles, exact
up to about $9,000 of pico-dollars; stored sums are integers and always exact.

Settling (and releasing) is off the request path, so holds are settled in batches:
:meth:`RedisBudgets.finish_soon` queues a hold without waiting, and every hold queued
within ``batch_s`` (5 ms) goes to Redis in one pipelined round trip, one script call
per budget window (its holds removed with one ``ZMSCORE`` and one ``ZREM``, its costs
summed in Python, exactly, and added with one ``HINCRBY``): a settle costs Redis about
a tenth of a call of its own at 2,000 requests a second. Until then the hold
still counts against the budget (it was reserved at the estimate), so a late settle can
only make a budget look fuller than it is, never emptier.

When Redis fails, requests are decided by the in-process twin (a warning, a metric,
never an outage), seeded with the spend Redis last reported for the key, so a replica
spends at most the remaining budget on its own during an outage.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from turnout.limits.batch import Batch
from turnout.limits.budget import (
    HOLD_TTL_S,
    BudgetState,
    KeyBudget,
    KeyBudgetExceeded,
    MemoryBudgets,
    Reservation,
    SpentWatcher,
)
from turnout.limits.degrade import Degrader, server_of
from turnout.limits.ids import entry_id
from turnout.limits.lua import Lua
from turnout.limits.periods import window_of
from turnout.limits.rate_redis import SERVER_NOW_LUA
from turnout.tracing.rows import cost_to_pico

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from turnout.limits.pipelined import Pipelined


BUDGET_LUA = r"""
local function amount_of(entry) return tonumber(string.match(entry, ':(%d+)$')) end
local function int(x) return string.format('%d', x) end
local function budget_open(sk, hk, now)
  local expired = redis.call('ZRANGEBYSCORE', hk, '-inf', now)
  if #expired > 0 then
    local freed = 0
    for i = 1, #expired do freed = freed + amount_of(expired[i]) end
    redis.call('ZREMRANGEBYSCORE', hk, '-inf', now)
    redis.call('HINCRBY', sk, 'held', int(-freed))
  end
  local v = redis.call('HMGET', sk, 'spent', 'held', 'seeded')
  return tonumber(v[1] or '0'), math.max(0, tonumber(v[2] or '0')), v[3]
end
local function budget_keep(sk, hk, ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', sk, ttl)
    redis.call('PEXPIRE', hk, ttl)
  end
end
local function budget_reserve(sk, hk, now, cap, amount_text, member, hold_ttl, key_ttl, seed)
  local spent, held, seeded = budget_open(sk, hk, now)
  if seed and not seeded then return {-2, int(spent), int(held)} end  -- see SEED_LUA
  local amount = tonumber(amount_text)
  if spent + held + amount > cap then return {0, int(spent), int(held)} end
  redis.call('ZADD', hk, now + hold_ttl, member .. ':' .. amount_text)
  redis.call('HINCRBY', sk, 'held', amount_text)
  if held == 0 then budget_keep(sk, hk, key_ttl) end
  return {1, int(spent), int(held + amount)}
end
local function budget_finish(sk, hk, now, members, cost, key_ttl)
  local spent, held = budget_open(sk, hk, now)
  local scores = redis.call('ZMSCORE', hk, unpack(members))
  local found, freed, seen = {}, 0, {}
  for i = 1, #members do
    if scores[i] and not seen[members[i]] then  -- a hold named twice is freed once
      seen[members[i]] = true
      found[#found + 1] = members[i]
      freed = freed + amount_of(members[i])
    end
  end
  if #found > 0 then
    redis.call('ZREM', hk, unpack(found))
    redis.call('HINCRBY', sk, 'held', int(-freed))
  end
  if cost ~= '0' then spent = redis.call('HINCRBY', sk, 'spent', cost) end
  budget_keep(sk, hk, key_ttl)
  return int(spent)
end
"""

SEED_LUA = r"""
-- a budget's state for one period starts from what the trace store holds of it
-- (turnout.limits.ledger), once: KEYS[1] its hash; ARGV[1] the store's spend (pico),
-- ARGV[2] the hash's ttl (ms, 0: none)
if redis.call('HSETNX', KEYS[1], 'seeded', '1') == 1 then
  local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
  local stored = tonumber(ARGV[1])
  if stored > spent then
    redis.call('HINCRBY', KEYS[1], 'spent', string.format('%d', stored - spent))
  end
end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

_RESERVE = (
    SERVER_NOW_LUA
    + BUDGET_LUA
    + r"""
return budget_reserve(KEYS[1], KEYS[2], server_now(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
                      ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
"""
)

_FINISH = (
    SERVER_NOW_LUA
    + BUDGET_LUA
    + r"""
return budget_finish(KEYS[1], KEYS[2], server_now(ARGV[1]), {unpack(ARGV, 4)}, ARGV[2],
                     tonumber(ARGV[3]))
"""
)

_STATE = (
    SERVER_NOW_LUA
    + BUDGET_LUA
    + r"""
local spent, held = budget_open(KEYS[1], KEYS[2], server_now(ARGV[1]))
return {int(spent), int(held)}
"""
)

_KEEP_AFTER_S = 86_400
_PER_CALL = 1000  # holds settled by one script call (Lua's unpack has a limit)
_SEEN = 10_000


class RedisBudgets:
    """:class:`~turnout.limits.budget.KeyBudgets` shared by every process on ``redis``."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "turnout:budget",
        hold_ttl_s: float = HOLD_TTL_S,
        timeout_s: float = 0.5,
        retry_after_s: float = 1.0,
        on_degrade: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
        batch_s: float = 0.005,
        pipelined: Pipelined | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.hold_ttl_ms = int(hold_ttl_s * 1000)
        self._clock = clock
        self._reserve: AsyncScript = redis.register_script(_RESERVE)
        self._finish = Lua(_FINISH)  # pipelined: EVALSHA without SCRIPT EXISTS
        self._pipelined = pipelined
        self._state: AsyncScript = redis.register_script(_STATE)
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._finishing: Batch[tuple[Reservation, Decimal, int]] = Batch(  # + the keys' ttl
            self._flush, what="budgets", batch_s=batch_s
        )
        self.local = MemoryBudgets(
            hold_ttl_s=hold_ttl_s, clock=clock or time.time, seed=self._last_spent
        )
        self.degrader = Degrader(
            "budgets", timeout_s=timeout_s, retry_after_s=retry_after_s, on_degrade=on_degrade,
            server=server_of(redis),
        )  # fmt: skip

    @property
    def on_spent(self) -> SpentWatcher | None:
        """Hears a budget's spend in its period as Redis says it once holds are settled
        (or as the in-process twin says it, while Redis is away)."""
        return self.local.on_spent

    @on_spent.setter
    def on_spent(self, watcher: SpentWatcher | None) -> None:
        self.local.on_spent = watcher

    # -- plumbing ----------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(int(self._clock() * 1000))

    def keys_of(self, name: str, window: str) -> list[str]:
        base = f"{self.prefix}:{{{name}}}:{window}"
        return [base, f"{base}:h"]

    @staticmethod
    def key_ttl_ms(ends_at: float | None, now: float) -> int:
        if ends_at is None:
            return 0
        return max(1, math.ceil((ends_at - now + _KEEP_AFTER_S) * 1000))

    def remember(self, name: str, window: str, spent: int) -> None:
        self._seen[(name, window)] = spent
        self.local.saw_spent(name, window, spent)  # a twin account kept from an outage
        self._seen.move_to_end((name, window))
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)

    def _last_spent(self, name: str, window: str) -> int:
        return self._seen.get((name, window), 0)

    def saw(self, name: str, window: str) -> bool:
        """Whether this process knows what key ``name`` spent in ``window``: Redis said so,
        or the trace store did when Redis's state was seeded from it."""
        return (name, window) in self._seen

    # -- KeyBudgets --------------------------------------------------------------------

    async def reserve(self, budget: KeyBudget, estimate: Decimal) -> Reservation:
        async def shared() -> Reservation | KeyBudgetExceeded:
            now = self._now()
            window = window_of(budget.period, now)
            amount = cost_to_pico(estimate)
            hold_id = entry_id()
            reply = await self._reserve(
                keys=self.keys_of(budget.name, window.id),
                args=[
                    self._now_arg(), budget.pico, amount, hold_id,
                    self.hold_ttl_ms, self.key_ttl_ms(window.ends_at, now),
                ],
            )  # fmt: skip
            ok, spent, held = int(reply[0]), int(float(reply[1])), int(float(reply[2]))
            self.remember(budget.name, window.id, spent)
            state = BudgetState(budget, window.id, spent, held, window.ends_at)
            if not ok:
                return KeyBudgetExceeded(state, estimate)
            return Reservation(budget, window.id, f"{hold_id}:{amount}", amount, state)

        outcome = await self.degrader.run(shared, lambda: self.local.reserve_now(budget, estimate))
        if isinstance(outcome, KeyBudgetExceeded):
            raise outcome
        return outcome

    def finish_soon(self, reservation: Reservation, cost: Decimal) -> None:
        """Settle (``cost`` > 0) or release the hold without waiting: queued for the next
        batch (a hold decided in this process, while Redis was away, is finished here)."""
        if not reservation.shared:
            self.local.finish_now(reservation, cost)
            return
        now = self._now()
        window = window_of(reservation.budget.period, now)
        ends_at = window.ends_at if window.id == reservation.window else now
        self._finishing.add((reservation, cost, self.key_ttl_ms(ends_at, now)))

    async def _finish_shared(self, reservation: Reservation, cost: Decimal) -> None:
        self.finish_soon(reservation, cost)
        if reservation.shared:
            await self._finishing.sent()

    async def _flush(self, pending: list[tuple[Reservation, Decimal, int]]) -> None:
        """Settle every pending hold in one pipelined round trip."""
        replies: list[object] = []
        groups = self._grouped(pending)

        async def shared() -> None:
            calls = [(self.keys_of(name, window), args) for (name, window), args in groups]
            if self._pipelined is not None:
                replies.extend(await self._pipelined.evalsha_many(self._finish, calls))
            else:
                replies.extend(await self._finish.many(self.redis, calls))

        if await self.degrader.attempt(shared):
            budgets = {(r.budget.name, r.window): r.budget for r, _, _ in pending}
            now = self._now()
            for ((name, window), _), spent in zip(groups, replies, strict=True):
                text = spent.decode() if isinstance(spent, bytes) else str(spent)
                self.remember(name, window, int(float(text)))
                budget = budgets[(name, window)]
                if self.on_spent is not None and window_of(budget.period, now).id == window:
                    self.on_spent(budget, int(float(text)))  # a period ended is not told
        else:
            for reservation, cost, _ in pending:
                if cost:  # holds expire by themselves; spend is kept here meanwhile
                    self.local.finish_now(reservation, cost)

    def _grouped(
        self, pending: list[tuple[Reservation, Decimal, int]]
    ) -> list[tuple[tuple[str, str], list[str | int]]]:
        """One script call per budget window (and per ``_PER_CALL`` holds): its holds,
        their costs summed here (exact integers), the keys' ttl."""
        holds: dict[tuple[str, str], list[str]] = {}
        costs: dict[tuple[str, str], int] = {}
        ttls: dict[tuple[str, str], int] = {}
        for reservation, cost, ttl in pending:
            group = (reservation.budget.name, reservation.window)
            holds.setdefault(group, []).append(reservation.hold_id)
            costs[group] = costs.get(group, 0) + cost_to_pico(cost)
            ttls[group] = max(ttls.get(group, 0), ttl)
        now = self._now_arg()
        calls: list[tuple[tuple[str, str], list[str | int]]] = []
        for group, ids in holds.items():  # a hold named twice: the script frees it once
            for i in range(0, len(ids), _PER_CALL):
                spend = costs[group] if i == 0 else 0  # the group's spend, sent once
                calls.append((group, [now, spend, ttls[group], *ids[i : i + _PER_CALL]]))
        return calls

    async def settle(self, reservation: Reservation, cost: Decimal) -> None:
        await self._finish_shared(reservation, cost)

    async def release(self, reservation: Reservation) -> None:
        await self._finish_shared(reservation, Decimal(0))

    async def state(self, budget: KeyBudget) -> BudgetState:
        async def shared() -> BudgetState:
            now = self._now()
            window = window_of(budget.period, now)
            reply = await self._state(
                keys=self.keys_of(budget.name, window.id), args=[self._now_arg()]
            )
            spent, held = int(float(reply[0])), int(float(reply[1]))
            self.remember(budget.name, window.id, spent)
            return BudgetState(budget, window.id, spent, held, window.ends_at)

        return await self.degrader.run(shared, lambda: self.local.state_now(budget))

    async def prepare(self) -> bool:
        """Load the Lua scripts and open a connection now, not on the first request;
        False (and per-process state for now) when Redis cannot be reached."""

        async def load() -> None:
            self._reserve.sha = await self.redis.script_load(self._reserve.script)
            await self.redis.script_load(self._finish.source)
            self._state.sha = await self.redis.script_load(self._state.script)

        return await self.degrader.attempt(load)

    async def aclose(self) -> None:
        await self._finishing.drain()
        await self.local.aclose()
