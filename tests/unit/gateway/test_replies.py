"""The chunk encoder's bytes, header values, money."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from support.gateway_double import FakeAnswer, call
from turnout.gateway.replies import ChunkEncoder, answer_headers, header_value
from turnout.pricing.money import usd_exact as money
from turnout.types import StreamEnd, TextDelta, ToolCallDelta, Usage, WireExtra


def frames(raw: bytes) -> list[str]:
    return [f.removeprefix("data: ") for f in raw.decode().split("\n\n") if f]


def test_stream_frames_as_openai_sends_them() -> None:
    enc = ChunkEncoder("chatcmpl-1", "haiku", include_usage=True)
    out = enc.delta(TextDelta("Hi")) + enc.delta(ToolCallDelta(0, "c1", "lookup", "{"))
    out += enc.end(StreamEnd("stop", Usage(5, 2, 1), "haiku"), Decimal("0.00001"))
    chunks = frames(out)
    assert chunks[-1] == "[DONE]"
    bodies = [json.loads(c) for c in chunks[:-1]]
    assert all(b["object"] == "chat.completion.chunk" and b["id"] == "chatcmpl-1" for b in bodies)
    assert bodies[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert bodies[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert bodies[2]["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "c1",
            "type": "function",
            "function": {"arguments": "{", "name": "lookup"},
        }
    ]
    assert bodies[3]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert bodies[4]["choices"] == []
    assert bodies[4]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 1},
        "cost_usd": 0.00001,
    }


def test_no_usage_chunk_unless_asked() -> None:
    enc = ChunkEncoder("c", "m", include_usage=False)
    chunks = frames(enc.end(StreamEnd(None, Usage(1, 1), "m"), Decimal(0)))
    assert len(chunks) == 3 and chunks[-1] == "[DONE]"  # role, finish, done


def test_error_event_has_no_done() -> None:
    raw = ChunkEncoder.error(
        {"error": {"message": "cut", "type": "server_error", "param": None, "code": "x"}}
    )
    assert b"[DONE]" not in raw and json.loads(frames(raw)[0])["error"]["message"] == "cut"


def test_header_value_and_money() -> None:
    assert header_value("domain docs → efficient\n tier") == "domain docs ? efficient tier"
    assert len(header_value("x" * 1000)) == 300
    assert money(Decimal("0.0000270")) == "0.000027"
    assert money(Decimal(0)) == "0"
    assert money(Decimal("1.5")) == "1.5"


def test_a_text_chunk_is_byte_for_byte_the_full_encoding_and_follows_the_model() -> None:
    from turnout.wire import responses as wire

    enc = ChunkEncoder("chatcmpl-9", "haiku", include_usage=False)
    enc.delta(TextDelta(""))  # the role chunk goes first
    for text in ["plain", 'quote " and \\ slash', "é ✓ 🙂", "line\nbreak\ttab\x00", ""]:
        for model in ["haiku", "sonnet"]:  # a cut continued on another model
            enc.model = model
            want = wire.sse(wire.chunk("chatcmpl-9", model, enc.created, {"content": text}))
            assert enc.delta(TextDelta(text)) == want


def test_attempts_are_the_calls_made() -> None:
    cached = replace(call(), cache="exact")
    assert answer_headers(FakeAnswer(attempts=[cached]), "r")["x-turnout-attempts"] == "0"
    two = [call("a", 1, "server_error"), call("b", 2)]
    assert answer_headers(FakeAnswer(attempts=two), "r")["x-turnout-attempts"] == "2"


def test_an_estimated_usage_is_marked_in_the_headers() -> None:
    assert "x-turnout-usage-estimated" not in answer_headers(FakeAnswer(), "r1")
    estimated = FakeAnswer(usage=Usage(12, 3, estimated=True))
    assert answer_headers(estimated, "r1")["x-turnout-usage-estimated"] == "true"


def test_what_an_upstream_chunk_said_besides_goes_back_on_its_chunk() -> None:
    top = {"system_fingerprint": "fp_1"}
    lp = {"content": [{"token": "Hi", "logprob": -0.1}], "refusal": None}
    enc = ChunkEncoder("chatcmpl-1", "haiku", include_usage=True)
    out = enc.delta(TextDelta("Hi", WireExtra(top, {"logprobs": lp})))
    out += enc.delta(TextDelta("", WireExtra(top, message={"refusal": "No."})))
    out += enc.delta(TextDelta(" there", WireExtra(top)))
    details = {"completion_tokens_details": {"reasoning_tokens": 4},
               "prompt_tokens_details": {"cached_tokens": 9, "audio_tokens": 0}}  # fmt: skip
    out += enc.end(
        StreamEnd("stop", Usage(5, 2, 1), "haiku", extra=WireExtra(top, usage=details)), Decimal(0)
    )
    bodies = [json.loads(c) for c in frames(out)[:-1]]
    assert all(b["system_fingerprint"] == "fp_1" for b in bodies)  # role, finish, usage too
    choices = [b["choices"][0] for b in bodies[:-1]]
    assert choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert choices[1]["delta"] == {"content": "Hi"} and choices[1]["logprobs"] == lp
    assert choices[2]["delta"] == {"refusal": "No."} and choices[2]["logprobs"] is None
    assert choices[3]["delta"] == {"content": " there"} and choices[3]["logprobs"] is None
    assert choices[4]["finish_reason"] == "stop"
    assert bodies[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    assert bodies[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 1, "audio_tokens": 0}


def test_a_text_chunk_with_top_level_fields_is_byte_for_byte_the_full_encoding() -> None:
    from turnout.wire import responses as wire

    enc = ChunkEncoder("chatcmpl-9", "haiku", include_usage=False)
    enc.delta(TextDelta(""))
    for top in [{"system_fingerprint": "a"}, {"system_fingerprint": "a"}, {}, {"obfuscation": "x"}]:
        extra = WireExtra(top)
        want = wire.sse(
            wire.chunk("chatcmpl-9", "haiku", enc.created, {"content": "t"}, extra=extra)
        )
        assert enc.delta(TextDelta("t", extra)) == want
