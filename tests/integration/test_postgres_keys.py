"""Virtual keys in a real PostgreSQL database (created and dropped here): the same
store code as SQLite, the migration recorded, two "replicas" seeing one revocation."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from support.pg import throwaway_database
from support.tcp_proxy import TcpProxy
from turnout.keys import KeyRefused, KeyStore, Period
from turnout.keys.cache import CachedKeys
from turnout.tracing.postgres import PostgresStore

pytestmark = pytest.mark.postgres


def test_keys_shared_through_postgres() -> None:
    with throwaway_database() as dsn, PostgresStore(dsn) as one, PostgresStore(dsn) as two:
        assert "m008_virtual_keys" in {name for name, _ in one.migrations()}
        secret, key = KeyStore(one).create(
            "team-a", budget_usd=Decimal("0.01"), period=Period.WEEK, rpm=30, models=("haiku",)
        )
        seen = KeyStore(two).authenticate(secret)
        assert seen == key
        KeyStore(one).revoke("team-a")
        with pytest.raises(KeyRefused) as info:
            KeyStore(two).authenticate(secret)
        assert info.value.code == "key_revoked"
        rows = two.query("SELECT key_hash, prefix FROM virtual_keys", ())
        assert secret not in repr(rows)


async def test_a_database_that_stops_answering_costs_a_key_lookup_at_most_its_bound() -> None:
    """PostgreSQL frozen behind a proxy of the test's own (connections open, nothing
    answered): a key whose cached record has aged is decided on it within the read's
    bound, its concurrent requests joining one read; a key never seen gets 503 as fast;
    and once the database answers, keys are read again."""
    with throwaway_database() as dsn:
        with PostgresStore(dsn) as direct:
            secret, key = KeyStore(direct).create("team-a")
        host_port = dsn.split("@", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        proxy = TcpProxy((host, int(port or 5432)))
        proxy.start()
        try:
            via = dsn.replace(host_port, f"127.0.0.1:{proxy.port}")
            with PostgresStore(via, connect_timeout_s=1, write_timeout_s=5) as store:
                cache = CachedKeys(
                    KeyStore(store), ttl_s=0.2, offload=True, retry_s=1.0, read_timeout_s=0.5
                )
                cache.shared = True
                cache.observe(1, None)  # the shared key-change generation is heard
                assert await cache.authenticate(secret) == key
                reads = cache.reads
                proxy.freeze()
                await asyncio.sleep(0.3)  # the cached record is now older than its ttl
                t0 = time.monotonic()
                seen = await asyncio.gather(*(cache.authenticate(secret) for _ in range(20)))
                assert time.monotonic() - t0 < 0.9 and seen == [key] * 20
                assert cache.reads == reads + 1  # one read, joined
                t0 = time.monotonic()
                with pytest.raises(KeyRefused) as unknown:
                    await cache.authenticate("tk-never-seen-" + "x" * 30)
                assert unknown.value.status == 503 and time.monotonic() - t0 < 0.9
                await asyncio.sleep(1.1)  # past the retry pause, the read still stuck
                t0 = time.monotonic()
                assert await cache.authenticate(secret) == key
                assert time.monotonic() - t0 < 0.2  # its read is out of time: at once
                proxy.thaw()
                for _ in range(50):  # the stuck read ends; the next one is answered
                    await asyncio.sleep(0.2)
                    await cache.authenticate(secret)
                    if cache.store_failures and not cache._reading and cache.reads > reads + 1:
                        break
                with pytest.raises(KeyRefused) as refused:
                    await cache.authenticate("tk-never-seen-" + "x" * 30)
                assert refused.value.status == 401  # read, and not found
        finally:
            proxy.thaw()
            proxy.stop()
