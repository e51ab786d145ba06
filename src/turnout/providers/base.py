"""The provider interface: one async method, ``complete``.

A provider answers chat requests for the models of one ``providers:`` entry.
Streaming is optional: the default ``stream`` replays ``complete`` as a single
chunk, so every provider can be streamed and composition needs no special cases.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from turnout.types import (
    ChatRequest,
    ChatResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
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
        response = await self.complete(request)
        if response.content:
            yield TextDelta(response.content)
        for i, call in enumerate(response.tool_calls):
            yield ToolCallDelta(i, call.id, call.name, call.arguments)
        yield StreamEnd(
            response.finish_reason, response.usage, response.model, response.response_id
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections, processes or files."""
