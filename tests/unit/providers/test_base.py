"""The provider interface's default stream: a finished answer replayed as events."""

from __future__ import annotations

from turnout.providers.base import replay
from turnout.types import (
    NO_EXTRA,
    ChatResponse,
    StreamEnd,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    WireExtra,
)

LOGPROBS = {"logprobs": {"content": [{"token": "Hi", "logprob": -0.1}]}}


def test_a_plain_answer_replays_as_its_text_its_calls_and_its_end() -> None:
    r = ChatResponse("Hi", Usage(1, 1), "m", "stop", (ToolCall("c1", "f", "{}"),), ttft_s=0.2)
    assert replay(r) == [
        TextDelta("Hi"),
        ToolCallDelta(0, "c1", "f", "{}"),
        StreamEnd("stop", Usage(1, 1), "m", None, 0.2),
    ]


def test_what_the_answer_said_besides_rides_on_its_first_delta() -> None:
    extra = WireExtra({"system_fingerprint": "fp"}, LOGPROBS, usage={"x": 1})
    r = ChatResponse("Hi", Usage(1, 1), "m", "stop", (ToolCall("c1", "f", "{}"),), extra=extra)
    text, call, end = replay(r, ttft_s=0.5)
    assert text == TextDelta("Hi", WireExtra({"system_fingerprint": "fp"}, LOGPROBS))
    assert call == ToolCallDelta(0, "c1", "f", "{}", WireExtra({"system_fingerprint": "fp"}))
    assert end == StreamEnd("stop", Usage(1, 1), "m", None, 0.5, extra)


def test_a_refusal_alone_replays_as_an_empty_text_delta() -> None:
    extra = WireExtra(message={"refusal": "No."})
    r = ChatResponse(None, Usage(1, 1), "m", "stop", extra=extra)
    assert replay(r)[0] == TextDelta("", extra)
    assert replay(ChatResponse(None, Usage(), "m"))[0].extra is NO_EXTRA  # only its end
