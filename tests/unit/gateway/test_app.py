"""The gateway's HTTP surface on a real socket, the façade replaced by a double, driven
by the official openai SDK (async) and raw aiohttp requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from support.gateway_double import FakeAnswer, FakeEngine, ok_answer
from turnout.config import Settings, settings_from_dict
from turnout.errors import AllAttemptsFailed, RateLimited, ServerError
from turnout.gateway.server import Gateway
from turnout.types import StreamEnd, TextDelta, Usage

MESSAGES = [{"role": "user", "content": "Update the README"}]


@pytest.fixture
def gw_settings(pool_dict: dict) -> Settings:  # type: ignore[type-arg]
    pool_dict["gateway"] = {"default_policy": "mixed", "max_body_bytes": 2048}
    return settings_from_dict(pool_dict)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(answer=ok_answer())


@pytest.fixture
async def gateway(gw_settings: Settings, engine: FakeEngine) -> AsyncIterator[Gateway]:
    async with Gateway(gw_settings, port=0, engine=engine) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=2) as c:
        yield c


async def test_json_answer_and_headers(client: openai.AsyncOpenAI, engine: FakeEngine) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="turnout/mixed",
        messages=MESSAGES,  # type: ignore[arg-type]
        user="u-1",
        extra_headers={"x-turnout-step": "docs", "x-turnout-annotation": "domain=docs"},
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello there."
    assert answer.model == "haiku"
    assert answer.usage is not None and answer.usage.prompt_tokens == 12
    assert raw.headers["x-turnout-model"] == "haiku"
    assert raw.headers["x-turnout-policy"] == "rules"
    assert raw.headers["x-turnout-attempts"] == "1"
    assert raw.headers["x-turnout-cost-usd"] == "0.000027"
    call = engine.calls[0]
    assert call["policy"] == "mixed" and call["model"] is None
    assert call["step"] == "docs" and call["workflow"] == "gateway"
    assert call["tags"] == {"user": "u-1"} and call["run_id"] == raw.headers["x-request-id"]
    assert answer.id == f"chatcmpl-{call['run_id']}"


async def test_pool_model_and_auto(client: openai.AsyncOpenAI, engine: FakeEngine) -> None:
    await client.chat.completions.create(model="haiku", messages=MESSAGES)  # type: ignore[arg-type]
    await client.chat.completions.create(model="auto", messages=MESSAGES)  # type: ignore[arg-type]
    assert [(c["policy"], c["model"]) for c in engine.calls] == [(None, "haiku"), ("mixed", None)]


async def test_stream_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="mixed",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.model_extra == {"cost_usd": 0.000027}
    assert {c.model for c in chunks} == {"haiku"} or chunks[-1].model == "haiku"


async def test_stream_failing_before_first_token_is_a_plain_error(
    client: openai.AsyncOpenAI, engine: FakeEngine
) -> None:
    engine.events = [AllAttemptsFailed(None, [ServerError("503", model="haiku", status=503)])]
    engine.answer = FakeAnswer(ok=False)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="mixed", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    assert len(engine.calls) == 1  # x-should-retry: false, the SDK did not retry


async def test_stream_cut_after_tokens_ends_with_an_error_event(
    client: openai.AsyncOpenAI, engine: FakeEngine
) -> None:
    engine.events = [TextDelta("Hel"), AllAttemptsFailed(None, [ServerError("cut", model="haiku")])]
    stream = await client.chat.completions.create(model="mixed", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    got: list[object] = []

    async def drain() -> None:
        async for chunk in stream:
            got.append(chunk)

    with pytest.raises(openai.APIError, match="attempt"):
        await drain()
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hel"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "exc_type", "status"),
    [
        (
            AllAttemptsFailed(None, [ServerError("x", model="a", status=500)]),
            openai.InternalServerError,
            502,
        ),
        (
            AllAttemptsFailed(None, [RateLimited("x", model="a", retry_after=1)]),
            openai.RateLimitError,
            429,
        ),
    ],
)
async def test_failed_answers(
    client: openai.AsyncOpenAI, engine: FakeEngine, error: Exception, exc_type: type, status: int
) -> None:
    engine.answer = FakeAnswer(ok=False, error=error)  # type: ignore[arg-type]
    with pytest.raises(exc_type) as caught:
        await client.chat.completions.create(model="mixed", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert len(engine.calls) == 1  # not retried by the SDK
    assert caught.value.response.headers["x-should-retry"] == "false"  # type: ignore[attr-defined]


async def test_request_errors(
    client: openai.AsyncOpenAI, gateway: Gateway, engine: FakeEngine
) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        await client.chat.completions.create(model="gpt-17", messages=MESSAGES)  # type: ignore[arg-type]
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="mixed", messages=MESSAGES, temperature=7)  # type: ignore[arg-type]
    assert bad.value.param == "temperature" and "temperature" in bad.value.message
    with pytest.raises(openai.BadRequestError) as n:
        await client.chat.completions.create(model="mixed", messages=MESSAGES, n=2)  # type: ignore[arg-type]
    assert n.value.param == "n"
    with pytest.raises(openai.APIStatusError) as big:
        await client.chat.completions.create(
            model="mixed", messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert big.value.status_code == 413
    assert engine.calls == []
    async with aiohttp.ClientSession() as s:
        url = gateway.base_url + "/chat/completions"
        for raw in (b"{oops", b"", b"[]"):
            async with s.post(url, data=raw, headers={"content-type": "application/json"}) as r:
                body = await r.json()
                assert r.status == 400 and body["error"]["type"] == "invalid_request_error"
                assert r.headers["x-request-id"]
        async with s.post(
            url, json={"model": "mixed", "messages": MESSAGES}, headers={"x-turnout-tags": "oops"}
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "header:x-turnout-tags"
        async with s.get(gateway.base_url + "/nowhere") as r:
            assert r.status == 404 and "error" in await r.json()


async def test_models_and_health(client: openai.AsyncOpenAI, gateway: Gateway) -> None:
    models = {m.id: m for m in (await client.models.list()).data}
    assert set(models) >= {"all_frontier", "mixed", "opus", "haiku"}
    assert models["haiku"].model_extra == {"tier": "efficient"}
    assert models["mixed"].model_extra == {"policy_kind": "per_step"}
    root = gateway.base_url.removesuffix("/v1")
    async with aiohttp.ClientSession() as s:
        for path in ("/health/live", "/health/ready"):
            async with s.get(root + path) as r:
                assert r.status == 200


async def test_every_response_has_a_request_id(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    async with aiohttp.ClientSession() as s:
        for method, path, status in (
            ("GET", "/nope", 404),
            ("DELETE", "/v1/models", 405),
            ("GET", "/health/live", 200),
            ("GET", "/health/ready", 200),
            ("GET", "/v1/models", 200),
            ("GET", "/admin/keys", 404),  # no admin key: as if it did not exist
            ("GET", "/metrics", 200),
        ):
            async with s.request(method, root + path) as r:
                assert r.status == status, path
                assert len(r.headers.get("x-request-id", "")) >= 12, (method, path)
        ids = set()
        for _ in range(2):
            async with s.get(root + "/nope") as r:
                ids.add(r.headers["x-request-id"])
        assert len(ids) == 2  # one a response


async def test_a_preflight_from_an_origin_not_allowed_is_403_without_cors_headers(
    pool_dict: dict,
    engine: FakeEngine,  # type: ignore[type-arg]
) -> None:
    pool_dict["gateway"] = {"cors": {"allow_origins": ["https://app.example.com"]}}
    async with Gateway(settings_from_dict(pool_dict), port=0, engine=engine) as gw:
        url = gw.base_url + "/chat/completions"
        asks = {"access-control-request-method": "POST"}
        async with aiohttp.ClientSession() as s:
            async with s.options(url, headers={"origin": "https://app.example.com", **asks}) as r:
                assert r.status == 204
                assert r.headers["access-control-allow-origin"] == "https://app.example.com"
            async with s.options(url, headers={"origin": "https://evil.example", **asks}) as r:
                body = await r.json()
                assert r.status == 403 and body["error"]["code"] == "cors_origin_not_allowed"
                assert not any(h.lower().startswith("access-control-") for h in r.headers)
                assert r.headers["x-request-id"]
            async with s.options(url, headers={"origin": "https://evil.example"}) as r:
                assert r.status == 405  # not a preflight: no route for OPTIONS
            body = {"model": "mixed", "messages": MESSAGES}
            async with s.post(url, json=body, headers={"origin": "https://evil.example"}) as r:
                assert r.status == 200 and "access-control-allow-origin" not in r.headers
            good = {"origin": "https://app.example.com"}
            async with s.post(url, json=body, headers=good) as r:  # a page may read them
                exposed = r.headers["access-control-expose-headers"].split(", ")
                for name in ("x-turnout-usage-estimated", "x-ratelimit-remaining-tokens",
                             "x-turnout-budget-remaining-usd", "retry-after"):  # fmt: skip
                    assert name in exposed


async def test_client_hangup_cancels_the_call(gateway: Gateway, engine: FakeEngine) -> None:
    engine.events = [TextDelta("a"), TextDelta("b"), StreamEnd("stop", Usage(1, 1), "haiku")]
    engine.delay = 0.3
    async with aiohttp.ClientSession() as s:
        body = {"model": "mixed", "messages": MESSAGES, "stream": True}
        async with s.post(gateway.base_url + "/chat/completions", json=body) as r:
            await r.content.readline()  # the first frame has arrived
    for _ in range(50):
        if engine.streams and engine.streams[0].closed:
            break
        await asyncio.sleep(0.05)
    assert engine.streams[0].closed


async def test_json_hangup_cancels_the_handler(gateway: Gateway, engine: FakeEngine) -> None:
    engine.delay = 5.0
    async with aiohttp.ClientSession() as s:
        body = json.dumps({"model": "mixed", "messages": MESSAGES})
        with pytest.raises(asyncio.TimeoutError):
            async with s.post(
                gateway.base_url + "/chat/completions",
                data=body,
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
    for _ in range(50):
        if engine.cancelled:
            break
        await asyncio.sleep(0.05)
    assert engine.cancelled == 1  # the handler was cancelled with the connection
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await gateway.stop()
    assert loop.time() - t0 < 2.0
