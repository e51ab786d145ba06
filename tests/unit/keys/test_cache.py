"""The key cache while its database fails: cached keys are decided on their last record
(let through only while key changes are shared and heard), a key not cached (never
seen, or not since a key changed) is a 503, and the database is asked at most once
every ``retry_s``."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from turnout.errors import StoreError
from turnout.keys import KeyStore
from turnout.keys.cache import CachedKeys
from turnout.keys.model import KeyRefused
from turnout.tracing.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_a_failing_store_leaves_known_keys_on_their_last_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with SQLiteStore(tmp_path / "traces.db") as store:
        keys = KeyStore(store)
        ok, _ = keys.create("team-a")
        gone, _ = keys.create("gone")
        keys.revoke("gone")
        unseen, _ = keys.create("unseen")
        clock = Clock()
        cache = CachedKeys(keys, ttl_s=30, retry_s=1, clock=clock)
        cache.shared = True  # key changes are announced through Redis
        assert not cache.observe(7, None)  # and the generation was heard
        assert (await cache.authenticate(ok)).name == "team-a"
        with pytest.raises(KeyRefused, match="revoked"):
            await cache.authenticate(gone)

        def down(presented: str) -> None:
            raise StoreError("connection refused")

        monkeypatch.setattr(keys, "find", down)
        clock.t = 60  # past the cache's lifetime too
        reads = cache.reads
        with caplog.at_level(logging.INFO, logger="turnout.keys"):
            for _ in range(3):
                assert (await cache.authenticate(ok)).name == "team-a"
                with pytest.raises(KeyRefused, match="revoked"):
                    await cache.authenticate(gone)
                with pytest.raises(KeyRefused) as info:
                    await cache.authenticate(unseen)
                assert (info.value.status, info.value.code) == (503, "key_store_unavailable")
            assert cache.reads == reads + 1  # one try; the others within retry_s skip it
            clock.t = 61.5
            assert (await cache.authenticate(ok, fresh=True)).name == "team-a"
            assert cache.reads == reads + 2 and cache.store_failures == 2
            cache.observe(None, 7)  # Redis is away too: no word of key changes
            with pytest.raises(KeyRefused, match="too old to trust"):
                await cache.authenticate(ok)
            with pytest.raises(KeyRefused, match="revoked"):  # refusing stays safe
                await cache.authenticate(gone)
            cache.observe(7, 7)
            assert (await cache.authenticate(ok)).name == "team-a"
            cache.forget()  # a key changed: a record from before is not trusted to admit
            with pytest.raises(KeyRefused, match="not seen since a key last changed"):
                await cache.authenticate(ok)
            monkeypatch.undo()  # the store is back
            clock.t = 63
            assert (await cache.authenticate(unseen)).name == "unseen"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "key store failed" in warnings[0].getMessage()
        assert "answers again" in caplog.records[-1].getMessage()


async def test_without_shared_key_changes_an_old_record_only_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SQLiteStore(tmp_path / "traces.db") as store:
        keys = KeyStore(store)
        ok, _ = keys.create("team-a")
        clock = Clock()
        cache = CachedKeys(keys, ttl_s=30, clock=clock)  # one process, no Redis
        assert (await cache.authenticate(ok)).name == "team-a"

        def down(presented: str) -> None:
            raise StoreError("connection refused")

        monkeypatch.setattr(keys, "find", down)
        clock.t = 29  # within its lifetime the record stands, as always
        assert (await cache.authenticate(ok)).name == "team-a"
        clock.t = 31  # past it: another process may have revoked it unseen
        with pytest.raises(KeyRefused) as info:
            await cache.authenticate(ok)
        assert (info.value.status, info.value.code) == (503, "key_store_unavailable")


class _SlowAnswer:
    """A key store whose read finds the row, then takes a while to bring it back (a
    network round trip), until ``answer`` is set."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.answer = threading.Event()

    def find(self, presented: str) -> object:
        row = self.keys.find(presented)
        self.answer.wait(5)
        return row


async def test_a_key_changed_while_it_is_read_is_read_again_not_joined(tmp_path: Path) -> None:
    """A read under way when a key is revoked may hold the record from before: a fresh
    read does not join it, and what it brings back is not cached."""
    with SQLiteStore(tmp_path / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("team-a")
        slow = _SlowAnswer(keys)
        cache = CachedKeys(slow, offload=True, read_timeout_s=2.0)  # type: ignore[arg-type]
        before = asyncio.ensure_future(cache.authenticate(secret))  # a read begins
        await asyncio.sleep(0.1)  # it has found the row
        keys.revoke("team-a")
        cache.forget()  # revoked through this process
        fresh = asyncio.ensure_future(cache.authenticate(secret, fresh=True))
        await asyncio.sleep(0.05)
        slow.answer.set()
        assert (await before).name == "team-a"  # it was let in before the revocation
        with pytest.raises(KeyRefused, match="revoked"):
            await fresh
        with pytest.raises(KeyRefused, match="revoked"):  # the fresh record is the one cached
            await cache.authenticate(secret)
        assert cache.reads == 2
