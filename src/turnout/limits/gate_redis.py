"""The gate in one Redis round trip: the key-change generation, the sliding-window rate
limit and the budget hold, in one Lua script built from the same Lua functions as
:class:`~turnout.limits.rate_redis.RedisRateLimiter` and
:class:`~turnout.limits.budget_redis.RedisBudgets` (one home for each algorithm).

A request the budget refuses is taken back out of the rate log in the same script, so
it is not counted. The script touches a key's rate, budget and generation keys at once:
on Redis Cluster they would have to share a slot, which they do not; use a single Redis
(or Sentinel) for the gateway's state.

The script, and the batches settling budget holds, go out on one pipelined connection
(:class:`~turnout.limits.pipelined.Pipelined`) shared by every request, not through
redis-py's pool: about a third of the CPU per call.

On a Redis error the request is decided by the in-process twins (per-process limits,
the budget seeded with the spend Redis last reported, or, for a key Redis never
reported in this process, with what the trace store holds), with a logged warning and
a metric; never an outage.

Given a :class:`~turnout.limits.ledger.SpendLedger`, a budget's state for a period that
Redis has not seeded (a new period, or a Redis that restarted or was flushed) is seeded
from the trace store first: the script refuses to decide (``-2``, its rate-limit entry
taken back), the ledger is read, :data:`~turnout.limits.budget_redis.SEED_LUA` seeds
the state once across replicas, and the request is decided again. Two more round trips
and a store read, once per key and period; none otherwise. A store that cannot say
leaves the state unseeded: requests are decided on what Redis holds, and the state is
seeded once the ledger asks the store again and it answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from turnout.keys.cache import RedisKeyEvents
from turnout.limits.budget import BudgetState, KeyBudget, KeyBudgetExceeded, Reservation
from turnout.limits.budget_redis import BUDGET_LUA, SEED_LUA, RedisBudgets
from turnout.limits.degrade import Degrader, server_of
from turnout.limits.gate import (
    GateParts,
    GateResult,
    Later,
    admit_in_process,
    counts_tokens,
    retrieved,
    start_from_ledger,
)
from turnout.limits.ids import entry_id
from turnout.limits.lua import Lua
from turnout.limits.periods import window_of
from turnout.limits.pipelined import Pipelined
from turnout.limits.rate import RateLimit
from turnout.limits.rate_redis import (
    RATE_LUA,
    SERVER_NOW_LUA,
    RedisRateLimiter,
    rate_decision,
    rate_keys,
)
from turnout.tracing.rows import cost_to_pico

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from turnout.limits.ledger import SpendLedger

_GATE = (
    SERVER_NOW_LUA
    + RATE_LUA
    + BUDGET_LUA
    + r"""
local now = server_now(ARGV[1])
local window, rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, member = tonumber(ARGV[5]), ARGV[6]
local generation = tonumber(redis.call('GET', KEYS[1]) or '0')
local r = {1, 0, 0, 0, 0, 0, 0}
if rpm > 0 or tpm > 0 then
  r = rate_admit(KEYS[2], KEYS[3], now, window, rpm, tpm, tokens, member)
  if r[1] == 0 then return {generation, r, {-1, '0', '0'}} end
end
local b = {-1, '0', '0'}
if ARGV[7] ~= '' then
  b = budget_reserve(KEYS[4], KEYS[5], now, tonumber(ARGV[7]), ARGV[8], member,
                     tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11] == '1')
  if b[1] ~= 1 and (rpm > 0 or tpm > 0) then
    rate_undo(KEYS[2], KEYS[3], member, tpm > 0 and tokens or 0, window)
    r[2] = math.max(0, r[2] - (rpm > 0 and 1 or 0))
    if tpm > 0 then r[3] = math.max(0, r[3] - tokens) end
  end
end
return {generation, r, b}
"""
)


_UNDO = (
    SERVER_NOW_LUA
    + RATE_LUA
    + BUDGET_LUA
    + r"""
rate_undo(KEYS[1], KEYS[2], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if KEYS[3] ~= '-' then budget_finish(KEYS[3], KEYS[4], server_now(ARGV[1]), {ARGV[5]}, '0', 0) end
return 1
"""
)


class RedisGate(GateParts[RedisRateLimiter, RedisBudgets]):
    """:class:`~turnout.limits.gate.Gate` in one script on ``redis``."""

    events: RedisKeyEvents

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "turnout",
        timeout_s: float = 2.0,
        retry_after_s: float = 1.0,
        on_degrade: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
        ledger: SpendLedger | None = None,
    ) -> None:
        self.redis = redis
        self._clock = clock
        self.ledger = ledger
        self._pipelined = Pipelined.of(redis)
        self.limiter = RedisRateLimiter(
            redis, prefix=f"{prefix}:rl", timeout_s=timeout_s, retry_after_s=retry_after_s,
            on_degrade=on_degrade, clock=clock, pipelined=self._pipelined,
        )  # fmt: skip
        # the pipelined connection's own reply deadline bounds the gate's calls
        self._bounded = self._pipelined is not None and self._pipelined.reply_timeout_s <= timeout_s
        self.budgets = RedisBudgets(
            redis, prefix=f"{prefix}:budget", timeout_s=timeout_s, retry_after_s=retry_after_s,
            on_degrade=on_degrade, clock=clock, pipelined=self._pipelined,
        )  # fmt: skip
        self.events = RedisKeyEvents(
            redis, prefix=f"{prefix}:keys", timeout_s=timeout_s, on_degrade=on_degrade
        )
        self.degrader = Degrader(
            "shared state", timeout_s=timeout_s, retry_after_s=retry_after_s,
            on_degrade=on_degrade, server=server_of(redis),
        )  # fmt: skip
        self._gate = Lua(_GATE)
        self._seed = Lua(SEED_LUA)
        self._undo: AsyncScript = redis.register_script(_UNDO)

    async def prepare(self, connections: int = 16) -> bool:
        """Load the scripts and open ``connections`` connections before the first
        request (a burst would otherwise open them all at once, each within its
        request's timeout)."""

        async def load() -> None:
            await self.redis.script_load(self._gate.source)
            await asyncio.gather(*(self.redis.ping() for _ in range(connections)))
            if self._pipelined is not None:
                await self._pipelined.execute("PING")

        loaded = await self.degrader.attempt(load)
        return loaded and await self.budgets.prepare()

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
        """:meth:`admit`, its script sent now when the pipelined connection is open and
        Redis is up (Redis decides while the caller prepares its call); else sent once
        awaited."""
        seed = self.ledger is not None and self.ledger.available()
        call = _GateCall(self, scope, limit, tokens, budget, estimate, seed)
        sent = None
        if self._pipelined is not None and self.degrader.healthy():
            keys, args = call.command()
            sent = self._pipelined.send_now(
                "EVALSHA", self._gate.sha, len(keys), *keys, *args, at_once=at_once
            )
        if sent is not None:
            sent.add_done_callback(retrieved)  # a caller that never waits logs nothing
        return Later(lambda: self._admitted(call, sent), sent=sent is not None)

    async def _admitted(self, call: _GateCall, sent: asyncio.Future[Any] | None) -> GateResult:
        """The request decided: awaited again after a caller gave up part-way (to give
        back what it held), the work already done or under way is joined, not done
        again: the script's reply is read again, the first decision (in Redis or in the
        twin) is kept on ``call``, a script sent by the await and a second pass run as
        tasks of their own."""
        from redis.exceptions import NoScriptError

        scope, limit, tokens, budget, estimate = call.asked
        twin_unseeded = False

        async def shared() -> GateResult:
            nonlocal sent
            if sent is not None:
                first, sent = sent, None
                try:  # a caller that stops waiting leaves the answer to be read again
                    return call.result(await asyncio.shield(first))
                except NoScriptError:  # Redis lost its scripts (restarted, flushed)
                    pass
            if call.running is None:
                call.running = asyncio.ensure_future(self._run(call))
                call.running.add_done_callback(retrieved)
            return call.result(await asyncio.shield(call.running))

        def local() -> GateResult:
            nonlocal twin_unseeded
            if call.seed and budget is not None and self._twin_unseeded(budget):
                twin_unseeded = True
                return GateResult(None, None, scope=scope, tokens=tokens, unseeded=True)
            return self._local(scope, limit, tokens, budget, estimate)

        result = call.first
        if result is None:
            under_way = sent is not None or call.running is not None  # joined, not redone
            result = call.first = await self.degrader.run(
                shared, local, bounded=self._bounded, sent=under_way
            )
            call.twin = twin_unseeded
            running = call.running
            if running is not None and not running.done() and not result.member:
                running.cancel()  # past the deadline, decided in this process: not sent
        if result.unseeded and budget is not None:
            if call.second is None:
                call.second = asyncio.ensure_future(self._seeded(call, budget, call.twin))
                call.second.add_done_callback(retrieved)
            # a caller that stops waiting leaves it to finish: awaited again (to give
            # the hold back), the same answer is read, not a second hold taken
            return await asyncio.shield(call.second)
        return result

    async def _seeded(self, call: _GateCall, budget: KeyBudget, twin: bool) -> GateResult:
        """``call`` decided again once its budget's period is seeded from the store."""
        scope, limit, tokens, _, estimate = call.asked
        await self._seed_budget(budget, twin=twin)
        if twin:  # Redis was just found away: the twin decides
            return self._local(scope, limit, tokens, budget, estimate)
        again = call.again()  # decided now on what Redis holds, seeded or not

        async def shared() -> GateResult:
            return again.result(await self._run(again))

        def local() -> GateResult:
            return self._local(scope, limit, tokens, budget, estimate)

        return await self.degrader.run(shared, local, bounded=self._bounded)

    async def _run(self, call: _GateCall) -> Any:
        keys, args = call.command()
        if self._pipelined is not None:
            return await self._pipelined.evalsha(self._gate, keys, args)
        return await self._gate(self.redis, keys, args)

    def _twin_unseeded(self, budget: KeyBudget) -> bool:
        """Whether the in-process twin would start ``budget``'s period from nothing: it
        has no account for it, and Redis never said what the key spent in it (a gateway
        that started while Redis was away)."""
        twin = self.budgets.local
        window = twin.window(budget)
        return not twin.seeded(budget.name, window.id) and not self.budgets.saw(
            budget.name, window.id
        )

    async def _seed_budget(self, budget: KeyBudget, *, twin: bool = False) -> None:
        """Seed ``budget``'s state for this period from the trace store: Redis's (once
        across replicas; the store's spend counts only if larger than what Redis holds),
        or with ``twin`` the in-process twin's, which decides while Redis is away."""
        assert self.ledger is not None
        if twin:
            await start_from_ledger(self.budgets.local, self.ledger, budget)
            return
        now = self._clock() if self._clock is not None else time.time()
        window = window_of(budget.period, now)
        spent = await self.ledger.spent(budget.name, window)
        if spent is None:  # the store cannot say: left unseeded, asked again later
            return
        if spent and not self.budgets.saw(budget.name, window.id):
            self.budgets.remember(budget.name, window.id, spent)  # the twin's, if Redis goes
        sk, _ = self.budgets.keys_of(budget.name, window.id)
        args = [spent, self.budgets.key_ttl_ms(window.ends_at, now)]

        async def seed() -> None:
            if self._pipelined is not None:
                await self._pipelined.evalsha(self._seed, [sk], args)
            else:
                await self._seed(self.redis, [sk], args)

        await self.degrader.attempt(seed)

    def _local(
        self,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
    ) -> GateResult:
        return admit_in_process(
            self.limiter.local, self.budgets.local, None, scope, limit, tokens, budget, estimate
        )

    async def undo(self, result: GateResult) -> None:
        if not result.member:  # decided in this process
            if result.rate is not None and result.rate.allowed:
                self.limiter.local.undo_now(result.scope, result.rate.entry)
            if result.reservation is not None:
                self.budgets.local.finish_now(result.reservation, Decimal(0))
            return
        reservation = result.reservation
        keys = rate_keys(self.limiter.prefix, result.scope)
        keys += (
            self.budgets.keys_of(reservation.budget.name, reservation.window)
            if reservation is not None
            else ["-", "-"]
        )
        summed = result.rate is not None and bool(result.rate.limit.tpm)  # as logged
        args: list[Any] = [
            "" if self._clock is None else str(int(self._clock() * 1000)), result.member,
            result.tokens if summed else 0, self.limiter.window_ms,
            reservation.hold_id if reservation is not None else "",
        ]  # fmt: skip

        async def shared() -> None:
            await self._undo(keys=keys, args=args)

        await self.degrader.attempt(shared)

    def recount_soon(self, result: GateResult, used: int) -> None:
        if not counts_tokens(result):
            return
        if result.member:
            self.limiter.recount_soon(result.scope, result.member, result.tokens, used)
        elif result.rate is not None:  # decided in this process
            self.limiter.local.recount_now(result.scope, result.rate.entry, used)

    async def aclose(self) -> None:
        await super().aclose()  # the budgets send what they hold first
        if self._pipelined is not None:
            await self._pipelined.aclose()


class _GateCall:
    """One request's gate script: its keys and arguments, and its reply read."""

    __slots__ = (
        "amount", "asked", "first", "gate", "member", "now", "running", "second", "seed",
        "twin", "window",
    )  # fmt: skip

    def __init__(
        self,
        gate: RedisGate,
        scope: str,
        limit: RateLimit,
        tokens: int,
        budget: KeyBudget | None,
        estimate: Decimal,
        seed: bool,
    ) -> None:
        self.gate = gate
        self.asked = (scope, limit, max(0, tokens), budget, estimate)
        self.seed = seed
        clock = gate._clock
        self.now = clock() if clock is not None else time.time()
        self.member = entry_id()
        self.window = window_of(budget.period, self.now) if budget is not None else None
        self.amount = cost_to_pico(estimate)
        self.first: GateResult | None = None  # the first decision, once made
        self.running: asyncio.Future[Any] | None = None  # its script, sent when awaited
        self.twin = False  # the first decision was the twin's, its period unseeded
        self.second: asyncio.Future[GateResult] | None = None  # decided again, seeded

    def again(self) -> _GateCall:
        """The same request asked again, not seeding (its first entry was taken back)."""
        return _GateCall(self.gate, *self.asked, seed=False)

    def command(self) -> tuple[list[str], list[Any]]:
        """The script's keys and arguments."""
        gate = self.gate
        scope, limit, tokens, budget, _ = self.asked
        keys = [gate.events.key, *rate_keys(gate.limiter.prefix, scope)]
        budget_args: list[Any] = ["", 0, 0, 0, "0"]
        if budget is not None and self.window is not None:
            budgets = gate.budgets
            keys += budgets.keys_of(budget.name, self.window.id)
            budget_args = [
                budget.pico, self.amount, budgets.hold_ttl_ms,
                budgets.key_ttl_ms(self.window.ends_at, self.now), "1" if self.seed else "0",
            ]  # fmt: skip
        else:
            keys += ["-", "-"]
        return keys, [
            "" if gate._clock is None else str(int(self.now * 1000)), gate.limiter.window_ms,
            limit.rpm or 0, limit.tpm or 0, tokens, self.member, *budget_args,
        ]  # fmt: skip

    def result(self, reply: Any) -> GateResult:
        scope, limit, tokens, budget, estimate = self.asked
        member, window = self.member, self.window
        generation, rate_reply, budget_reply = reply
        rate = rate_decision(rate_reply, limit) if limit else None
        gen = int(generation)
        if budget is None or window is None or int(budget_reply[0]) == -1:
            return GateResult(gen, rate, scope=scope, tokens=tokens, member=member)
        if int(budget_reply[0]) == -2:  # its rate-limit entry was taken back
            return GateResult(gen, None, scope=scope, tokens=tokens, unseeded=True)
        spent, held = int(float(budget_reply[1])), int(float(budget_reply[2]))
        self.gate.budgets.remember(budget.name, window.id, spent)
        state = BudgetState(budget, window.id, spent, held, window.ends_at)
        if int(budget_reply[0]) == 0:
            over = KeyBudgetExceeded(state, estimate)
            return GateResult(
                gen, rate, over_budget=over, scope=scope, tokens=tokens, member=member
            )
        reservation = Reservation(budget, window.id, f"{member}:{self.amount}", self.amount, state)
        return GateResult(gen, rate, reservation, scope=scope, tokens=tokens, member=member)
