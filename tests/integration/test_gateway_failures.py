"""Retries and error replies of `turnout serve` as the official openai SDK sees them: a
real gateway on a real socket, the fake OpenAI server as its upstream."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from support.gateway_rig import FULL, KEY, KEY_ENV, gateway_settings, reply
from turnout.gateway.server import Gateway
from turnout.testing import FakeOpenAI, Fault

USER: Any = [{"role": "user", "content": "Update the README for the new flag"}]
NO_BREAKER = {"enabled": False}


def retries(max_attempts: int, **more: Any) -> dict[str, Any]:
    return {"max_attempts": max_attempts, "base_delay_s": 0.01, "max_delay_s": 0.02, **more}


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    """The fake upstream, and the key the gateway's provider sends it."""
    monkeypatch.setenv(KEY_ENV, KEY)
    async with FakeOpenAI(reply=reply) as server:
        yield server


@asynccontextmanager
async def serve(
    upstream: FakeOpenAI,
    tmp_path: Path,
    *,
    executor: Mapping[str, Any] | None = None,
    models: Mapping[str, str] | None = None,
    policies: Mapping[str, Any] | None = None,
    max_retries: int = 2,
    **gateway: Any,
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The gateway over ``upstream`` (its traces in ``tmp_path/traces.db``, written by the
    time this ends) and an SDK client with its usual retries."""
    settings = gateway_settings(
        upstream.base_url,
        more_models=models,
        more_policies=policies,
        more_executor=executor,
        **gateway,
    )
    async with (
        Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw,
        openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=max_retries) as client,
    ):
        yield client


# -- Retry-After ----------------------------------------------------------------------------


async def test_an_upstream_503_retry_after_is_waited_before_the_retry(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.script("503:retry-after=1")
    executor = {"retries": retries(2), "breaker": NO_BREAKER}
    async with serve(upstream, tmp_path, executor=executor) as client:
        t0 = time.perf_counter()
        raw = await client.chat.completions.with_raw_response.create(model="cheap", messages=USER)
        elapsed = time.perf_counter() - t0
    assert raw.parse().choices[0].message.content == FULL
    assert raw.headers["x-turnout-attempts"] == "2"
    assert [r.model for r in upstream.requests] == ["small-1", "small-1"]
    assert 1.0 <= elapsed < 2.5, elapsed  # the upstream's second, not the 0.01 s backoff


async def test_a_retry_after_past_the_cap_is_not_retried_and_reaches_the_client(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """The upstream asked for 120 s; turnout waits at most 1 s: it does not ask that model
    again into a limit it knows is on, and passes the provider's 120 s on. A fallback
    moves on to its next model at once."""
    executor = {"retries": retries(3, max_retry_after_s=1), "breaker": NO_BREAKER}
    models = {"busy": "fault:429:retry-after=120", "sleepy": "fault:503:retry-after=120"}
    policies = {"busy": {"kind": "static", "model": "busy"},
                "sleepy": {"kind": "static", "model": "sleepy"},
                "onwards": {"kind": "fallback", "models": ["sleepy", "small"]}}  # fmt: skip
    async with serve(upstream, tmp_path, executor=executor, models=models, policies=policies) as c:
        t0 = time.perf_counter()
        with pytest.raises(openai.RateLimitError) as limited:
            await c.chat.completions.create(model="busy", messages=USER)
        assert time.perf_counter() - t0 < 0.8
        assert limited.value.response.headers["retry-after"] == "120"
        assert limited.value.response.headers["x-turnout-attempts"] == "1"
        assert [r.model for r in upstream.requests] == ["fault:429:retry-after=120"]
        with pytest.raises(openai.InternalServerError) as unavailable:
            await c.chat.completions.create(model="sleepy", messages=USER)
        assert unavailable.value.response.headers["retry-after"] == "120"
        upstream.reset()
        t0 = time.perf_counter()
        raw = await c.chat.completions.with_raw_response.create(model="onwards", messages=USER)
        assert time.perf_counter() - t0 < 0.8
    assert raw.parse().model == "small"
    assert [r.model for r in upstream.requests] == ["fault:503:retry-after=120", "small-1"]


async def test_an_upstream_404_is_the_gateways_configuration_not_the_callers_request(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """A provider without the endpoint or the model (a wrong base_url or model id) answers
    404: the caller hears 502 (not a 400 blaming its request), once, and a fallback moves
    on to its next model."""
    executor = {"retries": retries(3), "breaker": NO_BREAKER}
    models = {"gone": "fault:404"}
    policies = {"gone": {"kind": "static", "model": "gone"},
                "onwards": {"kind": "fallback", "models": ["gone", "small"]}}  # fmt: skip
    async with serve(upstream, tmp_path, executor=executor, models=models, policies=policies) as c:
        with pytest.raises(openai.InternalServerError) as failed:
            await c.chat.completions.create(model="gone", messages=USER)
        assert failed.value.status_code == 502 and failed.value.code == "all_attempts_failed"
        assert [r.model for r in upstream.requests] == ["fault:404"]  # not asked again
        upstream.reset()
        answer = await c.chat.completions.create(model="onwards", messages=USER)
    assert answer.model == "small"
    assert [r.model for r in upstream.requests] == ["fault:404", "small-1"]


# -- what the upstream said -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tokens", "requests", None])
async def test_an_upstream_429_is_openais_rate_limit_exceeded_of_its_type(
    upstream: FakeOpenAI, tmp_path: Path, kind: str | None
) -> None:
    wait = (("Retry-After", "3"),)
    upstream.script(Fault.error(429, code="rate_limit_exceeded", error_type=kind, headers=wait))
    async with serve(upstream, tmp_path) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="cheap", messages=USER)
    assert limited.value.code == "rate_limit_exceeded"  # as the gateway's own key limit says
    assert limited.value.type == (kind or "requests")
    assert limited.value.response.headers["retry-after"] == "3"
    assert len(upstream.requests) == 1  # x-should-retry: false: turnout already retried


async def test_an_upstream_400_keeps_its_param_and_code(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    invalid = Fault.error(400, "temperature must be at most 2", code="invalid_value",
                          error_type="invalid_request_error", param="temperature")  # fmt: skip
    upstream.script(invalid)
    async with serve(upstream, tmp_path) as client:
        with pytest.raises(openai.BadRequestError) as too_long:
            await client.chat.completions.create(model="narrow", messages=USER)
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model="cheap", messages=USER)
    assert (too_long.value.code, too_long.value.param) == ("context_length_exceeded", "messages")
    assert (bad.value.code, bad.value.param) == ("invalid_value", "temperature")


# -- what a client is told -----------------------------------------------------------------


async def test_a_client_hears_which_provider_failed_not_where_it_is(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """Every key holder reads error messages: they name the provider and the model; the
    upstream's URL stays in the trace, for the operator."""
    executor = {"retries": retries(1), "breaker": NO_BREAKER}
    messages: list[str] = []
    async with serve(upstream, tmp_path, executor=executor, on_stream_cut="fail") as client:
        with pytest.raises(openai.InternalServerError) as answered:
            await client.chat.completions.create(model="doomed", messages=USER)
        messages.append(answered.value.message)
        with pytest.raises(openai.InternalServerError) as streamed:
            await client.chat.completions.create(model="doomed", messages=USER, stream=True)
        messages.append(streamed.value.message)
        for failed in (answered.value, streamed.value):  # before any token: as unstreamed
            assert failed.response.headers["x-turnout-cost-usd"] == "0"
            assert failed.response.headers["x-turnout-attempts"] == "1"
        stream = await client.chat.completions.create(
            model="cut", messages=USER, stream=True, max_tokens=50
        )
        with pytest.raises(openai.APIError) as cut:  # in-band, after the first tokens
            async for _ in stream:
                pass
        messages.append(cut.value.message)
    host = upstream.base_url.split("//")[1].split("/")[0]  # 127.0.0.1:PORT
    for message in messages:
        assert host not in message and "http://" not in message, message
        assert re.search(r"\bup\b", message), message  # the provider, by name
    assert "broken (fault:500): HTTP 500 from up: " in messages[0]  # pool model (its id), provider
    with sqlite3.connect(tmp_path / "traces.db") as db:
        traced = [e for (e,) in db.execute("select error from attempts where error is not null")]
    assert len(traced) == 3 and all(upstream.base_url in e for e in traced), traced


# -- attempts: the calls made to providers ---------------------------------------------------


def attempts_said(error: openai.APIStatusError) -> tuple[str, list[Any], list[Any]]:
    """The header, and the body's calls and skipped models."""
    body: Any = error.body
    return error.response.headers["x-turnout-attempts"], body["attempts"], body["skipped"]


@pytest.mark.parametrize("stream", [False, True])
async def test_the_attempts_header_and_body_agree(
    upstream: FakeOpenAI, tmp_path: Path, stream: bool
) -> None:
    """broken: a 500 opens its breaker (min_requests 1), so the retry is refused unsent:
    one call, and one model skipped. Then only the breaker answers: no call at all."""
    executor = {"retries": retries(2)}  # the rig's breaker: opens on the first failure
    async with serve(upstream, tmp_path, executor=executor, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError) as first:
            await client.chat.completions.create(model="doomed", messages=USER, stream=stream)
        with pytest.raises(openai.InternalServerError) as then:
            await client.chat.completions.create(model="doomed", messages=USER, stream=stream)
    assert len(upstream.requests) == 1
    header, calls, skipped = attempts_said(first.value)
    assert header == "1" and calls == [{"model": "broken", "error": "server_error", "status": 500}]
    assert skipped == [{"model": "broken", "error": "circuit_open"}]
    assert then.value.status_code == 503 and then.value.code == "circuit_open"
    header, calls, skipped = attempts_said(then.value)
    assert (header, calls, skipped) == ("0", [], [{"model": "broken", "error": "circuit_open"}])


async def test_a_cache_hit_is_no_attempt(upstream: FakeOpenAI, tmp_path: Path) -> None:
    executor = {"cache": {"exact": {"enabled": True}}}
    async with serve(upstream, tmp_path, executor=executor) as client:
        said = []
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="cheap", messages=USER, temperature=0
            )
            said.append(raw.headers["x-turnout-attempts"])
    assert said == ["1", "0"] and len(upstream.requests) == 1


# -- an open breaker -------------------------------------------------------------------------


def breaker(cooldown_s: float) -> dict[str, Any]:
    """Opens on the first failure."""
    return {"enabled": True, "min_requests": 1, "failure_rate": 1.0, "cooldown_s": cooldown_s}


async def test_a_short_breaker_cooldown_is_said_and_the_sdk_fails_fast(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """small fails once: its breaker opens for 1 s. The next request's 503 says
    retry-after 1, and x-should-retry: false, so the SDK hands it to its caller at once
    rather than sitting out the cooldown (up to a minute, twice, for a longer one)."""
    upstream.script("500")
    executor = {"retries": retries(1), "breaker": breaker(1.0)}
    async with serve(upstream, tmp_path, executor=executor) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="cheap", messages=USER)
        t0 = time.perf_counter()
        with pytest.raises(openai.InternalServerError) as opened:
            await client.chat.completions.create(model="cheap", messages=USER)
        waited = time.perf_counter() - t0
        headers = opened.value.response.headers
        assert (opened.value.code, headers["retry-after"]) == ("circuit_open", "1")
        assert headers["x-should-retry"] == "false" and waited < 0.5, waited
        await asyncio.sleep(1.1)  # the cooldown is over: the breaker's probe answers
        answer = await client.chat.completions.create(model="cheap", messages=USER)
    assert answer.choices[0].message.content == FULL
    assert [r.model for r in upstream.requests] == ["small-1", "small-1"]


async def test_a_long_breaker_cooldown_is_said_and_not_retried(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.script("500")
    executor = {"retries": retries(1), "breaker": breaker(300.0)}
    async with serve(upstream, tmp_path, executor=executor) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="cheap", messages=USER)
        with pytest.raises(openai.InternalServerError) as opened:
            await client.chat.completions.create(model="cheap", messages=USER)
    headers = opened.value.response.headers
    assert opened.value.status_code == 503 and opened.value.code == "circuit_open"
    assert 299 <= int(headers["retry-after"]) <= 300
    assert headers["x-should-retry"] == "false"
    assert len(upstream.requests) == 1
    with sqlite3.connect(tmp_path / "traces.db") as db:
        assert db.execute("select count(*) from runs").fetchone() == (2,)  # not retried


async def test_a_providers_429s_do_not_open_its_breaker(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """A 429 says the provider is up and when to come back: the caller keeps hearing a
    429 (RateLimitError, the upstream's type), not a 502 or 503 from a breaker the 429s
    opened."""
    executor = {"retries": retries(2), "breaker": breaker(30.0)}
    models = {"busy": "fault:429:retry-after=0"}
    policies = {"busy": {"kind": "static", "model": "busy"}}
    async with serve(upstream, tmp_path, executor=executor, models=models, policies=policies) as c:
        for _ in range(3):
            with pytest.raises(openai.RateLimitError) as limited:
                await c.chat.completions.create(model="busy", messages=USER)
            assert limited.value.code == "rate_limit_exceeded"
    assert len(upstream.requests) == 6  # every request asked it, twice: no breaker between
