"""The gateway with its traces in PostgreSQL, cut off mid-traffic (a TCP proxy of the
test's own; the machine's server keeps running): requests keep being answered, traces
spill to .turnout/spill-0.jsonl, are replayed when the database is back; after the
gateway stops, trace rows = requests served. With keys (which live in that database),
past the key cache's lifetime, with key changes shared in Redis: a key seen before keeps
being let through, a key revoked before stays refused, a key never seen gets 503."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from support.gateway_rig import KEY, KEY_ENV, gateway_settings, reply
from support.pg import throwaway_database
from support.tcp_proxy import TcpProxy
from turnout.gateway.server import Gateway
from turnout.keys import KeyStore
from turnout.testing import FakeOpenAI
from turnout.tracing.postgres import PostgresStore

pytestmark = pytest.mark.postgres

HI = [{"role": "user", "content": "hi"}]


def drop_prefix(prefix: str) -> None:
    """The test's keys in the machine's Redis."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def postgres_behind_a_proxy() -> Iterator[tuple[str, str, TcpProxy]]:
    """A throwaway database, its URL, and its URL through a TCP proxy of the test's own
    (stop the proxy: PostgreSQL is unreachable; start it: back)."""
    with throwaway_database() as dsn:
        host_port = dsn.split("@", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        proxy = TcpProxy((host, int(port or 5432)))
        proxy.start()
        try:
            yield dsn, dsn.replace(host_port, f"127.0.0.1:{proxy.port}"), proxy
        finally:
            proxy.stop()


@pytest.mark.parametrize("auth", ["none", "keys"])
async def test_traces_spill_while_postgres_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: str
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.chdir(tmp_path)
    with postgres_behind_a_proxy() as (dsn, via_proxy, proxy):
        secrets = {}
        prefix = f"turnout-test:{uuid.uuid4().hex}"
        with PostgresStore(dsn) as store:
            keys = KeyStore(store)
            for name in ("team-a", "gone", "unseen"):
                secrets[name] = keys.create(name)[0]
            keys.revoke("gone")
        served = 0
        try:
            async with FakeOpenAI(reply=reply) as upstream:
                shared = {"state": "redis", "redis_prefix": prefix}  # key changes announced
                settings = gateway_settings(upstream.base_url, auth=auth, key_cache_s=0.3,
                                            more_executor=shared if auth == "keys" else None)  # fmt: skip
                async with (
                    Gateway(settings, port=0, store=via_proxy) as gw,
                    aiohttp.ClientSession() as session,
                ):
                    url = f"{gw.base_url}/chat/completions"

                    async def status(key: str) -> tuple[int, str, str | None]:
                        headers = {"authorization": f"Bearer {key}"}
                        body = {"model": "cheap", "messages": HI}
                        async with session.post(url, json=body, headers=headers) as r:
                            answer = await r.json()
                            code = answer["error"]["code"] if r.status != 200 else ""
                            return r.status, code, r.headers.get("retry-after")

                    async def burst(n: int) -> int:
                        statuses = await asyncio.gather(
                            *(status(secrets["team-a"]) for _ in range(n))
                        )
                        assert [s for s, _, _ in statuses] == [200] * n
                        return n

                    served += await burst(30)
                    if auth == "keys":
                        assert (await status(secrets["gone"]))[:2] == (401, "key_revoked")
                    await asyncio.sleep(0.3)
                    proxy.stop()  # PostgreSQL is unreachable
                    await asyncio.sleep(0.4)  # past the key cache's lifetime
                    served += await burst(40)
                    if auth == "keys":
                        assert (await status(secrets["gone"]))[:2] == (401, "key_revoked")
                        assert await status(secrets["unseen"]) == (
                            503,
                            "key_store_unavailable",
                            "1",
                        )
                    await asyncio.sleep(0.5)
                    assert (tmp_path / ".turnout" / "spill-0.jsonl").exists()
                    async with session.get(gw.base_url.removesuffix("/v1") + "/metrics") as r:
                        scraped = await r.text()
                    spilled = next(
                        float(line.split()[-1]) for line in scraped.splitlines()
                        if line.startswith("turnout_traces_spilled_total")
                    )  # fmt: skip
                    assert spilled > 0
                    proxy.start()  # and back
                    served += await burst(30)
                # stopped: drained and flushed (the spill replayed by then or at close)
        finally:
            proxy.stop()
            drop_prefix(prefix)
        with PostgresStore(dsn) as store:
            (runs,) = store.query("SELECT count(*) FROM runs", ())
            (attempts,) = store.query("SELECT count(*) FROM attempts", ())
        assert runs[0] == served == 100
        assert attempts[0] == served
        assert left(tmp_path / ".turnout", "spill") == []  # the file and its lock


def spill_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("shared-*.jsonl"))


def left(directory: Path, prefix: str) -> list[str]:
    """Whatever a spill path left in ``directory``: files, locks, offsets."""
    return sorted(p.name for p in directory.glob(f"{prefix}*"))


async def test_gateways_sharing_a_spill_path_and_a_restart_with_fewer_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways given one ``spill:`` path (as ``--workers 2`` workers are) each spill
    to a file of their own; stopped while PostgreSQL is still away, they leave both
    files, and one gateway started alone replays both: rows = requests, none twice."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.chdir(tmp_path)
    with postgres_behind_a_proxy() as (dsn, via_proxy, proxy):
        served = 0
        try:
            async with FakeOpenAI(reply=reply) as upstream, aiohttp.ClientSession() as session:
                settings = gateway_settings(upstream.base_url, spill=str(tmp_path / "shared.jsonl"))

                async def burst(gw: Gateway, n: int) -> int:
                    async def one() -> int:
                        body = {"model": "cheap", "messages": HI}
                        async with session.post(f"{gw.base_url}/chat/completions", json=body) as r:
                            await r.read()
                            return r.status

                    assert await asyncio.gather(*(one() for _ in range(n))) == [200] * n
                    return n

                async with (
                    Gateway(settings, port=0, store=via_proxy) as one,
                    Gateway(settings, port=0, store=via_proxy) as two,
                ):
                    served += await burst(one, 10) + await burst(two, 10)
                    await asyncio.sleep(0.3)
                    proxy.stop()  # PostgreSQL is unreachable, and stays so past their stop
                    served += await burst(one, 20) + await burst(two, 20)
                assert spill_files(tmp_path) == ["shared-0.jsonl", "shared-1.jsonl"]
                proxy.start()
                async with Gateway(settings, port=0, store=via_proxy) as alone:
                    served += await burst(alone, 10)
        finally:
            proxy.stop()
        assert spill_files(tmp_path) == []
        assert left(tmp_path, "shared") == []  # no lock files either
        with PostgresStore(dsn) as store:
            (runs,) = store.query("SELECT count(*), count(DISTINCT run_id) FROM runs", ())
            (attempts,) = store.query("SELECT count(*) FROM attempts", ())
            (running,) = store.query("SELECT count(*) FROM runs WHERE status <> 'succeeded'", ())
        assert (
            (runs[0], runs[1], attempts[0], running[0])
            == (served, served, served, 0)
            == (70, 70, 70, 0)
        )
