"""A client reading chat-completions answers: usage that is missing, null or partial."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.types import NO_EXTRA, Usage, WireExtra
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
