"""The gateway with its traces in PostgreSQL, cut off mid-traffic (a TCP proxy of the
test's own; the machine's server keeps running): requests keep being answered, traces
spill to .turnout/spill-0.jsonl, are replayed when the database is back; after the
gateway stops, trace rows = requests served."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from support.gateway_rig import KEY, KEY_ENV, gateway_settings, reply
from support.pg import throwaway_database
from support.tcp_proxy import TcpProxy
from turnout.gateway.server import Gateway
from turnout.testing import FakeOpenAI
from turnout.tracing.postgres import PostgresStore

pytestmark = pytest.mark.postgres

HI = [{"role": "user", "content": "hi"}]


async def test_traces_spill_while_postgres_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.chdir(tmp_path)
    with throwaway_database() as dsn:
        host_port = dsn.split("@", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        proxy = TcpProxy((host, int(port or 5432)))
        proxy.start()
        via_proxy = dsn.replace(host_port, f"127.0.0.1:{proxy.port}")
        served = 0
        try:
            async with FakeOpenAI(reply=reply) as upstream:
                settings = gateway_settings(upstream.base_url)
                async with (
                    Gateway(settings, port=0, store=via_proxy) as gw,
                    aiohttp.ClientSession() as session,
                ):
                    url = f"{gw.base_url}/chat/completions"

                    async def burst(n: int) -> int:
                        async def one() -> int:
                            async with session.post(
                                url, json={"model": "cheap", "messages": HI}
                            ) as r:
                                await r.read()
                                return r.status

                        statuses = await asyncio.gather(*(one() for _ in range(n)))
                        assert statuses == [200] * n
                        return n

                    served += await burst(30)
                    await asyncio.sleep(0.3)
                    proxy.stop()  # PostgreSQL is unreachable
                    served += await burst(40)
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
        with PostgresStore(dsn) as store:
            (runs,) = store.query("SELECT count(*) FROM runs", ())
            (attempts,) = store.query("SELECT count(*) FROM attempts", ())
        assert runs[0] == served == 100
        assert attempts[0] == served
        assert not (tmp_path / ".turnout" / "spill-0.jsonl").exists()
