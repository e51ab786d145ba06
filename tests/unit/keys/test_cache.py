"""The key cache while its database fails: cached keys are decided on their last record,
a key not cached (never seen, or not since a key changed) is a 503, and the database is
asked at most once every ``retry_s``."""

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
            cache.forget()  # a key changed: a record from before is not trusted to admit
            with pytest.raises(KeyRefused, match="not seen since a key last changed"):
                await cache.authenticate(ok)
            monkeypatch.undo()  # the store is back
            clock.t = 63
            assert (await cache.authenticate(unseen)).name == "unseen"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "key store failed" in warnings[0].getMessage()
        assert "answers again" in caplog.records[-1].getMessage()
