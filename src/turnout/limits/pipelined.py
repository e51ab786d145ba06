"""One pipelined Redis connection for the one round trip a gateway request pays.

redis-py takes a connection from its pool, packs the command in Python, writes, waits
and gives the connection back: about 100 µs of CPU for the gate's ``EVALSHA`` here,
against 37 µs on this connection (``benchmarks/redis_clients.py``), on a request path
whose whole allowance for keys, limits and budget is 300 µs. :class:`Pipelined` keeps one connection
and sends every command on it at once (replies come back in order; hiredis packs and
parses them), so concurrent requests share it without a pool or a lock.

It speaks to what a redis-py client was opened on (:meth:`Pipelined.of`): host, port,
username, password and database. A client on TLS or a Unix socket (or without hiredis,
which the ``redis`` extra installs) gets None, and its callers stay on redis-py.
Failures are redis-py's exceptions (``ConnectionError``, ``ResponseError``,
``NoScriptError``), so the callers' handling of an unwell Redis is the same for both; a
lost connection fails the commands waiting on it and the next command opens a new one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from turnout.limits.lua import Call, Lua

if TYPE_CHECKING:
    from redis.asyncio import Redis


_MAX_WAITING = 10_000
"""Commands without a reply (their callers may have timed out) before the connection is
dropped: a Redis that hangs with the connection open never grows memory without bound.
The connection is also dropped once its oldest unanswered command is older than the
reply timeout (the client's ``socket_timeout``), failing every command waiting on it:
checked by one timer for the connection, so a caller needs no timer of its own."""


class _Protocol(asyncio.Protocol):
    def __init__(self, reply_timeout_s: float = 2.0) -> None:
        import hiredis

        self._reader = hiredis.Reader()
        self._pack = hiredis.pack_command
        self._reply_error = hiredis.ReplyError
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._sent_at: deque[float] = deque()  # when each waiting command went out
        self._reply_timeout_s = reply_timeout_s
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []  # packed, written together once the loop turns
        self._timer: asyncio.TimerHandle | None = None  # the reply deadline's check
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, args: Sequence[Any], *, at_once: bool | None = None) -> asyncio.Future[Any]:
        return self.send_many((args,), at_once=at_once)[0]

    def send_many(
        self, commands: Sequence[Sequence[Any]], *, at_once: bool | None = None
    ) -> list[asyncio.Future[Any]]:
        """Every command written; a future per reply.

        On a connection with replies outstanding, the write happens once the event loop
        has run what is ready (``call_soon``), so the commands of every request that
        reached Redis in this turn of the loop go out in one ``send``, and Redis reads
        them with one ``read`` and answers with one ``write``: at concurrency 16 that is
        a fraction of a system call a request on both sides instead of one each. On an
        idle connection nothing is coming to share the write with: the commands go out
        at once, and Redis works on them while the caller goes on (a request's gate
        while its call is being prepared; about 20 µs sooner than a turn of the loop).

        A caller that knows better says so. ``at_once=False``: more commands are likely
        this turn (other requests are under way), so they are written together even on
        an idle connection. ``at_once=True``: nothing else is coming (the process's one
        request under way), so the commands are written now even behind a reply not
        read yet (a batch settled off the request path), with anything queued this turn
        ahead of them, so replies keep their order."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        if self.closed or self._transport is None:
            for future in futures:
                future.set_exception(_connection_error("the connection to Redis is closed"))
            return futures
        now = loop.time()
        if len(self._waiting) >= _MAX_WAITING:  # Redis stopped answering: start afresh
            error = _connection_error(
                f"Redis has not answered for {now - self._sent_at[0]:.1f} s "
                f"({len(self._waiting)} commands): the connection was reset"
            )
            self._fail(error)
            for future in futures:
                future.set_exception(error)
            return futures
        pack = self._pack
        if at_once is None:
            at_once = not self._out and not self._waiting  # idle: nothing to share with
        self._waiting.extend(futures)  # before the write: a reply finds its future
        self._sent_at.extend(now for _ in futures)
        if at_once:
            packed = [pack(tuple(args)) for args in commands]
            if self._out:  # queued earlier this turn: written first, replies in order
                packed[:0], self._out = self._out, []
            self._transport.write(b"".join(packed))
        else:
            if not self._out:
                loop.call_soon(self._write)
            self._out.extend(pack(tuple(args)) for args in commands)
        if self._timer is None:  # one timer for the connection, not one a command
            self._timer = loop.call_later(self._reply_timeout_s, self._expire)
        return futures

    def _expire(self) -> None:
        """A command unanswered past the reply timeout fails every waiting command (the
        connection is reset): so each caller waits at most that long without a timer of
        its own; else the check comes back when the oldest waiting command would be due."""
        self._timer = None
        if self.closed or not self._waiting:
            return
        loop = asyncio.get_running_loop()
        age = loop.time() - self._sent_at[0]
        if age >= self._reply_timeout_s:
            self._fail(
                _connection_error(
                    f"Redis has not answered for {age:.1f} s ({len(self._waiting)} commands):"
                    " the connection was reset"
                )
            )
            return
        self._timer = loop.call_later(self._reply_timeout_s - age, self._expire)

    def _write(self) -> None:
        out, self._out = self._out, []
        if out and not self.closed and self._transport is not None:
            self._transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            if not self._waiting:  # a reply nobody asked for: the stream is lost
                self._fail(_connection_error("Redis answered a command never sent"))
                return
            future = self._waiting.popleft()
            self._sent_at.popleft()
            if future.done():  # its caller gave up (timeout): the reply is dropped
                continue
            if isinstance(reply, self._reply_error):
                future.set_exception(_response_error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(_connection_error(f"Redis closed the connection ({exc or 'EOF'})"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._out.clear()
        self._sent_at.clear()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self._transport is not None:
            self._transport.close()

    def close(self) -> None:
        self._fail(_connection_error("the connection to Redis was closed"))


class Pipelined:
    """Commands to one Redis on one connection, pipelined."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout_s: float = 1.0,
        reply_timeout_s: float = 2.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self._auth = (username, password)
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Future[_Protocol] | None = None
        self._closed = False

    @classmethod
    def of(cls, client: Redis) -> Pipelined | None:
        """A connection to the Redis ``client`` speaks to, or None (TLS, Unix socket, or
        no hiredis installed)."""
        from importlib.util import find_spec

        from redis.asyncio.connection import Connection

        if find_spec("hiredis") is None:
            return None

        pool = client.connection_pool
        if pool.connection_class is not Connection:
            return None
        kw = pool.connection_kwargs
        connect = kw.get("socket_connect_timeout") or kw.get("socket_timeout") or 1.0
        return cls(
            str(kw.get("host", "localhost")), int(kw.get("port", 6379)),
            db=int(kw.get("db", 0) or 0), username=kw.get("username"),
            password=kw.get("password"), connect_timeout_s=float(connect),
            reply_timeout_s=float(kw.get("socket_timeout") or 2.0),
        )  # fmt: skip

    def send_now(self, *args: Any, at_once: bool | None = None) -> asyncio.Future[Any] | None:
        """Send one command now, without waiting for anything (the future of its reply),
        on a connection already open; None when there is none (:meth:`execute` opens
        it). ``at_once``: as :meth:`_Protocol.send_many`."""
        protocol = self._protocol
        if protocol is None or protocol.closed or self._closed:
            return None
        return protocol.send(args, at_once=at_once)

    async def execute(self, *args: Any) -> Any:
        """Send one command; its reply (an error reply raised as redis-py's exception)."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._open()
        return await protocol.send(args)

    async def evalsha(self, script: Lua, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` by its SHA; loaded and run again if Redis does not have it."""
        from redis.exceptions import NoScriptError

        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def evalsha_many(self, script: Lua, calls: Sequence[Call]) -> list[Any]:
        """Every call of ``script`` in one write, replies in order; the calls Redis
        refused with ``NOSCRIPT`` are sent again once it is loaded (nothing runs
        twice). The first error reply is raised."""
        from redis.exceptions import NoScriptError

        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._open()
        replies = await _gathered(protocol, [_evalsha(script, c) for c in calls])
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            await self.execute("SCRIPT", "LOAD", script.source)
            again = await _gathered(protocol, [_evalsha(script, calls[i]) for i in lost])
            for i, reply in zip(lost, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _open(self) -> _Protocol:
        if self._closed:
            raise _connection_error("the connection to Redis was closed")
        if self._opening is None:  # one connection opened, however many wait for it
            opening = self._opening = asyncio.ensure_future(self._connect())
            opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, opening: asyncio.Future[_Protocol]) -> None:
        """The next command after a failed connect tries again (and a failed connect
        whose callers all gave up is not an unretrieved exception)."""
        if self._opening is opening:
            self._opening = None
        if not opening.cancelled():
            opening.exception()

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):  # connect, AUTH and SELECT
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self.reply_timeout_s), self.host, self.port
                )
                username, password = self._auth
                if password is not None:
                    auth = ("AUTH", username, password) if username else ("AUTH", password)
                    await protocol.send(auth)
                if self.db:
                    await protocol.send(("SELECT", self.db))
        except BaseException as exc:
            if protocol is not None:
                protocol.close()
            if isinstance(exc, TimeoutError):
                raise _connection_error(
                    f"connecting to Redis at {self.host}:{self.port} timed out"
                ) from None
            if isinstance(exc, OSError):
                raise _connection_error(
                    f"cannot connect to Redis at {self.host}:{self.port} ({exc.strerror or exc})"
                ) from None
            raise
        self._protocol = protocol
        return protocol

    async def aclose(self) -> None:
        """Close the connection; commands after this fail as a Redis that is away."""
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


def _evalsha(script: Lua, call: Call) -> list[Any]:
    keys, args = call
    return ["EVALSHA", script.sha, len(keys), *keys, *args]


async def _gathered(protocol: _Protocol, commands: list[list[Any]]) -> list[Any]:
    futures = protocol.send_many(commands)
    return list(await asyncio.gather(*futures, return_exceptions=True))


def _connection_error(message: str) -> Exception:
    from redis.exceptions import ConnectionError as RedisConnectionError

    return RedisConnectionError(message)


def _response_error(message: str) -> Exception:
    from redis.exceptions import NoScriptError, ResponseError

    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)
