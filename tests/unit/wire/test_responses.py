"""A client reading chat-completions answers: usage that is missing, null or partial."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.types import NO_EXTRA, TextDelta, ToolCallDelta, Usage, WireExtra
from turnout.wire import responses as wire


def completion(content: str, usage: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {"id": "c1", "choices": [{"message": message, "finish_reason": "stop"}], "usage": usage}


@pytest.mark.parametrize(
    ("usage", "want"),
    [
        ({"prompt_tokens": 9, "completion_tokens": 3}, Usage(9, 3)),
        ({"prompt_tokens": 9, "completion_tokens": None}, Usage(9, 2, estimated=True)),
        ({"prompt_tokens": None, "completion_tokens": 3}, Usage(7, 3, estimated=True)),
        ({"prompt_tokens": 9}, Usage(9, 2, estimated=True)),
        ({"prompt_tokens": 9, "completion_tokens": "3"}, Usage(9, 2, estimated=True)),
        ({"prompt_tokens": 9, "completion_tokens": 0}, Usage(9, 0)),  # zero is a count
        ({}, Usage(7, 2, estimated=True)),
        (None, Usage(7, 2, estimated=True)),
    ],
)
def test_a_count_missing_or_null_is_estimated_and_marked(usage: Any, want: Usage) -> None:
    answer = wire.parse_completion(
        completion("eight ch", usage), model="m", latency_s=0, prompt_tokens=7
    )
    assert answer.usage == want


def test_a_stream_whose_usage_has_a_null_count_is_estimated_for_that_count() -> None:
    state = wire.StreamState("m")
    state.feed({"id": "c", "choices": [{"delta": {"content": "12345678"}}]})
    state.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    state.feed({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": None}})
    assert state.final_usage(prompt_tokens=5) == Usage(11, 2, estimated=True)


# -- what an answer says besides ----------------------------------------------------------------

OPENAI_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1735689600,
    "model": "gpt-x",
    "system_fingerprint": "fp_1",
    "service_tier": "default",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": "I can't.",
                "annotations": [],
                "audio": None,
            },
            "logprobs": {"content": None, "refusal": [{"token": "I", "logprob": -0.1}]},
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 1},
    },
}


def test_what_turnout_does_not_read_is_kept_by_where_it_was() -> None:
    answer = wire.parse_completion(OPENAI_ANSWER, model="m", latency_s=0, prompt_tokens=1)
    assert answer.content is None
    assert answer.extra == WireExtra(
        response={"system_fingerprint": "fp_1", "service_tier": "default"},
        choice={"logprobs": {"content": None, "refusal": [{"token": "I", "logprob": -0.1}]}},
        message={"refusal": "I can't.", "annotations": []},  # a field without a value is left out
        usage={
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    )


def test_a_plain_answer_has_nothing_besides() -> None:
    answer = wire.parse_completion(
        completion("hi", {"prompt_tokens": 1, "completion_tokens": 1}),
        model="m",
        latency_s=0,
        prompt_tokens=1,
    )
    assert answer.extra == NO_EXTRA


def test_what_was_kept_goes_back_where_it_was() -> None:
    answer = wire.parse_completion(OPENAI_ANSWER, model="m", latency_s=0, prompt_tokens=1)
    u = answer.usage
    usage = wire.usage(u.input_tokens, u.output_tokens, u.cached_input_tokens, answer.extra.usage)
    body = wire.completion("chatcmpl-1", "gpt-x", 1735689600, None, "stop", [], usage, answer.extra)
    again = {**OPENAI_ANSWER, "choices": [dict(OPENAI_ANSWER["choices"][0])]}
    again["choices"][0]["message"] = {
        k: v for k, v in again["choices"][0]["message"].items() if v is not None or k == "content"
    }
    assert body == again


def test_a_refusal_is_output_when_the_tokens_are_estimated() -> None:
    body = completion("", None)
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "x" * 40}
    answer = wire.parse_completion(body, model="m", latency_s=0, prompt_tokens=1)
    assert answer.usage == Usage(1, 10, estimated=True)


# -- what a stream says besides ---------------------------------------------------------------

TOP = {"system_fingerprint": "fp_1", "service_tier": "default"}


def chunk(delta: dict[str, Any] | None, **choice: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, **choice}]
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", **TOP, "choices": choices}


def test_a_chunks_fields_ride_on_its_first_delta_and_top_level_ones_on_every_delta() -> None:
    state = wire.StreamState("m")
    lp = {"content": [{"token": "Hi", "logprob": -0.1}], "refusal": None}
    call = {"index": 0, "id": "t1", "function": {"name": "f", "arguments": ""}}
    events = [
        *state.feed(chunk({"role": "assistant", "content": "", "refusal": None}, logprobs=None)),
        *state.feed(chunk({"content": "Hi", "tool_calls": [call, call]}, logprobs=lp)),
        *state.feed(chunk({"refusal": "No."}, logprobs=None)),
        *state.feed(chunk({}, finish_reason="stop", logprobs=None)),
    ]
    top_only = WireExtra(TOP)
    assert events == [
        TextDelta("Hi", WireExtra(TOP, {"logprobs": lp})),
        ToolCallDelta(0, "t1", "f", "", top_only),
        ToolCallDelta(0, "t1", "f", "", top_only),
        TextDelta("", WireExtra(TOP, message={"refusal": "No."})),  # a chunk with no text
    ]
    assert events[1].extra.response is events[3].extra.response  # one object while the same


def test_the_whole_answer_says_what_its_chunks_said_added_up() -> None:
    state = wire.StreamState("m")
    first = {"content": [{"token": "I", "logprob": -0.1}]}
    state.feed(chunk({"refusal": "I can"}, logprobs=first))
    state.feed(chunk({"refusal": "not."}, logprobs={"content": [{"token": "not", "logprob": -1}]}))
    state.feed({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                "completion_tokens_details": {"reasoning_tokens": 1}}})  # fmt: skip
    assert state.extra() == WireExtra(
        TOP,
        {
            "logprobs": {
                "content": [{"token": "I", "logprob": -0.1}, {"token": "not", "logprob": -1}]
            }
        },
        {"refusal": "I cannot."},
        {"completion_tokens_details": {"reasoning_tokens": 1}},
    )
    assert first == {"content": [{"token": "I", "logprob": -0.1}]}  # the chunk's own: unchanged
    assert state.output_chars == len("I cannot.")


def test_a_plain_stream_has_nothing_besides() -> None:
    state = wire.StreamState("m")
    events = state.feed({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    assert events == [TextDelta("Hi")] and events[0].extra is NO_EXTRA
    assert state.extra() == NO_EXTRA
