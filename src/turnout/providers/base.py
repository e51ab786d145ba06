"""The provider interface: one async method, ``complete``.

A provider answers chat requests for the models of one ``providers:`` entry.
Streaming is optional: the default ``stream`` replays ``complete`` as a single
chunk, so every provider can be streamed and composition needs no special cases.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from turnout.types import (
    NO_EXTRA,
    ChatRequest,
    ChatResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    WireExtra,
)


class Provider(abc.ABC):
    """Answers chat requests. ``request.model`` is the provider's model id."""

    name: str = "provider"
    endpoint: str | None = None
    """Where calls go (a URL without credentials), when there is such a place: the
    executor sets it on the provider's errors (see ``ProviderError.endpoint``)."""

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request and return the finished answer, or raise a ProviderError."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield deltas and end with exactly one :class:`StreamEnd`."""
        for event in replay(await self.complete(request)):
            yield event

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections, processes or files."""


def replay(r: ChatResponse, ttft_s: float | None = None) -> list[StreamEvent]:
    """A finished answer as stream events (a provider that does not stream, a cache hit,
    a judged answer): its text, its tool calls, then its end; what it said besides rides
    on the first delta (an answer with only that, a refusal, gets an empty TextDelta)."""
    e = r.extra
    top = WireExtra(e.response) if e.response else NO_EXTRA
    first = WireExtra(e.response, e.choice, e.message) if e.choice or e.message else top
    events: list[StreamEvent] = []
    if r.content or first is not top:
        events.append(TextDelta(r.content or "", first))
        first = top
    for i, call in enumerate(r.tool_calls):
        events.append(ToolCallDelta(i, call.id, call.name, call.arguments, first))
        first = top
    ttft = r.ttft_s if ttft_s is None else ttft_s
    events.append(StreamEnd(r.finish_reason, r.usage, r.model, r.response_id, ttft, e))
    return events
