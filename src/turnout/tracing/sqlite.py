"""The SQLite trace store: one file, WAL mode, migrated on open.

One connection serves every thread behind a lock: the
:class:`~turnout.tracing.writer.TraceWriter` writes from its background thread
while the CLI or a report reads from another. WAL mode lets other processes
(a second gateway, ``turnout traces list``) read while this one writes;
``synchronous=NORMAL`` makes a commit cost no fsync (a power cut may lose the
last transactions, never corrupt the file).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from turnout.errors import StoreError
from turnout.tracing import rows
from turnout.tracing.migrations import Dialect, Execute, apply_migrations
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.tracing.sql_store import SQLStore
from turnout.tracing.store import DEFAULT_SQLITE_PATH

MEMORY = ":memory:"
_ANALYSIS_LIMIT = 1000
_DIALECT = Dialect.SQLITE


class SQLiteStore(SQLStore):
    """A :class:`~turnout.tracing.store.TraceStore` in one SQLite file.

    ``path`` may be ``":memory:"`` (tests); otherwise its parent directory is
    created. Opening runs any pending migration.
    """

    dialect = _DIALECT
    _conn: sqlite3.Connection

    def __init__(
        self, path: str | os.PathLike[str] = DEFAULT_SQLITE_PATH, *, busy_timeout_s: float = 30.0
    ) -> None:
        self.path = Path(path) if str(path) != MEMORY else None
        self.display = str(path)
        self._lock = threading.RLock()
        self._closed = False
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path),
                timeout=busy_timeout_s,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # guarded by self._lock
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open trace store {self.display}: {exc}") from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            self._wal(busy_timeout_s)
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._transaction() as conn:
                apply_migrations(self._executor(conn), _DIALECT)
            self._refresh_statistics()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open trace store {self.display}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteStore({self.display!r})"

    def _wal(self, timeout_s: float) -> None:
        """Switch to WAL. Switching takes the file alone, and SQLite answers "database is
        locked" at once, without waiting out the busy timeout, when another connection
        opens it meanwhile (workers starting together on a new file): so it is tried
        again, backing off, for up to ``timeout_s``."""
        deadline, pause = time.monotonic() + timeout_s, 0.001
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.05)

    # -- plumbing ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"trace store {self.display} is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, holding the database write lock from its start."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _refresh_statistics(self) -> None:
        """Sampled planner statistics (a few ms even for millions of rows).

        Without them SQLite cannot tell that a report over a period is better
        served by the covering ``attempts_report`` index than by the time index.
        Skipped, not failed, if another process holds the write lock.
        """
        try:
            self._conn.execute(f"PRAGMA analysis_limit = {_ANALYSIS_LIMIT}")
            self._conn.execute("PRAGMA busy_timeout = 0")
            self._conn.execute("ANALYZE")
        except sqlite3.OperationalError:
            pass
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            with self._lock:
                return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"trace store {self.display}: read failed: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL in the shared dialect (``?`` placeholders): reports use this."""
        return [tuple(r) for r in self._query(sql, params)]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement in the shared dialect, in its own transaction."""
        try:
            with self._transaction() as conn:
                conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"trace store {self.display}: write failed: {exc}") from exc

    # -- TraceStore --------------------------------------------------------------------

    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        """Upsert runs and steps, insert attempts: one transaction, all or nothing."""
        if not (runs or steps or attempts):
            return
        run_rows, step_rows, attempt_rows = rows.batch_rows(runs, steps, attempts)
        batches = zip(
            (rows.UPSERT_RUN, rows.UPSERT_STEP, rows.INSERT_ATTEMPT),
            _JSON_INSERTS,
            (run_rows, step_rows, attempt_rows),
            strict=True,
        )
        try:
            with self._transaction() as conn:
                for one_by_one, all_at_once, table_rows in batches:
                    if not table_rows:
                        continue
                    several = _JSON_EACH and len(table_rows) > 1
                    payload = rows.json_rows(table_rows) if several else None
                    if payload is None:
                        conn.executemany(one_by_one, table_rows)
                    else:
                        conn.execute(all_at_once, (payload,))
        except (sqlite3.Error, OverflowError, UnicodeError) as exc:
            raise StoreError(f"trace store {self.display}: write failed: {exc}") from exc

    def _executor(self, conn: sqlite3.Connection) -> Execute:
        def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

        return execute


_JSON_EACH = sqlite3.sqlite_version_info >= (3, 38, 0)
"""SQLite has ``->>`` and ``json_each`` for batches as one JSON statement."""
_JSON_INSERTS = rows.json_inserts()
