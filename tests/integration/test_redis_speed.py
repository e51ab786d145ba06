"""Speed estimates shared through the real Redis at 127.0.0.1:6379 (own key prefix, deleted
afterwards); a Redis that cannot be reached leaves each process on its own estimates."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from turnout.config import settings_from_dict
from turnout.execution.setup import build_executor
from turnout.execution.speed import Sample, SpeedBoard
from turnout.execution.speed_redis import RedisSpeedBoard

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")


@pytest.fixture
async def prefix(client: Any) -> AsyncIterator[str]:
    p = f"turnout-test:{uuid.uuid4().hex}"
    yield p
    keys = [k async for k in client.scan_iter(match=f"{p}*")]
    if keys:
        await client.delete(*keys)


async def test_two_processes_share_estimates(client: Any, prefix: str) -> None:
    a = RedisSpeedBoard(client, prefix=f"{prefix}:speed", alpha=0.5, flush_s=0.05)
    b = RedisSpeedBoard(client, prefix=f"{prefix}:speed", alpha=0.5, flush_s=0.05)
    a.observe("haiku", 1.0, 0.4, 7, at=100.0)
    assert a.snapshot().get("haiku") is not None  # seen locally at once
    assert b.snapshot().get("haiku") is None
    assert await a.sync() and await b.sync()
    e = b.snapshot().get("haiku")
    assert e is not None and (e.ttft_s, e.per_token_s, e.samples) == (0.4, pytest.approx(0.1), 1)
    b.observe("haiku", 0.8, None, 7, at=101.0)  # unstreamed: no per-token sample
    a.observe("nano", 0.2, None, 7, at=102.0)
    assert await b.sync() and await a.sync()
    for board in (a, b):
        await board.sync()
        snap = board.snapshot()
        h, n = snap.get("haiku"), snap.get("nano")
        assert h is not None and (h.ttft_s, h.per_token_s, h.samples, h.updated_at) == (
            pytest.approx(0.6), pytest.approx(0.1), 2, 101.0,
        )  # fmt: skip
        assert n is not None and n.samples == 1
    ttl = await client.pttl(f"{prefix}:speed")
    assert 0 < ttl <= 7 * 86400 * 1000


async def test_a_batch_folds_into_the_shared_estimate_as_one_by_one(
    client: Any, prefix: str
) -> None:
    shared = RedisSpeedBoard(client, prefix=f"{prefix}:speed", alpha=0.3, flush_s=60)
    shared.add(Sample("haiku", 0.5, None, 1.0))
    assert await shared.sync()  # haiku is known to Redis, with no time per token yet
    rng = random.Random(7)
    samples = [
        Sample(
            rng.choice(("haiku", "nano")),
            rng.uniform(0.1, 2),
            rng.choice((None, 0.01, 0.03)),
            float(i),
        )
        for i in range(2, 300)
    ]
    sequential = SpeedBoard(alpha=0.3)  # the same samples folded one at a time
    sequential.add(Sample("haiku", 0.5, None, 1.0))
    for sample in samples:
        shared.add(sample)
        sequential.add(sample)
    assert await shared.sync()
    other = RedisSpeedBoard(client, prefix=f"{prefix}:speed", alpha=0.3, flush_s=60)
    assert await other.sync()
    for model in ("haiku", "nano"):
        got, want = other.snapshot().get(model), sequential.snapshot().get(model)
        assert got is not None and want is not None
        assert got.ttft_s == pytest.approx(want.ttft_s, rel=1e-12)
        assert got.per_token_s == pytest.approx(want.per_token_s, rel=1e-12)
        assert (got.samples, got.updated_at) == (want.samples, want.updated_at)


async def test_flushes_in_the_background_and_on_close(client: Any, prefix: str) -> None:
    a = RedisSpeedBoard(client, prefix=f"{prefix}:speed", flush_s=0.05)
    for i in range(50):
        a.add(Sample("opus", 0.3, 0.01, float(i)))  # queued; a sync starts in the background
    await asyncio.sleep(0.2)
    a.add(Sample("opus", 0.3, 0.01, 99.0))
    await a.aclose()  # waits for the sync in flight, flushes the rest
    raw = await client.hget(f"{prefix}:speed", "opus")
    assert raw is not None and b",51," in raw.replace(b" ", b"")


async def test_unreachable_redis_degrades_to_local(caplog: pytest.LogCaptureFixture) -> None:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    dead = redis_asyncio.Redis(
        host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    try:
        board = RedisSpeedBoard(dead, prefix="turnout-test:dead", timeout_s=0.3)
        board.observe("haiku", 0.5, None, 3, at=1.0)
        with caplog.at_level(logging.WARNING, logger="turnout.speed"):
            assert not await board.sync()
        assert "Redis failed" in caplog.text and board.last_error
        e = board.snapshot().get("haiku")
        assert e is not None and e.samples == 1  # the local estimate is still there
        board.observe("haiku", 0.5, None, 3, at=2.0)  # no sync for retry_after_s: no waiting
        assert board.snapshot().get("haiku").samples == 2  # type: ignore[union-attr]
        await board.aclose()
    finally:
        await dead.aclose()


async def test_build_executor_with_redis_state(client: Any, prefix: str) -> None:
    from tests.unit.conftest import POOL

    settings = settings_from_dict({**POOL, "executor": {"state": "redis", "redis_prefix": prefix}})
    executor, resources = build_executor(settings)
    try:
        assert isinstance(executor.speeds, RedisSpeedBoard)
        executor.speeds.observe("opus", 0.7, None, 3, at=1.0)
    finally:
        await resources.aclose()  # flushes the estimates before the client closes
    assert await client.hget(f"{prefix}:speed", "opus") is not None
