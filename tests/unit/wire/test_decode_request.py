"""A server decoding chat-completions bodies: what it keeps, what it refuses (naming the field)."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.types import ChatRequest, Message, ToolCall
from turnout.wire.requests import WireError, decode_request, request_body


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "rules", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_minimal_body() -> None:
    incoming = decode_request(body())
    assert incoming.model == "rules"
    assert incoming.request.messages == (Message.user("hi"),)
    assert not incoming.stream and not incoming.include_usage
    assert incoming.user is None and dict(incoming.metadata) == {}


def test_every_option_is_kept() -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    incoming = decode_request(
        body(
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=50,
            max_tokens=10,
            temperature=0,
            top_p=0.5,
            stop="END",
            seed=7,
            tools=tools,
            tool_choice="auto",
            response_format={"type": "json_object"},
            user="u-42",
            metadata={"team": "docs"},
            presence_penalty=0.1,
        )
    )
    r = incoming.request
    assert incoming.stream and incoming.include_usage
    assert r.max_tokens == 50  # max_completion_tokens wins
    assert (r.temperature, r.top_p, r.stop, r.seed) == (0.0, 0.5, ("END",), 7)
    assert list(r.tools) == tools and r.tool_choice == "auto"
    assert r.response_format == {"type": "json_object"}
    assert incoming.user == "u-42" and dict(incoming.metadata) == {"team": "docs"}
    assert dict(r.extra) == {"user": "u-42", "presence_penalty": 0.1}


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        ({"max_completion_tokens": 50}, {"max_completion_tokens": 50}),
        ({"max_tokens": 10}, {"max_tokens": 10}),
        ({"max_completion_tokens": 50, "max_tokens": 10}, {"max_completion_tokens": 50}),
        ({}, {}),
    ],
)
def test_the_token_cap_goes_on_under_the_name_it_came_under(
    fields: dict[str, Any], sent: dict[str, Any]
) -> None:
    r = decode_request(body(**fields)).request
    out = request_body(r, model="m", stream=False)
    assert {k: v for k, v in out.items() if k.startswith("max_")} == sent
    assert r.max_tokens == next(iter(sent.values()), None)  # one value, for budgets


def test_a_request_made_in_code_caps_with_max_tokens_unless_told() -> None:
    r = ChatRequest((Message.user("hi"),), max_tokens=5)
    assert request_body(r, model="m", stream=False)["max_tokens"] == 5
    r = ChatRequest((Message.user("hi"),), max_tokens=5, max_tokens_param="max_completion_tokens")
    out = request_body(r, model="m", stream=True)
    assert out["max_completion_tokens"] == 5 and "max_tokens" not in out


def test_roles_parts_and_tool_round_trip() -> None:
    messages = [
        {
            "role": "developer",
            "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        },
        {"role": "user", "content": "What is 2+2?", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
    ]
    r = decode_request(body(messages=messages)).request
    assert r.messages == (
        Message.system("Be brief."),
        Message("user", "What is 2+2?", name="ann"),
        Message("assistant", None, tool_calls=(ToolCall("c1", "calc", "{}"),)),
        Message("tool", "4", tool_call_id="c1"),
    )
    again = request_body(r, model="m", stream=False)["messages"]
    assert again[2]["tool_calls"][0]["function"] == {"name": "calc", "arguments": "{}"}
    assert again[3] == {"role": "tool", "content": "4", "tool_call_id": "c1"}


@pytest.mark.parametrize(
    ("raw", "param", "words"),
    [
        ([], None, "JSON object"),
        ({"messages": []}, "model", "missing required parameter: 'model'"),
        (body(model=3), "model", "a number"),
        ({"model": "m"}, "messages", "'messages'"),
        (body(messages=[]), "messages", "non-empty"),
        (body(messages=["hi"]), "messages[0]", "object"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", "one of"),
        (body(messages=[{"role": "user"}]), "messages[0].content", "missing"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content", "string"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0].content[0]",
            "text parts",
        ),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id", "missing"),
        (
            body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]),
            "messages[0].tool_calls[0].function.name",
            "missing",
        ),
        (body(n=2), "n", "n=1"),
        (body(stream="yes"), "stream", "boolean"),
        (body(stream_options=[]), "stream_options", "object"),
        (body(stream_options={"include_usage": 1}), "stream_options.include_usage", "boolean"),
        (body(max_tokens="10"), "max_tokens", "integer"),
        (body(max_tokens=0), "max_tokens", "at least 1"),
        (body(temperature=3), "temperature", "between"),
        (body(top_p=True), "top_p", "number"),
        (body(stop=[1]), "stop", "string"),
        (body(seed=1.5), "seed", "integer"),
        (body(tools={}), "tools", "array"),
        (body(tools=[{"type": "function"}]), "tools[0].function.name", "missing"),
        (body(tool_choice="sometimes"), "tool_choice", "tool_choice"),
        (body(response_format="json"), "response_format", "object"),
        (body(user=5), "user", "string"),
        (body(metadata={"a": 1}), "metadata", "string values"),
    ],
)
def test_refusals_name_the_field(raw: Any, param: str | None, words: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_request(raw)
    assert caught.value.param == param
    assert words in str(caught.value)
    if param:
        assert param.split("[")[0].split(".")[0] in str(caught.value)
