"""The OpenAI wire format, error classification, Retry-After, SSE decoding and redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from turnout.config.settings import ProviderConfig, Timeouts
from turnout.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ContentFiltered,
    ContextLengthExceeded,
    EndpointNotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from turnout.providers import openai_errors
from turnout.providers.openai_compat import OpenAICompatProvider, from_config
from turnout.providers.redact import REDACTED, Secret, redact, truncate
from turnout.providers.sse import SSEDecoder, SSEError
from turnout.types import ChatRequest, Message, TextDelta, ToolCall, ToolCallDelta, Usage
from turnout.wire import jsonio
from turnout.wire import requests as wire_requests
from turnout.wire import responses as wire

KEY = "sk-proj-abcdefghijklmnop0123456789"


# -- request bodies --------------------------------------------------------------------


def test_request_body_minimal() -> None:
    request = ChatRequest(messages=(Message.user("hi"),))
    body = wire_requests.request_body(request, model="m", stream=False)
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_request_body_passes_everything_through() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    request = ChatRequest(
        messages=(Message.system("s"), Message.user("u")),
        max_tokens=5,
        temperature=0.2,
        top_p=0.9,
        stop=("\n\n",),
        seed=3,
        tools=(tool,),
        tool_choice={"type": "function", "function": {"name": "f"}},
        response_format={"type": "json_object"},
        extra={"user": "abc", "stream": False, "logprobs": True},
    )
    body = wire_requests.request_body(request, model="m", stream=True)
    assert body["max_tokens"] == 5
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n\n"]
    assert body["seed"] == 3
    assert body["tools"] == [tool]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"] == {"type": "json_object"}
    assert body["user"] == "abc"
    assert body["logprobs"] is True
    assert body["stream"] is True  # extra cannot switch streaming off
    assert body["stream_options"] == {"include_usage": True}
    json.loads(jsonio.encode(body))


def test_assistant_tool_calls_and_tool_results_serialize() -> None:
    call = ToolCall("call_1", "lookup", '{"q": "x"}')
    assistant = wire_requests.message_to_wire(Message("assistant", None, tool_calls=(call,)))
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
            }
        ],
    }
    result = wire_requests.message_to_wire(Message("tool", "42", tool_call_id="call_1"))
    assert result == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    named = wire_requests.message_to_wire(Message("user", None, name="ann"))
    assert named == {"role": "user", "content": "", "name": "ann"}


def test_encode_keeps_unicode() -> None:
    assert jsonio.encode({"a": "café"}) == '{"a":"café"}'.encode()


# -- answers ---------------------------------------------------------------------------


def completion(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "model": "gpt-x-2025",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    body.update(overrides)
    return body


def test_parse_completion() -> None:
    answer = wire.parse_completion(completion(), model="m", latency_s=0.5, prompt_tokens=1)
    assert answer.content == "Hi"
    assert answer.usage == Usage(10, 2, 4)
    assert answer.model == "gpt-x-2025"
    assert answer.finish_reason == "stop"
    assert answer.response_id == "chatcmpl-1"
    assert answer.latency_s == 0.5


def test_parse_completion_tool_calls_with_object_arguments() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"type": "function", "function": {"name": "g", "arguments": {"b": 2}}},
        ],
    }
    body = completion(choices=[{"message": message, "finish_reason": "tool_calls"}])
    answer = wire.parse_completion(body, model="m", latency_s=0, prompt_tokens=1)
    assert answer.tool_calls == (
        ToolCall("c1", "f", '{"a": 1}'),
        ToolCall("call_1", "g", '{"b": 2}'),
    )


def test_missing_usage_is_estimated_not_zero() -> None:
    body = completion(usage=None)
    answer = wire.parse_completion(body, model="m", latency_s=0, prompt_tokens=7)
    assert answer.usage == Usage(7, 1, 0, estimated=True)


def test_deepseek_cache_hit_spelling() -> None:
    usage = wire.parse_usage(
        {"prompt_tokens": 9, "completion_tokens": 1, "prompt_cache_hit_tokens": 8},
        prompt_estimate=0,
        output_estimate=0,
    )
    assert usage == Usage(9, 1, 8)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "not a JSON object"),
        ({"id": "x"}, "no choices"),
        ({"choices": []}, "no choices"),
        ({"choices": [{"text": "legacy"}]}, "no message"),
        ({"choices": [{"message": {"content": 3}}]}, "not a string"),
        ({"choices": [{"message": {"content": None, "tool_calls": [{}]}}]}, "no function name"),
    ],
)
def test_parse_completion_rejects_malformed_bodies(body: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        wire.parse_completion(body, model="m", latency_s=0, prompt_tokens=1)


def test_load_json_names_what_was_bad() -> None:
    with pytest.raises(ValueError, match="stream chunk is not valid JSON"):
        jsonio.load_json("{oops", what="stream chunk")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        jsonio.load_json(b"\xff\xfe{")


def test_stream_state_text_tool_calls_and_usage() -> None:
    state = wire.StreamState("m")
    chunks = [
        {
            "id": "c",
            "model": "m-2025",
            "choices": [{"delta": {"role": "assistant", "content": ""}}],
        },
        {"id": "c", "choices": [{"delta": {"content": "Hel"}}]},
        {"id": "c", "choices": [{"delta": {"content": "lo"}}], "usage": None},
        {
            "id": "c",
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "t1", "function": {"name": "f", "arguments": ""}}
                        ]
                    }
                }
            ],
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    events = [e for c in chunks for e in state.feed(c)]
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, "t1", "f", ""),
        ToolCallDelta(0, None, None, "{}"),
    ]
    assert state.finish_reason == "tool_calls"
    assert state.model == "m-2025"
    assert state.response_id == "c"
    assert state.final_usage(prompt_tokens=99) == Usage(3, 4, 0)


def test_stream_state_estimates_usage_when_none_came() -> None:
    state = wire.StreamState("m")
    state.feed({"choices": [{"delta": {"content": "12345678"}, "finish_reason": "stop"}]})
    assert state.final_usage(prompt_tokens=5) == Usage(5, 2, 0, estimated=True)


@pytest.mark.parametrize(
    "chunk",
    [
        "text",
        {"id": "x"},
        {"choices": "no"},
        {"choices": [{"delta": "no"}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"tool_calls": "no"}}]},
    ],
)
def test_stream_state_rejects_malformed_chunks(chunk: Any) -> None:
    with pytest.raises(ValueError, match="stream chunk"):
        wire.StreamState("m").feed(chunk)


# -- SSE -------------------------------------------------------------------------------


def test_sse_decoder_handles_any_chunking() -> None:
    stream = (
        b": keep-alive\n\n"
        b'data: {"a": 1}\n\n'
        b'event: message\r\nid: 7\r\ndata: {"b":\r\ndata: 2}\r\n\r\n'
        b"data: [DONE]\n\n"
    )
    expected = ['{"a": 1}', '{"b":\n2}', "[DONE]"]
    for size in (1, 2, 5, len(stream)):
        decoder = SSEDecoder()
        got = [e for i in range(0, len(stream), size) for e in decoder.feed(stream[i : i + size])]
        assert got + decoder.close() == expected


def test_sse_decoder_flushes_an_unterminated_event_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last") == []
    assert decoder.close() == ["last"]


def test_sse_decoder_keeps_multibyte_characters_split_across_chunks() -> None:
    raw = 'data: {"t": "café"}\n\n'.encode()
    cut = raw.index(b"\xc3") + 1
    decoder = SSEDecoder()
    assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) == ['{"t": "café"}']


def test_sse_decoder_rejects_bad_utf8() -> None:
    with pytest.raises(SSEError, match="UTF-8"):
        SSEDecoder().feed(b"data: \xff\n\n")


# -- errors ----------------------------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None) -> ProviderError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return openai_errors.classify_http(
        status, raw, headers or {}, provider="p (http://x/v1)", model="m", secrets=[KEY]
    )


def openai_error(
    message: str, code: str | None = None, type_: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (429, openai_error("slow down", "rate_limit_exceeded"), RateLimited),
        (401, openai_error("bad key", "invalid_api_key"), AuthenticationError),
        (403, {"error": "forbidden"}, AuthenticationError),
        (500, openai_error("boom", type_="server_error"), ServerError),
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", ServerError),
        (503, b"", ServerError),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "x"}},
            ServerError,
        ),
        (408, openai_error("request timeout"), ProviderTimeout),
        (400, openai_error("bad field"), BadRequest),
        (404, openai_error("no such model", "model_not_found"), EndpointNotFound),
        (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}, BadRequest),
        (302, b"", BadRequest),
        # context window: by code, then by the messages of OpenAI, vLLM, llama.cpp, LiteLLM...
        (400, openai_error("too long", "context_length_exceeded"), ContextLengthExceeded),
        (
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. "
                "However, you requested 5000 tokens",
                "type": "BadRequestError",
                "code": 400,
            },
            ContextLengthExceeded,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                }
            },
            ContextLengthExceeded,
        ),
        (
            400,
            openai_error("litellm.ContextWindowExceededError: prompt is too long", "400"),
            ContextLengthExceeded,
        ),
        (500, {"error": "input length exceeds the context length"}, ContextLengthExceeded),
        # content filter: by code, or by Azure's message
        (400, openai_error("rejected", "content_policy_violation"), ContentFiltered),
        (400, openai_error("filtered", "content_filter"), ContentFiltered),
        (
            400,
            openai_error(
                "The response was filtered due to the prompt triggering Azure "
                "OpenAI's content management policy."
            ),
            ContentFiltered,
        ),
        (500, openai_error("content filter service down", type_="server_error"), ServerError),
    ],
)
def test_classification(status: int, body: Any, cls: type[Exception]) -> None:
    exc = classify(status, body)
    assert type(exc) is cls
    assert f"HTTP {status}" in str(exc)
    assert exc.status == status


def test_message_carries_status_code_and_provider_message_truncated() -> None:
    exc = classify(400, openai_error("x" * 1000, "bad_thing"))
    text = str(exc)
    assert text.startswith("m: HTTP 400 from p (http://x/v1): xxx")
    assert text.endswith("… [bad_thing]")
    assert len(text) < 400


def test_an_echoed_key_is_redacted_before_truncation() -> None:
    message = "y" * 290 + f" your key {KEY} is wrong"
    text = str(classify(401, openai_error(message)))
    assert "sk-proj" not in text
    assert KEY[:12] not in text


def test_rate_limit_carries_retry_after() -> None:
    exc = classify(429, openai_error("slow"), {"Retry-After": "7"})
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == 7.0


def test_in_stream_error_event() -> None:
    info = openai_errors.error_info_from({"error": {"message": "upstream died", "code": None}})
    exc = openai_errors.classify(None, info, provider="p", model="m")
    assert isinstance(exc, ServerError)
    assert "error event in the stream" in str(exc)
    info = openai_errors.error_info_from({"error": {"message": "Rate limit", "code": "429"}})
    assert isinstance(openai_errors.classify(None, info, provider="p", model="m"), RateLimited)


# -- Retry-After -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "nope", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "-4"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert openai_errors.parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert openai_errors.parse_retry_after({"Retry-After": later}, now=now.timestamp()) == 30.0
    assert openai_errors.parse_retry_after({"Retry-After": earlier}, now=now.timestamp()) == 0.0


# -- redaction -------------------------------------------------------------------------


def test_redact_known_secret_and_key_shapes() -> None:
    text = f"key={KEY}; auth: Bearer abcdefgh12345678; other sk-ant-api03-ZZZZZZZZZZZZZZZZZZZZ"
    out = redact(text, [KEY])
    assert KEY not in out
    assert "abcdefgh12345678" not in out
    assert "ZZZZ" not in out
    assert out.count(REDACTED) == 3


def test_redact_accepts_secret_objects_and_ignores_placeholders() -> None:
    assert redact("token hunter22!", [Secret("hunter22!")]) == f"token {REDACTED}"
    assert redact("EMPTY is not a key", ["EMPTY", None, ""]) == "EMPTY is not a key"


def test_secret_never_prints_itself() -> None:
    secret = Secret(KEY)
    assert KEY not in repr(secret)
    assert KEY not in str(secret)
    assert KEY not in f"{secret}"
    assert secret.reveal() == KEY


def test_truncate() -> None:
    assert truncate("a  b\n c") == "a b c"
    assert truncate("x" * 10, 5) == "xxxx…"


# -- the provider object ---------------------------------------------------------------


def test_repr_shows_no_key_no_url_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", KEY)
    p = OpenAICompatProvider(
        name="p",
        base_url="https://user:pa55word@gw.example.com/v1?token=abc",
        api_key_env="K",
        headers={"X-Secret": "hdr-value"},
    )
    text = repr(p)
    assert KEY not in text
    assert "pa55word" not in text
    assert "token=abc" not in text
    assert "hdr-value" not in text
    assert "api_key_env='K'" in text
    assert p.endpoint == "https://gw.example.com/v1"  # what its errors say it called


def test_from_config_validates_base_url() -> None:
    with pytest.raises(ConfigError, match=r"providers\.gw\.base_url"):
        from_config(ProviderConfig("gw", "openai", Timeouts(), {}), [])
    with pytest.raises(ConfigError, match=r"providers\.gw\.base_url: base_url must be an http"):
        from_config(ProviderConfig("gw", "openai", Timeouts(), {"base_url": "ftp://x"}), [])
    built = from_config(
        ProviderConfig("gw", "openai", Timeouts(1, 2, 3), {"base_url": "http://h:1/v1/"}), []
    )
    assert isinstance(built, OpenAICompatProvider)
    assert built.base_url == "http://h:1/v1"
    assert built.timeouts == Timeouts(1, 2, 3)


def test_a_header_with_a_line_break_is_a_config_error_naming_it() -> None:
    options = {"base_url": "http://h:1/v1", "headers": {"X-Team": "a\r\nHost: evil"}}
    with pytest.raises(ConfigError, match=r"^providers\.gw\.headers\.X-Team: holds a line break$"):
        from_config(ProviderConfig("gw", "openai", Timeouts(), options), [])
