"""A provider backed by a Python function: the test double for unit tests.

``FunctionProvider(lambda request: "hi")`` answers every request with "hi";
the function may also return a ChatResponse, raise a ProviderError to simulate
a failure, or be async. Usage is estimated (4 characters a token) when the
function returns plain text.

``stream_fn`` streams without a hand-made provider: a function of the request
returning the events (a list, or an async iterator that may raise mid-stream);
a stream that ends without a :class:`~turnout.types.StreamEnd` gets one. Without
it, ``stream`` replays ``complete`` as one chunk.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from turnout.pricing.tokens import estimate_tokens
from turnout.providers.base import Provider
from turnout.types import ChatRequest, ChatResponse, StreamEnd, StreamEvent, TextDelta, Usage

Responder = Callable[[ChatRequest], "str | ChatResponse | Awaitable[str | ChatResponse]"]
StreamResponder = Callable[[ChatRequest], "Iterable[StreamEvent] | AsyncIterator[StreamEvent]"]


class FunctionProvider(Provider):
    def __init__(
        self,
        fn: Responder | None = None,
        *,
        stream_fn: StreamResponder | None = None,
        name: str = "function",
    ) -> None:
        if fn is None and stream_fn is None:
            raise TypeError("FunctionProvider needs fn, stream_fn or both")
        self.fn = fn
        self.stream_fn = stream_fn
        self.name = name
        self.calls: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        if self.stream_fn is None:
            async for event in super().stream(request):
                yield event
            return
        self.calls.append(request)
        produced = self.stream_fn(request)
        ended = False
        if isinstance(produced, AsyncIterator):
            async for event in produced:
                ended = ended or isinstance(event, StreamEnd)
                yield event
        else:
            for event in produced:
                ended = ended or isinstance(event, StreamEnd)
                yield event
        if not ended:
            yield StreamEnd("stop", Usage(), request.model)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.fn is None:  # only streams: the whole stream, assembled
            return await _assembled(self.stream(request), request)
        self.calls.append(request)
        start = time.perf_counter()
        result = self.fn(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, ChatResponse):
            return result
        prompt = "".join(m.content or "" for m in request.messages)
        usage = Usage(estimate_tokens(prompt), estimate_tokens(result))
        return ChatResponse(
            content=result,
            usage=usage,
            model=request.model,
            finish_reason="stop",
            latency_s=time.perf_counter() - start,
        )


async def _assembled(events: AsyncIterator[StreamEvent], request: ChatRequest) -> ChatResponse:
    parts: list[str] = []
    end: StreamEnd | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, StreamEnd):
            end = event
    assert end is not None
    return ChatResponse("".join(parts), end.usage, end.model or request.model, end.finish_reason)
