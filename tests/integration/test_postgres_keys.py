"""Virtual keys in a real PostgreSQL database (created and dropped here): the same
store code as SQLite, the migration recorded, two "replicas" seeing one revocation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.pg import throwaway_database
from turnout.keys import KeyRefused, KeyStore, Period
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
