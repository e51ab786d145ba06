"""An OpenAI-compatible upstream that answers with bodies written out by the test, on a
real socket: what a provider really sends (``logprobs``, ``refusal``, usage details, null
counts), independent of turnout's own wire module.

    async with CannedUpstream() as up:
        up.answer({"id": ..., "choices": [...], "usage": {...}})   # the next JSON answer
        up.answer([chunk, chunk, ...])                              # the next SSE answer
        ...  # point a provider at up.base_url; up.bodies: the request bodies it got

A JSON answer is sent as it is; a list of chunks as ``data:`` events, then
``data: [DONE]``. With nothing queued, a request gets a 500.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

Canned = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class CannedUpstream:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._answers: collections.deque[Canned] = collections.deque()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, *answers: Canned) -> None:
        self._answers.extend(answers)

    async def __aenter__(self) -> CannedUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        if not self._answers:
            return web.json_response({"error": {"message": "nothing canned"}}, status=500)
        canned = self._answers.popleft()
        if isinstance(canned, Mapping):
            return web.json_response(dict(canned))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in canned:
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
