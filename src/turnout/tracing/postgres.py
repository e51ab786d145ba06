"""The PostgreSQL trace store: shared by gateway replicas, migrated on open.

Same schema, SQL and behaviour as :class:`~turnout.tracing.sqlite.SQLiteStore`
(see :mod:`turnout.tracing.migrations`). psycopg 3 is imported when a store is
opened, never when this module is, so ``import turnout.tracing`` works without
it. A batch is one transaction of one statement per table, its rows sent as one JSON
array (:func:`~turnout.tracing.rows.json_rows`; ``executemany`` when JSON would not
carry a value exactly).

Every round trip has a deadline, so a failing database turns into an error the trace
writer can act on (spill the batch, try again later) instead of a thread that waits
while its queue grows:

* a write statement that runs longer than ``write_timeout_s`` (waiting on a lock, an
  overloaded server) is cancelled by the server (``statement_timeout``), and the
  connection is kept;
* a write (or :meth:`~PostgresStore.execute`) still unanswered ``write_timeout_s`` + 1 s
  after it began, a server or network that stopped answering altogether (SIGSTOPped,
  partitioned, a proxy that blackholes the connection), is cut off on the client: the
  connection's socket is shut down (:mod:`turnout.tracing.watchdog`), the connection
  dropped and the write fails; so does a write that waits that long for the connection
  another thread holds;
* a read is cut off after ``read_timeout_s`` (60 s; None: no limit), on the client
  only: a report may legitimately read for a while;
* a new connection is bounded by ``connect_timeout_s`` (psycopg: 2 s at least).

One connection serves every thread behind a lock; a connection found broken
(server restart, idle connection cut) is replaced and the call tried once more (not
one cut off by its deadline: the server is not answering). Error messages are
one line and never carry the password of the DSN.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from turnout.errors import StoreError
from turnout.tracing import rows
from turnout.tracing.migrations import Dialect, Execute, apply_migrations
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.tracing.sql_store import SQLStore
from turnout.tracing.watchdog import Watchdog

if TYPE_CHECKING:
    import psycopg

_DIALECT = Dialect.POSTGRES
_MIGRATION_LOCK = zlib.crc32(b"turnout.tracing.migrations")
_DEFAULT_CONNECT_TIMEOUT_S = 10
_DEFAULT_WRITE_TIMEOUT_S = 10.0
_DEFAULT_READ_TIMEOUT_S = 60.0
_CLIENT_GRACE_S = 1.0
"""How much longer than ``statement_timeout`` a write waits on the client: long enough
for the server's own cancellation (which keeps the connection) to come first."""
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:\\.|[^'\\])*'|\S+)", re.IGNORECASE)

_UPSERT_RUN = _DIALECT.sql(rows.UPSERT_RUN)
_UPSERT_STEP = _DIALECT.sql(rows.UPSERT_STEP)
_INSERT_ATTEMPT = _DIALECT.sql(rows.INSERT_ATTEMPT)

_T = TypeVar("_T")

INSTALL_HINT = "the PostgreSQL trace store needs psycopg: pip install 'turnout[postgres]'"


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***`` (URL or ``key=value`` form)."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            if parts.password is not None:
                host = parts.netloc.rpartition("@")[2]
                user = parts.username or ""
                parts = parts._replace(netloc=f"{user}:***@{host}")
            query = [
                (k, "***" if k.lower() == "password" else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
            return urlunsplit(parts._replace(query=urlencode(query, safe="*")))
        except ValueError:
            return "<unparsable DSN>"
    return _KV_PASSWORD.sub(r"\1***", dsn)


def _password_of(dsn: str) -> str | None:
    try:
        from psycopg.conninfo import conninfo_to_dict

        value = conninfo_to_dict(dsn).get("password")
    except Exception:
        return None
    return str(value) if value else None


class PostgresStore(SQLStore):
    """A :class:`~turnout.tracing.store.TraceStore` in a PostgreSQL database."""

    dialect = _DIALECT
    _conn: psycopg.Connection[tuple[Any, ...]]

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: float = _DEFAULT_CONNECT_TIMEOUT_S,
        write_timeout_s: float = _DEFAULT_WRITE_TIMEOUT_S,
        read_timeout_s: float | None = _DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self._dsn = dsn
        timeout_ms = max(1, round(write_timeout_s * 1000))
        self._write_timeout = f"SET LOCAL statement_timeout = {timeout_ms}"
        self._write_bound_s = write_timeout_s + _CLIENT_GRACE_S
        self._read_bound_s = read_timeout_s
        self.display = redact_dsn(dsn)
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.RLock()
        self._closed = False
        self._watchdog = Watchdog("turnout-postgres-watchdog")
        self._conn = self._connect()
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                apply_migrations(self._executor(self._conn), _DIALECT)
            self._json_inserts = self._load_json_inserts(self._conn)
        except Exception as exc:
            self._conn.close()
            raise self._error(f"cannot migrate trace store {self.display}", exc) from None

    def __repr__(self) -> str:
        return f"PostgresStore({self.display!r})"

    # -- plumbing ----------------------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> StoreError:
        """A one-line StoreError, ``what`` then the cause, with any password removed."""
        message = " ".join(str(exc).split()) or type(exc).__name__
        password = _password_of(self._dsn)
        if password:
            message = message.replace(password, "***")
        return StoreError(f"{what}: {message}")

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise StoreError(INSTALL_HINT) from None
        try:
            options: dict[str, Any] = {"autocommit": True}
            params = conninfo_to_dict(self._dsn)
            if "connect_timeout" not in params:
                options["connect_timeout"] = max(1, round(self._connect_timeout_s))
            if "application_name" not in params:
                options["application_name"] = "turnout"
            return psycopg.connect(self._dsn, **options)
        except Exception as exc:
            # `from None`: the chained exception could repeat the DSN.
            raise self._error(f"cannot connect to trace store {self.display}", exc) from None

    @staticmethod
    def _load_json_inserts(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[str, str, str]:
        """The batch inserts from JSON, each value cast to its column's type as the
        database has it (after the migrations)."""
        casts: dict[str, list[str]] = {}
        for table, columns in rows.TABLE_COLUMNS.items():
            types = dict(
                conn.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (table,),
                ).fetchall()
            )
            casts[table] = [types[column] for column in columns]
        runs, steps, attempts = (_DIALECT.sql(sql) for sql in rows.json_inserts(casts))
        return runs, steps, attempts

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The live connection, reconnecting if the old one broke. Hold the lock."""
        if self._closed:
            raise StoreError(f"trace store {self.display} is closed")
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _call(
        self,
        what: str,
        bound_s: float | None,
        work: Callable[[psycopg.Connection[tuple[Any, ...]]], _T],
    ) -> _T:
        """``work`` on the live connection, all of it within ``bound_s`` (None: no
        limit), waiting for the lock included. A connection found broken is replaced and
        ``work`` tried once more, unless the deadline cut it off."""
        deadline = None if bound_s is None else time.monotonic() + bound_s
        if not self._lock.acquire(timeout=-1 if bound_s is None else bound_s):
            raise StoreError(
                f"trace store {self.display}: {what} failed: "
                f"the connection stayed busy for {bound_s:g} s"
            )
        try:
            for retry in (True, False):
                conn = self._connection()
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                with self._watchdog.guard(conn.fileno(), left) as guard:
                    try:
                        return work(conn)
                    except Exception as exc:
                        if guard.fired:
                            conn.close()
                            raise StoreError(
                                f"trace store {self.display}: {what} failed: no answer "
                                f"within {bound_s:g} s (connection dropped)"
                            ) from None
                        if retry and conn.broken:
                            continue  # a stale connection (server restarted): once more, anew
                        raise self._error(
                            f"trace store {self.display}: {what} failed", exc
                        ) from None
            raise AssertionError("unreachable")
        finally:
            self._lock.release()

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._call(
            "read", self._read_bound_s, lambda conn: conn.execute(sql, params).fetchall()
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL in the shared dialect (``?`` placeholders): reports use this."""
        return self._query(Dialect.POSTGRES.sql(sql), params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement in the shared dialect, in its own transaction."""

        def execute(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
            with conn.transaction():
                conn.execute(self._write_timeout)
                conn.execute(Dialect.POSTGRES.sql(sql), params)

        self._call("write", self._write_bound_s, execute)

    def close(self) -> None:
        super().close()
        self._watchdog.close()

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
        tables = zip(
            (_UPSERT_RUN, _UPSERT_STEP, _INSERT_ATTEMPT),
            self._json_inserts,
            (rows.last_per_key(run_rows, 1), rows.last_per_key(step_rows, 2), attempt_rows),
            strict=True,
        )
        batches = [
            (one_by_one, all_at_once, table_rows, _payload(table_rows))
            for one_by_one, all_at_once, table_rows in tables
            if table_rows
        ]

        def write(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(self._write_timeout)
                for one_by_one, all_at_once, table_rows, payload in batches:
                    if payload is None:
                        cur.executemany(one_by_one, table_rows)
                    else:
                        cur.execute(all_at_once, (payload,))

        # A connection found broken (server restarted, idle connection cut) rolled the
        # transaction back: the batch is written once more on a new one.
        self._call("write", self._write_bound_s, write)

    def _executor(self, conn: psycopg.Connection[tuple[Any, ...]]) -> Execute:
        def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            cur = conn.execute(sql, params or None)
            return cur.fetchall() if cur.description else []

        return execute


_JSONB_MAX_CHARS = 64 * 1024 * 1024
"""A batch bigger than this is bound row by row: jsonb takes 256 MB at most."""


def _payload(table_rows: Sequence[rows.Row]) -> str | None:
    """Several rows as one JSON statement's parameter; None: bind them one by one (also
    when jsonb would not keep a value: it holds numbers as ``numeric``, which has no
    ``-0.0``; text that reads like one only costs the one-statement path)."""
    payload = rows.json_rows(table_rows) if len(table_rows) > 1 else None
    if payload is None or len(payload) > _JSONB_MAX_CHARS:
        return None
    if "-0.0," in payload or "-0.0]" in payload:
        return None
    return payload
