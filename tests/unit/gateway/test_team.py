"""The team layer in one process: auth rules by host, the admin API, in-process limits
and budgets, spans from a request (a real Turnout over the fake upstream, SQLite)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.gateway_rig import KEY, KEY_ENV, gateway_settings, reply
from turnout.errors import ConfigError
from turnout.gateway.config import GatewayConfig, is_loopback
from turnout.gateway.server import Gateway
from turnout.keys import KeyStore, Period
from turnout.testing import FakeOpenAI
from turnout.tracing.rows import cost_to_pico
from turnout.tracing.sqlite import SQLiteStore

ADMIN = "admin-unit-test-key-0123456789"
HI = [{"role": "user", "content": "hi"}]


def test_auth_by_host() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert GatewayConfig().auth_for("127.0.0.1") == "none"
    assert GatewayConfig().auth_for("0.0.0.0") == "keys"
    assert GatewayConfig(auth="keys").auth_for("127.0.0.1") == "keys"
    with pytest.raises(ConfigError, match=r"gateway\.auth: .*only on a loopback host"):
        GatewayConfig(auth="none").auth_for("0.0.0.0")


def test_auth_none_off_loopback_is_refused_before_serving() -> None:
    settings = gateway_settings("http://127.0.0.1:9/v1", auth="none")
    with pytest.raises(ConfigError, match="loopback"):
        Gateway(settings, host="0.0.0.0", port=0)


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("TURNOUT_ADMIN_KEY", ADMIN)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    async with FakeOpenAI(reply=reply) as server:
        yield server


@pytest.fixture
async def gateway(upstream: FakeOpenAI, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(upstream.base_url, auth="keys")
    async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
        yield gw


async def call(session: aiohttp.ClientSession, gw: Gateway, method: str, path: str,
               key: str | None = None, **kw: Any) -> tuple[int, Any, Any]:  # fmt: skip
    headers = {"authorization": f"Bearer {key}"} if key else {}
    url = gw.base_url.removesuffix("/v1") + path
    async with session.request(method, url, headers=headers, **kw) as r:
        return r.status, r.headers, await r.json()


async def test_admin_api(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        assert (await call(s, gateway, "GET", "/admin/keys"))[0] == 401
        assert (await call(s, gateway, "GET", "/admin/keys", "wrong"))[0] == 401
        status, _, made = await call(s, gateway, "POST", "/admin/keys", ADMIN, json={
            "name": "team-a", "budget_usd": "0.5", "period": "week", "rpm": 2,
            "policies": ["cheap"], "expires": "2099-01-01"})  # fmt: skip
        assert status == 201 and made["key"].startswith("tk-") and made["rpm"] == 2
        status, _, bad = await call(s, gateway, "POST", "/admin/keys", ADMIN,
                                    json={"name": "b", "rpm": "many"})  # fmt: skip
        assert status == 400 and bad["error"]["param"] == "rpm"
        status, _, bad = await call(s, gateway, "POST", "/admin/keys", ADMIN,
                                    json={"name": "b", "rmp": 5})  # fmt: skip
        assert (status, bad["error"]["param"]) == (400, "rmp")
        assert "known: name, budget_usd" in bad["error"]["message"]
        for body, param in (
            ({"name": "c", "budget_usd": "1e7"}, "budget_usd"),
            ({"name": "c", "policies": ["nosuch"]}, "policies"),  # not this gateway's
            ({"name": "c", "models": ["gpt-9"]}, "models"),
            ({"name": "bad name!"}, "name"),
            ({"name": "a", "tpm": -1}, "tpm"),
        ):
            status, _, bad = await call(s, gateway, "POST", "/admin/keys", ADMIN, json=body)
            assert (status, bad["error"]["param"]) == (400, param)  # the JSON field, no option
        status, _, bad = await call(s, gateway, "PATCH", "/admin/keys/ghost", ADMIN,
                                    json={"rpm": 5})  # fmt: skip
        assert (status, bad["error"]["code"]) == (404, "key_not_found")
        status, _, changed = await call(s, gateway, "PATCH", "/admin/keys/team-a", ADMIN,
                                        json={"rpm": None, "models": ["small"]})  # fmt: skip
        assert status == 200 and changed["rpm"] is None and changed["models"] == ["small"]
        for name, expected in (("renamed", 400), ("team-a", 200)):  # its own name is no change
            status, _, _ = await call(s, gateway, "PATCH", "/admin/keys/team-a", ADMIN,
                                      json={"name": name, "rpm": 10})  # fmt: skip
            assert status == expected, name
        status, _, bad = await call(
            s,
            gateway,
            "POST",
            "/admin/keys",
            ADMIN,
            json={"name": "far", "expires": "9999-12-31T23:59:59-12:00"},
        )
        assert (status, bad["error"]["param"]) == (400, "expires")
        assert (await call(s, gateway, "GET", "/admin/keys/far", ADMIN))[0] == 404
        status, _, shown = await call(s, gateway, "GET", "/admin/keys/team-a", ADMIN)
        assert shown["budget_usd"] == "0.5" and "key" not in shown
        key = made["key"]
        body = {"model": "cheap", "messages": HI}
        status, headers, _ = await call(s, gateway, "POST", "/v1/chat/completions", key, json=body)
        assert status == 200 and "x-turnout-budget-remaining-usd" in headers
        cost = Decimal(headers["x-turnout-cost-usd"])
        for _ in range(50):  # traced by the writer, in a batch
            status, _, shown = await call(s, gateway, "GET", "/admin/keys/team-a", ADMIN)
            if Decimal(shown["spent_usd"]):
                break
            await asyncio.sleep(0.05)
        assert (Decimal(shown["spent_usd"]), Decimal(shown["remaining_usd"])) == (
            cost,
            Decimal("0.5") - cost,
        )
        status, _, _ = await call(s, gateway, "DELETE", "/admin/keys/team-a", ADMIN)
        status, _, refused = await call(s, gateway, "POST", "/v1/chat/completions", key, json=body)
        assert (status, refused["error"]["code"]) == (401, "key_revoked")


async def test_the_admin_api_reads_fields_as_turnout_keys_reads_options(
    gateway: Gateway,
) -> None:
    async with aiohttp.ClientSession() as s:
        status, _, made = await call(s, gateway, "POST", "/admin/keys", ADMIN, json={
            "name": "k", "budget_usd": 5, "rpm": 0, "expires": "never"})  # fmt: skip
        assert status == 201 and made["rpm"] is None and made["expires_at"] is None
        for body, field, value in (
            ({"rpm": 7}, "rpm", 7),
            ({"rpm": 0}, "rpm", None),  # as `keys update --rpm 0`
            ({"expires": "2099-01-01"}, "expires_at", "2099-01-01T00:00:00+00:00"),
            ({"expires": "never"}, "expires_at", None),  # as `--expires never`
            ({"budget_usd": "none"}, "budget_usd", None),  # as `--budget-usd none`
            ({"policies": "cheap"}, "policies", ["cheap"]),  # as `--policies cheap`
        ):
            status, _, changed = await call(s, gateway, "PATCH", "/admin/keys/k", ADMIN,
                                            json=body)  # fmt: skip
            assert (status, changed.get(field)) == (200, value), (body, changed)
        for body in ({}, {"name": "k"}):  # as `keys update k` with no option
            status, _, bad = await call(s, gateway, "PATCH", "/admin/keys/k", ADMIN, json=body)
            assert status == 400 and bad["error"]["message"].startswith("nothing to change")
        status, _, _ = await call(s, gateway, "POST", "/admin/keys/k/revoke", ADMIN)
        assert status == 200
        status, _, bad = await call(s, gateway, "PATCH", "/admin/keys/k", ADMIN, json={"rpm": 5})
        assert (status, bad["error"]["code"]) == (409, "key_revoked")
        assert "is revoked" in bad["error"]["message"]


async def test_in_process_limits_and_budget(gateway: Gateway, tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "traces.db") as store:
        keys = KeyStore(store)
        limited, _ = keys.create("limited", rpm=3)
        # each request holds (3 prompt tokens x $1 + 40 x $2) / 1M = $0.000083 until settled
        budgeted, _ = keys.create("budgeted", budget_usd=Decimal("0.0001"), period=Period.DAY)

    async def codes(key: str, n: int) -> list[str]:
        out = []
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                body = {"model": "cheap", "messages": HI, "max_tokens": 40}
                status, _, answer = await call(s, gateway, "POST", "/v1/chat/completions",
                                               key, json=body)  # fmt: skip
                out.append(answer["error"]["code"] if status != 200 else "ok")
        return out

    assert await codes(limited, 5) == ["ok"] * 3 + ["rate_limit_exceeded"] * 2
    spent = await codes(budgeted, 4)
    assert spent[0] == "ok" and spent[-1] == "budget_exceeded"


async def test_a_key_is_checked_before_the_body(gateway: Gateway, tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "traces.db") as store:
        keys = KeyStore(store)
        narrow, _ = keys.create("narrow", policies=["cheap"], models=["small"])
        revoked, _ = keys.create("gone")
        keys.revoke("gone")
    bad_bodies: list[dict[str, Any]] = [
        {"model": "gpt-4o", "messages": HI},  # no such model
        {"model": "cheap", "messages": HI, "n": 3},  # a field turnout refuses
        {"model": "cheap"},  # no messages
    ]
    async with aiohttp.ClientSession() as s:
        for wrong in ("sk-not-a-key", revoked):
            for body in bad_bodies:
                status, _, answer = await call(s, gateway, "POST", "/v1/chat/completions",
                                               wrong, json=body)  # fmt: skip
                assert status == 401, (body, answer)
                assert "gpt-4o" not in str(answer) and "large" not in str(answer)
        status, _, answer = await call(s, gateway, "POST", "/v1/chat/completions", narrow,
                                       json=bad_bodies[0])  # fmt: skip
        assert status == 404 and answer["error"]["code"] == "model_not_found"
        assert "(cheap, small)" in answer["error"]["message"]  # only what the key may name
        status, _, answer = await call(s, gateway, "POST", "/v1/chat/completions", narrow,
                                       json=bad_bodies[1])  # fmt: skip
        assert status == 400


async def test_spans_per_request_and_attempt(upstream: FakeOpenAI, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from turnout.gateway import team as team_module
    from turnout.observability.otel import GenAISpans, upstreams

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(team_module, "_spans", lambda st: GenAISpans(provider, upstreams(st)))
    settings = gateway_settings(upstream.base_url)
    async with Gateway(settings, port=0, store=str(tmp_path / "t.db")) as gw, \
            aiohttp.ClientSession() as s:  # fmt: skip
        body = {"model": "resilient", "messages": HI, "max_tokens": 40}  # a 503, then small
        caller = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        async with s.post(gw.base_url + "/chat/completions", json=body, headers=caller) as r:
            assert r.status == 200
        async with s.get(gw.base_url.removesuffix("/v1") + "/metrics") as r:
            scraped = await r.text()
    assert 'turnout_breaker_state{model="down"} 2.0' in scraped  # opened by the 503
    spans = {sp.name: sp for sp in exporter.get_finished_spans()}
    assert set(spans) == {"chat resilient", "chat fault:503", "chat small-1"}
    failed, answered = spans["chat fault:503"].attributes, spans["chat small-1"].attributes
    assert failed is not None and answered is not None
    assert failed["error.type"] == "server_error"
    assert (answered["gen_ai.provider.name"], answered["turnout.model"]) == ("openai", "small")
    assert f"{answered['server.address']}:{answered['server.port']}" in upstream.base_url
    request = spans["chat resilient"].attributes
    assert request is not None and request["gen_ai.response.model"] == "small"
    assert request["gen_ai.provider.name"] == "openai"
    assert answered["gen_ai.request.max_tokens"] == 40
    server = spans["chat resilient"]
    assert server.parent is not None and server.parent.span_id == 0xB7AD6B7169203331
    assert server.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C  # the caller's trace
    for attempt in (spans["chat fault:503"], spans["chat small-1"]):
        assert attempt.context.trace_id == server.context.trace_id
        assert server.start_time <= attempt.start_time  # never before its request


async def test_requests_answered_without_a_model_have_a_span_and_a_count(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client.parser import text_string_to_metric_families

    from turnout.gateway.routes import TEAM
    from turnout.observability.otel import GenAISpans

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway.app[TEAM].spans = GenAISpans(provider, {})
    with SQLiteStore(tmp_path / "traces.db") as store:
        limited, _ = KeyStore(store).create("one-a-minute", rpm=1)
    url = "/v1/chat/completions"
    async with aiohttp.ClientSession() as s:
        for key, body, status in (
            (None, {"model": "cheap", "messages": HI}, 401),  # no key at all
            (limited, {"model": "gpt-4o", "messages": HI}, 404),
            (limited, {"model": "cheap", "messages": HI, "n": 3}, 400),
            (limited, {"model": "cheap", "messages": HI}, 200),
            (limited, {"model": "cheap", "messages": HI}, 429),
        ):
            assert (await call(s, gateway, "POST", url, key, json=body))[0] == status, body
        async with s.get(gateway.base_url.removesuffix("/v1") + "/metrics") as r:
            scraped = await r.text()
    errors = {
        (sample.labels["error_class"], sample.labels["policy"]): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "turnout_errors_total"
    }
    assert errors == {("invalid_api_key", "-"): 1, ("model_not_found", "-"): 1,
                      ("invalid_request", "-"): 1, ("rate_limit_exceeded", "cheap"): 1}  # fmt: skip
    spans = [dict(sp.attributes or {}) for sp in exporter.get_finished_spans()]
    refused = sorted(str(a["error.type"]) for a in spans if "error.type" in a)
    assert refused == ["invalid_api_key", "invalid_request", "model_not_found",
                       "rate_limit_exceeded"]  # fmt: skip


def test_otlp_provider_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout.observability.otel import tracer_provider_from_env

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracer_provider_from_env() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    provider = tracer_provider_from_env("turnout-gateway")
    assert provider is not None
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "turnout-gateway"  # named by no one else
    assert attributes["deployment.environment.name"] == "test"
    provider.shutdown()
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    for variable, value in (
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes"),
        ("OTEL_SERVICE_NAME", "from-env"),  # it wins over the attributes, as the SDK says
    ):
        monkeypatch.setenv(variable, value)
        provider = tracer_provider_from_env("turnout-gateway")
        assert provider is not None
        assert provider.resource.attributes["service.name"] == value.rpartition("=")[2]
        provider.shutdown()


async def test_startup_notes_name_the_store_and_the_admin_api(
    upstream: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = gateway_settings(upstream.base_url, auth="keys")
    store = tmp_path / "traces.db"
    async with Gateway(settings, host="0.0.0.0", port=0, store=str(store)) as gw:
        assert gw.notes() == [f"traces and keys in {store}", "admin API on (TURNOUT_ADMIN_KEY)"]
        assert gw.listening.startswith("0.0.0.0:")
    monkeypatch.delenv("TURNOUT_ADMIN_KEY")
    async with Gateway(settings, port=0, store=str(store)) as gw:
        assert gw.notes()[1] == "admin API off (TURNOUT_ADMIN_KEY unset)"


async def test_a_budget_hold_is_priced_by_what_the_policy_may_call(tmp_path: Path) -> None:
    from turnout.gateway.context import Route
    from turnout.gateway.team import Team
    from turnout.keys.cache import CachedKeys, LocalKeyEvents
    from turnout.keys.guard import KeyGuard
    from turnout.limits import MemoryBudgets, MemoryRateLimiter
    from turnout.limits.gate import LocalGate
    from turnout.pricing.cost import Price
    from turnout.types import ChatRequest, Message

    with SQLiteStore(tmp_path / "traces.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a", budget_usd=Decimal(1))
        gate = LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets())
        team = Team(
            guard=KeyGuard(CachedKeys(keys), gate),
            prices={"small": Price.of(1, 2), "large": Price.of(100, 200)},
            reach={"cheap": frozenset({"small"}), "any": frozenset({"small", "large"})},
        )
        request = ChatRequest(messages=(Message("user", "x" * 396),), max_tokens=100)
        holds = {}
        for policy in ("cheap", "any"):
            admission = await team.admit(f"Bearer {secret}", request, Route(policy=policy))
            assert admission is not None and admission.reservation is not None
            holds[policy] = admission.reservation.estimate_pico
        assert holds["any"] == 100 * holds["cheap"]  # large's price only where it may answer


async def test_an_ensemble_holds_every_member_it_pays_for(tmp_path: Path) -> None:
    from turnout.gateway.context import Route
    from turnout.gateway.team import Team
    from turnout.limits.budget import PaidCall, estimate_request
    from turnout.types import ChatRequest, Message

    settings = gateway_settings("http://127.0.0.1:9/v1", auth="keys")
    request = ChatRequest(messages=(Message("user", "x" * 396),), max_tokens=100)
    one = estimate_request([[PaidCall("small", settings.models["small"].price)]], request)
    with SQLiteStore(tmp_path / "traces.db") as store:
        keys = KeyStore(store)
        everywhere, _ = keys.create("everywhere", budget_usd=Decimal(1))
        small_only, _ = keys.create("small-only", budget_usd=Decimal(1), models=["small"])
        team = await Team.open(settings, GatewayConfig(auth="keys"), host="127.0.0.1",
                               store=store)  # fmt: skip
        try:
            holds = {}
            for secret, policy in ((everywhere, "escalate"), (everywhere, "cheap"),
                                   (small_only, "escalate")):  # fmt: skip
                admission = await team.admit(f"Bearer {secret}", request, Route(policy=policy))
                assert admission is not None and admission.reservation is not None
                holds[secret, policy] = admission.reservation.estimate_pico
        finally:
            await team.aclose()
    # the cascade may pay small and large; a key kept to small pays small alone
    assert holds[everywhere, "escalate"] == 2 * holds[everywhere, "cheap"]
    assert holds[everywhere, "cheap"] == holds[small_only, "escalate"] == cost_to_pico(one)


async def test_a_client_that_hangs_up_still_pays_for_the_calls_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from turnout.gateway.routes import TEAM
    from turnout.limits.budget import KeyBudget

    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with SQLiteStore(tmp_path / "traces.db") as store:
        secret, _ = KeyStore(store).create("quitter", budget_usd=Decimal(1), period=Period.DAY)
    async with FakeOpenAI(reply=reply) as upstream:
        settings = gateway_settings(
            upstream.base_url, auth="keys", more_models={"sluggish": "fault:stall:3"},
            more_policies={"climb": {"kind": "cascade", "models": ["small", "sluggish"],
                                     "quality": {"min_chars": 30}}},
        )  # fmt: skip
        async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
            budgets = gw.app[TEAM].guard.gate.budgets  # type: ignore[union-attr]
            body = {"model": "climb", "messages": [{"role": "user", "content": "escalate"}]}
            async with aiohttp.ClientSession() as s:
                with pytest.raises(TimeoutError):  # small answered (too short), then a wait
                    await call(s, gw, "POST", "/v1/chat/completions", secret, json=body,
                               timeout=aiohttp.ClientTimeout(total=0.5))  # fmt: skip
            await asyncio.sleep(0.3)  # the cancellation reaches the handler
            state = await budgets.state(KeyBudget("quitter", Decimal(1), Period.DAY))
    with SQLiteStore(tmp_path / "traces.db") as store:
        ((paid,),) = store.query("SELECT sum(cost_picousd) FROM attempts WHERE status = 'ok'")
        ((sent, estimated),) = store.query(
            "SELECT sum(cost_picousd), min(usage_estimated) FROM attempts WHERE status <> 'ok'"
        )
    assert paid > 0 and state.held_pico == 0
    # small's answer is charged to the key, and the prompt sent to sluggish (an estimate)
    assert sent > 0 and estimated == 1
    assert state.spent_pico == paid + sent


async def test_a_client_that_hangs_up_gives_its_budget_hold_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from turnout.gateway.routes import TEAM
    from turnout.limits.budget import KeyBudget

    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with SQLiteStore(tmp_path / "traces.db") as store:
        secret, _ = KeyStore(store).create("patient", budget_usd=Decimal(1), period=Period.DAY)
    async with FakeOpenAI(reply=reply, latency=2.0) as slow:
        settings = gateway_settings(slow.base_url, auth="keys")
        async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
            budgets = gw.app[TEAM].guard.gate.budgets  # type: ignore[union-attr]
            for stream in (False, True):
                async with aiohttp.ClientSession() as s:
                    with pytest.raises(TimeoutError):
                        await call(s, gw, "POST", "/v1/chat/completions", secret,
                                   json={"model": "cheap", "messages": HI, "stream": stream},
                                   timeout=aiohttp.ClientTimeout(total=0.3))  # fmt: skip
                await asyncio.sleep(0.3)  # the cancellation reaches the handler
                state = await budgets.state(KeyBudget("patient", Decimal(1), Period.DAY))
                assert state.held_pico == 0, f"stream={stream}: the hold was kept"
    with SQLiteStore(tmp_path / "traces.db") as store:  # each run ended, its attempt abandoned
        runs = store.query("SELECT status FROM runs WHERE key_name = 'patient'")
        attempts = store.query("SELECT error_class FROM attempts")
    assert runs == [("failed",), ("failed",)] and attempts == [("abandoned",), ("abandoned",)]


async def test_a_key_counts_tokens_used_and_tells_the_budget_left_after_the_answer(
    gateway: Gateway, tmp_path: Path
) -> None:
    with SQLiteStore(tmp_path / "traces.db") as store:
        secret, _ = KeyStore(store).create(
            "plain", tpm=300, budget_usd=Decimal(1), period=Period.DAY
        )
    body = {"model": "cheap", "messages": HI}  # no max_tokens, as the SDK sends by default
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await call(s, gateway, "POST", "/v1/chat/completions", secret,
                                        json=body)  # fmt: skip
        assert status == 200  # a tpm far below 1,024 still serves requests without max_tokens
        cost = Decimal(headers["x-turnout-cost-usd"])
        assert cost > 0
        # the budget left once this answer is charged, not while its estimate was held
        assert Decimal(headers["x-turnout-budget-remaining-usd"]) == Decimal(1) - cost
        status, failed, _ = await call(s, gateway, "POST", "/v1/chat/completions", secret,
                                       json={**body, "model": "doomed"})  # fmt: skip
        assert status == 502 and failed["x-turnout-cost-usd"] == "0"  # a 500 costs nothing
        assert Decimal(failed["x-turnout-budget-remaining-usd"]) == Decimal(1) - cost
        first_left = int(headers["x-ratelimit-remaining-tokens"])
        await asyncio.sleep(0.05)  # the recount is off the request path
        status, headers, _ = await call(s, gateway, "POST", "/v1/chat/completions", secret,
                                        json=body)  # fmt: skip
        assert status == 200
    with SQLiteStore(tmp_path / "traces.db") as store:
        ((used,),) = store.query(
            "SELECT input_tokens + output_tokens FROM attempts ORDER BY started_at LIMIT 1"
        )
    prompt = 300 - first_left
    # the second request sees the first counted at what it used, plus its own prompt
    assert int(headers["x-ratelimit-remaining-tokens"]) == 300 - used - prompt


async def test_a_request_among_others_sends_its_gate_with_theirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A request alone writes its gate at once; one that starts while others are under
    way leaves it to be written with theirs. The count of requests under way goes back
    to zero whatever became of them (answered, refused, hung up on)."""
    from turnout.gateway.routes import TEAM

    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with SQLiteStore(tmp_path / "traces.db") as store:
        secret, _ = KeyStore(store).create("busy", rpm=3)
        patient, _ = KeyStore(store).create("patient")
    async with FakeOpenAI(reply=reply, latency=0.3) as slow:
        settings = gateway_settings(slow.base_url, auth="keys")
        async with Gateway(settings, port=0, store=str(tmp_path / "traces.db")) as gw:
            team = gw.app[TEAM]
            gate = team.guard.gate  # type: ignore[union-attr]
            seen: list[bool] = []
            start = gate.start_admit

            def recorded(*args: Any, at_once: bool = True) -> Any:
                seen.append(at_once)
                return start(*args, at_once=at_once)

            monkeypatch.setattr(gate, "start_admit", recorded)
            body = {"model": "cheap", "messages": HI}
            async with aiohttp.ClientSession() as s:
                assert (await call(s, gw, "POST", "/v1/chat/completions", secret, json=body))[
                    0
                ] == 200
                assert seen == [True] and team.in_flight == 0
                statuses = await asyncio.gather(
                    *(call(s, gw, "POST", "/v1/chat/completions", secret, json=body)
                      for _ in range(3))
                )  # fmt: skip
                with pytest.raises(TimeoutError):
                    await call(s, gw, "POST", "/v1/chat/completions", patient, json=body,
                               timeout=aiohttp.ClientTimeout(total=0.1))  # fmt: skip
            await asyncio.sleep(0.3)
            assert sorted(r[0] for r in statuses) == [200, 200, 429]  # rpm 3: one refused
            assert seen[1:4].count(False) >= 2  # the 2nd and 3rd of the three came among others
            assert team.in_flight == 0
