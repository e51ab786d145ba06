"""FunctionProvider streams from ``stream_fn``: unit tests need no hand-made provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from turnout.errors import ProviderConnectionError
from turnout.providers import FunctionProvider
from turnout.types import ChatRequest, Message, StreamEnd, StreamEvent, TextDelta, Usage

REQ = ChatRequest((Message.user("hi"),), model="m-1")


async def test_a_list_of_events_is_streamed_and_ended() -> None:
    p = FunctionProvider(stream_fn=lambda r: [TextDelta("a"), TextDelta("b")])
    events = [e async for e in p.stream(REQ)]
    assert events[:2] == [TextDelta("a"), TextDelta("b")]
    assert isinstance(events[-1], StreamEnd) and len(p.calls) == 1
    answer = await p.complete(REQ)  # without fn: the stream, assembled
    assert answer.content == "ab"


async def test_an_async_stream_may_break_mid_way() -> None:
    async def broken(request: ChatRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("par")
        raise ProviderConnectionError("reset")

    p = FunctionProvider(stream_fn=broken)
    got: list[StreamEvent] = []

    async def read() -> None:
        async for e in p.stream(REQ):
            got.append(e)

    with pytest.raises(ProviderConnectionError):
        await read()
    assert got == [TextDelta("par")]


async def test_its_own_stream_end_is_kept() -> None:
    end = StreamEnd("length", Usage(3, 1), "m-1")
    p = FunctionProvider(stream_fn=lambda r: [TextDelta("x"), end])
    assert [e async for e in p.stream(REQ)][-1] is end


def test_needs_a_function() -> None:
    with pytest.raises(TypeError):
        FunctionProvider()
