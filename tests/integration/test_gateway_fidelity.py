"""What a provider of kind ``openai`` says reaches the client through `turnout serve` as
it said it: the official openai SDK against the gateway, the gateway against an upstream
whose bodies are written out here (tests/support/canned_upstream.py), on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from support.canned_upstream import CannedUpstream
from support.gateway_rig import KEY, KEY_ENV, gateway_settings
from turnout.gateway.server import Gateway

USER: Any = [{"role": "user", "content": "Say hello"}]
USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 2,
    "total_tokens": 21,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 64,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
HELLO_LOGPROBS = {
    "content": [
        {
            "token": "Hello",
            "logprob": -0.01,
            "bytes": [72, 101, 108, 108, 111],
            "top_logprobs": [
                {"token": "Hello", "logprob": -0.01, "bytes": [72, 101, 108, 108, 111]},
                {"token": "Hi", "logprob": -4.6, "bytes": [72, 105]},
            ],
        }
    ],
    "refusal": None,
}
REFUSAL = "I'm sorry, I can't help with that request."


def completion(
    message: dict[str, Any], *, usage: Any = USAGE, logprobs: Any = None, **top: Any
) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-up1",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "small-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        **top,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(
    delta: dict[str, Any] | None, *, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choice_extra = {"logprobs": extra.pop("logprobs", None)}
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, **choice_extra, "finish_reason": finish}]
    )
    return {
        "id": "chatcmpl-up2",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "small-1",
        "system_fingerprint": "fp_up",
        "choices": choices,
        **extra,
    }


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def upstream() -> AsyncIterator[CannedUpstream]:
    async with CannedUpstream() as up:
        yield up


@pytest.fixture
async def client(upstream: CannedUpstream, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    settings = gateway_settings(
        upstream.base_url,
        more_policies={"both": {"kind": "ensemble", "models": ["small", "large"]}},
    )
    async with (
        Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw,
        openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as c,
    ):
        yield c


# -- max_completion_tokens -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max_completion_tokens", "max_tokens"])
@pytest.mark.parametrize("stream", [False, True])
async def test_the_token_cap_goes_upstream_under_the_name_the_client_used(
    client: openai.AsyncOpenAI, upstream: CannedUpstream, name: str, stream: bool
) -> None:
    if stream:
        upstream.answer([chunk({"content": "Hello"}), chunk({}, finish="stop")])
    else:
        upstream.answer(completion({"content": "Hello"}))
    options: Any = {name: 77}
    r: Any = await client.chat.completions.create(
        model="cheap", messages=USER, stream=stream, **options
    )
    if stream:
        [c async for c in r]
    sent = upstream.bodies[0]
    other = "max_tokens" if name == "max_completion_tokens" else "max_completion_tokens"
    assert sent[name] == 77 and other not in sent


@pytest.mark.parametrize(("param", "sent_by_client"), [
    ("max_completion_tokens", "max_tokens"),  # a reasoning model: only the new name
    ("max_tokens", "max_completion_tokens"),  # a server that knows only the old one
])  # fmt: skip
async def test_a_model_s_own_name_for_the_cap_wins(
    upstream: CannedUpstream, tmp_path: Path, param: str, sent_by_client: str
) -> None:
    from dataclasses import replace

    settings = gateway_settings(upstream.base_url)
    spec = replace(settings.models["small"], name="pinned", max_tokens_param=param)
    settings = replace(settings, models={**settings.models, "pinned": spec})
    upstream.answer(completion({"content": "Hello"}), completion({"content": "Hello"}))
    async with (
        Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw,
        openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as c,
    ):
        options: Any = {sent_by_client: 77}
        await c.chat.completions.create(model="pinned", messages=USER, **options)
        await c.chat.completions.create(model="small", messages=USER, **options)
    pinned, small = upstream.bodies
    assert pinned[param] == 77 and sent_by_client not in pinned
    assert small[sent_by_client] == 77 and param not in small  # other models: as it came


# -- estimated usage -------------------------------------------------------------------------


async def test_a_null_count_is_estimated_not_free(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    nulls = {"prompt_tokens": 19, "completion_tokens": None, "total_tokens": None}
    upstream.answer(completion({"content": "Hello there, how are you?"}, usage=nulls))
    raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens == 19 and usage.completion_tokens > 0
    assert float(raw.headers["x-turnout-cost-usd"]) > 19 / 1e6
    assert raw.headers["x-turnout-usage-estimated"] == "true"


async def test_estimated_usage_is_marked(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    upstream.answer(completion({"content": "Hello there"}, usage=None))
    raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)
    assert raw.headers["x-turnout-usage-estimated"] == "true"
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    upstream.answer(completion({"content": "Hello there"}))
    raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)
    assert "x-turnout-usage-estimated" not in raw.headers  # every count the provider's


async def test_a_streamed_null_count_is_estimated_not_free(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    nulls = {"prompt_tokens": None, "completion_tokens": 5, "total_tokens": None}
    upstream.answer(
        [chunk({"content": "Hello"}), chunk({}, finish="stop"), chunk(None, usage=nulls)]
    )
    stream = await client.chat.completions.create(
        model="cheap", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    usage = [c async for c in stream][-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens == 5


# -- what the answer says besides ------------------------------------------------------------


async def test_logprobs_reach_the_client(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    upstream.answer(completion({"content": "Hello"}, logprobs=HELLO_LOGPROBS))
    r = await client.chat.completions.create(
        model="cheap", messages=USER, logprobs=True, top_logprobs=2
    )
    assert upstream.bodies[0]["logprobs"] is True and upstream.bodies[0]["top_logprobs"] == 2
    logprobs = r.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert logprobs.model_dump()["content"] == HELLO_LOGPROBS["content"]
    assert [t.token for t in logprobs.content[0].top_logprobs] == ["Hello", "Hi"]


async def test_refusal_reaches_the_client(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    upstream.answer(completion({"content": None, "refusal": REFUSAL}))
    r = await client.chat.completions.create(model="cheap", messages=USER)
    assert r.choices[0].message.content is None
    assert r.choices[0].message.refusal == REFUSAL


async def test_a_refusal_counts_as_output_when_usage_is_estimated(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    upstream.answer(completion({"content": None, "refusal": REFUSAL}, usage=None))
    r = await client.chat.completions.create(model="cheap", messages=USER)
    assert r.usage is not None and r.usage.completion_tokens >= len(REFUSAL) // 4


async def test_fingerprint_tier_usage_details_and_annotations_reach_the_client(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    annotations = [
        {
            "type": "url_citation",
            "url_citation": {
                "start_index": 0,
                "end_index": 5,
                "title": "Hi",
                "url": "https://a.example",
            },
        }
    ]
    upstream.answer(
        completion(
            {"content": "Hello", "refusal": None, "annotations": annotations},
            system_fingerprint="fp_44709d6fcb",
            service_tier="default",
        )
    )
    raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)
    r = raw.parse()
    assert r.system_fingerprint == "fp_44709d6fcb" and r.service_tier == "default"
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    assert r.usage.completion_tokens_details.reasoning_tokens == 64
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.audio_tokens == 0
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert (r.usage.model_extra or {})["cost_usd"] > 0
    assert [a.model_dump() for a in r.choices[0].message.annotations or []] == annotations
    assert r.choices[0].message.refusal is None
    assert "x-turnout-usage-estimated" not in raw.headers


async def test_an_ensemble_answer_has_no_single_upstream_to_pass_on(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    upstream.answer(
        *(
            completion({"content": "yes"}, logprobs=HELLO_LOGPROBS, system_fingerprint="fp_x")
            for _ in range(2)
        )
    )
    r = await client.chat.completions.create(model="both", messages=USER)
    assert r.choices[0].message.content == "yes"
    assert r.system_fingerprint is None and r.choices[0].logprobs is None
    assert r.usage is not None and r.usage.completion_tokens_details is None


# -- streams -----------------------------------------------------------------------------------


async def test_streamed_logprobs_ride_on_their_own_chunk(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    words = ["Hel", "lo"]
    per_word = [
        {"content": [{"token": w, "logprob": -0.5, "bytes": list(w.encode()), "top_logprobs": []}],
         "refusal": None}
        for w in words
    ]  # fmt: skip
    upstream.answer(
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            *(chunk({"content": w}, logprobs=lp) for w, lp in zip(words, per_word, strict=True)),
            chunk({}, finish="stop"),
            chunk(None, usage=USAGE),
        ]
    )
    stream = await client.chat.completions.create(
        model="cheap", messages=USER, stream=True, logprobs=True, top_logprobs=0
    )
    chunks = [c async for c in stream]
    with_text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert [c.choices[0].delta.content for c in with_text] == words
    sent = [c.choices[0].logprobs.model_dump() for c in with_text]  # type: ignore[union-attr]
    assert sent == per_word
    assert all(c.choices[0].logprobs is None for c in chunks if c not in with_text and c.choices)
    assert {c.system_fingerprint for c in chunks} == {"fp_up"}


async def test_streamed_refusal_is_forwarded_and_counted(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    pieces = ["I'm sorry, ", "I can't help ", "with that request."]
    upstream.answer(  # no usage from the upstream: turnout estimates it
        [
            chunk({"role": "assistant", "content": None, "refusal": ""}),
            *(chunk({"refusal": p}) for p in pieces),
            chunk({}, finish="stop"),
        ]
    )
    stream = await client.chat.completions.create(
        model="cheap", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    refused = [
        c.choices[0].delta.refusal for c in chunks if c.choices and c.choices[0].delta.refusal
    ]
    assert refused == pieces
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens >= len(REFUSAL) // 4


async def test_a_judged_stream_carries_what_its_answer_said_added_up(
    client: openai.AsyncOpenAI, upstream: CannedUpstream
) -> None:
    words = ["A long enough answer ", "for the cascade's bar."]
    per_word = [{"content": [{"token": w, "logprob": -0.5, "top_logprobs": []}]} for w in words]
    upstream.answer(
        [chunk({"content": "short"}), chunk({}, finish="stop")],  # below the bar: escalated
        [
            *(chunk({"content": w}, logprobs=lp) for w, lp in zip(words, per_word, strict=True)),
            chunk({}, finish="stop"),
        ],
    )
    ask: Any = [{"role": "user", "content": "escalate this"}]
    stream = await client.chat.completions.create(
        model="escalate", messages=ask, stream=True, logprobs=True
    )
    chunks = [c async for c in stream]
    with_text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(c.choices[0].delta.content or "" for c in with_text) == "".join(words)
    logprobs = [t.token for c in with_text for t in (c.choices[0].logprobs.content or [])]  # type: ignore[union-attr]
    assert logprobs == words
