"""What the SQLite and PostgreSQL trace stores share: reading runs, the migration
list, closing. Each store brings its connection, its ``_query`` (which maps its
driver's errors to :class:`~turnout.errors.StoreError`) and its ``_executor``."""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from turnout.tracing import rows
from turnout.tracing.migrations import Dialect, Execute, applied_migrations
from turnout.tracing.records import RunRecord, RunTrace


@functools.cache
def dialect_sql(dialect: Dialect, text: str) -> str:
    """Shared SQL adapted to ``dialect``, once per statement."""
    return dialect.sql(text)


class SQLStore(ABC):
    """The shared half of a SQL trace store; a subclass supplies the three methods
    below for its driver."""

    dialect: Dialect
    display: str
    _lock: threading.RLock
    _closed: bool
    _conn: Any

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows of ``sql``; driver errors become :class:`~turnout.errors.StoreError`."""

    @abstractmethod
    def _connection(self) -> Any:
        """A live connection (StoreError once the store is closed)."""

    @abstractmethod
    def _executor(self, conn: Any) -> Execute:
        """How the migration reader runs a statement on ``conn``."""

    def _sql(self, text: str) -> str:
        return dialect_sql(self.dialect, text)

    def list_runs(
        self,
        *,
        limit: int = 20,
        workflow: str | None = None,
        bench_id: str | None = None,
        since: float | None = None,
    ) -> list[RunRecord]:
        sql, params = rows.list_runs_query(
            limit=limit, workflow=workflow, bench_id=bench_id, since=since
        )
        return [rows.run_from_row(r) for r in self._query(self._sql(sql), params)]

    def get_run(self, run_id: str) -> RunTrace | None:
        """The run with this id or, failing that, the one run whose id starts with it.

        Raises :class:`~turnout.errors.StoreError` when the prefix fits several runs.
        """
        if not run_id:
            return None
        select_run = self._sql(rows.SELECT_RUN)
        with self._lock:  # one consistent view of run, steps and attempts
            found = self._query(select_run, (run_id,))
            if not found:
                by_prefix = self._sql(rows.SELECT_RUN_IDS_BY_PREFIX)
                ids = self._query(by_prefix, (len(run_id), run_id))
                full_id = rows.resolve_prefix(run_id, [r[0] for r in ids])
                if full_id is None:
                    return None
                found = self._query(select_run, (full_id,))
            run = rows.run_from_row(found[0])
            steps = self._query(self._sql(rows.SELECT_STEPS), (run.run_id,))
            attempts = self._query(self._sql(rows.SELECT_ATTEMPTS), (run.run_id,))
        return RunTrace(
            run=run,
            steps=tuple(rows.step_from_row(s) for s in steps),
            attempts=tuple(rows.attempt_from_row(a) for a in attempts),
        )

    def migrations(self) -> list[tuple[str, str]]:
        """``(name, applied_at)`` of every applied migration."""
        with self._lock:
            return applied_migrations(self._executor(self._connection()), self.dialect)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
