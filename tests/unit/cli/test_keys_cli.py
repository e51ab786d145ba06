"""`turnout keys` through the real `turnout` entry point over a real SQLite file: the key
is printed once and never again (list, show, JSON), bad input is a one-line exit 2."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from turnout.cli.main import main
from turnout.keys import KeyStore
from turnout.tracing.sqlite import SQLiteStore


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_list_show_update_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "traces.db")
    code, out, err = run(
        capsys, "keys", "create", "--name", "team-a", "--budget-usd", "50", "--period", "day",
        "--rpm", "60", "--tpm", "200000", "--policies", "rules,cheap_first",
        "--expires", "2099-01-01", "--store", db,
    )  # fmt: skip
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("tk-") and "cannot be shown again" in err
    with SQLiteStore(db) as store:
        assert KeyStore(store).authenticate(secret).name == "team-a"
    code, out, _ = run(capsys, "keys", "list", "--store", db, "--json")
    (listed,) = json.loads(out)
    assert listed["policies"] == ["rules", "cheap_first"] and listed["rpm"] == 60
    assert listed["budget_usd"] == "50" and listed["period"] == "day"
    with SQLiteStore(db) as store:  # $0.25 spent today (what the gateway traced)
        store.execute(
            "INSERT INTO runs (run_id, workflow, policy, status, started_at, key_name, "
            "cost_picousd) VALUES ('r1', 'gateway', 'p', 'succeeded', ?, 'team-a', ?)",
            (time.time(), 250_000_000_000),
        )
    code, out, _ = run(capsys, "keys", "show", "team-a", "--store", db)
    assert code == 0 and "team-a" in out and secret not in out
    assert re.search(r"spent_usd\s+0\.25\b", out) and re.search(r"remaining_usd\s+49\.75", out)
    code, out, _ = run(capsys, "keys", "show", "team-a", "--store", db, "--json")
    shown = json.loads(out)
    assert (shown["spent_usd"], shown["remaining_usd"]) == ("0.25", "49.75")
    code, out, _ = run(capsys, "keys", "update", "team-a", "--rpm", "0", "--models", "haiku",
                       "--store", db, "--json")  # fmt: skip
    shown = json.loads(out)
    assert code == 0 and shown["rpm"] is None and shown["models"] == ["haiku"]
    code, out, _ = run(capsys, "keys", "update", "team-a", "--tpm", "none", "--rpm", "5",
                       "--store", db, "--json")  # fmt: skip
    shown = json.loads(out)
    assert code == 0 and (shown["rpm"], shown["tpm"]) == (5, None)
    code, out, err = run(capsys, "keys", "revoke", "team-a", "--store", db)
    assert code == 0 and "revoked" in out
    assert "no Redis given" in err and "within 30 s" in err  # no gateway told at once
    code, out, _ = run(capsys, "keys", "list", "--store", db)
    assert "revoked" in out and secret not in out
    assert "$50/day" in out and "2099-01-01" in out  # piped: nothing cut
    assert secret.encode() not in Path(db).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--name", "x", "--budget-usd", "lots"], "--budget-usd: not a number"),
        (["keys", "create", "--name", "x", "--expires", "soon"], "--expires: not a date"),
        (["keys", "create", "--name", "x y"], "--name: key name"),
        (["keys", "create", "--name", "x", "--rpm", "lots"], "--rpm: expected a whole number"),
        (["keys", "revoke", "ghost"], "no key named 'ghost'"),
        (["keys", "update", "ghost"], "nothing to change"),
    ],
)
def test_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, *args, "--store", str(tmp_path / "t.db"))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_libpq_keyword_store_is_refused_without_making_a_file_or_showing_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (("list",), ("create", "--name", "a")):
        code, out, err = run(capsys, "keys", *command, "--store",
                             "host=127.0.0.1 dbname=x password=S3CRET")  # fmt: skip
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "postgresql://" in err and "S3CRET" not in err
    assert list(tmp_path.iterdir()) == []


def test_revoke_tells_the_gateways_through_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    import uuid

    redis_asyncio = pytest.importorskip("redis.asyncio")
    prefix = f"turnout-test:{uuid.uuid4().hex}"
    db = str(tmp_path / "traces.db")
    assert run(capsys, "keys", "create", "--name", "a", "--store", db)[0] == 0

    async def generation() -> int:
        client = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
        try:
            value = await client.get(f"{prefix}:keys:generation")
            await client.delete(f"{prefix}:keys:generation")
            return int(value or 0)
        finally:
            await client.aclose()

    code, _, err = run(capsys, "keys", "revoke", "a", "--store", db, "--redis",
                       "redis://127.0.0.1:6379/0", "--redis-prefix", prefix)  # fmt: skip
    assert code == 0, err
    if "unreachable" in err:
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    assert asyncio.run(generation()) == 1


def test_limits_out_of_range_name_the_option_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "traces.db")
    for args, option in (
        (("--budget-usd", "10000000"), "--budget-usd: at most 9,000,000"),
        (("--rpm", "3000000000"), "--rpm: must be from 1 to"),
        (("--period", "week"), "--period: a period is for a budget"),
        (("--expires", "2020-01-01"), "--expires: is in the past"),
    ):
        code, out, err = run(capsys, "keys", "create", "--name", "big", *args, "--store", db)
        assert code == 2 and option in err and len(err.strip().splitlines()) == 1, err
        assert out == ""
    code, out, _ = run(capsys, "keys", "list", "--store", db, "--json")
    assert json.loads(out) == []


def test_a_bad_redis_url_is_refused_before_the_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "traces.db")
    assert run(capsys, "keys", "create", "--name", "team-a", "--store", db)[0] == 0
    for command in (("revoke", "team-a"), ("update", "team-a", "--rpm", "5")):
        code, _, err = run(capsys, "keys", *command, "--redis", "127.0.0.1:6379", "--store", db)
        assert code == 2 and "--redis: expected a redis://" in err and "Traceback" not in err
    code, out, _ = run(capsys, "keys", "show", "team-a", "--store", db, "--json")
    shown = json.loads(out)
    assert shown["status"] == "active" and shown["rpm"] is None  # nothing changed


def test_the_gateways_config_names_the_store_the_scopes_and_the_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    redis = pytest.importorskip("redis")
    prefix = f"turnout-test:{uuid.uuid4().hex}"
    db = tmp_path / "team.db"
    (tmp_path / "turnout.yaml").write_text(
        "providers: {up: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "models: {small: {provider: up, id: s, tier: efficient, price: {input: 1, output: 2}}}\n"
        "policies: {cheap: {kind: static, model: small}}\n"
        f"storage: {db}\n"
        f"executor: {{state: redis, redis_prefix: '{prefix}'}}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TURNOUT_STORE", raising=False)
    for scope, message in ((("--policies", "cheap,nope"), "--policies: unknown policy 'nope'"),
                           (("--models", "haiku"), "--models: unknown model 'haiku'")):  # fmt: skip
        code, out, err = run(capsys, "keys", "create", "--name", "a", *scope)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run(capsys, "keys", "create", "--name", "a", "--policies", "cheap")
    assert code == 0, err
    with SQLiteStore(db) as store:  # storage: in ./turnout.yaml, not .turnout/traces.db
        assert KeyStore(store).authenticate(out.strip()).name == "a"
    assert not (tmp_path / ".turnout").exists()
    code, _, err = run(capsys, "keys", "update", "a", "--models", "haiku")
    assert code == 2 and "--models: unknown model 'haiku'" in err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, _ = run(capsys, "keys", "show", "a", "-c", str(tmp_path / "turnout.yaml"), "--json")
    assert code == 0 and json.loads(out)["policies"] == ["cheap"]
    code, _, err = run(capsys, "keys", "revoke", "a", "-c", str(tmp_path / "turnout.yaml"))
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:  # the config's Redis was told, under its prefix
        assert code == 0 and client.get(f"{prefix}:keys:generation") == b"1", err
    finally:
        client.delete(f"{prefix}:keys:generation")
        client.close()
    code, _, err = run(capsys, "keys", "list", "-c", str(elsewhere / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


def test_a_relative_storage_is_beside_the_config_not_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "gateway"
    conf.mkdir()
    (conf / "turnout.yaml").write_text(
        "providers: {up: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "models: {small: {provider: up, id: s, tier: efficient, price: {input: 1, output: 2}}}\n"
        "storage: keys.db\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("TURNOUT_STORE", raising=False)
    code, out, err = run(capsys, "keys", "create", "--name", "a", "-c", "../gateway/turnout.yaml")
    assert code == 0, err
    with SQLiteStore(conf / "keys.db") as store:
        assert KeyStore(store).authenticate(out.strip()).name == "a"
    assert list(elsewhere.iterdir()) == []
    monkeypatch.chdir(conf)
    code, out, err = run(capsys, "keys", "list", "--json")  # ./turnout.yaml: the same store
    assert code == 0 and [k["name"] for k in json.loads(out)] == ["a"], err


@pytest.mark.parametrize(
    "command",
    [
        ("list",),
        ("list", "--active"),
        ("show", "a"),
        ("update", "a", "--rpm", "5"),
        ("revoke", "a"),
    ],
)
def test_a_missing_store_is_named_and_not_created(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TURNOUT_STORE", raising=False)
    for store in (("--store", "keys.db"), ()):  # given, and the default
        code, out, err = run(capsys, "keys", *command, *store)
        where = "keys.db" if store else ".turnout/traces.db"
        assert code == 2 and out == "" and f"no trace store at {where}" in err, err
        assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_scopes_without_a_config_to_check_them_are_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./turnout.yaml, no -c
    db = str(tmp_path / "t.db")
    code, out, err = run(capsys, "keys", "create", "--name", "a", "--policies", "nosuchpolicy",
                         "--models", "nosuchmodel", "--store", db)  # fmt: skip
    assert code == 0 and out.startswith("tk-")
    assert "warning: no turnout.yaml found: --policies/--models not checked" in err
    assert "pass -c" in err
    code, _, err = run(capsys, "keys", "update", "a", "--models", "other", "--store", db)
    assert code == 0 and "warning: no turnout.yaml found: --models not checked" in err
    code, _, err = run(capsys, "keys", "create", "--name", "b", "--rpm", "5", "--store", db)
    assert code == 0 and "warning" not in err  # nothing to check


def test_keys_read_options_by_the_admin_api_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "traces.db")
    code, out, err = run(capsys, "keys", "create", "--name", "a", "--rpm", "0", "--expires",
                         "never", "--budget-usd", "none", "--store", db, "--json")  # fmt: skip
    made = json.loads(out)
    assert code == 0 and made["rpm"] is None and made["expires_at"] is None, err
    assert made["budget_usd"] is None
    assert run(capsys, "keys", "revoke", "a", "--store", db)[0] == 0
    code, out, err = run(capsys, "keys", "update", "a", "--rpm", "5", "--store", db)
    assert code == 2 and out == "" and "key 'a' is revoked: it cannot be changed" in err
    assert len(err.strip().splitlines()) == 1


def test_list_active_leaves_out_revoked_and_expired_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    db = str(tmp_path / "traces.db")
    with SQLiteStore(db) as store:  # made an hour ago, to expire a minute ago
        KeyStore(store, clock=lambda: time.time() - 3600).create(
            "expired", expires_at=time.time() - 60
        )
        KeyStore(store).create("revoked")
        KeyStore(store).revoke("revoked")
        KeyStore(store).create("usable")
    code, out, _ = run(capsys, "keys", "list", "--active", "--store", db, "--json")
    assert code == 0 and [k["name"] for k in json.loads(out)] == ["usable"]
    code, out, _ = run(capsys, "keys", "list", "--store", db, "--json")
    assert [(k["name"], k["status"]) for k in json.loads(out)] == [
        ("expired", "expired"), ("revoked", "revoked"), ("usable", "active")
    ]  # fmt: skip


def test_a_period_is_a_budgets_and_is_named_as_the_options_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "traces.db")
    assert run(capsys, "keys", "create", "--name", "nobudget", "--store", db)[0] == 0
    code, out, err = run(capsys, "keys", "update", "nobudget", "--period", "week", "--store", db)
    assert code == 2 and "--period: a period is for a budget: give --budget-usd too" in err
    code, out, _ = run(capsys, "keys", "show", "nobudget", "--store", db, "--json")
    assert json.loads(out)["period"] is None  # no budget: no period shown
    code, out, _ = run(capsys, "keys", "show", "nobudget", "--store", db)
    assert [line.split()[1] for line in out.splitlines() if line.startswith("period")] == ["—"]
    code, out, _ = run(capsys, "keys", "update", "nobudget", "--budget-usd", "5", "--store", db,
                       "--json")  # fmt: skip
    assert json.loads(out)["period"] == "month"  # a budget without --period: a month
    for args, period in ((("--period", "day"), "day"), (("--budget-usd", "none"), None),
                         (("--budget-usd", "7"), "month")):  # fmt: skip
        code, out, err = run(capsys, "keys", "update", "nobudget", *args, "--store", db, "--json")
        assert code == 0 and json.loads(out)["period"] == period, (args, err)


@pytest.mark.parametrize("command", ["create", "list", "show", "update", "revoke"])
def test_help_names_the_environment_and_every_option_has_help(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, _ = run(capsys, "keys", command, "--help")
    text = " ".join(out.split())
    assert code == 0 and "$TURNOUT_STORE, else storage: of the config" in text
    if command in ("update", "revoke"):
        assert "$TURNOUT_REDIS_URL" in text and "$TURNOUT_REDIS_PREFIX" in text
    options = [line.split()[0] for line in out.splitlines() if line.startswith("  -")]
    bare = [line for line in out.splitlines() if line.startswith("  -") and len(line.split()) < 2]
    assert options and bare == [], bare  # e.g. `--json` with nothing said of it
