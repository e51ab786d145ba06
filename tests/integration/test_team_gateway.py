"""The team gateway end to end: real `turnout serve` processes on their own ports,
sharing the real Redis (a prefix of the test's own) and a throwaway PostgreSQL database,
over the fake upstream; requests through aiohttp and the official openai SDK."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDict

from support.own_redis import OwnRedis
from support.pg import throwaway_database
from support.team_rig import ADMIN_KEY, Serve, serving, write_config
from turnout.keys import KeyStore, Period
from turnout.testing import FakeOpenAI
from turnout.testing.server_thread import ServerThread
from turnout.tracing.postgres import PostgresStore

pytestmark = pytest.mark.postgres
redis_asyncio = pytest.importorskip("redis.asyncio")
parser = pytest.importorskip("prometheus_client.parser")

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[ServerThread]:
    with FakeOpenAI.start_in_thread(reply="all good here") as handle:
        yield handle


@pytest.fixture(scope="module")
def upstream(upstream_server: ServerThread) -> str:
    return upstream_server.base_url


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with throwaway_database() as url:
        PostgresStore(url).close()  # migrated once, before the replicas start
        yield url


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    p = f"turnout-test:{uuid.uuid4().hex}"
    yield p

    async def clean() -> None:
        client = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = [k async for k in client.scan_iter(match=f"{p}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    asyncio.run(clean())


@pytest.fixture(scope="module")
def replicas(
    upstream: str, dsn: str, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, Serve]]:
    root = tmp_path_factory.mktemp("team")
    config = write_config(root / "turnout.yaml", upstream, redis_url="redis://127.0.0.1:6379/0",
                          prefix=prefix)  # fmt: skip
    a = Serve(config, dsn, root / "a.log")
    b = Serve(config, dsn, root / "b.log")
    with serving(a, b):
        yield a, b


def new_key(dsn: str, name: str, **limits: Any) -> str:
    with PostgresStore(dsn) as store:
        secret, _ = KeyStore(store).create(name, **limits)
    return secret


async def traced(dsn: str, key: str, expected: int) -> list[tuple[Any, ...]]:
    """The runs tagged with ``key`` once ``expected`` are written (the writer batches)."""
    rows: list[tuple[Any, ...]] = []
    for _ in range(100):
        with PostgresStore(dsn) as store:
            rows = store.query("SELECT tags FROM runs WHERE tags LIKE ?", (f'%"{key}"%',))
        if len(rows) >= expected:
            break
        await asyncio.sleep(0.1)
    return rows


async def post(session: aiohttp.ClientSession, base: str, key: str | None,
               **body: Any) -> tuple[int, CIMultiDict[str], dict[str, Any]]:  # fmt: skip
    headers = {"authorization": f"Bearer {key}"} if key else {}
    payload = {"model": "cheap", "messages": HI, **body}
    async with session.post(f"{base}/v1/chat/completions", json=payload, headers=headers) as r:
        return r.status, CIMultiDict(r.headers), await r.json()


async def test_rpm_is_exact_across_two_replicas(
    replicas: tuple[Serve, Serve], dsn: str, upstream_server: ServerThread
) -> None:
    key = new_key(dsn, "rpm-30", rpm=30)
    called = len(upstream_server.requests)
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(post(session, replicas[i % 2].url, key) for i in range(60))
        )
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 30 and statuses.count(429) == 30
    assert len(upstream_server.requests) - called == 30  # a refused request called nothing
    assert len(await traced(dsn, "rpm-30", 30)) == 30  # and left no trace
    refused = next(r for r in results if r[0] == 429)
    assert refused[2]["error"]["code"] == "rate_limit_exceeded"
    assert refused[1]["x-ratelimit-limit-requests"] == "30"
    assert refused[1]["x-ratelimit-remaining-requests"] == "0"
    assert int(refused[1]["retry-after"]) >= 1
    ok = next(r for r in results if r[0] == 200)
    assert "x-ratelimit-reset-requests" in ok[1]


async def test_a_stream_over_its_limit_is_refused_before_anything_is_called(
    replicas: tuple[Serve, Serve], dsn: str, upstream_server: ServerThread
) -> None:
    key = new_key(dsn, "rpm-1-stream", rpm=1)
    base = f"{replicas[1].url}/v1"
    called = len(upstream_server.requests)
    async with openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0) as client:
        stream = await client.chat.completions.create(model="cheap", messages=HI, stream=True)  # type: ignore[arg-type]
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        with pytest.raises(openai.RateLimitError) as info:  # a plain 429, not a broken stream
            await _drain(client.chat.completions.create(model="cheap", messages=HI, stream=True))  # type: ignore[arg-type]
        assert info.value.code == "rate_limit_exceeded"
        assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream_server.requests) - called == 1


async def test_a_key_over_its_limit_hears_that_before_what_its_policy_cannot_do(
    replicas: tuple[Serve, Serve], dsn: str, upstream_server: ServerThread
) -> None:
    """``strong`` picks ``large``, which a key for ``small`` may not use (403) — but a key
    already over its rate limit hears the 429 first, streamed or not, and calls nothing."""
    async with aiohttp.ClientSession() as session:
        for first_stream in (True, False):
            key = new_key(dsn, f"small-rpm-1-{first_stream}", models=("small",), rpm=1)
            assert (await post(session, replicas[0].url, key))[0] == 200
            called = len(upstream_server.requests)
            for stream in (first_stream, not first_stream):  # the second: refused lately
                status, headers, body = await post(
                    session, replicas[1].url, key, model="strong", stream=stream
                )
                assert (status, body["error"]["code"]) == (429, "rate_limit_exceeded")
                assert headers["content-type"].startswith("application/json")
            assert len(upstream_server.requests) == called


async def test_budget_never_passed_by_concurrent_requests(
    replicas: tuple[Serve, Serve], dsn: str
) -> None:
    key = new_key(dsn, "budget-1c", budget_usd=Decimal("0.01"), period=Period.TOTAL)
    max_tokens = 1000  # each request holds (2 prompt tokens x $1 + 1000 x $2) / 1M ≈ $0.002
    estimate = Decimal(2 * 1 + max_tokens * 2) / 1_000_000
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(post(session, replicas[i % 2].url, key, max_tokens=max_tokens) for i in range(50))
        )
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert ok and refused
    assert all(r[2]["error"]["code"] == "budget_exceeded" for r in refused)
    assert all("retry-after" not in r[1] for r in refused)  # a total budget never resets
    spent = sum(Decimal(r[1]["x-turnout-cost-usd"]) for r in ok)
    assert spent <= Decimal("0.01") + estimate
    rows = await traced(dsn, "budget-1c", len(ok))
    assert len(rows) == len(ok)  # every admitted request traced, its key's name a tag
    assert all(json.loads(t)["key"] == "budget-1c" for (t,) in rows)


@pytest.fixture(scope="module")
def cutting(
    upstream: str, dsn: str, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    """A replica whose ``continued`` policy streams from a model that is cut after three
    chunks, then continues the answer on another."""
    root = tmp_path_factory.mktemp("cut")
    config = write_config(root / "turnout.yaml", upstream, redis_url="redis://127.0.0.1:6379/0",
                          prefix=prefix)  # fmt: skip
    text = config.read_text().replace(
        "policies:\n",
        "  cutter: {provider: up, id: 'fault:cut:after=3', tier: efficient,"
        " price: {input: 1.0, output: 2.0}}\n"
        "policies:\n  continued: {kind: fallback, models: [cutter, large]}\n",
    )
    config.write_text(text)
    with serving(Serve(config, dsn, root / "cut.log")) as (serve,):
        yield serve


async def _stream_text(serve: Serve, key: str) -> tuple[str, openai.APIError | None]:
    client = openai.AsyncOpenAI(base_url=f"{serve.url}/v1", api_key=key, max_retries=0)
    text, error = "", None
    try:
        stream = await client.chat.completions.create(
            model="continued",
            messages=HI,
            stream=True,
            max_tokens=1000,  # type: ignore[arg-type]
        )
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    except openai.APIError as exc:
        error = exc
    finally:
        await client.close()
    return text, error


async def test_a_cut_stream_goes_on_only_if_the_budget_holds_what_comes_next(
    cutting: Serve, dsn: str, upstream_server: ServerThread
) -> None:
    """The cut part is paid for: the continuation goes on only if the key's budget holds
    it beside what the request has cost, its hold grown atomically; else the stream ends
    with ``budget_exceeded`` and nothing more is called. The key never ends over."""
    # the request holds (prompt + 1000 output tokens) at $1 / $2 a million: about $0.002;
    # going on needs about $0.00004 more (the cut part and a longer prompt)
    tight = new_key(dsn, "cut-tight", budget_usd=Decimal("0.002012"), period=Period.TOTAL)
    called = len(upstream_server.requests)
    text, error = await _stream_text(cutting, tight)
    assert text and error is not None and "budget" in str(error)
    assert "http://" not in str(error)  # the cut's error class, never where the upstream is
    assert len(upstream_server.requests) - called == 1  # not continued
    roomy = new_key(dsn, "cut-roomy", budget_usd=Decimal("0.01"), period=Period.TOTAL)
    called = len(upstream_server.requests)
    text, error = await _stream_text(cutting, roomy)
    assert error is None and text.endswith("all good here")
    assert len(upstream_server.requests) - called == 2  # cut, then continued
    for name, budget in (("cut-tight", Decimal("0.002012")), ("cut-roomy", Decimal("0.01"))):
        await traced(dsn, name, 1)
        for _ in range(50):  # the run's cost is written once the stream is settled
            with PostgresStore(dsn) as store:
                rows = store.query(
                    "SELECT cost_picousd, status FROM runs WHERE tags LIKE ?", (f'%"{name}"%',)
                )
            if rows and rows[0][1] != "running":
                break
            await asyncio.sleep(0.1)
        ((cost, _),) = rows
        assert 0 < Decimal(cost) / 10**12 <= budget


async def spend_all(session: aiohttp.ClientSession, base: str, key: str) -> list[int]:
    """Requests until the key's budget refuses one (each holds about $0.000012), each
    once the one before is settled (a hold still waiting for its batch would make the
    refusal come before the spend alone passes the budget)."""
    statuses: list[int] = []
    while not statuses or statuses[-1] == 200:
        assert len(statuses) < 50
        statuses.append((await post(session, base, key, max_tokens=5))[0])
        await asyncio.sleep(0.05)  # settles go to Redis in batches within 5 ms
    return statuses


async def test_redis_losing_its_counters_does_not_give_a_key_its_budget_again(
    replicas: tuple[Serve, Serve], dsn: str, prefix: str
) -> None:
    """Redis restarted without persistence, or flushed: the budget's state for the period
    is seeded again from what the trace store holds of the key's spend."""
    key = new_key(dsn, "flushed", budget_usd=Decimal("0.0001"), period=Period.DAY)
    async with aiohttp.ClientSession() as session:
        statuses = await spend_all(session, replicas[0].url, key)
        assert statuses[-1] == 429 and statuses.count(200) >= 3
        await traced(dsn, "flushed", statuses.count(200))  # the writer has flushed them
        client = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
        try:
            lost = [k async for k in client.scan_iter(match=f"{prefix}:budget:*")]
            assert lost
            await client.delete(*lost)
        finally:
            await client.aclose()
        status, _, body = await post(session, replicas[1].url, key, max_tokens=5)
        assert (status, body["error"]["code"]) == (429, "budget_exceeded")
        status, _, body = await post(session, replicas[0].url, key, max_tokens=5)
        assert (status, body["error"]["code"]) == (429, "budget_exceeded")


async def test_a_restarted_gateway_does_not_give_a_key_its_budget_again(
    upstream: str, dsn: str, tmp_path: Path
) -> None:
    """One process and no Redis: the budget lives in the process, and a new process
    starts each key's period from what the trace store holds of its spend."""
    config = write_config(tmp_path / "turnout.yaml", upstream, redis_url=None, prefix="-")
    key = new_key(dsn, "restarted", budget_usd=Decimal("0.0001"), period=Period.DAY)
    async with aiohttp.ClientSession() as session:
        with serving(Serve(config, dsn, tmp_path / "first.log")) as (gw,):
            statuses = await spend_all(session, gw.url, key)
            assert statuses[-1] == 429 and statuses.count(200) >= 3
        with serving(Serve(config, dsn, tmp_path / "second.log")) as (gw,):
            status, _, body = await post(session, gw.url, key, max_tokens=5)
    assert (status, body["error"]["code"]) == (429, "budget_exceeded")


async def admin_create(session: aiohttp.ClientSession, replica: Serve, body: Any) -> str:
    """A key made through ``replica``'s admin API; the key."""
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with session.post(f"{replica.url}/admin/keys", json=body, headers=headers) as r:
        assert r.status == 201
        return str((await r.json())["key"])


async def test_revoked_on_one_replica_refused_on_the_other_at_once(
    replicas: tuple[Serve, Serve],
) -> None:
    a, b = replicas
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as session:
        key = await admin_create(session, a, {"name": "short-lived"})
        assert (await post(session, b.url, key))[0] == 200
        async with session.post(f"{a.url}/admin/keys/short-lived/revoke", headers=admin) as r:
            assert r.status == 200 and (await r.json())["status"] == "revoked"
        status, _, body = await post(session, b.url, key)
        assert (status, body["error"]["code"]) == (401, "key_revoked")
        async with session.get(f"{b.url}/admin/keys", headers={"authorization": "Bearer no"}) as r:
            assert r.status == 401
        async with session.get(f"{b.url}/admin/keys", headers=admin) as r:
            listed = (await r.json())["data"]
            assert "short-lived" in {k["name"] for k in listed}
            assert key not in json.dumps(listed)


async def test_loosened_on_one_replica_let_through_on_the_other_at_once(
    replicas: tuple[Serve, Serve],
) -> None:
    a, b = replicas
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as session:
        key = await admin_create(session, a, {"name": "narrow", "policies": ["strong"]})
        for replica in (a, b, b):  # the refusing record is cached on both
            status, _, body = await post(session, replica.url, key)
            assert (status, body["error"]["code"]) == (403, "policy_not_allowed")
        async with session.patch(f"{a.url}/admin/keys/narrow", headers=admin,
                                 json={"policies": []}) as r:  # fmt: skip
            assert r.status == 200
        assert [(await post(session, r.url, key))[0] for r in (b, a, b)] == [200, 200, 200]


async def test_feedback_and_the_model_list_need_a_key_and_see_only_its_own(
    replicas: tuple[Serve, Serve], dsn: str
) -> None:
    a, b = replicas
    mine, theirs = new_key(dsn, "fb-mine", policies=("cheap",)), new_key(dsn, "fb-theirs")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{a.url}/v1/chat/completions", json={"model": "cheap", "messages": HI},
            headers={"authorization": f"Bearer {mine}"},
        ) as r:  # fmt: skip
            assert r.status == 200
            request_id = r.headers["x-request-id"]
        assert len(await traced(dsn, "fb-mine", 1)) == 1  # written by replica a
        feedback = f"{b.url}/turnout/v1/feedback"
        verdict = {"request_id": request_id, "passed": False, "by": "reviewer"}
        async with session.post(feedback, json=verdict) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (401, "invalid_api_key")
        async with session.post(feedback, json=verdict,
                                headers={"authorization": f"Bearer {theirs}"}) as r:  # fmt: skip
            assert r.status == 404  # another key's request: as if unknown
        async with session.post(feedback, json=verdict,
                                headers={"authorization": f"Bearer {mine}"}) as r:  # fmt: skip
            assert r.status == 200 and (await r.json())["recorded"] is True
        async with session.get(f"{b.url}/v1/models") as r:
            assert r.status == 401
    listed = openai.AsyncOpenAI(base_url=f"{b.url}/v1", api_key=mine)
    assert [m.id async for m in listed.models.list()] == ["cheap"]
    assert (await listed.models.retrieve("cheap")).id == "cheap"
    with pytest.raises(openai.NotFoundError):  # not to this key: as if unknown
        await listed.models.retrieve("strong")
    async with openai.AsyncOpenAI(base_url=f"{b.url}/v1", api_key="tk-wrong") as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.retrieve("cheap")
    everything = openai.AsyncOpenAI(base_url=f"{b.url}/v1", api_key=theirs)
    assert {"cheap"} < {m.id async for m in everything.models.list()}
    await listed.close()
    await everything.close()


async def test_a_request_refused_after_routing_counts_against_nothing(
    replicas: tuple[Serve, Serve], dsn: str
) -> None:
    """A policy whose model the key may not use: 403 after routing, nothing called; it
    takes no request or token of the key's limits and holds nothing of its budget."""
    key = new_key(dsn, "small-only-403", rpm=2, tpm=3000, models=("small",),
                  budget_usd=Decimal("0.01"), period=Period.TOTAL)  # fmt: skip
    async with aiohttp.ClientSession() as session:
        for i in range(3):
            status, _, body = await post(
                session, replicas[i % 2].url, key, model="strong", max_tokens=1000
            )
            assert (status, body["error"]["code"]) == (403, "model_not_allowed")
        await asyncio.sleep(0.3)  # taken back off the request path
        first = await post(session, replicas[0].url, key, max_tokens=1000)
        second = await post(session, replicas[1].url, key, max_tokens=1000)
        third = await post(session, replicas[0].url, key, max_tokens=1000)
    assert (first[0], second[0], third[0]) == (200, 200, 429)
    assert int(first[1]["x-ratelimit-remaining-requests"]) == 1
    assert int(first[1]["x-ratelimit-remaining-tokens"]) > 3000 - 1100
    assert Decimal(first[1]["x-turnout-budget-remaining-usd"]) > Decimal("0.0099")


async def _drain(reply: Any) -> None:
    """Await an SDK call, and read a stream to its end."""
    answer = await reply
    if isinstance(answer, openai.AsyncStream):
        async for _ in answer:
            pass


async def test_refusals_through_the_sdk(replicas: tuple[Serve, Serve], dsn: str) -> None:
    base = f"{replicas[0].url}/v1"
    cheap_only = new_key(dsn, "cheap-only", policies=("cheap",))
    with PostgresStore(dsn) as store:  # made in 1970, expired since
        expired, _ = KeyStore(store, clock=lambda: 0.0).create("expired", expires_at=1.0)
    async with aiohttp.ClientSession() as session:
        status, _, body = await post(session, replicas[0].url, None)
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    for key, code in (("tk-nope-nope-nope-nope", "invalid_api_key"), (expired, "key_expired")):
        async with openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as info:
                await client.chat.completions.create(model="cheap", messages=HI)  # type: ignore[arg-type]
            assert info.value.code == code and key not in str(info.value)
    async with openai.AsyncOpenAI(base_url=base, api_key=cheap_only, max_retries=0) as client:
        answer = await client.chat.completions.create(model="cheap", messages=HI)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "all good here"
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="strong", messages=HI)  # type: ignore[arg-type]
        stream = await client.chat.completions.create(model="cheap", messages=HI, stream=True)  # type: ignore[arg-type]
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "all good here"
        with pytest.raises(openai.PermissionDeniedError) as denied:  # no way around its policy
            await client.chat.completions.create(model="large", messages=HI)  # type: ignore[arg-type]
        assert denied.value.code == "model_not_allowed"
    small_only = new_key(dsn, "small-only", models=("small",))
    async with openai.AsyncOpenAI(base_url=base, api_key=small_only, max_retries=0) as client:
        assert sorted([m.id async for m in client.models.list()]) == ["cheap", "small"]
        answer = await client.chat.completions.create(model="cheap", messages=HI)  # type: ignore[arg-type]
        assert answer.model == "small"
        for stream in (False, True):  # `strong` picks large only: refused, nothing called
            with pytest.raises(openai.PermissionDeniedError) as denied:
                await _drain(client.chat.completions.create(model="strong", messages=HI,
                                                            stream=stream))  # type: ignore[arg-type]  # fmt: skip
            assert denied.value.code == "model_not_allowed" and small_only not in str(denied.value)


async def test_metrics_and_no_key_anywhere(replicas: tuple[Serve, Serve], dsn: str) -> None:
    key = new_key(dsn, "metered")
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await post(session, replicas[0].url, key))[0] == 200
        assert (await post(session, replicas[0].url, key + "x"))[0] == 401
        async with session.get(f"{replicas[0].url}/metrics") as r:
            text = await r.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
    }
    ok = (
        "turnout_requests_total",
        (("key", "metered"), ("model", "small"), ("policy", "cheap"), ("status", "ok")),
    )
    assert samples[ok] == 3
    assert samples[("turnout_added_seconds_count", (("policy", "cheap"),))] >= 3
    assert key not in text
    for replica in replicas:
        assert key not in replica.log.read_text()
    with PostgresStore(dsn) as store:
        dump = repr(store.query("SELECT * FROM runs", ())) + repr(
            store.query("SELECT * FROM attempts", ())
        )
    assert key not in dump and "tk-" not in dump


async def test_the_budget_gauge_after_concurrent_requests_is_the_budget_less_the_spend(
    replicas: tuple[Serve, Serve], dsn: str
) -> None:
    """Concurrent requests finish in any order: the gauge is what the shared state says
    once their holds are settled, not what one request saw beside the others' holds."""
    key = new_key(dsn, "gauged", budget_usd=Decimal("1"), period=Period.MONTH)
    base = replicas[0].url
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(post(session, base, key, max_tokens=500) for _ in range(20))
        )
        assert [r[0] for r in results] == [200] * 20
        spent = sum(Decimal(r[1]["x-turnout-cost-usd"]) for r in results)
        gauge = None
        for _ in range(50):  # settled in a batch within 5 ms, off the request path
            async with session.get(f"{base}/metrics") as r:
                text = await r.text()
            gauge = next(
                (
                    s.value
                    for family in parser.text_string_to_metric_families(text)
                    for s in family.samples
                    if s.name == "turnout_budget_remaining_usd" and s.labels == {"key": "gauged"}
                ),
                None,  # not set until the first batch of holds is settled
            )
            if gauge is not None and abs(Decimal(str(gauge)) - (1 - spent)) < Decimal("1e-9"):
                break
            await asyncio.sleep(0.1)
    assert gauge is not None and abs(Decimal(str(gauge)) - (1 - spent)) < Decimal("1e-9")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_redis_stopped_mid_test_the_gateway_keeps_answering(
    upstream: str, dsn: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "turnout.yaml", upstream, redis_url=own_redis.url,
                          prefix="turnout")  # fmt: skip
    key = new_key(dsn, "outage", rpm=1000, budget_usd=Decimal("10"))
    with serving(Serve(config, dsn, tmp_path / "gw.log")) as (gw,):
        async with aiohttp.ClientSession() as session:
            assert (await post(session, gw.url, key))[0] == 200
            own_redis.stop()
            statuses = [(await post(session, gw.url, key))[0] for _ in range(20)]
            async with session.get(f"{gw.url}/metrics") as r:
                text = await r.text()
        assert statuses == [200] * 20
        assert "Redis unreachable" in gw.log.read_text()
        assert 'turnout_redis_degraded_total{what="shared state"}' in text


async def test_a_gateway_restarted_while_redis_is_away_does_not_give_a_key_its_budget_again(
    upstream: str, dsn: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    """With Redis, a key spends its budget; Redis goes away and the gateway restarts: the
    new process has never heard the key's spend from Redis, and its in-process twin
    starts the period from the trace store."""
    config = write_config(tmp_path / "turnout.yaml", upstream, redis_url=own_redis.url,
                          prefix="turnout")  # fmt: skip
    key = new_key(dsn, "restarted-alone", budget_usd=Decimal("0.0001"), period=Period.DAY)
    async with aiohttp.ClientSession() as session:
        with serving(Serve(config, dsn, tmp_path / "first.log")) as (gw,):
            statuses = await spend_all(session, gw.url, key)
            assert statuses[-1] == 429 and statuses.count(200) >= 3
        own_redis.stop()
        with serving(Serve(config, dsn, tmp_path / "second.log")) as (gw,):
            status, _, body = await post(session, gw.url, key, max_tokens=5)
            other = new_key(dsn, "fresh-alone", budget_usd=Decimal("0.0001"), period=Period.DAY)
            fresh, _, _ = await post(session, gw.url, other, max_tokens=5)
    assert (status, body["error"]["code"]) == (429, "budget_exceeded")
    assert fresh == 200  # the gateway answers: only the spent key is refused


async def test_redis_frozen_mid_test_no_request_waits_long(
    upstream: str, dsn: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    """A Redis that stops answering without closing its connections (SIGSTOP): the
    requests of the first timeout wait for it, then one a second (the probe); every other
    request is decided by the process at once. Before, each part of the gateway waited
    out its own timeout in turn, and queued callers retried: 5-6 s a request."""
    import os
    import signal
    import time

    config = write_config(tmp_path / "turnout.yaml", upstream, redis_url=own_redis.url,
                          prefix="turnout", redis_timeout_s=0.3)  # fmt: skip
    key = new_key(dsn, "frozen", rpm=10_000, budget_usd=Decimal("10"))
    assert own_redis.proc is not None
    frozen = False
    with serving(Serve(config, dsn, tmp_path / "gw.log")) as (gw,):
        try:
            async with aiohttp.ClientSession() as session:
                assert (await post(session, gw.url, key))[0] == 200
                os.kill(own_redis.proc.pid, signal.SIGSTOP)
                frozen = True

                async def timed() -> tuple[int, float]:
                    started = time.monotonic()
                    status = (await post(session, gw.url, key))[0]
                    return status, time.monotonic() - started

                results = []
                for _ in range(15):  # 1.5 s of traffic, 5 requests at a time
                    results += await asyncio.gather(*(timed() for _ in range(5)))
                    await asyncio.sleep(0.1)
        finally:
            if frozen:
                os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert [status for status, _ in results] == [200] * 75
    waits = sorted(wait for _, wait in results)
    assert waits[-1] < 1.5  # one timeout (0.3 s) and room for a slow machine, not 5 s
    assert waits[len(waits) // 2] < 0.15  # most are decided at once
    assert "Redis unreachable" in gw.log.read_text()


async def test_two_workers_aggregate_metrics(upstream: str, dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "turnout.yaml", upstream, redis_url=None, prefix="-")
    key = new_key(dsn, "workers")
    with serving(Serve(config, dsn, tmp_path / "gw.log", workers=2)) as (gw,):
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(*(post(session, gw.url, key) for _ in range(40)))
            assert [r[0] for r in results] == [200] * 40
            # a request is counted just after its answer has gone out: a worker the
            # machine has not let run since may not have counted its last ones yet
            for _ in range(50):
                async with session.get(f"{gw.url}/metrics") as r:
                    text = await r.text()
                total = sum(
                    s.value
                    for family in parser.text_string_to_metric_families(text)
                    for s in family.samples
                    if s.name == "turnout_requests_total" and s.labels.get("key") == "workers"
                )
                if total >= 40:
                    break
                await asyncio.sleep(0.1)
    # no Redis: each worker has its own limits and budgets, and serve said so
    assert "each of the 2 workers keeps its own rate limits and budgets" in gw.log.read_text()
    assert total == 40


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on its own port (``POST /v1/traces``, protobuf), as a
    collector would be: the spans it was sent, decoded."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self._request = trace_service_pb2.ExportTraceServiceRequest
        self.spans: list[tuple[str, dict[str, Any], str]] = []  # name, attributes, service

    async def traces(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        import gzip

        body = await request.read()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        sent = self._request()
        sent.ParseFromString(body)
        for resource in sent.resource_spans:
            service = next(a.value.string_value for a in resource.resource.attributes
                           if a.key == "service.name")  # fmt: skip
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: getattr(a.value, a.value.WhichOneof("value"))
                                  for a in span.attributes}  # fmt: skip
                    self.spans.append((span.name, attributes, service))
        return aiohttp.web.Response(content_type="application/x-protobuf")


async def test_two_workers_export_every_span_by_otlp(
    upstream: str, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from aiohttp import web

    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    config = write_config(tmp_path / "turnout.yaml", upstream, redis_url=None, prefix="-")
    key = new_key(dsn, "traced")
    try:
        gw = await asyncio.to_thread(Serve, config, dsn, tmp_path / "gw.log", workers=2)
        try:
            async with aiohttp.ClientSession() as session:
                results = await asyncio.gather(*(post(session, gw.url, key) for _ in range(20)))
            assert [r[0] for r in results] == [200] * 20
        finally:  # SIGTERM, while the receiver answers: each worker sends what it holds
            await asyncio.to_thread(gw.stop)
        assert gw.proc.returncode == 0
    finally:
        await runner.cleanup()
    names = sorted(name for name, _, _ in receiver.spans)
    assert names == ["chat cheap"] * 20 + ["chat small-1"] * 20
    for name, attributes, service in receiver.spans:
        assert service == "turnout-gateway"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["turnout.key"] == "traced"
        assert key not in json.dumps(attributes)
        if name == "chat small-1":
            assert attributes["gen_ai.request.model"] == "small-1"
            assert attributes["server.address"] == "127.0.0.1"
            assert attributes["gen_ai.usage.output_tokens"] > 0
