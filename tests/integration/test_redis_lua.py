"""Lua scripts by EVALSHA against the real Redis: one round trip, no SCRIPT EXISTS, a
lost script loaded again and only the refused calls sent twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from turnout.limits.lua import Lua

pytest.importorskip("redis.asyncio", reason="redis-py is not installed")
redis_exceptions = pytest.importorskip("redis.exceptions")

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])\n"


@pytest.fixture
async def key(client: Any) -> AsyncIterator[str]:
    k = f"turnout-test:{uuid.uuid4().hex}:lua"
    yield k
    await client.delete(k)


def unseen(source: str) -> Lua:
    """A script this Redis has never seen: it answers NOSCRIPT as after a SCRIPT FLUSH."""
    return Lua(f"{source}-- {uuid.uuid4().hex}\n")


async def test_a_lost_script_is_loaded_and_each_call_runs_once(client: Any, key: str) -> None:
    script = unseen(INCR)
    assert await client.script_exists(script.sha) == [False]
    assert await script(client, [key], [2]) == 2  # alone
    assert await client.script_exists(script.sha) == [True]
    many = unseen(INCR)
    replies = await many.many(client, [([key], [1]), ([key], [10])])
    assert replies == [3, 13] and int(await client.get(key)) == 13  # not run twice


async def test_commands_queued_first_reply_first(client: Any, key: str) -> None:
    script = unseen(INCR)
    replies = await script.many(client, [([key], [5])], first=lambda pipe: pipe.exists(key))
    assert replies == [0, 5]


async def test_an_error_reply_is_raised(client: Any, key: str) -> None:
    await client.set(key, "not a number")
    with pytest.raises(redis_exceptions.ResponseError):
        await Lua(INCR)(client, [key], [1])
    with pytest.raises(redis_exceptions.ResponseError):
        await Lua(INCR).many(client, [([key], [1]), ([key], [2])])


async def test_no_script_exists_round_trip(client: Any, key: str) -> None:
    script = Lua(INCR)
    await script(client, [key], [1])  # loaded once
    before = (await client.info("commandstats")).get("cmdstat_script|exists", {}).get("calls", 0)
    await script.many(client, [([key], [1]), ([key], [1])])
    after = (await client.info("commandstats")).get("cmdstat_script|exists", {}).get("calls", 0)
    assert after == before and int(await client.get(key)) == 3
