"""Rate limits and key budgets in the real Redis (127.0.0.1:6379, a random key prefix,
deleted afterwards); a Redis of the test's own, stopped mid-test, for the outage."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.own_redis import OwnRedis
from turnout.keys.model import Period
from turnout.limits.budget import KeyBudget, KeyBudgetExceeded, PaidCall
from turnout.limits.budget_redis import RedisBudgets
from turnout.limits.pipelined import Pipelined
from turnout.limits.rate import RateLimit
from turnout.limits.rate_redis import RedisRateLimiter
from turnout.tracing.sqlite import SQLiteStore

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")


@pytest.fixture
async def prefix(client: redis_asyncio.Redis) -> AsyncIterator[str]:
    p = f"turnout-test:{uuid.uuid4().hex}"
    yield p
    keys = [k async for k in client.scan_iter(match=f"{p}:*")]
    if keys:
        await client.delete(*keys)


def replica(url: str = "redis://127.0.0.1:6379/0") -> redis_asyncio.Redis:
    """A client as a separate replica would have: its own connections, short timeouts."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis_asyncio.Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


async def test_replicas_admit_exactly_the_limit(prefix: str) -> None:
    clients = [replica() for _ in range(3)]
    # a generous timeout: this tests exactness, not the outage (a loaded CI machine opens
    # 20 connections a client at once)
    limiters = [RedisRateLimiter(c, prefix=f"{prefix}:rl", timeout_s=5) for c in clients]
    limit = RateLimit(rpm=30)
    try:
        assert all([await lim.prepare() for lim in limiters])
        decisions = await asyncio.gather(
            *(limiters[i % 3].admit("team-a", limit) for i in range(60))
        )
        assert sum(d.allowed for d in decisions) == 30
        assert all(d.shared for d in decisions)
        refused = [d for d in decisions if not d.allowed]
        assert all(d.retry_after_s is not None and 0 < d.retry_after_s <= 60 for d in refused)
        assert refused[0].headers()["x-ratelimit-remaining-requests"] == "0"
        # another scope (per model) is counted apart
        assert (await limiters[0].admit("team-a|haiku", limit)).allowed
    finally:
        for c in clients:
            await c.aclose()


async def test_tokens_and_window_with_a_clock(client: redis_asyncio.Redis, prefix: str) -> None:
    now = [1_800_000_000.0]
    limiter = RedisRateLimiter(client, prefix=f"{prefix}:rl", clock=lambda: now[0], timeout_s=5)
    limit = RateLimit(rpm=10, tpm=100)
    first = await limiter.admit("k", limit, tokens=60)
    assert first.allowed and first.remaining_tokens == 40 and first.remaining_requests == 9
    now[0] += 20
    assert (await limiter.admit("k", limit, tokens=30)).allowed
    refused = await limiter.admit("k", limit, tokens=50)
    assert not refused.allowed and refused.refused_by == "tokens"
    assert refused.retry_after_s == pytest.approx(40, abs=0.01)
    never = await limiter.admit("k", limit, tokens=101)
    assert not never.allowed and never.retry_after_s is None
    now[0] += 40.01
    ok = await limiter.admit("k", limit, tokens=50)
    assert ok.allowed and ok.tokens == 80  # the 60 left, 30 + 50 counted


async def test_budget_never_passed_by_concurrent_replicas(prefix: str) -> None:
    clients = [replica() for _ in range(2)]
    budgets = [RedisBudgets(c, prefix=f"{prefix}:budget", timeout_s=5) for c in clients]
    b = KeyBudget("team-a", Decimal("0.01"), Period.DAY)
    estimate = Decimal("0.0007")
    real = Decimal("0.0005")

    async def one(i: int) -> bool:
        try:
            r = await budgets[i % 2].reserve(b, estimate)
        except KeyBudgetExceeded:
            return False
        await asyncio.sleep(0.005)
        await budgets[i % 2].settle(r, real)
        return True

    try:
        for budget in budgets:
            assert not budget.degrader.down
        results = await asyncio.gather(*(one(i) for i in range(50)))
        admitted = sum(results)
        assert budgets[0].degrader.degraded == budgets[1].degrader.degraded == 0
        assert admitted >= 14
        state = await budgets[0].state(b)
        assert state.spent_usd == real * admitted
        assert state.spent_usd <= b.budget_usd
        assert state.held_pico == 0
        # released holds give the budget back
        r = await budgets[1].reserve(b, state.remaining_usd)
        await budgets[1].release(r)
        assert (await budgets[0].state(b)).remaining_usd == state.remaining_usd
    finally:
        for c in clients:
            await c.aclose()


async def test_holds_finished_without_waiting_reach_redis_in_one_batch(prefix: str) -> None:
    client = replica()
    budgets = RedisBudgets(client, prefix=f"{prefix}:budget", batch_s=0.05)
    b = KeyBudget("team-b", Decimal("1"), Period.DAY)
    try:
        holds = [await budgets.reserve(b, Decimal("0.1")) for _ in range(4)]
        budgets.finish_soon(holds[0], Decimal("0.05"))
        budgets.finish_soon(holds[1], Decimal(0))  # released
        before = await budgets.state(b)  # queued, not sent: still held at the estimate
        assert (before.spent_usd, before.held_pico) == (0, 4 * holds[0].estimate_pico)
        await asyncio.sleep(0.2)
        after = await budgets.state(b)
        assert after.spent_usd == Decimal("0.05")
        assert after.held_pico == 2 * holds[0].estimate_pico
        budgets.finish_soon(holds[2], Decimal("0.02"))
        budgets.finish_soon(holds[3], Decimal("0.03"))
        await budgets.aclose()  # closing sends what is queued
        last = await RedisBudgets(client, prefix=f"{prefix}:budget").state(b)
        assert (last.spent_usd, last.held_pico) == (Decimal("0.10"), 0)
    finally:
        await client.aclose()


async def test_a_batch_settles_each_budget_in_one_call_exactly(own_redis: OwnRedis) -> None:
    # the test's own Redis: its command counts hold no other user's calls
    client, prefix = replica(own_redis.url), "turnout-test"
    now = [1_800_000_000.0]
    budgets = RedisBudgets(
        client, prefix=f"{prefix}:budget", batch_s=60, hold_ttl_s=30, clock=lambda: now[0]
    )
    big = KeyBudget("team-a", Decimal("100000"), Period.TOTAL)  # past 1e14 pico: no %.14g
    small = KeyBudget("team-b", Decimal("1"), Period.TOTAL)

    async def evalsha_calls() -> int:
        stats = await client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    try:
        assert await budgets.prepare()
        calls = await evalsha_calls()
        expired = await budgets.reserve(small, Decimal("0.2"))
        now[0] += 31  # that hold expires: the next script gives it back, once
        holds = [await budgets.reserve(big, Decimal("300.000000000001")) for _ in range(3)]
        kept = await budgets.reserve(small, Decimal("0.1"))
        for hold, cost in zip(holds, ("250.5", "0", "0.000000000001"), strict=True):
            budgets.finish_soon(hold, Decimal(cost))
        budgets.finish_soon(expired, Decimal("0.15"))  # late: its spend still counts
        budgets.finish_soon(kept, Decimal("0.05"))
        await budgets.aclose()
        assert await evalsha_calls() - calls == 5 + 2  # five reserves, one settle a budget
        a, b = await budgets.state(big), await budgets.state(small)
        assert (a.spent_usd, a.held_pico) == (Decimal("250.500000000001"), 0)
        assert (b.spent_usd, b.held_pico) == (Decimal("0.20"), 0)
    finally:
        await client.aclose()


async def test_a_hold_finished_twice_in_one_batch_is_freed_once(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    budgets = RedisBudgets(client, prefix=f"{prefix}:budget", batch_s=60)
    b = KeyBudget("team-a", Decimal("1"), Period.TOTAL)
    try:
        first = await budgets.reserve(b, Decimal("0.5"))
        second = await budgets.reserve(b, Decimal("0.5"))
        budgets.finish_soon(first, Decimal(0))
        budgets.finish_soon(first, Decimal(0))  # a caller's mistake must not free the other
        await budgets.aclose()
        state = await budgets.state(b)
        assert state.held_pico == second.estimate_pico
        await budgets.reserve(b, Decimal("0.5"))
        with pytest.raises(KeyBudgetExceeded):
            await budgets.reserve(b, Decimal("0.5"))
    finally:
        await client.aclose()


async def test_tokens_logged_without_a_tpm_limit_never_leave_the_sum(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    now = [1_800_000_000.0]
    limiter = RedisRateLimiter(client, prefix=f"{prefix}:rl", clock=lambda: now[0], timeout_s=5)
    for _ in range(5):  # no tpm limit yet: these tokens are not summed
        assert (await limiter.admit("k", RateLimit(rpm=100), tokens=1000)).allowed
    now[0] += 30
    limit = RateLimit(rpm=100, tpm=3000)  # the key gains a tpm limit
    assert [(await limiter.admit("k", limit, tokens=1000)).allowed for _ in range(4)] == [
        True, True, True, False,
    ]  # fmt: skip
    now[0] += 31  # the first five leave the window: the sum must not fall with them
    refused = await limiter.admit("k", limit, tokens=1000)
    assert not refused.allowed and refused.tokens == 3000


@pytest.mark.parametrize("limit", [RateLimit(rpm=5), RateLimit(tpm=500), RateLimit(rpm=5, tpm=500)])
async def test_the_gate_takes_back_what_it_admitted(
    client: redis_asyncio.Redis, prefix: str, limit: RateLimit
) -> None:
    from turnout.limits.gate_redis import RedisGate

    gate = RedisGate(client, prefix=prefix, timeout_s=5)
    b = KeyBudget("team-a", Decimal("1"), Period.DAY)
    try:
        assert await gate.prepare()
        results = [await gate.admit("team-a", limit, 100, b, Decimal("0.1")) for _ in range(3)]
        for result in results:
            await gate.undo(result)
        after = await gate.admit("team-a", limit, 100, b, Decimal("0.1"))
        assert after.rate is not None and after.rate.allowed
        assert (after.rate.requests, after.rate.tokens) == (
            1 if limit.rpm else 0,
            100 if limit.tpm else 0,
        )  # only this one is counted
        assert await client.zcard(f"{prefix}:rl:{{team-a}}:log") == 1
        assert (await gate.budgets.state(b)).held_pico == after.reservation.estimate_pico
    finally:
        await gate.aclose()


@pytest.mark.parametrize(
    ("limit", "allowed", "counted", "keys", "reset"),
    [
        (RateLimit(rpm=3), [True, True, True, False], (3, 0), {"log"}, 50),
        (RateLimit(tpm=100), [True, True, False, False], (0, 80), {"log", "sum"}, 40),
        (RateLimit(rpm=3, tpm=100), [True, True, False, False], (2, 80), {"log", "sum"}, 40),
    ],
)
async def test_one_log_serves_requests_and_tokens(
    client: redis_asyncio.Redis,
    prefix: str,
    limit: RateLimit,
    allowed: list[bool],
    counted: tuple[int, int],
    keys: set[str],
    reset: float,
) -> None:
    now = [1_800_000_000.0]
    limiter = RedisRateLimiter(client, prefix=f"{prefix}:rl", clock=lambda: now[0], timeout_s=5)
    decisions = []
    for _ in range(4):  # 40 tokens at 0, 10, 20 and 30 s
        decisions.append(await limiter.admit("k", limit, tokens=40))
        now[0] += 10
    assert [d.allowed for d in decisions] == allowed
    last = decisions[-1]
    assert (last.requests, last.tokens) == counted
    assert last.retry_after_s == pytest.approx(30, abs=0.01)  # the first leaves at 60 s
    # reset: when the limit is back to its initial state, the newest entry gone (OpenAI's)
    assert last.reset_requests_s == (pytest.approx(reset, abs=0.01) if limit.rpm else 0)
    assert last.reset_tokens_s == (pytest.approx(reset, abs=0.01) if limit.tpm else 0)
    found = {k.decode().rsplit(":", 1)[1] async for k in client.scan_iter(match=f"{prefix}:rl:*")}
    assert found == keys


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_redis_outage_degrades_to_process_state(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    client = replica(own_redis.url)
    seen: list[str] = []
    limiter = RedisRateLimiter(client, retry_after_s=0.2, on_degrade=seen.append)
    budgets = RedisBudgets(client, retry_after_s=0.2, on_degrade=seen.append)
    limit = RateLimit(rpm=5)
    b = KeyBudget("k", Decimal("1"), Period.MONTH)
    try:
        assert (await limiter.admit("k", limit)).shared
        r = await budgets.reserve(b, Decimal("0.4"))
        await budgets.settle(r, Decimal("0.4"))
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="turnout.limits"):
            decisions = [await limiter.admit("k", limit) for _ in range(10)]
            assert not any(d.shared for d in decisions)
            assert sum(d.allowed for d in decisions) == 5  # the per-process limit holds
            reserved = await budgets.reserve(b, Decimal("0.5"))
            assert not reserved.shared
            with pytest.raises(KeyBudgetExceeded):  # seeded with the 0.4 Redis reported
                await budgets.reserve(b, Decimal("0.2"))
        assert "Redis unreachable" in caplog.text
        assert limiter.degrader.degraded >= 10 and "rate limits" in seen and "budgets" in seen
        own_redis.start()
        await asyncio.sleep(0.25)
        assert (await limiter.admit("k2", limit)).shared
    finally:
        await client.aclose()


async def test_one_round_trip_gate(prefix: str, tmp_path: Path) -> None:
    from turnout.keys import KeyStore
    from turnout.keys.cache import CachedKeys
    from turnout.keys.guard import KeyGuard
    from turnout.keys.refusals import Refused
    from turnout.limits.gate_redis import RedisGate
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    request = ChatRequest(messages=(Message("user", "x" * 392),), max_tokens=100)
    price = Price.of(5, 25)  # $0.003 a request
    clients = [replica() for _ in range(2)]
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", rpm=30, budget_usd=Decimal("0.0299"), period=Period.DAY)
        gates = [RedisGate(c, prefix=prefix, timeout_s=5) for c in clients]
        guards = [KeyGuard(CachedKeys(keys), g) for g in gates]
        try:
            for g in gates:
                assert await g.prepare()

            async def one(i: int) -> str:
                try:
                    a = await guards[i % 2].admit(f"Bearer {secret}", request, policy="rules",
                                                  models=("m",), plans=[(PaidCall("m", price),)])  # fmt: skip
                except Refused as exc:
                    return exc.refusal.code
                await guards[i % 2].finish(a, Decimal("0.003"))
                return "ok"

            outcomes = [await one(i) for i in range(12)]
            assert outcomes.count("ok") == 9  # $0.0299 holds nine $0.003 requests
            assert outcomes[9:] == ["budget_exceeded"] * 3
            # budget refusals were taken back out of the rate log: 21 more fit the 30 RPM
            keys.update("team-a", budget_usd=None)
            await guards[0].key_changed()  # bumps the generation: replica 1 rereads at once
            outcomes = await asyncio.gather(*(one(i) for i in range(30)))
            assert outcomes.count("ok") == 21
            assert outcomes.count("rate_limit_exceeded") == 9
            keys.revoke("team-a")
            await guards[1].key_changed()
            assert await one(0) == "key_revoked"
            assert gates[0].degrader.degraded == gates[1].degrader.degraded == 0
        finally:
            for g in gates:
                await g.aclose()
            for c in clients:
                await c.aclose()


async def test_a_gate_sent_to_a_redis_that_lost_its_scripts_runs_once(
    own_redis: OwnRedis,
) -> None:
    from turnout.limits.gate_redis import RedisGate

    client, prefix = replica(own_redis.url), "turnout-test"
    gate = RedisGate(client, prefix=prefix, timeout_s=5)
    limit = RateLimit(rpm=10)
    try:
        assert await gate.prepare()
        assert (await gate.admit("team-a", limit, 0, None, Decimal(0))).admitted
        await client.script_flush()  # a restarted or flushed Redis: NOSCRIPT for the next
        started = gate.start_admit("team-a", limit, 0, None, Decimal(0))
        assert started.sent
        second = await started
        assert second.admitted and second.rate is not None and second.rate.requests == 2
        assert await client.zcard(f"{prefix}:rl:{{team-a}}:log") == 2  # run once, not twice
        assert gate.degrader.degraded == 0
    finally:
        await gate.aclose()
        await client.aclose()


async def test_a_request_given_up_before_its_admission_was_read_gives_its_hold_back(
    prefix: str, tmp_path: Path
) -> None:
    from turnout.keys import KeyStore
    from turnout.keys.cache import CachedKeys
    from turnout.keys.guard import KeyGuard
    from turnout.keys.refusals import Refused
    from turnout.limits.gate_redis import RedisGate
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    request = ChatRequest(messages=(Message("user", "x" * 392),), max_tokens=100)
    plans = [(PaidCall("m", Price.of(5, 25)),)]  # $0.003 a request
    client = replica()
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", rpm=2, budget_usd=Decimal("0.004"), period=Period.DAY)
        gate = RedisGate(client, prefix=prefix, timeout_s=5)
        guard = KeyGuard(CachedKeys(keys), gate)
        try:
            assert await gate.prepare()
            started = await guard.start(f"Bearer {secret}", request, policy="rules",
                                        models=(), plans=plans)  # fmt: skip
            started.abandon()  # its client hung up: the script was sent, never read
            await asyncio.sleep(0.1)  # answered, and the hold given back in a batch
            admitted = await guard.admit(f"Bearer {secret}", request, policy="rules",
                                         models=(), plans=plans)  # fmt: skip
            # two holds of $0.00302 do not fit $0.004: the first one was given back
            assert admitted.headers["x-turnout-budget-remaining-usd"] == "0.00098"
            with pytest.raises(Refused) as info:  # the given-up request still counts a request
                await guard.admit(f"Bearer {secret}", request, policy="rules", models=(),
                                  plans=plans)  # fmt: skip
            assert info.value.refusal.code == "rate_limit_exceeded"
            assert guard.refused_lately("team-a")
            waiting = await guard.start(f"Bearer {secret}", request, policy="rules",
                                        models=(), plans=plans)  # fmt: skip
            assert waiting.wary  # the next one is decided before any work is done for it
            waiting.abandon()
            await asyncio.sleep(0.05)  # refused: nothing held, nothing to give back
        finally:
            await gate.aclose()
            await client.aclose()


async def test_a_hold_grown_for_a_cut_stream_whose_client_hung_up_is_given_back(
    prefix: str, tmp_path: Path
) -> None:
    """``KeyGuard.grow`` cancelled once its script is on its way to Redis (the client
    hung up mid-stream): the hold Redis takes for it is given back, not kept for its 15
    minutes beside a request that has settled."""
    from turnout.keys import KeyStore
    from turnout.keys.cache import CachedKeys
    from turnout.keys.guard import KeyGuard
    from turnout.limits.gate_redis import RedisGate
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    request = ChatRequest(messages=(Message("user", "x" * 376),), max_tokens=100)
    plans = [(PaidCall("m", Price.of(5, 25)),)]
    client = replica()
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", budget_usd=Decimal("1"), period=Period.DAY)
        gate = RedisGate(client, prefix=prefix, timeout_s=5)
        guard = KeyGuard(CachedKeys(keys), gate)
        try:
            assert await gate.prepare()
            admission = await guard.admit(f"Bearer {secret}", request, policy=None,
                                          models=("m",), plans=plans)  # fmt: skip
            assert admission.reservation is not None
            budget = admission.reservation.budget
            growing = asyncio.ensure_future(guard.grow(admission, Decimal("0.5")))
            for _ in range(3):  # the script goes out, then the client hangs up
                await asyncio.sleep(0)
            growing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await growing
            guard.finish_soon(admission, Decimal("0.001"))  # the request settles
            for _ in range(50):
                await asyncio.sleep(0.05)
                state = await gate.budgets.state(budget)
                if state.held_pico == 0:
                    break
            assert (state.spent_pico, state.held_pico) == (10**9, 0)
        finally:
            await gate.aclose()
            await client.aclose()


async def test_a_budget_redis_has_not_counted_starts_from_the_trace_store(
    prefix: str, tmp_path: Path
) -> None:
    import time

    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger
    from turnout.limits.periods import window_of

    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    other = KeyBudget("team-b", Decimal("0.0001"), Period.DAY)
    limit = RateLimit(rpm=5)
    clients = [replica() for _ in range(2)]
    with SQLiteStore(tmp_path / "t.db") as store:
        spent_before(store, "team-a", 95_000_000)
        ledgers = [SpendLedger(store, offload=False) for _ in clients]
        gates = [
            RedisGate(c, prefix=prefix, ledger=ld) for c, ld in zip(clients, ledgers, strict=True)
        ]
        try:
            refused = await gates[0].admit("team-a", limit, 0, budget, Decimal("0.00001"))
            assert refused.over_budget is not None  # $0.000095 spent before Redis knew
            assert refused.over_budget.state.spent_pico == 95_000_000
            refused = await gates[1].admit("team-a", limit, 0, budget, Decimal("0.00001"))
            assert refused.over_budget is not None
            assert [ld.reads for ld in ledgers] == [1, 0]  # seeded once, for every replica
            admitted = await gates[1].admit("team-a", limit, 0, budget, Decimal("0.000004"))
            assert admitted.reservation is not None
            assert admitted.rate is not None and admitted.rate.remaining_requests == 4
            # a state Redis already counts is never lowered by the store's
            window = window_of(Period.DAY, time.time())
            sk, _ = gates[0].budgets.keys_of("team-b", window.id)
            await clients[0].hset(sk, "spent", 99_000_000)
            refused = await gates[0].admit("team-b", limit, 0, other, Decimal("0.00001"))
            assert refused.over_budget is not None
            assert refused.over_budget.state.spent_pico == 99_000_000
            assert await clients[0].hget(sk, "seeded") == b"1"
            assert await clients[0].pttl(sk) > 0  # expires with its period
        finally:
            for g in gates:
                await g.aclose()
            for c in clients:
                await c.aclose()


async def test_a_budget_decided_while_redis_is_away_starts_from_the_trace_store(
    tmp_path: Path,
) -> None:
    """A gateway that starts while Redis is away has never heard a key's spend from
    Redis: its in-process twin starts the key's period from the trace store."""

    from support.own_redis import free_port
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger

    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    client = replica(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with SQLiteStore(tmp_path / "t.db") as store:
        spent_before(store, "team-a", 95_000_000)
        ledger = SpendLedger(store, offload=False)
        gate = RedisGate(client, prefix="turnout-test", ledger=ledger, timeout_s=0.5)
        try:
            refused = await gate.admit("team-a", RateLimit(rpm=5), 0, budget, Decimal("0.00001"))
            assert refused.over_budget is not None  # $0.000095 spent before this process
            assert refused.over_budget.state.spent_pico == 95_000_000
            assert not refused.member  # decided in this process
            admitted = await gate.admit("team-a", RateLimit(rpm=5), 0, budget, Decimal("0.000004"))
            assert admitted.reservation is not None
            assert ledger.reads == 1  # the store is asked once for the period
            assert gate.degrader.degraded >= 1
        finally:
            await gate.aclose()
            await client.aclose()


async def test_a_budget_the_store_could_not_say_is_seeded_once_it_answers(
    prefix: str, tmp_path: Path
) -> None:
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger

    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    t = [0.0]
    down = SQLiteStore(tmp_path / "down.db")
    down.close()  # every query fails
    ledger = SpendLedger(down, offload=False, retry_after_s=30, clock=lambda: t[0])
    client = replica()
    gate = RedisGate(client, prefix=prefix, ledger=ledger)
    assert gate._pipelined is not None
    scripts = count_scripts(gate._pipelined)
    asked = count_calls(ledger, "spent")
    try:
        first = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
        assert first.reservation is not None and first.member  # decided by Redis, from $0
        assert (scripts[0], asked[0]) == (2, 1)  # unseeded, the store asked, decided again
        assert (await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0"))).admitted
        assert (scripts[0], asked[0]) == (3, 1)  # left alone meanwhile: one round trip
        assert ledger.reads == 1
        with SQLiteStore(tmp_path / "up.db") as up:
            spent_before(up, "team-a", 95_000_000)
            ledger.store = up  # the store answers again
            t[0] = 31
            refused = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
            assert refused.over_budget is not None  # Redis seeded from the store now
            assert refused.over_budget.state.spent_pico == 95_000_000
            assert ledger.reads == 2
    finally:
        await gate.aclose()
        await client.aclose()


def count_scripts(pipelined: Pipelined) -> list[int]:
    """Count the scripts run on ``pipelined``: by ``evalsha``, or sent at once by
    ``send_now`` (a gate started before it is awaited)."""
    calls = count_calls(pipelined, "evalsha")
    send_now = pipelined.send_now

    def counted(*args: Any, at_once: bool = True) -> object:
        sent = send_now(*args, at_once=at_once)
        if sent is not None and args[0] == "EVALSHA":
            calls[0] += 1
        return sent

    pipelined.send_now = counted  # type: ignore[method-assign]
    return calls


def count_calls(owner: object, name: str) -> list[int]:
    """Count the calls of ``owner``'s async method ``name`` (a one-item list)."""
    method = getattr(owner, name)
    calls = [0]

    async def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return await method(*args, **kwargs)

    setattr(owner, name, counted)
    return calls


async def test_a_key_redis_reported_is_decided_on_that_in_an_outage_and_never_on_older_spend(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    """The twin starts a key Redis reported from that report (the store is not asked);
    an account the twin kept from an earlier outage counts what Redis reported since."""
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger
    from turnout.limits.periods import window_of

    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    client = replica(own_redis.url)
    with SQLiteStore(tmp_path / "t.db") as store:
        ledger = SpendLedger(store, offload=False)
        asked = count_calls(ledger, "spent")
        gate = RedisGate(client, prefix="turnout-test", ledger=ledger, retry_after_s=0.2)
        sk, _ = gate.budgets.keys_of("team-a", window_of(Period.DAY, __import__("time").time()).id)
        try:
            await gate.prepare()
            held = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
            assert held.reservation is not None and held.member and asked[0] == 1
            await gate.settle(held.reservation, Decimal("0.00001"))  # Redis: 10,000,000
            own_redis.stop()  # outage 1
            local = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.000001"))
            assert local.reservation is not None and not local.member
            assert local.reservation.state.spent_pico == 10_000_000  # what Redis reported
            assert asked[0] == 1  # the store is not asked for a key Redis reported
            await gate.settle(local.reservation, Decimal("0.000001"))
            own_redis.start()
            await asyncio.sleep(0.3)  # the next call tries Redis again
            other = replica(own_redis.url)
            await other.hset(sk, "spent", 90_000_000)  # other replicas spent meanwhile
            await other.aclose()
            seen = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0"))
            assert seen.member and seen.reservation is not None
            assert seen.reservation.state.spent_pico == 90_000_000
            await gate.release(seen.reservation)
            own_redis.stop()  # outage 2: the twin's account from outage 1 counts 90M now
            refused = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00002"))
            assert not refused.member and refused.over_budget is not None
            assert refused.over_budget.state.spent_pico == 90_000_000
        finally:
            await gate.aclose()
            await client.aclose()


async def test_a_store_read_made_to_seed_redis_serves_the_twin_if_redis_goes(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger

    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    client = replica(own_redis.url)
    with SQLiteStore(tmp_path / "t.db") as store:
        spent_before(store, "team-a", 95_000_000)
        gate = RedisGate(client, prefix="turnout-test", ledger=SpendLedger(store, offload=False))
        seed_redis = gate._seed_budget

        async def seed_then_lose_redis(b: KeyBudget, *, twin: bool = False) -> None:
            await seed_redis(b, twin=twin)
            own_redis.stop()  # Redis goes before the request is decided again

        gate._seed_budget = seed_then_lose_redis  # type: ignore[method-assign]
        try:
            refused = await gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
            assert not refused.member and refused.over_budget is not None
            assert refused.over_budget.state.spent_pico == 95_000_000
        finally:
            await gate.aclose()
            await client.aclose()


async def test_concurrent_first_requests_of_a_key_share_one_store_read(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger

    budget = KeyBudget("team-a", Decimal("0.0001"), Period.DAY)  # 100,000,000 pico
    client = replica(own_redis.url)
    own_redis.stop()  # a gateway started while Redis is away
    with SQLiteStore(tmp_path / "t.db") as store:
        spent_before(store, "team-a", 50_000_000)
        ledger = SpendLedger(store, offload=True)  # off the loop, as for PostgreSQL
        gate = RedisGate(client, prefix="turnout-test", ledger=ledger)
        try:
            results = await asyncio.gather(
                *(
                    gate.admit("team-a", RateLimit(), 0, budget, Decimal("0.00001"))
                    for _ in range(20)
                )
            )
            assert ledger.reads == 1
            assert sum(r.reservation is not None for r in results) == 5  # 50M left: five 10M
            assert gate.degrader.degraded == 20  # each request counted once
        finally:
            await gate.aclose()
            await client.aclose()


async def test_a_batch_of_recounts_larger_than_one_script_call_counts_each_once(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    from turnout.limits.gate_redis import RedisGate

    gate = RedisGate(client, prefix=prefix, timeout_s=5)
    limit = RateLimit(tpm=10**9)
    try:
        assert await gate.prepare()
        admitted = await asyncio.gather(
            *(gate.admit("team-a", limit, 5, None, Decimal(0)) for _ in range(1500))
        )
        for result in admitted:
            gate.recount_soon(result, 7)
        gate.recount_soon(admitted[0], 7)  # the same admission again: counted once
        await gate.limiter._recounts.drain()
        after = await gate.admit("team-a", limit, 1, None, Decimal(0))
        assert after.rate is not None and after.rate.tokens == 1500 * 7 + 1
        log = [m.decode() for m in await client.zrange(f"{prefix}:rl:{{team-a}}:log", 0, -1)]
        assert sorted(int(m.rsplit(":", 1)[1]) for m in log) == [1] + [7] * 1500
    finally:
        await gate.aclose()


def spent_before(store: SQLiteStore, key: str, pico: int) -> None:
    """A run of ``key`` costing ``pico`` pico-dollars, started now, in the trace store."""

    store.execute(
        "INSERT INTO runs (run_id, workflow, policy, status, started_at, key_name, "
        "cost_picousd) VALUES (?, 'gateway', 'p', 'succeeded', ?, ?, ?)",
        (f"r-{uuid.uuid4().hex}", time.time(), key, pico),
    )


async def test_an_admission_is_recounted_to_the_tokens_it_used(
    client: redis_asyncio.Redis, prefix: str
) -> None:
    from turnout.limits.gate_redis import RedisGate

    gate = RedisGate(client, prefix=prefix, timeout_s=5)
    limit = RateLimit(rpm=10, tpm=1000)
    try:
        assert await gate.prepare()
        first = await gate.admit("team-a", limit, 300, None, Decimal(0))
        second = await gate.admit("team-a", limit, 200, None, Decimal(0))
        assert second.rate is not None and second.rate.tokens == 500
        gate.recount_soon(first, 40)  # it used 40 of the 300 counted
        gate.recount_soon(second, 900)  # no max_tokens: it used more than counted
        await gate.limiter._recounts.drain()
        third = await gate.admit("team-a", limit, 10, None, Decimal(0))
        assert third.rate is not None and third.rate.tokens == 40 + 900 + 10
        log = [m.decode() for m in await client.zrange(f"{prefix}:rl:{{team-a}}:log", 0, -1)]
        assert sorted(int(m.rsplit(":", 1)[1]) for m in log) == [10, 40, 900]
        refused = await gate.admit("team-a", limit, 100, None, Decimal(0))
        assert refused.rate is not None and refused.rate.refused_by == "tokens"
    finally:
        await gate.aclose()


async def test_a_request_given_up_in_a_seeding_pass_leaves_no_hold(
    client: redis_asyncio.Redis, prefix: str, tmp_path: Path
) -> None:
    """A budget period Redis has not seeded: the request is decided again once the
    trace store is read. The client hangs up after Redis ran that second script: awaited
    again (to give the hold back), the same answer is read, and no hold is left."""
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger

    budget = KeyBudget("team-a", Decimal("1"), Period.DAY)
    with SQLiteStore(tmp_path / "t.db") as store:
        gate = RedisGate(
            client, prefix=prefix, timeout_s=5, ledger=SpendLedger(store, offload=False)
        )
        go, ran, run = asyncio.Event(), asyncio.Event(), gate._run
        runs = [0]

        async def answered_then_waits(call: Any) -> Any:
            reply = await run(call)  # Redis has taken the hold
            runs[0] += 1
            ran.set()
            await go.wait()
            return reply

        gate._run = answered_then_waits  # type: ignore[method-assign]
        try:
            assert await gate.prepare()
            later = gate.start_admit("team-a", RateLimit(rpm=100), 0, budget, Decimal("0.003"))
            waiting = asyncio.ensure_future(_awaited(later))
            await asyncio.wait_for(ran.wait(), 5)
            waiting.cancel()  # the client hangs up
            go.set()
            result = await later  # awaited again: the same answer, no second hold
            assert result.reservation is not None and runs[0] == 1
            await gate.undo(result)
            assert await client.zcard(f"{prefix}:rl:{{team-a}}:log") == 0
            state = await gate.budgets.state(budget)
            assert (state.held_pico, state.spent_pico) == (0, 0)
        finally:
            await gate.aclose()


async def test_a_request_given_up_while_decided_again_gives_that_hold_back(
    client: redis_asyncio.Redis, prefix: str, tmp_path: Path
) -> None:
    """A key changed elsewhere: the request's first admission is taken back and it is
    decided again. The client hangs up after Redis ran that second script: the hold it
    took is given back, none left to expire (the request still counts once against the
    rate limit, as any request given up does)."""
    from turnout.keys import KeyStore
    from turnout.keys.cache import CachedKeys
    from turnout.keys.guard import KeyGuard
    from turnout.limits.gate import Later
    from turnout.limits.gate_redis import RedisGate
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    request = ChatRequest(messages=(Message("user", "x" * 392),), max_tokens=100)
    plans = [(PaidCall("m", Price.of(5, 25)),)]  # $0.003 a request
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", rpm=100, budget_usd=Decimal("1"), period=Period.DAY)
        gate = RedisGate(client, prefix=prefix, timeout_s=5)
        guard = KeyGuard(CachedKeys(keys), gate)
        go, ran, starts = asyncio.Event(), asyncio.Event(), [0]
        start_admit = gate.start_admit

        def second_answered_then_waits(*args: Any, **kwargs: Any) -> Later[Any]:
            starts[0] += 1
            later = start_admit(*args, **kwargs)
            if starts[0] == 1:
                return later

            async def waits() -> Any:
                result = await later  # Redis has taken the hold
                ran.set()
                await go.wait()
                return result

            return Later(waits, sent=later.sent)

        try:
            assert await gate.prepare()
            auth = f"Bearer {secret}"
            first = await guard.admit(auth, request, policy="rules", models=(), plans=plans)
            await guard.finish(first, None)  # the key cached, nothing held
            await client.delete(f"{prefix}:rl:{{team-a}}:log")
            keys.update("team-a", rpm=99)  # changed elsewhere...
            await gate.bump()  # ...and the shared generation bumped
            gate.start_admit = second_answered_then_waits  # type: ignore[method-assign]
            admitting = await guard.start(auth, request, policy="rules", models=(), plans=plans)
            waiting = asyncio.ensure_future(_awaited(admitting))
            await asyncio.wait_for(ran.wait(), 5)
            waiting.cancel()  # the client hangs up
            admitting.abandon()
            go.set()
            for _ in range(100):  # given back in a batch
                await asyncio.sleep(0.01)
                state = await gate.budgets.state(KeyBudget("team-a", Decimal("1"), Period.DAY))
                if state.held_pico == 0:
                    break
            assert (state.held_pico, state.spent_pico) == (0, 0)
            assert starts[0] == 2  # one second pass, not one more to give back
        finally:
            await gate.aclose()


async def _awaited(admitting: Any) -> Any:
    return await admitting


@pytest.mark.parametrize("redis_away", [False, True])
async def test_a_request_given_up_while_its_period_is_seeded_gives_its_hold_back(
    prefix: str, tmp_path: Path, redis_away: bool
) -> None:
    """The script sent only once awaited (no pipelined connection: redis-py's), or Redis
    away (the in-process twin decides): the client hangs up while the budget's period is
    read from the trace store. What the request then holds is given back, once; awaited
    again, nothing is decided twice."""
    from support.own_redis import free_port
    from turnout.keys import KeyStore
    from turnout.keys.cache import CachedKeys
    from turnout.keys.guard import KeyGuard
    from turnout.limits.gate_redis import RedisGate
    from turnout.limits.ledger import SpendLedger
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    request = ChatRequest(messages=(Message("user", "x" * 392),), max_tokens=100)
    plans = [(PaidCall("m", Price.of(5, 25)),)]  # $0.003 a request
    budget = KeyBudget("team-a", Decimal("1"), Period.DAY)
    client = replica(f"redis://127.0.0.1:{free_port()}/0") if redis_away else replica()
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", rpm=100, budget_usd=Decimal("1"), period=Period.DAY)
        ledger = SpendLedger(store, offload=False)
        gate = RedisGate(client, prefix=prefix, timeout_s=0.5, ledger=ledger)
        pipelined, gate._pipelined = gate._pipelined, None  # the gate's script: redis-py's,
        # sent once the admission is awaited (the batches keep the pipelined connection)
        guard = KeyGuard(CachedKeys(keys), gate)
        reading, go, spent = asyncio.Event(), asyncio.Event(), ledger.spent

        async def slow_spent(*args: Any) -> Any:
            reading.set()
            await go.wait()
            return await spent(*args)

        ledger.spent = slow_spent  # type: ignore[method-assign]
        try:
            admitting = await guard.start(f"Bearer {secret}", request, policy="rules",
                                          models=(), plans=plans)  # fmt: skip
            waiting = asyncio.ensure_future(_awaited(admitting))
            await asyncio.wait_for(reading.wait(), 5)
            waiting.cancel()  # the client hangs up while the store is read
            admitting.abandon()
            go.set()
            for _ in range(100):  # decided, then given back in a batch
                await asyncio.sleep(0.01)
                state = (
                    gate.budgets.local.state_now(budget)
                    if redis_away
                    else await gate.budgets.state(budget)
                )
                if state.held_pico == 0 and not guard._giving_back:
                    break
            assert (state.held_pico, state.spent_pico) == (0, 0)
            if not redis_away:  # the request counts, once
                assert await client.zcard(f"{prefix}:rl:{{team-a}}:log") == 1
        finally:
            await _closed(gate, pipelined, client)


async def test_a_script_sent_on_await_is_joined_by_the_give_back_even_with_redis_found_away(
    prefix: str, tmp_path: Path
) -> None:
    """The script goes out only once the admission is awaited (redis-py's connection);
    the client hangs up before Redis answers, and meanwhile another request finds Redis
    away. The give-back waits for that script's answer and gives its hold back: the
    in-process twin does not decide the request a second time."""
    from turnout.keys import KeyStore
    from turnout.keys.cache import CachedKeys
    from turnout.keys.guard import KeyGuard
    from turnout.limits.gate_redis import RedisGate
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    request = ChatRequest(messages=(Message("user", "x" * 392),), max_tokens=100)
    plans = [(PaidCall("m", Price.of(5, 25)),)]  # $0.003 a request
    budget = KeyBudget("team-a", Decimal("1"), Period.DAY)
    client = replica()
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", rpm=100, budget_usd=Decimal("1"), period=Period.DAY)
        gate = RedisGate(client, prefix=prefix, timeout_s=5)
        pipelined, gate._pipelined = gate._pipelined, None  # the script: redis-py's, on await
        guard = KeyGuard(CachedKeys(keys), gate)
        sending, go, run = asyncio.Event(), asyncio.Event(), gate._run

        async def waits_then_runs(call: Any) -> Any:
            sending.set()
            await go.wait()
            return await run(call)

        gate._run = waits_then_runs  # type: ignore[method-assign]
        try:
            assert await gate.prepare()
            admitting = await guard.start(f"Bearer {secret}", request, policy="rules",
                                          models=(), plans=plans)  # fmt: skip
            waiting = asyncio.ensure_future(_awaited(admitting))
            await asyncio.wait_for(sending.wait(), 5)
            waiting.cancel()  # the client hangs up
            gate.degrader._down, gate.degrader._down_until = True, time.monotonic() + 60
            admitting.abandon()
            await asyncio.sleep(0.05)
            go.set()  # the script goes out now
            await asyncio.wait_for(guard.given_back(), 5)
            await gate.budgets._finishing.drain()
            assert gate.budgets.local.state_now(budget).held_pico == 0  # the twin: nothing
            assert gate.degrader.degraded == 0
            assert await client.zcard(f"{prefix}:budget:{{team-a}}:{_day()}:h") == 0
        finally:
            await _closed(gate, pipelined, client)


async def test_a_script_not_sent_by_its_deadline_is_not_sent_after_the_twin_decided(
    prefix: str,
) -> None:
    """Past the shared state's deadline the in-process twin decides the request; the
    script that had not gone out yet (redis-py's connection still opening, say) is not
    sent afterwards, so Redis holds nothing for a request already decided here."""
    from turnout.limits.gate_redis import RedisGate

    budget = KeyBudget("team-a", Decimal("1"), Period.DAY)
    client = replica()
    gate = RedisGate(client, prefix=prefix, timeout_s=0.1)
    pipelined, gate._pipelined = gate._pipelined, None  # redis-py's, under the deadline
    run = gate._run

    async def late(call: Any) -> Any:
        await asyncio.sleep(0.3)  # past the 0.1 s deadline
        return await run(call)

    gate._run = late  # type: ignore[method-assign]
    try:
        result = await gate.admit("team-a", RateLimit(rpm=100), 0, budget, Decimal("0.003"))
        assert result.admitted and not result.member  # decided in this process
        await asyncio.sleep(0.5)
        assert await client.zcard(f"{prefix}:rl:{{team-a}}:log") == 0
        assert await client.zcard(f"{prefix}:budget:{{team-a}}:{_day()}:h") == 0
    finally:
        await _closed(gate, pipelined, client)


def _day() -> str:
    from turnout.limits.periods import window_of

    return window_of(Period.DAY, time.time()).id


async def _closed(gate: Any, pipelined: Pipelined | None, client: redis_asyncio.Redis) -> None:
    """Close a gate whose pipelined connection the test took from it, that connection
    (its batches still used it), and the client."""
    await gate.aclose()
    if pipelined is not None:
        await pipelined.aclose()
    await client.aclose()
