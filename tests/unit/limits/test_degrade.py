"""The Degrader: one probe at a time once Redis failed, and outages shared by server."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from turnout.limits.degrade import OUTAGES, Degrader, unreachable

redis_exceptions = pytest.importorskip("redis.exceptions")


class Frozen:
    """A shared call to a Redis that accepts commands and never answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.Event().wait()
        return "shared"


async def answered() -> str:
    return "shared"


def server() -> str:
    return f"test-{uuid.uuid4().hex}:6379/0"


async def test_once_redis_failed_one_call_probes_and_the_others_stay_local() -> None:
    frozen = Frozen()
    d = Degrader("test", timeout_s=0.05, retry_after_s=0.05)
    assert await d.run(frozen, lambda: "local") == "local"  # the timeout: Redis is away
    assert d.down and frozen.calls == 1
    await asyncio.sleep(0.06)  # retry_after_s is over: the next call probes
    started = time.monotonic()
    probe = asyncio.create_task(d.run(frozen, lambda: "local"))
    await asyncio.sleep(0)
    others = [await d.run(frozen, lambda: "local") for _ in range(20)]
    assert others == ["local"] * 20 and time.monotonic() - started < 0.04  # none waited
    assert await probe == "local" and frozen.calls == 2
    await asyncio.sleep(0.06)
    assert await d.run(answered, lambda: "local") == "shared"  # back
    assert not d.down


async def test_an_outage_one_part_finds_is_taken_by_every_part_on_that_server() -> None:
    where = server()
    gate = Degrader("gate", timeout_s=0.05, retry_after_s=10, server=where)
    keys = Degrader("keys", timeout_s=0.05, retry_after_s=10, server=where)
    elsewhere = Degrader("other", timeout_s=0.05, retry_after_s=10, server=server())
    frozen = Frozen()
    try:
        assert await gate.run(frozen, lambda: "local") == "local"
        started = time.monotonic()
        assert await keys.run(frozen, lambda: "local") == "local"  # without a try of its own
        assert await keys.attempt(frozen) is False
        assert time.monotonic() - started < 0.04 and frozen.calls == 1
        assert keys.down and keys.degraded == 1
        assert await elsewhere.run(answered, lambda: "local") == "shared"  # another server
    finally:
        OUTAGES.answered(where)


async def test_a_refused_command_is_not_an_outage_of_the_server() -> None:
    where = server()
    scripts = Degrader("scripts", timeout_s=0.5, retry_after_s=10, server=where)
    other = Degrader("other", timeout_s=0.5, retry_after_s=10, server=where)

    async def refused() -> str:
        raise redis_exceptions.ResponseError("ERR Error running script")

    assert await scripts.run(refused, lambda: "local") == "local"
    assert scripts.down and OUTAGES.until(where) == 0.0
    assert await other.run(answered, lambda: "local") == "shared"


def test_what_counts_as_unreachable() -> None:
    assert unreachable(TimeoutError())
    assert unreachable(ConnectionRefusedError())
    assert unreachable(redis_exceptions.ConnectionError("lost"))
    assert unreachable(redis_exceptions.TimeoutError("slow"))
    assert not unreachable(redis_exceptions.ResponseError("NOSCRIPT"))


async def test_a_bounded_call_keeps_its_own_deadline() -> None:
    """``bounded``: the call ends within the timeout by itself (a pipelined connection's
    reply deadline): the degrader sets no timer, and its error still degrades."""
    d = Degrader("test", timeout_s=0.05, retry_after_s=0.05)

    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "shared"

    assert await d.run(slow, lambda: "local", bounded=True) == "shared"
    assert await d.run(slow, lambda: "local") == "local"  # unbounded: the degrader's timer
    await asyncio.sleep(0.06)

    async def reset() -> str:
        raise redis_exceptions.ConnectionError("Redis has not answered for 0.5 s")

    assert await d.run(reset, lambda: "local", bounded=True) == "local" and d.down
