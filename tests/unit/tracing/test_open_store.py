"""open_store: URLs and paths to stores; psycopg only when PostgreSQL is asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from turnout.errors import StoreError
from turnout.tracing import DEFAULT_SQLITE_PATH, SQLiteStore, open_store, sqlite_path_of
from turnout.tracing.postgres import redact_dsn


def test_none_is_sqlite_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(None)
    try:
        assert isinstance(store, SQLiteStore)
    finally:
        store.close()
    assert (tmp_path / ".turnout" / "traces.db").exists()
    assert sqlite_path_of(None) == DEFAULT_SQLITE_PATH


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("traces.db", Path("traces.db")),
        ("sub/dir/t.db", Path("sub/dir/t.db")),
        ("sqlite:///rel/t.db", Path("rel/t.db")),
        ("sqlite:////abs/t.db", Path("/abs/t.db")),
        ("SQLITE:///x.db", Path("x.db")),
        ("sqlite:///:memory:", None),
        ("postgresql://u@h/db", None),
        ("postgres://u@h/db", None),
    ],
)
def test_urls_name_stores(url: str, expected: Path | None) -> None:
    assert sqlite_path_of(url) == expected


@pytest.mark.parametrize("url", ["sqlite:///rel/t.db", "plain.db"])
def test_sqlite_urls_and_paths_open_files(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_store(url).close()
    assert (tmp_path / url.removeprefix("sqlite:///")).exists()


def test_absolute_sqlite_url(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path}/abs.db").close()
    assert (tmp_path / "abs.db").exists()


def test_memory_url() -> None:
    store = open_store("sqlite:///:memory:")
    assert store.list_runs() == []
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:hunter2@db/x", r"unknown trace store URL scheme mysql://"),
        ("sqlite://", r"bad SQLite URL"),
        ("sqlite:///", r"bad SQLite URL"),
        ("   ", r"empty trace store URL"),
    ],
)
def test_bad_urls_are_one_line_store_errors(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    assert "\n" not in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "host=127.0.0.1 dbname=x password=hunter2",
        "dbname=turnout",
        "  user = alice password=hunter2",
        "a=b c",
    ],
)
def test_keyword_strings_are_refused_without_a_file_or_the_password(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=r"looks like a PostgreSQL key=value string") as info:
        open_store(value)
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["my=traces.db", "with space/t.db", "dbname.db"])
def test_paths_with_an_equals_sign_or_a_space_alone_are_still_paths(path: str) -> None:
    assert sqlite_path_of(path) == Path(path)


def test_unreachable_postgres_is_a_one_line_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://alice:s3cr3t-pw@127.0.0.1:1/traces?connect_timeout=2")
    message = str(info.value)
    assert message.startswith("cannot connect to trace store postgresql://alice:***@127.0.0.1:1/")
    assert "s3cr3t-pw" not in message
    assert "\n" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_malformed_dsn_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect") as info:
        open_store("postgresql://bob:pw-123@127.0.0.1:notaport/db")
    assert "pw-123" not in str(info.value)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db?password=pw&sslmode=off", "postgresql://h/db?password=***&sslmode=off"),
        ("host=h password=pw user=u", "host=h password=*** user=u"),
        ("host=h password='p w' user=u", "host=h password=*** user=u"),
    ],
)
def test_dsns_are_shown_without_passwords(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_importing_tracing_does_not_import_psycopg() -> None:
    result = _python(
        "import sys, turnout.tracing, turnout.cli.traces\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
    )
    assert result.returncode == 0, result.stderr


def test_without_psycopg_postgres_urls_say_what_to_install() -> None:
    result = _python(
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "from turnout.tracing import open_store\n"
        "from turnout.errors import StoreError\n"
        "try:\n"
        "    open_store('postgresql://u:pw@127.0.0.1:1/db')\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'turnout[postgres]'" in result.stdout
