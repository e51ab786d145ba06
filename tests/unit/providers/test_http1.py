"""The providers' HTTP/1.1 client against real servers on real sockets (raw asyncio
servers that answer exactly as each test says: lengths, chunks, EOF, gzip, TLS, hang-ups)."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from turnout.providers import http1

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Counts connections; ``answer`` handles every request on a connection."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                )
                self.requests.append(head + await reader.readexactly(length))
                await self.answer(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


async def serve(answer: Answer, ssl_context: ssl.SSLContext | None = None) -> Server:
    server = Server(answer)
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ssl_context)
    return server


def reply(body: bytes, *, extra: bytes = b"", status: bytes = b"200 OK") -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body
        )  # fmt: skip
        await writer.drain()

    return answer


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        assert s.server is not None
        s.server.close()


HEAD = http1.request_head("/v1/chat/completions", "127.0.0.1", 1, 80, {"X-Test": "yes"})


async def call(pool: http1.Pool, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    async with await pool.request(HEAD, body) as response:
        return response.status, response.headers, await response.read()


async def test_a_body_with_a_length_and_the_request_as_sent(servers: list[Server]) -> None:
    server = await serve(reply(b'{"ok":true}', extra=b"Retry-After: 3\r\n"))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    status, headers, body = await call(pool, b'{"q":1}')
    assert (status, body) == (200, b'{"ok":true}')
    assert headers["retry-after"] == "3" and headers["content-type"] == "application/json"
    sent = server.requests[0]
    assert sent.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:1\r\n")
    assert b"X-Test: yes\r\n" in sent and sent.endswith(b'Content-Length: 7\r\n\r\n{"q":1}')
    await pool.aclose()


async def test_one_kept_alive_connection_serves_calls_in_turn(servers: list[Server]) -> None:
    server = await serve(reply(b"{}"))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    for _ in range(5):
        assert (await call(pool))[0] == 200
    assert server.connections == 1
    await pool.aclose()


async def test_chunked_and_gzip_bodies(servers: list[Server]) -> None:
    packed = gzip.compress(b'{"text":"' + b"x" * 5000 + b'"}')

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        )
        for i in range(0, len(packed), 700):
            piece = packed[i : i + 700]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    server = await serve(answer)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    assert (await call(pool))[2] == b'{"text":"' + b"x" * 5000 + b'"}'
    assert (await call(pool))[0] == 200 and server.connections == 1  # chunked keeps it alive
    await pool.aclose()


async def ended_by_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An answer with neither a length nor chunks: its body ends with the connection."""
    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
    await writer.drain()
    writer.close()


async def test_a_body_that_ends_with_the_connection(servers: list[Server]) -> None:
    server = await serve(ended_by_close)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    assert (await call(pool))[2] == b"all of it"
    assert (await call(pool))[2] == b"all of it" and server.connections == 2
    await pool.aclose()


async def test_a_stream_arrives_piece_by_piece(servers: list[Server]) -> None:
    go = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        await writer.drain()
        await go.wait()
        writer.write(b"-last")

    server = await serve(answer)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    response = await pool.request(HEAD, b"{}")
    pieces = aiter(response)
    assert await anext(pieces) == b"first"  # before the rest exists
    go.set()
    assert await anext(pieces) == b"-last"
    with pytest.raises(StopAsyncIteration):
        await anext(pieces)
    await pool.aclose()


async def test_a_large_body_read_slowly_pauses_reading_and_comes_whole(
    servers: list[Server],
) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB

    server = await serve(reply(big))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    response = await pool.request(HEAD, b"{}")
    got = bytearray()
    async for chunk in response:
        got += chunk
        await asyncio.sleep(0)
    assert bytes(got) == big
    assert (await call(pool))[2] == big and server.connections == 1
    await pool.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_unseen(
    servers: list[Server],
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(b"{}")(reader, writer)
        writer.close()  # keeps no connection alive, and does not say so

    server = await serve(answer)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    for _ in range(3):
        assert (await call(pool))[0] == 200
        await asyncio.sleep(0.05)
    assert server.connections == 3
    await pool.aclose()


async def test_a_request_sent_as_the_server_closes_an_idle_connection_goes_again(
    servers: list[Server],
) -> None:
    class Racy(Server):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.connections:  # the second connection answers normally
                await super().handle(reader, writer)
                return
            self.connections += 1
            await reader.readuntil(b"\r\n\r\n{}")
            await reply(b"{}")(reader, writer)
            await reader.readuntil(b"\r\n\r\n{}")  # the next request came: hang up on it
            writer.close()

    server = Racy(reply(b"{}"))
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    assert (await call(pool))[0] == 200
    with pytest.raises(http1.Disconnected):  # idle for no time: the server failed on it
        await call(pool)
    server.connections = 0  # the next connection answers like the first: hangs up on #2
    assert (await call(pool))[0] == 200
    await asyncio.sleep(1.05)  # idle long enough to have been closed as idle
    assert (await call(pool))[0] == 200  # sent again, on a new connection
    assert server.connections == 2
    await pool.aclose()


async def test_bytes_past_the_end_of_the_answer_close_the_connection(
    servers: list[Server],
) -> None:
    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        writer.write(one + one)  # an answer nobody asked for, in the same write

    server = await serve(twice)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    assert (await call(pool))[2] == b"{}"
    assert (await call(pool))[2] == b"{}"
    assert server.connections == 2  # the first connection was not trusted again
    await pool.aclose()


async def test_hang_ups_before_and_inside_the_answer(servers: list[Server]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    for answer, error in ((silent, http1.Disconnected), (cut, http1.BodyIncomplete)):
        server = await serve(answer)
        servers.append(server)
        pool = http1.Pool("http", "127.0.0.1", server.port)
        with pytest.raises(error):
            await call(pool)
        await pool.aclose()


async def test_refused_and_unreachable(servers: list[Server]) -> None:
    server = await serve(reply(b"{}"))
    port = server.port
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()
    pool = http1.Pool("http", "127.0.0.1", port)
    with pytest.raises(http1.ConnectFailed) as info:
        await call(pool)
    assert isinstance(info.value.os_error, ConnectionRefusedError)
    await pool.aclose()


async def test_at_most_limit_connections_at_once(servers: list[Server]) -> None:
    busy = 0
    most = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.02)
        busy -= 1
        await reply(b"{}")(reader, writer)

    server = await serve(answer)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port, limit=2)
    results = await asyncio.gather(*(call(pool) for _ in range(8)))
    assert [r[0] for r in results] == [200] * 8
    assert most == 2 and server.connections == 2
    await pool.aclose()


async def test_an_answer_left_unread_closes_its_connection_and_frees_its_slot(
    servers: list[Server],
) -> None:
    server = await serve(reply(b"x" * 2_000_000))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port, limit=1)
    response = await pool.request(HEAD, b"{}")
    response.close()  # read nothing
    assert (await call(pool))[0] == 200  # the one slot is free again
    assert server.connections == 2
    await pool.aclose()


async def test_a_cancelled_call_closes_its_connection(servers: list[Server]) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    server = await serve(slow)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port, limit=1)
    task = asyncio.ensure_future(call(pool))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pool._open or all(c.transport and c.transport.is_closing() for c in pool._open)
    await asyncio.wait_for(pool._slots.acquire(), 1)  # the slot came back


async def test_https_verified_by_the_given_authority(servers: list[Server]) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    server = await serve(reply(b'{"tls":true}'), server_ctx)
    servers.append(server)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    pool = http1.Pool("https", "localhost", server.port, ssl_context=client_ctx)
    assert (await call(pool))[2] == b'{"tls":true}'
    await pool.aclose()
    untrusted = http1.Pool("https", "localhost", server.port)  # the system's CAs only
    with pytest.raises(http1.ConnectFailed) as info:
        await call(untrusted)
    assert isinstance(info.value.os_error, ssl.SSLError)
    await untrusted.aclose()


def test_the_request_head() -> None:
    head = http1.request_head("/v1/x?a=1", "::1", 443, 443, {"Authorization": "Bearer k"})
    assert head == b"POST /v1/x?a=1 HTTP/1.1\r\nHost: [::1]\r\nAuthorization: Bearer k\r\n"


async def test_cancel_after_the_whole_answer_came_releases_the_slot_once(
    servers: list[Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout (Watchdog, asyncio.timeout) that fires in the same loop iteration in
    which the whole answer arrived: the answer was already handed back to the pool."""
    server = await serve(reply(b"{}"))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port, limit=1)
    task: asyncio.Task[object] | None = None
    original = http1._Connection.data_received

    def data_received(self: http1._Connection, data: bytes) -> None:
        original(self, data)
        if task is not None:
            task.cancel()  # as a timer due in this same iteration would

    monkeypatch.setattr(http1._Connection, "data_received", data_received)
    task = asyncio.ensure_future(pool.request(HEAD, b"{}"))
    with pytest.raises(asyncio.CancelledError):
        await task
    task = None
    await asyncio.sleep(0.05)
    assert pool._slots._value == 1  # one slot, not two


async def test_a_connection_paused_at_the_answers_end_is_not_kept_paused(
    servers: list[Server],
) -> None:
    big = b"x" * (http1._HIGH_WATER + 1)  # its last byte crosses the high-water mark
    server = await serve(reply(big))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    response = await pool.request(HEAD, b"{}")
    await asyncio.sleep(0.2)  # all of it arrives before the consumer reads
    assert await response.read() == big
    response.close()
    _, _, body = await asyncio.wait_for(call(pool), 2)  # reuses the connection
    assert body == big


async def test_a_body_that_ends_with_the_connection_read_to_its_end_frees_its_slot(
    servers: list[Server],
) -> None:
    server = await serve(ended_by_close)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port, limit=1)
    response = await pool.request(HEAD, b"{}")
    assert await response.read() == b"all of it"  # read to its end, not closed
    assert (await asyncio.wait_for(call(pool), 2))[2] == b"all of it"


async def test_the_start_of_an_unasked_answer_is_not_carried_into_the_next(
    servers: list[Server],
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not server.requests[1:]:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 2")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    server = await serve(answer)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    assert (await call(pool))[2] == b"{}"
    assert (await call(pool))[2] == b"{}"


async def test_an_interim_1xx_answer_is_skipped(servers: list[Server]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    server = await serve(answer)
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    status, _, body = await call(pool)
    assert (status, body) == (200, b"{}")


async def test_a_truncated_gzip_body_is_an_error(servers: list[Server]) -> None:
    packed = gzip.compress(b'{"text":"' + bytes(range(256)) * 40 + b'"}')
    server = await serve(reply(packed[: len(packed) // 2], extra=b"Content-Encoding: gzip\r\n"))
    servers.append(server)
    pool = http1.Pool("http", "127.0.0.1", server.port)
    with pytest.raises(http1.BodyIncomplete):
        await call(pool)


async def test_deflate_bodies_with_and_without_the_zlib_header(servers: list[Server]) -> None:
    text = b'{"text":"' + b"y" * 3000 + b'"}'
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for packed in (zlib.compress(text), raw.compress(text) + raw.flush()):
        server = await serve(reply(packed, extra=b"Content-Encoding: deflate\r\n"))
        servers.append(server)
        pool = http1.Pool("http", "127.0.0.1", server.port)
        assert (await call(pool))[2] == text
        await pool.aclose()
