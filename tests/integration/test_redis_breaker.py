"""Breaker state shared through the real Redis at 127.0.0.1:6379.

Each test uses a random key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from turnout.execution import breaker_script
from turnout.execution.breaker import BreakerBoard, BreakerConfig
from turnout.execution.breaker_redis import RedisBreakerStore
from turnout.limits.degrade import OUTAGES, server_of
from turnout.limits.lua import Lua

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")
redis_exceptions = pytest.importorskip("redis.exceptions")

CFG = BreakerConfig(
    window_s=30, bucket_s=1, min_requests=5, failure_rate=0.5, cooldown_s=30, probe_timeout_s=60
)
VIEW_TTL_S = 0.25  # RedisBreakerStore's default


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
async def prefix(client: redis_asyncio.Redis) -> AsyncIterator[str]:
    p = f"turnout-test:{uuid.uuid4().hex}:breaker"
    yield p
    keys = [k async for k in client.scan_iter(match=f"{p}:*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_board(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock | None, cfg: BreakerConfig = CFG
) -> BreakerBoard:
    return BreakerBoard(cfg, RedisBreakerStore(client, prefix=prefix, clock=clock))


async def fail(board: BreakerBoard, model: str, n: int) -> str:
    state = "closed"
    for _ in range(n):
        state = await board.record(model, False)
    return state


async def test_transitions(client: redis_asyncio.Redis, prefix: str, clock: FakeClock) -> None:
    board = make_board(client, prefix, clock)
    assert await board.state("opus") == "closed"
    for _ in range(3):
        await board.record("opus", True)
    assert await fail(board, "opus", 2) == "closed"  # 2/5
    assert await board.record("opus", False) == "open"  # 3/6
    assert not await board.allow("opus")
    assert await board.unavailable() == frozenset({"opus"})

    clock.advance(30)
    assert await board.state("opus") == "half_open"
    assert await board.unavailable() == frozenset()
    assert await board.allow("opus")
    assert not await board.allow("opus")
    assert await board.unavailable() == frozenset({"opus"})

    clock.advance(5)
    assert await board.record("opus", False) == "open"  # a fresh cooldown from now
    clock.advance(29.9)
    assert not await board.allow("opus")
    clock.advance(0.1)
    assert await board.allow("opus")
    assert await board.record("opus", True) == "closed"
    snap = (await board.snapshot())["opus"]
    assert (snap.state, snap.requests, snap.failures) == ("closed", 0, 0)
    assert await fail(board, "opus", 4) == "closed"  # the window was reset


async def test_a_refused_replica_knows_when_the_breaker_may_let_a_call_through(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    """Replica b learns the cooldown another replica started from the refusal itself."""
    a, b = make_board(client, prefix, clock), make_board(client, prefix, clock)
    assert await fail(a, "opus", CFG.min_requests) == "open"
    clock.advance(10)
    assert not await b.allow("opus")
    assert await b.retry_in("opus") == pytest.approx(20, abs=0.01)
    assert await b.retry_in("haiku") is None


async def test_two_replicas_share_state_and_only_one_gets_the_probe(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    a = make_board(client, prefix, clock)
    b = make_board(client, prefix, clock)
    await fail(a, "opus", 2)
    assert await fail(b, "opus", 3) == "open"  # failures from both replicas add up
    clock.advance(VIEW_TTL_S)  # a sees what b did once its own view is that old
    assert not await a.allow("opus")
    assert await a.unavailable() == await b.unavailable() == frozenset({"opus"})

    clock.advance(31)
    results = await asyncio.gather(*(board.allow("opus") for board in [a, b] * 10))
    assert sum(results) == 1
    assert await a.state("opus") == await b.state("opus") == "half_open"
    assert await b.record("opus", True) == "closed"
    assert await a.allow("opus")


async def test_probe_is_single_across_separate_connections(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    clients = [redis_asyncio.Redis(host="127.0.0.1", port=6379) for _ in range(4)]
    try:
        boards = [make_board(c, prefix, clock) for c in clients]
        await fail(boards[0], "opus", 5)
        clock.advance(30)
        results = await asyncio.gather(*(b.allow("opus") for b in boards * 5))
        assert sum(results) == 1
    finally:
        for c in clients:
            await c.aclose()


async def test_rolling_window_forgets(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    board = make_board(client, prefix, clock)
    assert await fail(board, "opus", 4) == "closed"
    clock.advance(31)
    assert await fail(board, "opus", 4) == "closed"
    snap = (await board.snapshot())["opus"]
    assert (snap.requests, snap.failures) == (4, 4)
    # old buckets were pruned from the hash, and the hash expires on its own
    fields = await client.hkeys(f"{prefix}:opus:w")
    assert len(fields) == 1
    assert 0 < await client.pttl(f"{prefix}:opus:w") <= 60_000
    assert await board.record("opus", False) == "open"


async def test_abandoned_probe_and_growing_cooldown(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    cfg = BreakerConfig(
        min_requests=1, cooldown_s=10, cooldown_multiplier=2, max_cooldown_s=25, probe_timeout_s=5
    )
    board = make_board(client, prefix, clock, cfg)
    assert await board.record("m", False) == "open"
    clock.advance(10)
    assert await board.allow("m")
    clock.advance(4.9)
    assert not await board.allow("m")
    clock.advance(0.1)
    assert await board.allow("m")  # the first probe was given up
    await board.record("m", False)
    assert (await board.snapshot())["m"].cooldown_s == 20
    clock.advance(20)
    assert await board.allow("m")
    await board.record("m", False)
    assert (await board.snapshot())["m"].cooldown_s == 25


async def test_results_while_open_are_ignored(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    board = make_board(client, prefix, clock)
    await fail(board, "opus", 5)
    assert await board.record("opus", True) == "open"
    assert not await board.allow("opus")


async def test_server_clock(client: redis_asyncio.Redis, prefix: str) -> None:
    cfg = BreakerConfig(window_s=5, min_requests=2, cooldown_s=0.2, probe_timeout_s=1)
    board = make_board(client, prefix, None, cfg)
    await board.record("opus", False)
    assert await board.record("opus", False) == "open"
    assert not await board.allow("opus")
    snap = (await board.snapshot())["opus"]
    assert snap.retry_in_s is not None
    assert 0 < snap.retry_in_s <= 0.2
    await asyncio.sleep(0.25)
    assert await board.allow("opus")
    assert not await board.allow("opus")


async def test_reset_and_model_names_with_colons(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    board = make_board(client, prefix, clock)
    await fail(board, "org:model:w", 5)
    await fail(board, "org", 5)
    assert await board.unavailable() == frozenset({"org", "org:model:w"})
    await board.reset("org")
    assert await board.unavailable() == frozenset({"org:model:w"})
    await board.reset()
    assert await board.unavailable() == frozenset()
    assert [k async for k in client.scan_iter(match=f"{prefix}:*")] == []


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fails_open_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    # no retries: redis-py's default retries with backoff take ~4 s a call
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    down = redis_asyncio.Redis(
        host="127.0.0.1", port=closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        store = RedisBreakerStore(down, prefix="turnout-test:down", retry_after_s=0.0)
        board = BreakerBoard(CFG, store)
        with caplog.at_level("INFO", logger="turnout.breaker"):
            states = [await board.record("opus", False) for _ in range(10)]
            # the breakers go on in the process: five failures of five open it
            assert states[:4] == ["closed"] * 4 and states[4] == "open"
            assert not await board.allow("opus")
            assert await board.allow("haiku")
            assert await board.unavailable() == frozenset({"opus"})
            assert (await board.snapshot())["opus"].state == "open"
        assert store.last_error is not None
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1  # logged once, not once per call
        resting = RedisBreakerStore(down, prefix="turnout-test:down")
        tried = 0
        run = resting._run

        async def counting_run(*args: object) -> object:
            nonlocal tried
            tried += 1
            return await run(*args)  # type: ignore[arg-type]

        resting._run = counting_run  # type: ignore[method-assign]
        for _ in range(4):
            assert await resting.allow("opus", CFG)
            assert await resting.record("opus", False, CFG) == "closed"
        assert tried == 1  # after the first failure Redis is left alone for a second
        # and so is every other part of the process that talks to it
        server = server_of(down)
        assert server is not None and OUTAGES.until(server) > 0
        assert await RedisBreakerStore(down, prefix="turnout-test:other").allow("opus", CFG)
        OUTAGES.answered(server)  # a store of its own from here: it has not seen Redis away
        queued = RedisBreakerStore(down, prefix="turnout-test:down", clock=lambda: 0.0)
        queued._view.learn_names([], 0.0)  # as if every breaker had been seen closed
        for _ in range(1000):
            assert await queued.record("opus", True, CFG) == "closed"
        assert queued._pending == {("opus", CFG): 1000}  # a counter a model, not a list
        await queued.flush()
        assert queued._pending == {}  # dropped when Redis cannot take them
        assert await queued.record("opus", True, CFG) == "closed"
        assert queued._pending == {}  # and not queued while Redis is left alone
        strict = BreakerBoard(CFG, RedisBreakerStore(down, prefix="x", fail_open=False))
        with pytest.raises(redis_exceptions.ConnectionError):
            await strict.allow("opus")
    finally:
        await down.aclose()


# -- the local view, batched successes, a script Redis lost ----------------------------------


async def test_another_replicas_opening_is_seen_within_view_ttl(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    a = make_board(client, prefix, clock)
    b = make_board(client, prefix, clock)
    assert await a.allow("opus")
    assert await a.unavailable() == frozenset()
    assert await fail(b, "opus", 5) == "open"
    assert not await b.allow("opus")  # the replica that opened it knows at once
    clock.advance(VIEW_TTL_S - 0.01)
    assert await a.allow("opus")  # a's view is younger than the bound: trusted
    clock.advance(0.01)
    assert not await a.allow("opus")
    assert await a.unavailable() == frozenset({"opus"})


async def test_view_bound_on_the_server_clock(client: redis_asyncio.Redis, prefix: str) -> None:
    a = BreakerBoard(CFG, RedisBreakerStore(client, prefix=prefix, view_ttl_s=0.1))
    b = BreakerBoard(CFG, RedisBreakerStore(client, prefix=prefix, view_ttl_s=0.1))
    await a.record("opus", True)
    assert await a.unavailable() == frozenset()
    await fail(b, "opus", 5)
    await asyncio.sleep(0.1)
    assert await a.unavailable() == frozenset({"opus"})
    assert not await a.allow("opus")


async def test_a_cooldown_shorter_than_the_bound_still_gives_one_probe(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    cfg = BreakerConfig(min_requests=5, cooldown_s=0.1, probe_timeout_s=60)
    boards = [make_board(client, prefix, clock, cfg) for _ in range(3)]
    for board in boards:
        assert await board.allow("opus")  # every view: closed, fresh
    await fail(boards[0], "opus", 5)
    clock.advance(0.1)  # the cooldown is over before VIEW_TTL_S: views expire with it
    results = await asyncio.gather(*(b.allow("opus") for b in boards * 5))
    assert sum(results) == 1


async def test_queued_successes_reach_redis(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    store = RedisBreakerStore(client, prefix=prefix, clock=clock, flush_s=0.01)
    board = BreakerBoard(CFG, store)

    async def counted() -> int:
        return sum(int(v) for v in (await client.hgetall(f"{prefix}:opus:w")).values())

    assert await board.allow("opus")
    for _ in range(20):
        assert await board.record("opus", True) == "closed"
    assert await counted() == 0  # queued, not sent on the request path
    await asyncio.sleep(0.1)
    assert await counted() == 20  # sent in one round trip within flush_s
    for _ in range(10):
        await board.record("opus", True)
    # a failure sends the model's queued successes first: the rate is 5/35, not 5/5
    assert await fail(board, "opus", 5) == "closed"
    assert await counted() == 35
    for _ in range(3):
        await board.record("opus", True)
    await store.aclose()  # closing sends what is queued
    assert await counted() == 38
    assert (await board.snapshot())["opus"].requests == 38


async def test_queued_successes_never_decide_a_probe(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    a = make_board(client, prefix, clock)
    b = make_board(client, prefix, clock)
    assert await a.allow("opus")
    await a.record("opus", True)  # queued on a
    await fail(b, "opus", 5)
    clock.advance(30)
    assert await b.allow("opus")  # b holds the probe
    await a.store.flush()  # type: ignore[attr-defined]
    assert await b.state("opus") == "half_open"  # a's stale success was not the probe's
    assert await b.record("opus", True) == "closed"


async def test_a_script_redis_lost_is_loaded_again(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A script this Redis has never seen answers NOSCRIPT exactly as one lost to a
    # restart or a SCRIPT FLUSH does (a real flush would also drop the scripts of
    # whoever else uses this Redis).
    store = RedisBreakerStore(client, prefix=prefix, clock=clock)

    def unseen() -> str:
        script = Lua(f"{breaker_script.LUA}-- {uuid.uuid4().hex}\n")
        monkeypatch.setattr(store, "_script", script)
        return script.sha

    board = BreakerBoard(CFG, store)
    sha = unseen()
    assert await fail(board, "opus", 5) == "open"  # one call at a time
    assert await client.script_exists(sha) == [True]
    clock.advance(1)
    sha = unseen()
    assert await board.unavailable() == frozenset({"opus"})  # a pipeline (set and views)
    assert await client.script_exists(sha) == [True]
    await board.reset()


async def test_a_success_queued_during_a_flush_is_sent_without_more_traffic(
    client: redis_asyncio.Redis, prefix: str, clock: FakeClock
) -> None:
    store = RedisBreakerStore(client, prefix=prefix, clock=clock, flush_s=0.01)
    board = BreakerBoard(CFG, store)
    send = store._eval

    async def slow(*args: Any, **kwargs: Any) -> list[Any]:
        await asyncio.sleep(0.05)
        return await send(*args, **kwargs)

    assert await board.allow("opus")
    store._eval = slow  # type: ignore[method-assign]
    await board.record("opus", True)
    await asyncio.sleep(0.03)  # the flush is on its way
    await board.record("opus", True)
    await asyncio.sleep(0.2)
    assert sum(int(v) for v in (await client.hgetall(f"{prefix}:opus:w")).values()) == 2


async def test_a_frozen_redis_delays_one_caller_not_every_caller(tmp_path: Path) -> None:
    """A Redis that takes commands and never answers (stopped with SIGSTOP): the caller
    that refreshes the stale view waits out its timeout, the others answer at once from
    the view as last seen, and once it failed nobody waits until one probe is due."""
    import os
    import signal
    import time

    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from support.own_redis import OwnRedis

    server = OwnRedis(tmp_path)
    server.start()
    assert server.proc is not None
    client = redis_asyncio.Redis.from_url(
        server.url, socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    frozen = False

    async def timed(call: Any) -> float:
        started = time.monotonic()
        await call
        return time.monotonic() - started

    try:
        store = RedisBreakerStore(client, prefix=f"turnout-test:{uuid.uuid4().hex}",
                                  view_ttl_s=0.05, retry_after_s=0.4)  # fmt: skip
        board = BreakerBoard(CFG, store)
        assert await board.unavailable() == frozenset()  # seen once, from Redis
        os.kill(server.proc.pid, signal.SIGSTOP)
        frozen = True
        await asyncio.sleep(0.06)  # the view is too old to trust
        waits = sorted(await asyncio.gather(*(timed(board.unavailable()) for _ in range(20))))
        assert waits[-1] >= 0.15  # the one that asked Redis waited for its timeout
        assert waits[-2] < 0.1  # nobody else did (before: 20 timeouts, one after another)
        waits = [await timed(board.allow("opus")) for _ in range(10)]
        assert max(waits) < 0.1 and store.last_error is not None  # left alone, failing open
        await asyncio.sleep(0.45)  # a probe is due: one caller tries, the others do not wait
        waits = sorted(await asyncio.gather(*(timed(board.unavailable()) for _ in range(20))))
        assert waits[-2] < 0.1
        os.kill(server.proc.pid, signal.SIGCONT)
        frozen = False
        await asyncio.sleep(0.45)
        assert await board.unavailable() == frozenset()
        assert store.last_error is None  # Redis answers again
    finally:
        if frozen:
            os.kill(server.proc.pid, signal.SIGCONT)
        await client.aclose()
        server.stop()
