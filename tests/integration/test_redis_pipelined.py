"""The pipelined Redis connection of the gateway's request path, against the real Redis
(127.0.0.1:6379, a random key prefix) and a Redis of the test's own for the outage."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.own_redis import OwnRedis
from turnout.limits.lua import Lua
from turnout.limits.pipelined import Pipelined

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")
from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: E402
from redis.exceptions import ResponseError  # noqa: E402


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    p = f"turnout-test:{uuid.uuid4().hex}"
    yield p
    client = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = [k async for k in client.scan_iter(match=f"{p}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_concurrent_commands_share_one_connection_and_keep_their_order(prefix: str) -> None:
    redis = Pipelined("127.0.0.1", 6379)
    try:
        replies = await asyncio.gather(*(redis.execute("INCR", f"{prefix}:n") for _ in range(200)))
        assert sorted(replies) == list(range(1, 201))
        assert replies == list(range(1, 201))  # sent in order, answered in order
        assert await redis.execute("GET", f"{prefix}:n") == b"200"
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await redis.execute("LPUSH", f"{prefix}:n", "x")
        assert await redis.execute("PING") == b"PONG"  # an error reply leaves it usable
    finally:
        await redis.aclose()


async def test_commands_of_one_loop_turn_go_out_in_one_write(tmp_path: Path) -> None:
    server = OwnRedis(tmp_path)  # its own Redis: nothing else adds to its counters
    server.start()
    redis = Pipelined("127.0.0.1", server.port)

    async def reads() -> int:
        info = (await redis.execute("INFO", "stats")).decode()
        return int(info.split("total_reads_processed:")[1].split()[0])

    try:
        before = await reads()
        replies = await asyncio.gather(*(redis.execute("INCR", "n") for _ in range(200)))
        assert replies == list(range(1, 201))
        assert await reads() - before <= 3  # 200 commands, one send: Redis read them at once
        alone = await asyncio.wait_for(redis.execute("PING"), 1)  # a lone command still goes
        assert alone == b"PONG"
    finally:
        await redis.aclose()
        server.stop()


async def test_a_command_on_an_idle_connection_goes_out_before_the_caller_waits(
    prefix: str,
) -> None:
    """Sent at once: Redis has it while the caller goes on (here the loop is blocked, as
    by a request preparing its call); a command behind a reply not read yet waits for
    the loop's turn, to share its write with the others of that turn."""
    import redis as redis_sync

    redis = Pipelined("127.0.0.1", 6379)
    other = redis_sync.Redis.from_url("redis://127.0.0.1:6379/0")
    first, second = f"{prefix}:first", f"{prefix}:second"
    try:
        assert redis.send_now("PING") is None  # not open yet: execute opens it
        assert await redis.execute("PING") == b"PONG"
        sent = redis.send_now("SET", first, "1"), redis.send_now("SET", second, "2")
        deadline = time.monotonic() + 2
        while other.get(first) is None and time.monotonic() < deadline:
            time.sleep(0.001)  # noqa: ASYNC251 - the event loop must not turn meanwhile
        assert other.get(first) == b"1"
        assert other.get(second) is None  # queued behind the first one's reply
        assert [await f for f in sent if f is not None] == [b"OK", b"OK"]
        assert other.get(second) == b"2"
    finally:
        await redis.aclose()
        other.close()


async def test_a_command_at_once_goes_out_behind_a_reply_not_read_yet(prefix: str) -> None:
    """``at_once=True`` (the process's one request under way): written now even while
    another command's reply is on its way (a batch settled off the request path), with
    what was queued this turn ahead of it; the replies keep their order."""
    import redis as redis_sync

    redis = Pipelined("127.0.0.1", 6379)
    other = redis_sync.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = [f"{prefix}:{name}" for name in ("batch", "queued", "gate")]
    try:
        assert await redis.execute("PING") == b"PONG"
        sent = [
            redis.send_now("SET", keys[0], "1"),  # idle: at once; its reply not read yet
            redis.send_now("SET", keys[1], "2"),  # behind it: queued for the loop's turn
            redis.send_now("SET", keys[2], "3", at_once=True),  # now, the queued one first
        ]
        deadline = time.monotonic() + 2
        while other.get(keys[2]) is None and time.monotonic() < deadline:
            time.sleep(0.001)  # noqa: ASYNC251 - the event loop must not turn meanwhile
        assert other.mget(keys) == [b"1", b"2", b"3"]
        assert [await f for f in sent if f is not None] == [b"OK", b"OK", b"OK"]
    finally:
        await redis.aclose()
        other.close()


async def test_commands_not_at_once_wait_for_the_loop_turn_even_on_an_idle_connection(
    tmp_path: Path,
) -> None:
    """Among other requests (``at_once=False``), an idle connection's command waits for
    the loop's turn too, and goes out in one write with the others of that turn."""
    import redis as redis_sync

    server = OwnRedis(tmp_path)
    server.start()
    redis = Pipelined("127.0.0.1", server.port)
    other = redis_sync.Redis(port=server.port)
    try:
        assert await redis.execute("PING") == b"PONG"
        reads = other.info("stats")["total_reads_processed"]
        sent = [redis.send_now("SET", f"k{i}", i, at_once=False) for i in range(5)]
        time.sleep(0.05)  # noqa: ASYNC251 - the loop must not turn meanwhile
        assert other.get("k0") is None  # nothing written yet
        assert [await f for f in sent if f is not None] == [b"OK"] * 5
        # one read for the five (plus INFO's own read of the first count)
        assert other.info("stats")["total_reads_processed"] - reads <= 3
        assert other.get("k4") == b"4"
    finally:
        await redis.aclose()
        other.close()
        server.stop()


async def test_a_script_redis_lost_is_loaded_and_run_once(prefix: str) -> None:
    redis = Pipelined("127.0.0.1", 6379)
    script = Lua(f"-- {uuid.uuid4().hex}\nreturn redis.call('INCR', KEYS[1]) + tonumber(ARGV[1])")
    try:
        assert await redis.evalsha(script, [f"{prefix}:s"], [10]) == 11  # NOSCRIPT, loaded
        assert await redis.evalsha(script, [f"{prefix}:s"], [10]) == 12
        assert await redis.execute("GET", f"{prefix}:s") == b"2"  # never run twice
        many = Lua(f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
        calls = [([f"{prefix}:m"], [i]) for i in range(1, 6)]
        assert await redis.evalsha_many(many, calls) == [1, 3, 6, 10, 15]  # loaded, in order
        assert await redis.evalsha_many(many, calls[:1]) == [16]
        with pytest.raises(ResponseError):
            await redis.evalsha_many(many, [([f"{prefix}:m"], ["x"])])
    finally:
        await redis.aclose()


async def test_made_from_a_redis_py_client_with_its_database() -> None:
    client = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379/3")
    redis = Pipelined.of(client)
    assert redis is not None and (redis.host, redis.port, redis.db) == ("127.0.0.1", 6379, 3)
    key = f"turnout-test:{uuid.uuid4().hex}"
    try:
        await redis.execute("SET", key, "3")
        assert await client.get(key) == b"3"
    finally:
        await client.delete(key)
        await client.aclose()
        await redis.aclose()
    assert Pipelined.of(redis_asyncio.Redis.from_url("rediss://127.0.0.1:6379/0")) is None
    assert Pipelined.of(redis_asyncio.Redis.from_url("unix:///tmp/nowhere.sock")) is None


async def test_password_sent_on_connect_and_never_in_errors(tmp_path: Path) -> None:
    server = OwnRedis(tmp_path, "--requirepass", "s3cret-pass")
    server.start()
    try:
        good = Pipelined("127.0.0.1", server.port, password="s3cret-pass")
        assert await good.execute("PING") == b"PONG"
        await good.aclose()
        bad = Pipelined("127.0.0.1", server.port, password="wrong-pass")
        with pytest.raises(ResponseError) as info:
            await bad.execute("PING")
        assert "wrong-pass" not in str(info.value) and "s3cret" not in str(info.value)
        await bad.aclose()
    finally:
        server.stop()


async def test_a_lost_connection_fails_its_commands_and_the_next_one_reconnects(
    tmp_path: Path,
) -> None:
    server = OwnRedis(tmp_path)
    server.start()
    redis = Pipelined("127.0.0.1", server.port, connect_timeout_s=0.5)
    try:
        assert await redis.execute("SET", "k", "1") == b"OK"
        waiting = asyncio.ensure_future(redis.execute("BLPOP", "nothing", 5))
        await asyncio.sleep(0.05)
        server.stop()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await redis.execute("PING")
        server.start()
        assert await redis.execute("PING") == b"PONG"
    finally:
        await redis.aclose()
        server.stop()


async def test_a_redis_that_stops_answering_never_grows_the_queue(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.limits import pipelined

    monkeypatch.setattr(pipelined, "_MAX_WAITING", 3)
    redis = Pipelined("127.0.0.1", 6379)
    try:
        await redis.execute("PING")
        blocked = [asyncio.ensure_future(redis.execute("BLPOP", f"{prefix}:none", 5))
                   for _ in range(3)]  # fmt: skip
        await asyncio.sleep(0.05)
        with pytest.raises(RedisConnectionError, match="reset"):
            await redis.execute("PING")
        for waiting in blocked:
            with pytest.raises(RedisConnectionError):
                await waiting
        assert await redis.execute("PING") == b"PONG"  # a new connection
    finally:
        await redis.aclose()


class _SilentFirst:
    """A Redis stand-in whose first connection never answers; later ones answer every
    command with +PONG (one command a read, as PING and AUTH here are sent)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        first = self.connections == 1
        while await reader.read(65536):
            if not first:
                writer.write(b"+PONG\r\n")
        writer.close()


async def test_a_connection_that_stops_answering_fails_its_commands_at_the_reply_timeout() -> None:
    async with _SilentFirst() as port:
        redis = Pipelined("127.0.0.1", port, reply_timeout_s=0.3)
        try:
            started = time.monotonic()
            first = asyncio.ensure_future(redis.execute("PING"))  # no timeout of its own
            await asyncio.sleep(0.1)
            with pytest.raises(RedisConnectionError, match="not answered for"):
                await asyncio.wait_for(redis.execute("PING"), 2)  # sent later: fails too
            with pytest.raises(RedisConnectionError, match="not answered for"):
                await asyncio.wait_for(first, 2)  # (the guard of the test, not of the code)
            assert 0.25 <= time.monotonic() - started < 1.0
            assert await redis.execute("PING") == b"PONG"  # a new connection answers
        finally:
            await redis.aclose()


async def test_an_answering_connection_outlives_the_reply_timeout() -> None:
    redis = Pipelined("127.0.0.1", 6379, reply_timeout_s=0.1)
    try:
        assert await redis.execute("PING") == b"PONG"
        connection = redis._protocol
        await asyncio.sleep(0.25)  # idle past the deadline's check
        assert await redis.execute("PING") == b"PONG"
        await asyncio.gather(*(redis.execute("PING") for _ in range(50)))
        await asyncio.sleep(0.25)
        assert redis._protocol is connection and not connection.closed
    finally:
        await redis.aclose()


async def test_a_server_that_never_answers_auth_does_not_hang_the_connect() -> None:
    async with _SilentFirst() as port:
        redis = Pipelined("127.0.0.1", port, password="pw", connect_timeout_s=0.2)
        try:
            with pytest.raises(RedisConnectionError, match="timed out"):
                await redis.execute("PING")
            assert await redis.execute("PING") == b"PONG"  # tried again, not stuck
        finally:
            await redis.aclose()
        with pytest.raises(RedisConnectionError, match="closed"):  # closed stays closed
            await redis.execute("PING")
