"""The key cache while its database fails: cached keys are decided on their last record
(let through only while key changes are shared and heard), a key not cached (never
seen, or not since a key changed) is a 503, and the database is asked at most once
every ``retry_s``."""

from __future__ import annotations

import logging
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
