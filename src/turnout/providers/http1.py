"""The providers' HTTP/1.1 client: pooled keep-alive connections, parsed by httptools.

Every call through the gateway makes one upstream call, so the client's own cost is
paid on every request. Measured against nginx on this project's 2-core machine
(``benchmarks/http_clients.py``), aiohttp's client spends about 100 us of CPU a call
more than a bare protocol on llhttp, and every other async client measured (httpx,
aiosonic, rnet, blacksheep, curl_cffi) more than aiohttp. This module is that bare
protocol, with what a provider call needs and nothing else:

* one pool per base URL (http or https, TLS verified against the system's CAs),
  at most ``limit`` connections, idle ones kept for ``keepalive_s``;
* ``POST`` with a ``Content-Length`` body; answers with a length, chunked, or ended by
  the connection's close; gzip or deflate bodies decoded;
* the body read whole (:meth:`Response.read`) or as it arrives (``async for``), reading
  paused while more than ``_HIGH_WATER`` bytes wait for the consumer;
* a connection that the server closed after sitting idle for a second or more is found
  on reuse (no byte of an answer came back) and the request is sent once more on a new
  one;
* a response not read to its end closes its connection (cancellation included).

Timeouts other than connecting are the caller's (the provider bounds each wait).
Failures are :class:`HttpFailure` subclasses; nothing here knows about providers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast

import httptools

_HIGH_WATER = 1 << 18  # bytes waiting for the consumer before reading pauses
_LOW_WATER = 1 << 16
# A request that finds its kept-alive connection closed before any byte of an answer is
# sent again on a new one only if that connection had been idle this long: servers and
# load balancers close idle connections after seconds; a quicker close more likely
# means the server failed on the request itself (then the caller's retry policy decides).
_STALE_AFTER_S = 1.0


class HttpFailure(Exception):
    """A call that got no complete answer."""


class ConnectFailed(HttpFailure):
    """No connection: ``os_error`` says why (refused, unreachable, TLS, ...)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ConnectTimeout(HttpFailure):
    """No connection within the connect timeout."""


class Disconnected(HttpFailure):
    """The server closed the connection before the answer's head."""


class BodyIncomplete(HttpFailure):
    """The connection ended (or the answer broke the protocol) inside the answer's body."""


class Response:
    """An answer: ``status`` and ``headers`` (lower-case names) are known when it is
    returned; the body comes by :meth:`read` or by ``async for``. Close it (or read it
    to its end) to give its connection back."""

    __slots__ = (
        "_chunks", "_conn", "_decoder", "_done", "_error", "_fed", "_head", "_loop", "_paused",
        "_queued", "_waiter", "headers", "status",
    )  # fmt: skip

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self._loop = conn.loop
        self._head: asyncio.Future[None] = conn.loop.create_future()
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: HttpFailure | None = None
        self._decoder: zlib._Decompress | None = None
        self._fed = False  # some body came

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        try:
            while True:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._queued -= len(chunk)
                    if self._paused and self._queued <= _LOW_WATER and self._conn is not None:
                        self._paused = False
                        self._conn.resume()
                    yield chunk
                elif self._error is not None:
                    raise self._error
                elif self._done:
                    return
                elif self._conn is None:
                    raise BodyIncomplete("the answer was closed before its end")
                else:
                    self._waiter = self._loop.create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Done with the answer: if it had not come whole, its connection closes (a
        whole answer gave its connection back when its last byte came)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(reusable=False)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- fed by the connection ---------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if not self._fed and self._decoder is not None and data and _raw_deflate(data[0]):
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        self._fed = True
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._fail(BodyIncomplete(f"the body does not decompress: {exc}"))
                return
        if not data:
            return
        self._chunks.append(data)
        self._queued += len(data)
        if self._queued > _HIGH_WATER and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._chunks.append(rest)
                self._queued += len(rest)
            if self._fed and not self._decoder.eof:
                self._fail(BodyIncomplete("the compressed body ends before its end"))
        self._done = True
        self._wake()

    def _fail(self, error: HttpFailure) -> None:
        if self._error is None and not self._done:
            self._error = error
        if not self._head.done():
            self._head.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _raw_deflate(first: int) -> bool:
    """A body that starts with neither gzip's magic byte nor a zlib header (whose low
    nibble is 8, the deflate method): "deflate" sent without its zlib wrapper."""
    return first != 0x1F and first & 0x0F != 8


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.lost = False
        self.got_bytes = False  # some of the current answer has come
        self.idle_since = 0.0
        self._keep_alive = True
        self._delimited = True  # the body has a length, or is chunked
        self._interim = False  # parsing a 1xx answer (Early Hints, Continue)

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # nothing asked: a server that talks out of turn
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # not HTTP/1.1, or bytes past the end of the answer
            self._keep_alive = False
            if self.response is not None:
                self.response._fail(BodyIncomplete(f"the answer is not valid HTTP/1.1: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool.forget(self)
        response = self.response
        if response is None:
            return
        if not response._head.done():
            response._fail(Disconnected("the server closed the connection before answering"))
        elif not response._done:
            if exc is None and not self._delimited:  # a body that ends with the connection
                response._finish()
                response._conn = None
                self.finished(reusable=False)  # its slot is free: read to its end or not
            else:
                response._fail(BodyIncomplete("the connection closed inside the answer"))

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._current()  # the first byte of an answer nobody asked for: close

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self._current()
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = response.headers.get(key)
        response.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        response = self._current()
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim: its head is not the answer's
            response.headers.clear()
            self._interim = True
            return
        response.status = status
        headers = response.headers
        self._keep_alive = self.parser.should_keep_alive()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._delimited = chunked or "content-length" in headers
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            # gzip or zlib by their headers; a first byte that is neither: raw deflate
            response._decoder = zlib.decompressobj(47)
        if not response._head.done():
            response._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._current()._feed(body)

    def on_message_complete(self) -> None:
        response = self._current()
        if self._interim:  # a 1xx answer's end: the real answer follows
            self._interim = False
            return
        response._finish()
        if response._paused:  # the last bytes crossed the high-water mark
            response._paused = False
            self.resume()
        response._conn = None  # all of it is buffered: the connection can go back now
        self.finished(reusable=True)

    def _current(self) -> Response:
        if self.response is None:  # a second answer in the same read: nothing asked for it
            raise BodyIncomplete("the server sent more than one answer")
        return self.response

    # -- the pool's side ---------------------------------------------------------------

    def send(self, data: bytes) -> Response:
        assert self.transport is not None
        self.response = response = Response(self)
        self.got_bytes = False
        self.transport.write(data)
        return response

    def finished(self, *, reusable: bool) -> None:
        """The request is over: back to the pool if ``reusable`` and the server keeps
        the connection alive, else closed; either way its slot is free again."""
        self.response = None
        if reusable and self._keep_alive and not self.lost:
            self.pool.give_back(self)
        else:
            self.close()
            self.pool.release()

    def pause(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Pool:
    """Keep-alive connections to one origin (``scheme://host:port``)."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        limit: int = 100,
        connect_timeout: float = 5.0,
        keepalive_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context``: for https, instead of the default (the system's CAs, and
        ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set)."""
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, got {scheme!r}")
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.keepalive_s = keepalive_s
        self._ssl = (ssl_context or ssl.create_default_context()) if scheme == "https" else None
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._closed = False

    async def request(self, head: bytes, body: bytes) -> Response:
        """Send ``head`` (the request line and headers, without ``Content-Length``) and
        ``body``; the answer once its head has come."""
        data = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        await self._slots.acquire()  # released by the answer's connection when it is over
        conn = self._reuse()
        if conn is not None:
            idle = time.monotonic() - conn.idle_since
            response = conn.send(data)
            try:
                await response._head
                return response
            except Disconnected:
                if conn.got_bytes or idle < _STALE_AFTER_S:
                    self._abandon(conn, response)
                    raise
                conn.response = None  # closed by the server while it sat idle: a new one
            except BaseException:
                self._abandon(conn, response)
                raise
        try:
            conn = await self._connect()
        except BaseException:
            self._slots.release()
            raise
        response = conn.send(data)
        try:
            await response._head
        except BaseException:
            self._abandon(conn, response)
            raise
        return response

    def _abandon(self, conn: _Connection, response: Response) -> None:
        """A request that got no answer: its connection closes, its slot is free."""
        if conn.response is not response:  # it came whole: the connection went back then
            return
        response._conn = None
        conn.finished(reusable=False)

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            closing = conn.transport is None or conn.transport.is_closing()
            if conn.lost or closing or now - conn.idle_since > self.keepalive_s:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise ConnectFailed(OSError("the client is closed"))
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectFailed(exc) from None
        self._open.add(conn)
        return conn

    # -- connections' side ---------------------------------------------------------------

    def give_back(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        if self._closed:
            conn.close()
        else:
            self._idle.append(conn)
        self._slots.release()

    def release(self) -> None:
        self._slots.release()

    def forget(self, conn: _Connection) -> None:
        self._open.discard(conn)

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        self._open.clear()


def request_head(
    path: str, host: str, port: int, default_port: int, headers: Mapping[str, str]
) -> bytes:
    """The request line and headers of a ``POST`` to ``path`` (``Content-Length`` is
    added per request)."""
    authority = f"[{host}]" if ":" in host else host
    if port != default_port:
        authority = f"{authority}:{port}"
    lines = [f"POST {path} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")
