"""Named, recorded migrations: applied once, in order, atomically."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from turnout.errors import StoreError
from turnout.tracing import MIGRATIONS, Dialect, SQLiteStore, apply_migrations
from turnout.tracing.migrations import Execute, Migration, applied_migrations, sql_migration


def _executor(conn: sqlite3.Connection) -> Execute:
    def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    return execute


def _names(conn: sqlite3.Connection) -> list[str]:
    return [n for (n,) in conn.execute("SELECT name FROM _migrations ORDER BY name")]


def test_a_new_store_records_every_migration(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        recorded = store.migrations()
    assert [name for name, _ in recorded] == [m.name for m in MIGRATIONS]
    for _, applied_at in recorded:
        assert applied_at.endswith("+00:00")


def test_reopening_applies_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with SQLiteStore(path) as store:
        first = store.migrations()
    with SQLiteStore(path) as store:
        assert store.migrations() == first
    conn = sqlite3.connect(path)
    assert apply_migrations(_executor(conn), Dialect.SQLITE) == []
    conn.close()


def test_only_new_migrations_run_and_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    execute = _executor(conn)
    seen: list[str] = []

    def note(name: str) -> Migration:
        return Migration(name, lambda ex, dialect: seen.append(name))

    assert apply_migrations(execute, Dialect.SQLITE, [note("a"), note("b")]) == ["a", "b"]
    assert apply_migrations(execute, Dialect.SQLITE, [note("a"), note("b"), note("c")]) == ["c"]
    assert seen == ["a", "b", "c"]
    assert [n for n, _ in applied_migrations(execute, Dialect.SQLITE)] == ["a", "b", "c"]
    conn.close()


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db")
    with pytest.raises(ValueError, match="duplicate migration"):
        apply_migrations(_executor(conn), Dialect.SQLITE, [sql_migration("x"), sql_migration("x")])
    conn.close()


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    broken = [
        sql_migration("m1", "CREATE TABLE t1 (x INTEGER)"),
        sql_migration("m2", "CREATE TABLE t2 (x INTEGER)", "THIS IS NOT SQL"),
    ]
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(_executor(conn), Dialect.SQLITE, broken)
    conn.execute("ROLLBACK")
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables.isdisjoint({"t1", "t2", "_migrations"})
    conn.close()


def _plan(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> str:
    return " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_schema_has_the_tables_and_indexes_reads_need(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    objects = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "steps", "attempts", "_migrations"} <= objects
    assert {
        "runs_started_at",
        "runs_workflow_started_at",
        "runs_bench_id_started_at",
        "steps_started_at",
        "attempts_run_id",
        "attempts_started_at",
        "attempts_report",
    } <= objects
    plan = _plan(
        conn,
        "SELECT run_id FROM runs WHERE workflow = ? ORDER BY started_at DESC LIMIT 20",
        ("w",),
    )
    assert "runs_workflow_started_at" in plan
    assert "attempts_run_id" in _plan(conn, "SELECT * FROM attempts WHERE run_id = ?", ("r",))
    conn.close()


def test_a_report_over_a_period_reads_only_the_covering_index(tmp_path: Path, s: Any) -> None:
    path = tmp_path / "t.db"
    with SQLiteStore(path) as store:
        models = ("small", "large", "mid")
        attempts = [
            s.attempt(run_id=f"r{i // 10}", attempt=i, model=models[i % 3], started_at=s.T0 + i)
            for i in range(3000)
        ]
        store.write_batch([], [], attempts)
    SQLiteStore(path).close()  # opening refreshes the planner's statistics
    conn = sqlite3.connect(path)
    report = (
        "SELECT model, tier, step_id, count(*), sum(cost_picousd), sum(input_tokens), "
        "sum(output_tokens), sum(cached_input_tokens), avg(latency_s), "
        "sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) "
        "FROM attempts WHERE started_at >= ? AND started_at < ? GROUP BY model, tier, step_id"
    )
    plan = _plan(conn, report, (s.T0, s.T0 + 7 * 86400))
    assert "COVERING INDEX attempts_report" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index is in group order
    conn.close()


@pytest.mark.parametrize("round_", range(20))  # a race: SQLite refused the WAL switch now and then
def test_stores_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "t.db"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait()
            SQLiteStore(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert _names(conn) == sorted(m.name for m in MIGRATIONS)
    conn.close()


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the traces you are looking for\n" * 100)
    with pytest.raises(StoreError, match=r"cannot open trace store .*notes\.db"):
        SQLiteStore(path)


def test_dialects_adapt_placeholders_and_keys() -> None:
    sql = "INSERT INTO t (id, x) VALUES (?, ?) -- {serial_pk}"
    assert Dialect.SQLITE.sql(sql) == "INSERT INTO t (id, x) VALUES (?, ?) -- INTEGER PRIMARY KEY"
    assert Dialect.POSTGRES.sql(sql).startswith("INSERT INTO t (id, x) VALUES (%s, %s) -- BIGINT")


def test_migration_names_are_numbered_in_order() -> None:
    from turnout.tracing.migrations import MIGRATIONS

    numbers = [int(m.name[1:4]) for m in MIGRATIONS]
    assert numbers == list(range(1, len(MIGRATIONS) + 1))


_PARTIAL = {
    "runs_bench_id_started_at": "bench_id IS NOT NULL",
    "steps_override_by": "override_by IS NOT NULL",
    "runs_key_name_started_at": "key_name IS NOT NULL",
}


def test_indexes_of_mostly_empty_columns_hold_only_the_rows_that_fill_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
    for index, where in _PARTIAL.items():
        assert sql[index].endswith(f"WHERE {where}")
    assert "runs_session" not in sql  # nothing reads runs by session
    reads = {
        "runs_bench_id_started_at": (
            "SELECT run_id FROM runs WHERE bench_id = ? ORDER BY started_at DESC LIMIT 20",
            ("b",),
        ),
        "steps_override_by": ("SELECT run_id FROM steps WHERE override_by IS NOT NULL", ()),
        "runs_key_name_started_at": ("SELECT run_id FROM runs WHERE key_name = ?", ("k",)),
    }
    for index, (query, params) in reads.items():
        assert index in _plan(conn, query, params), query
    conn.close()


def test_a_store_made_before_the_partial_indexes_is_upgraded_in_place(
    tmp_path: Path, s: Any
) -> None:
    from turnout.tracing import rows

    path = tmp_path / "t.db"
    conn = sqlite3.connect(path, isolation_level=None)
    older = [m for m in MIGRATIONS if m.name != "m010_partial_indexes"]
    conn.execute("BEGIN IMMEDIATE")
    apply_migrations(_executor(conn), Dialect.SQLITE, older)
    conn.execute(rows.UPSERT_RUN, rows.run_row(s.run(bench_id="bench-1")))
    conn.execute(rows.UPSERT_RUN, rows.run_row(s.run(run_id="run-0002", bench_id=None)))
    conn.execute("COMMIT")
    assert "runs_session" in {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    with SQLiteStore(path) as store:
        assert store.migrations()[-1][0] == "m010_partial_indexes"
        assert [r.run_id for r in store.list_runs(bench_id="bench-1")] == ["run-0001"]
        assert len(store.list_runs()) == 2
