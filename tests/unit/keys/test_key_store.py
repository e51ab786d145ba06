"""Virtual keys in a real SQLite store: only hashes stored, constant-time recognition,
401 for unknown / revoked / expired keys, 403 outside a key's policies and models."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.errors import ConfigError
from turnout.keys import KeyRefused, KeyStore, Period, hash_key, key_summary
from turnout.keys.model import format_time, generate_key, parse_expiry, parse_names
from turnout.keys.store import KeyRevokedError
from turnout.tracing.migrations import MIGRATIONS
from turnout.tracing.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


def test_migration_is_recorded_and_named() -> None:
    assert "m008_virtual_keys" in [m.name for m in MIGRATIONS]


def test_create_stores_only_the_hash(db: Path) -> None:
    with SQLiteStore(db) as store:
        secret, key = KeyStore(store).create(
            "team-a", budget_usd=Decimal("50"), period=Period.DAY, rpm=60, tpm=200_000,
            policies=("rules",), models=("haiku",),
        )  # fmt: skip
        assert secret.startswith("tk-") and len(secret) > 40
        assert key.key_hash == hash_key(secret)
        assert "m008_virtual_keys" in {n for n, _ in store.migrations()}
    raw = sqlite3.connect(db).execute("SELECT * FROM virtual_keys").fetchall()
    assert secret not in repr(raw)
    assert db.read_bytes().find(secret.encode()) == -1


def test_a_record_created_or_changed_reads_as_stored(db: Path) -> None:
    """An amount given in exponent form comes back as ``keys show`` reads it."""
    with SQLiteStore(db) as store:
        keys = KeyStore(store)
        _, key = keys.create("team-a", budget_usd=Decimal("1e3"))
        assert str(key.budget_usd) == "1000" and key == keys.require("team-a")
        changed = keys.update("team-a", budget_usd=Decimal("2.5E+3"))
        assert str(changed.budget_usd) == "2500" and changed == keys.require("team-a")


@pytest.mark.parametrize("name", [".", "..", "-", "_.-"])
def test_a_name_needs_a_letter_or_a_digit(db: Path, name: str) -> None:
    with SQLiteStore(db) as store, pytest.raises(ConfigError, match="a letter or a digit"):
        KeyStore(store).create(name)


def test_keys_are_random() -> None:
    assert len({generate_key() for _ in range(100)}) == 100


def test_authenticate_and_refusals(db: Path) -> None:
    clock = Clock()
    with SQLiteStore(db) as store:
        keys = KeyStore(store, clock=clock)
        secret, _ = keys.create("team-a", expires_at=clock.t + 60, policies=("rules",))
        assert keys.authenticate(secret).name == "team-a"
        for wrong in (
            "",
            "nope",
            "tk-" + "x" * 43,
            secret[:-1] + "A" if secret[-1] != "A" else secret[:-1] + "B",
        ):
            with pytest.raises(KeyRefused) as info:
                keys.authenticate(wrong)
            assert info.value.status == 401 and info.value.code == "invalid_api_key"
            assert secret not in str(info.value)
        clock.t += 61
        with pytest.raises(KeyRefused) as info:
            keys.authenticate(secret)
        assert (info.value.status, info.value.code) == (401, "key_expired")
        keys.update("team-a", expires_at=None)
        key = keys.authenticate(secret)
        with pytest.raises(KeyRefused) as info:
            key.check_route(policy="cheap_first")
        assert (info.value.status, info.value.code) == (403, "policy_not_allowed")
        key.check_route(policy="rules")
        with pytest.raises(KeyRefused) as info:  # bound to its policies: no model by name
            key.check_route(model="anything")
        assert (info.value.status, info.value.code) == (403, "model_not_allowed")
        keys.revoke("team-a")
        with pytest.raises(KeyRefused) as info:
            keys.authenticate(secret)
        assert (info.value.status, info.value.code) == (401, "key_revoked")


def test_an_expired_key_can_still_be_changed(db: Path) -> None:
    clock = Clock()
    with SQLiteStore(db) as store:
        keys = KeyStore(store, clock=clock)
        keys.create("team-a", expires_at=clock.t + 60)
        clock.t += 120  # expired since
        assert keys.update("team-a", rpm=5).rpm == 5
        with pytest.raises(ConfigError, match=r"^expires: is in the past"):
            keys.update("team-a", expires_at=clock.t - 1)
        assert keys.update("team-a", expires_at=clock.t + 60).expires_at == clock.t + 60


def test_update_list_show(db: Path) -> None:
    with SQLiteStore(db) as store:
        keys = KeyStore(store)
        keys.create("b-team", rpm=10)
        keys.create("a-team", budget_usd=Decimal("0.01"), period=Period.TOTAL)
        updated = keys.update("b-team", rpm=None, tpm=5000, models=("haiku", "opus"))
        assert (updated.rpm, updated.tpm, updated.models) == (None, 5000, ("haiku", "opus"))
        assert keys.require("b-team") == updated
        assert [k.name for k in keys.list()] == ["a-team", "b-team"]
        keys.revoke("a-team")
        assert [k.name for k in keys.list(active=True)] == ["b-team"]
        with pytest.raises(KeyRevokedError, match=r"^key 'a-team' is revoked: it cannot be"):
            keys.update("a-team", rpm=5)  # revoking is for good
        assert keys.require("a-team").rpm is None
        summary = key_summary(keys.require("a-team"))
        assert summary["status"] == "revoked" and summary["budget_usd"] == "0.01"
        assert "key_hash" not in summary


def test_active_keys_are_neither_revoked_nor_expired(db: Path) -> None:
    clock = Clock()
    with SQLiteStore(db) as store:
        keys = KeyStore(store, clock=clock)
        for name in ("expiring", "revoked", "usable"):
            keys.create(name, expires_at=clock.t + 60 if name == "expiring" else None)
        keys.revoke("revoked")
        assert [k.name for k in keys.list(active=True)] == ["expiring", "usable"]
        clock.t += 60  # the expiry is reached
        assert [k.name for k in keys.list(active=True)] == ["usable"]
        assert [k.name for k in keys.list()] == ["expiring", "revoked", "usable"]


def test_bad_input_names_the_field(db: Path) -> None:
    with SQLiteStore(db) as store:
        keys = KeyStore(store)
        keys.create("team-a")
        with pytest.raises(ConfigError, match="exists already"):
            keys.create("team-a")
        with pytest.raises(ConfigError, match=r"^name: "):
            keys.create("bad name!")
        bad = [
            ({"rpm": 0}, "rpm"), ({"tpm": 2**53 + 1}, "tpm"), ({"budget_usd": Decimal(-1)}, "budget_usd"),
            ({"budget_usd": Decimal(10_000_000)}, "budget_usd"),  # past a BIGINT of pico-dollars
            ({"budget_usd": Decimal("1e-13")}, "budget_usd"),  # would be kept as $0
            ({"period": Period.WEEK}, "period"),  # a period without a budget
            ({"expires_at": 1.0}, "expires"),  # already past
        ]  # fmt: skip
        for given, field in bad:
            with pytest.raises(ConfigError) as info:
                keys.create("team-b", **given)
            assert info.value.field == field and "\n" not in str(info.value)
        for odd in ("NaN", "sNaN", "Infinity"):
            with pytest.raises(ConfigError, match=r"^budget_usd: not a number"):
                keys.create("team-b", budget_usd=Decimal(odd))
        assert keys.get("team-b") is None  # nothing half-written
        with pytest.raises(ConfigError, match=r"^budget_usd: at most"):
            keys.update("team-a", budget_usd=Decimal(10_000_000))
        with pytest.raises(ConfigError, match="no key named"):
            keys.revoke("ghost")
    with pytest.raises(ValueError, match="not a date"):
        parse_expiry("tomorrow")
    assert parse_expiry("2026-12-31") == 1798675200.0
    for odd in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"):  # years 10000, 0
        with pytest.raises(ValueError, match="outside the years 1 to 9999 in UTC"):
            parse_expiry(odd)
    assert format_time(parse_expiry("9999-12-31T23:59:59+05:00")) == "9999-12-31T18:59:59+00:00"
    assert format_time(1e15) == "1000000000000000 (epoch seconds)"  # a stored odd time shows
    assert parse_names(" rules, cheap_first ,rules") == ("rules", "cheap_first")
