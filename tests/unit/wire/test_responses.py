"""A client reading chat-completions answers: usage that is missing, null or partial."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.types import Usage
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
