"""A fake OpenAI-compatible server on a real socket, with scriptable faults.

In async tests::

    async with FakeOpenAI(reply="hi") as server:
        server.script(Fault.error(503), Fault.error(503))   # first 2 calls 503, then OK
        ...  # point a client at server.base_url ("http://127.0.0.1:PORT/v1")
        assert server.requests[0].authorization == "Bearer sk-test"

From sync code (a background thread runs the event loop)::

    with FakeOpenAI.start_in_thread(reply=echo_last_user) as handle:
        handle.server.script(Fault.rate_limited(retry_after=1))
        ...  # handle.base_url

As a separate process (for benchmarks)::

    python -m turnout.testing.fake_openai --port 0     # prints "listening on <base_url>"

Which behaviour a request gets, first match wins: the ``x-fake-fault`` header, a
model named ``fault:<spec>``, the next scripted fault, the server's default.
See :mod:`turnout.testing.faults` for the spec strings.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from turnout.pricing.tokens import estimate_tokens
from turnout.testing import replies
from turnout.testing.faults import Fault
from turnout.wire import errors as wire_errors
from turnout.wire import requests as wire_requests
from turnout.wire import responses as wire

if TYPE_CHECKING:
    from turnout.testing.server_thread import ServerThread

Reply = str | Callable[[Mapping[str, Any]], str]

FAULT_HEADER = "x-fake-fault"
_MALFORMED_BODY = b'{"id": "chatcmpl-fake", "choices": [{"index": 0, "message": '
_ERROR_IN_200 = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }
}
_MALFORMED_FRAME = b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "oo\n\n'


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received. Header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    fault: Fault
    query: str = ""
    """The query string, undecoded (``api-version=...``)."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream")) if isinstance(self.body, dict) else False


class FakeOpenAI:
    """An OpenAI-compatible chat-completions server for tests and benchmarks.

    ``reply`` is the answer text or a function of the request body (see
    :func:`~turnout.testing.replies.echo_last_user`); ``default`` the
    behaviour when nothing else is scripted; ``latency`` a sleep before every
    answer; ``chunk_delay`` a sleep between streamed chunks; ``cached_tokens``
    what ``prompt_tokens_details.cached_tokens`` reports (capped at the prompt).
    """

    def __init__(
        self,
        *,
        reply: Reply = replies.DEFAULT_REPLY,
        default: Fault | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        cached_tokens: int = 0,
        record: bool = True,
    ) -> None:
        self.reply = reply
        self.default = default or Fault.ok()
        self.host = host
        self.port = port
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.cached_tokens = cached_tokens
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.hangups = 0
        """Requests whose client closed the connection before the answer was complete (a
        client timeout, a caller that stopped reading): how tests see a connection released."""
        self._script: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # -- scripting ---------------------------------------------------------------------

    def script(self, *faults: Fault | str) -> None:
        """Queue behaviours for the next requests, in order (strings are fault specs)."""
        parsed = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
        with self._lock:
            self._script.extend(parsed)

    def reset(self) -> None:
        """Forget recorded requests, hang-ups and scripted faults."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.hangups = 0

    @property
    def pending(self) -> int:
        """How many scripted faults are still waiting for a request."""
        return len(self._script)

    def reported_usage(self, request: RecordedRequest) -> dict[str, Any]:
        """The ``usage`` object this server reports (or would) for a recorded request:
        ``prompt_tokens``, ``completion_tokens``, ``total_tokens`` and
        ``prompt_tokens_details.cached_tokens``. Tests price it to check costs."""
        body = request.body if isinstance(request.body, dict) else {}
        return self._answer(body, request.fault, "0")[3]

    def _pick(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> Fault:
        spec = headers.get(FAULT_HEADER)
        if spec:
            return Fault.parse(spec)
        model = body.get("model")
        if isinstance(model, str) and model.startswith("fault:"):
            return Fault.parse(model[len("fault:") :])
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.default

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for server in runner.addresses:
            self.port = int(server[1])
            break

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> ServerThread:
        """Start a server in a background thread (for sync code); ``.stop()`` ends it."""
        from turnout.testing.server_thread import ServerThread

        handle = ServerThread(cls(**kwargs))
        handle.start()
        return handle

    # -- handlers ----------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "owned_by": "fake"}],
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _json(400, wire_errors.error_body(400, "Expected a JSON body with 'messages'."))
        headers = request.headers  # case-insensitive
        try:
            fault = self._pick(headers, body)
        except ValueError as exc:
            return _json(400, wire_errors.error_body(400, str(exc)))
        if self.record:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.path,
                    {k.lower(): v for k, v in headers.items()},
                    body,
                    fault,
                    request.rel_url.raw_query_string,
                )
            )
        try:
            return await self._respond(request, headers, body, fault)
        except (asyncio.CancelledError, ConnectionResetError):
            self.hangups += 1  # the client closed the connection before the answer ended
            raise

    async def _respond(
        self, request: web.Request, headers: Mapping[str, str], body: dict[str, Any], fault: Fault
    ) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        stream = bool(body.get("stream"))
        if fault.kind == "error":
            return _error(fault, headers)
        if fault.kind == "stall" and not (stream and fault.after_chunks):
            await asyncio.sleep(fault.seconds)
        if stream:
            return await self._stream(request, body, fault)
        if fault.kind == "malformed_json":
            return web.Response(body=_MALFORMED_BODY, content_type="application/json")
        if fault.kind == "error_in_200":
            return _json(200, _error_in_200(fault))
        payload = json.dumps(self._completion(body, fault)).encode()
        if fault.kind == "cut":
            return await _cut_body(request, payload)
        return web.Response(body=payload, content_type="application/json")

    def _answer(
        self, body: Mapping[str, Any], fault: Fault, prefix: str
    ) -> tuple[str | None, list[dict[str, Any]], str, dict[str, Any]]:
        """(content, tool calls, finish reason, usage) for a request."""
        tool_calls: list[dict[str, Any]] = []
        if fault.kind == "tool_calls":
            calls = fault.tool_calls or replies.default_tool_calls(body)
            content, finish = None, "tool_calls"
            tool_calls = wire.tool_call_objects(calls, prefix)
        else:
            content = self.reply(body) if callable(self.reply) else self.reply
            finish = "stop"
            if fault.kind == "content_filter":
                content, finish = content.split(" ")[0], "content_filter"
        answer_text = (content or "") + "".join(c["function"]["arguments"] for c in tool_calls)
        prompt = estimate_tokens(wire_requests.prompt_text(body))
        use = wire.usage(prompt, estimate_tokens(answer_text), min(self.cached_tokens, prompt))
        return content, tool_calls, finish, use

    def _completion(self, body: Mapping[str, Any], fault: Fault) -> dict[str, Any]:
        n = next(self._ids)
        content, calls, finish, use = self._answer(body, fault, str(n))
        model = str(body.get("model") or "fake-model")
        return wire.completion(
            f"chatcmpl-fake-{n}", model, int(time.time()), content, finish, calls, use
        )

    async def _stream(
        self, request: web.Request, body: Mapping[str, Any], fault: Fault
    ) -> web.StreamResponse:
        n = next(self._ids)
        rid, model = f"chatcmpl-fake-{n}", str(body.get("model") or "fake-model")
        created = int(time.time())
        content, calls, finish, use = self._answer(body, fault, str(n))
        deltas = replies.stream_deltas(content, calls)
        chunks = [wire.chunk(rid, model, created, d) for d in deltas]
        chunks.append(wire.chunk(rid, model, created, {}, finish))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            chunks.append(wire.chunk(rid, model, created, None, usage_body=use))
        frames = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
        frames.append(b"data: [DONE]\n\n")

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for i, frame in enumerate(frames):
            if i == fault.after_chunks:
                if fault.kind == "cut":
                    _close(request)
                    return response
                if fault.kind == "stall":
                    await asyncio.sleep(fault.seconds)
                if fault.kind in ("malformed_sse", "malformed_json"):
                    frame = _MALFORMED_FRAME
                if fault.kind == "error_in_200":
                    event = json.dumps(_error_in_200(fault)).encode()
                    await response.write(b"data: " + event + b"\n\n")
                    await response.write_eof()
                    return response
            await response.write(frame)
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        if fault.kind == "cut":  # after every frame: only the end of the body is missing
            _close(request)
            return response
        await response.write_eof()
        return response


def _error_in_200(fault: Fault) -> dict[str, Any]:
    error = dict(_ERROR_IN_200["error"])
    if fault.code is not None:
        error["code"] = fault.code
    if fault.message is not None:
        error["message"] = fault.message
    return {"error": error}


def _json(status: int, body: Any, headers: Sequence[tuple[str, str]] = ()) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=dict(headers),
    )


def _error(fault: Fault, headers: Mapping[str, str]) -> web.Response:
    if fault.status == 502 and fault.message is None:
        return web.Response(
            status=502,
            text=replies.BAD_GATEWAY_HTML,
            content_type="text/html",
            headers=dict(fault.headers),
        )
    message = fault.message
    if fault.echo_auth:
        key = headers.get("authorization", "").removeprefix("Bearer ")
        message = f"Incorrect API key provided: {key}. Find your API key in your account."
    body = wire_errors.error_body(
        fault.status, message, fault.code, fault.error_type, param=fault.param
    )
    return _json(fault.status, body, fault.headers)


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


async def _cut_body(request: web.Request, payload: bytes) -> web.StreamResponse:
    """Promise the whole body, send half of it, then close the connection."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    _close(request)
    return response


# -- command line ----------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    server = FakeOpenAI(
        reply=replies.echo_last_user if args.echo else args.reply,
        default=Fault.parse(args.fault),
        host=args.host,
        port=args.port,
        latency=args.latency,
        cached_tokens=args.cached_tokens,
        record=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"listening on {server.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m turnout.testing.fake_openai",
        description="A fake OpenAI-compatible server (prints 'listening on <base_url>').",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--reply", default=replies.DEFAULT_REPLY, help="the answer text")
    parser.add_argument("--echo", action="store_true", help="answer with the last user message")
    parser.add_argument("--fault", default="ok", help="default behaviour, e.g. 503 or stall:2")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--cached-tokens", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        Fault.parse(args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
