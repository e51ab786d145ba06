"""`turnout serve` on a real socket, a real Turnout behind it, the fake OpenAI server as
the upstream, driven by the official openai SDK (async and sync), raw HTTP and curl."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from support.gateway_rig import FULL, KEY, KEY_ENV, GatewayThread, gateway_settings, reply
from turnout.gateway.server import Gateway
from turnout.testing import FakeOpenAI

USER = [{"role": "user", "content": "Update the README for the new flag"}]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(reply=reply) as server:
        yield server


@pytest.fixture
async def gateway(upstream: FakeOpenAI, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(upstream.base_url)
    async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused") as c:
        yield c


def runs(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select run_id, workflow, policy, status from runs").fetchall()


# -- answers ---------------------------------------------------------------------------------


async def test_json_answer(
    client: openai.AsyncOpenAI, upstream: FakeOpenAI, gateway: Gateway, tmp_path: Path
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)  # type: ignore[arg-type]
    r = raw.parse()
    assert r.choices[0].message.content == FULL
    assert r.model == "small"
    assert raw.headers["x-turnout-model"] == "small"
    assert raw.headers["x-turnout-policy"] == "cheap"
    assert raw.headers["x-turnout-attempts"] == "1"
    assert float(raw.headers["x-turnout-cost-usd"]) > 0
    assert r._request_id == raw.headers["x-request-id"]  # type: ignore[attr-defined]
    assert upstream.requests[0].model == "small-1"
    await gateway.stop()  # flushes the traces
    assert runs(tmp_path / "traces.db") == [
        (raw.headers["x-request-id"], "gateway", "cheap", "succeeded")
    ]


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream(client: openai.AsyncOpenAI, include_usage: bool) -> None:
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await client.chat.completions.create(
        model="cheap", messages=USER, stream=True, **options
    )  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FULL
    assert {c.model for c in chunks} == {"small"}  # the pool model that answered, every chunk
    headers = stream.response.headers
    assert headers["x-turnout-policy"] == "cheap" and headers["x-turnout-model"] == "small"
    assert headers["x-turnout-reason"] and headers["x-request-id"]
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    usage = chunks[-1].usage
    if include_usage:
        assert usage is not None and usage.completion_tokens > 0
        assert chunks[-1].model == "small" and chunks[-1].choices == []
        assert (usage.model_extra or {})["cost_usd"] > 0
    else:
        assert all(c.usage is None for c in chunks)


async def test_tools_round_trip(client: openai.AsyncOpenAI, upstream: FakeOpenAI) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    upstream.script("tool_calls")
    first = await client.chat.completions.create(
        model="cheap", messages=USER, tools=tools, tool_choice="auto"
    )  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup" and first.choices[0].finish_reason == "tool_calls"
    messages: Any = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "found it"},
    ]
    second = await client.chat.completions.create(model="cheap", messages=messages, tools=tools)
    assert second.choices[0].message.content
    sent = upstream.requests[-1].body
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "content": "found it", "tool_call_id": call.id}
    assert sent["tools"] == tools and "tool_choice" not in sent
    assert upstream.requests[0].body["tool_choice"] == "auto"


async def test_rules_route_by_step_headers(
    client: openai.AsyncOpenAI, upstream: FakeOpenAI
) -> None:
    sec = await client.chat.completions.create(
        model="turnout/rules",
        messages=USER,  # type: ignore[arg-type]
        extra_headers={"x-turnout-step": "review", "x-turnout-annotation": "domain=security"},
    )
    docs = await client.chat.completions.create(
        model="rules",
        messages=USER,  # type: ignore[arg-type]
        extra_headers={
            "x-turnout-step": "docs",
            "x-turnout-annotation": "scope=single-file; domain=docs",
        },
    )
    assert (sec.model, docs.model) == ("large", "small")
    assert [r.model for r in upstream.requests] == ["large-1", "small-1"]


async def test_fallback_on_503(client: openai.AsyncOpenAI, upstream: FakeOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="resilient", messages=USER)  # type: ignore[arg-type]
    assert raw.parse().model == "small"
    assert raw.headers["x-turnout-attempts"] == "2"
    assert [r.model for r in upstream.requests] == ["fault:503", "small-1"]
    reason = raw.headers["x-turnout-reason"]
    assert reason.endswith("answered by small after down failed")  # the chain is not said twice
    assert reason.count("down") == 2  # once in the policy's chain, once in what happened


async def test_stream_cut_is_continued_on_the_next_model(
    client: openai.AsyncOpenAI, upstream: FakeOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="continued",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FULL
    assert chunks[-1].model == "large"
    assert chunks[1].model != "large"  # the first chunks came from the model that was cut
    assert [r.model for r in upstream.requests] == ["fault:cut:after=3", "large-1"]
    continuation = upstream.requests[1].body["messages"]
    assert continuation[-2]["role"] == "assistant" and continuation[-1]["role"] == "user"


async def test_ab_sticks_by_user_and_cascade_escalates(
    client: openai.AsyncOpenAI, upstream: FakeOpenAI
) -> None:
    for user in ("u-1", "u-2", "u-3", "u-4"):
        first = await client.chat.completions.create(model="split", messages=USER, user=user)  # type: ignore[arg-type]
        again = await client.chat.completions.create(model="split", messages=USER, user=user)  # type: ignore[arg-type]
        assert first.model == again.model
    upstream.requests.clear()
    ask: Any = [{"role": "user", "content": "escalate this"}]
    raw = await client.chat.completions.with_raw_response.create(model="escalate", messages=ask)
    assert raw.parse().model == "large" and raw.parse().choices[0].message.content == FULL
    assert [r.model for r in upstream.requests] == ["small-1", "large-1"]
    assert raw.headers["x-turnout-attempts"] == "2"
    stream = await client.chat.completions.create(model="escalate", messages=ask, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == FULL  # the rejected cheap answer never reached the client


# -- errors ----------------------------------------------------------------------------------


async def test_error_classes(client: openai.AsyncOpenAI, upstream: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="cheap", messages=[{"role": "user"}])  # type: ignore[list-item, typeddict-item]
    assert bad.value.param == "messages[0].content"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="gpt-17", messages=USER)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        await client.chat.completions.create(model="narrow", messages=USER)  # type: ignore[arg-type]
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="throttled", messages=USER)  # type: ignore[arg-type]
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as failed:
        await client.chat.completions.create(model="doomed", messages=USER)  # type: ignore[arg-type]
    assert failed.value.status_code == 502
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert failed.value.body["attempts"][0]["error"] == "server_error"  # type: ignore[index]
    calls = len(upstream.requests)
    with pytest.raises(openai.InternalServerError) as opened:  # the breaker is open now
        await client.chat.completions.create(model="doomed", messages=USER)  # type: ignore[arg-type]
    assert opened.value.status_code == 503 and opened.value.code == "circuit_open"
    assert int(opened.value.response.headers["retry-after"]) in (59, 60)  # the cooldown
    assert opened.value.response.headers["x-should-retry"] == "false"  # the SDK fails fast
    assert len(upstream.requests) == calls  # not called at all
    # the SDK did not retry any of them: one upstream call per request
    assert [r.model for r in upstream.requests] == [
        "fault:context_length",
        "fault:429:retry-after=7",
        "fault:500",
    ]


async def test_too_large_and_malformed(
    gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    settings = gateway_settings(upstream.base_url, max_body_bytes=1024)
    async with Gateway(settings, port=0, store=str(tmp_path / "small.db")) as small:
        async with openai.AsyncOpenAI(base_url=small.base_url, api_key="x", max_retries=0) as c:
            with pytest.raises(openai.APIStatusError) as big:
                await c.chat.completions.create(
                    model="cheap", messages=[{"role": "user", "content": "x" * 4000}]
                )
        assert big.value.status_code == 413
    url = gateway.base_url + "/chat/completions"
    async with aiohttp.ClientSession() as s:
        for raw in (
            b"{",
            b'{"model": "cheap", "messages": "hi"}',
            b'{"model": "cheap", "messages": [], "n": 3}',
        ):
            async with s.post(url, data=raw, headers={"content-type": "application/json"}) as r:
                assert r.status == 400
                assert set((await r.json())["error"]) >= {"message", "type", "param", "code"}
    assert upstream.requests == []


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = {m.id: m.model_extra for m in (await client.models.list()).data}
    assert models["rules"] == {"policy_kind": "rules"}
    assert models["small"] == {"tier": "efficient"}
    rules = await client.models.retrieve("rules")
    assert (rules.id, rules.owned_by, rules.model_extra) == ("rules", "turnout", models["rules"])
    assert (await client.models.retrieve("turnout/rules")).id == "rules"
    assert (await client.models.retrieve("small")).model_extra == {"tier": "efficient"}
    for unknown in ("gpt-17", "turnout/small"):  # turnout/ names policies, not pool models
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve(unknown)
        assert missing.value.code == "model_not_found" and "rules" in missing.value.message


# -- the client hangs up ------------------------------------------------------------------------


async def test_client_disconnect_cancels_upstream(tmp_path: Path) -> None:
    async with FakeOpenAI(reply=" ".join(["word"] * 200), chunk_delay=0.05) as slow:
        settings = gateway_settings(slow.base_url)
        async with Gateway(settings, port=0, store=str(tmp_path / "t.db")) as gw:
            async with aiohttp.ClientSession() as s:
                body = {"model": "cheap", "messages": USER, "stream": True}
                async with s.post(gw.base_url + "/chat/completions", json=body) as r:
                    await r.content.readline()
            for _ in range(40):
                if slow.hangups:
                    break
                await asyncio.sleep(0.05)
            assert slow.hangups == 1  # the upstream stream was closed, long before its end
        with sqlite3.connect(tmp_path / "t.db") as conn:
            row = conn.execute("select status, error_class, output_tokens from attempts").fetchone()
        assert row[:2] == ("error", "abandoned") and row[2] > 0  # charged for what it streamed


# -- sync SDK and curl ----------------------------------------------------------------------------


def test_sync_sdk_and_curl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        FakeOpenAI.start_in_thread(reply=reply) as up,
        GatewayThread(gateway_settings(up.base_url), tmp_path / "t.db") as gw,
    ):
        with openai.OpenAI(base_url=gw.base_url, api_key="unused") as client:
            r = client.chat.completions.create(model="cheap", messages=USER, user="u-9")  # type: ignore[arg-type]
            assert r.choices[0].message.content == FULL
            text = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(model="cheap", messages=USER, stream=True)  # type: ignore[arg-type]
                if c.choices
            )
            assert text == FULL
            assert [m.id for m in client.models.list()][:1] == ["rules"]
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="nope", messages=USER)  # type: ignore[arg-type]
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        body = json.dumps(
            {
                "model": "cheap",
                "messages": USER,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        out = subprocess.run(
            [
                "curl",
                "-sN",
                gw.base_url + "/chat/completions",
                "-H",
                "content-type: application/json",
                "-d",
                body,
            ],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        frames = out.split(b"\n\n")
        assert frames[-2:] == [b"data: [DONE]", b""]
        assert all(f.startswith(b"data: {") for f in frames[:-2])
        usage = json.loads(frames[-3].removeprefix(b"data: "))
        assert usage["choices"] == [] and usage["usage"]["cost_usd"] > 0
        assert out.count(b"[DONE]") == 1
