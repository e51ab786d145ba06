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

A write that fails after its COMMIT was sent (the connection cut, or the watchdog firing,
while the answer was on its way) may have been committed all the same. Writing its batch
again would write its attempts twice (runs and steps are upserts, attempts plain
inserts), so such a write raises :class:`~turnout.errors.CommitUnknown` naming its
transaction: the write's first round trip, the one that sets ``statement_timeout``, also
reads the transaction's id (``pg_current_xact_id()``; ``txid_current()`` before
PostgreSQL 13), and the first write on a connection asks which database it is on (the
cluster's ``system_identifier`` and the database's oid). The trace writer spills the
batch with that name, and :meth:`PostgresStore.committed` asks the server before the
batch is replayed (``pg_xact_status()``; ``txid_status()`` before 13): committed, the
batch is not written again; aborted, too old to tell, not this database's or not in its
history (a restored backup), it is; still in progress, the replay waits. Before
PostgreSQL 10 a transaction's status cannot be asked: such a write raises
``CommitUnknown`` without a name and its batch is written again, as before. A write the
server answered with an error (it rolled back) is an ordinary failure.

One connection serves every thread behind a lock; a connection found broken
(server restart, idle connection cut) is replaced and the call tried once more (not
one cut off by its deadline: the server is not answering; nor a write whose COMMIT was
sent). Error messages are one line and never carry the password of the DSN.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from turnout.errors import CommitUnknown, StoreError
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
_SERVER_ID = (
    "SELECT (SELECT system_identifier FROM pg_control_system())::text || '/' || "
    "(SELECT oid FROM pg_database WHERE datname = current_database())::text"
)
_DATABASE_ID = "SELECT '-/' || (SELECT oid FROM pg_database WHERE datname = current_database())"
"""Which database a connection's transactions belong to: the cluster and the database
(the database alone where ``pg_control_system()`` may not be called)."""
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:\\.|[^'\\])*'|\S+)", re.IGNORECASE)

_UPSERT_RUN = _DIALECT.sql(rows.UPSERT_RUN)
_UPSERT_STEP = _DIALECT.sql(rows.UPSERT_STEP)
_INSERT_ATTEMPT = _DIALECT.sql(rows.INSERT_ATTEMPT)

_T = TypeVar("_T")

INSTALL_HINT = "the PostgreSQL trace store needs psycopg: pip install 'turnout[postgres]'"


@dataclass(frozen=True, slots=True)
class _XactFunctions:
    current: str
    """An expression: the current transaction's id, as text (one is assigned)."""
    status: str
    """A query: ``committed``, ``aborted``, ``in progress`` or NULL of transaction ``%s``."""


def _xact_functions(server_version: int) -> _XactFunctions | None:
    """How a server of this version names a transaction and tells its outcome (None:
    it cannot, before PostgreSQL 10)."""
    if server_version >= 130000:
        return _XactFunctions("pg_current_xact_id()::text", "SELECT pg_xact_status(%s::xid8)")
    if server_version >= 100000:
        return _XactFunctions("txid_current()::text", "SELECT txid_status(%s::bigint)")
    return None


@dataclass(slots=True)
class _Commit:
    """Where a write stands: the name of its transaction, and whether COMMIT was sent."""

    transaction: str | None = None
    sent: bool = False


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
    _xact: _XactFunctions | None
    _begin: str
    _server: str | None

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: float = _DEFAULT_CONNECT_TIMEOUT_S,
        write_timeout_s: float = _DEFAULT_WRITE_TIMEOUT_S,
        read_timeout_s: float | None = _DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self._dsn = dsn
        self._timeout_ms = max(1, round(write_timeout_s * 1000))
        self._write_timeout = f"SET LOCAL statement_timeout = {self._timeout_ms}"
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
        return StoreError(f"{what}: {self._cause(exc)}")

    def _cause(self, exc: BaseException) -> str:
        message = " ".join(str(exc).split()) or type(exc).__name__
        password = _password_of(self._dsn)
        if password:
            message = message.replace(password, "***")
        return message

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
            conn = psycopg.connect(self._dsn, **options)
        except Exception as exc:
            # `from None`: the chained exception could repeat the DSN.
            raise self._error(f"cannot connect to trace store {self.display}", exc) from None
        self._xact = _xact_functions(conn.info.server_version)
        self._begin = (
            self._write_timeout
            if self._xact is None
            else f"SELECT set_config('statement_timeout', '{self._timeout_ms}', true), "
            f"{self._xact.current}"
        )
        self._server = None  # asked by the first write (within its deadline)
        return conn

    def _server_id(self, conn: psycopg.Connection[tuple[Any, ...]]) -> str:
        """Which database ``conn`` (the live connection) writes to: asked once a
        connection, outside a transaction."""
        if self._server is None:
            import psycopg

            try:
                row = conn.execute(_SERVER_ID).fetchone()
            except psycopg.Error:
                if conn.broken or conn.closed:
                    raise
                row = conn.execute(_DATABASE_ID).fetchone()
            assert row is not None
            self._server = str(row[0])
        return self._server

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
        commit: _Commit | None = None,
    ) -> _T:
        """``work`` on the live connection, all of it within ``bound_s`` (None: no
        limit), waiting for the lock included. A connection found broken is replaced and
        ``work`` tried once more, unless the deadline cut it off or ``commit`` (which
        ``work`` keeps up to date) says COMMIT was sent: then its outcome is unknown
        (:class:`~turnout.errors.CommitUnknown`)."""
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
                        unanswered = guard.fired or conn.closed or conn.broken
                        if guard.fired:
                            conn.close()
                        if commit is not None and commit.sent and unanswered:
                            raise self._unknown(what, bound_s, exc, guard.fired, commit) from None
                        if guard.fired:
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

    def _unknown(
        self, what: str, bound_s: float | None, exc: BaseException, fired: bool, commit: _Commit
    ) -> CommitUnknown:
        cause = (
            f"no answer within {bound_s:g} s (connection dropped)" if fired else self._cause(exc)
        )
        named = "" if commit.transaction is None else f" (transaction {commit.transaction})"
        return CommitUnknown(
            f"trace store {self.display}: {what} failed after COMMIT was sent, so it may have "
            f"been written{named}: {cause}",
            transaction=commit.transaction,
        )

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._call(
            "read", self._read_bound_s, lambda conn: conn.execute(sql, params).fetchall()
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL in the shared dialect (``?`` placeholders): reports use this."""
        return self._query(Dialect.POSTGRES.sql(sql), params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement in the shared dialect, in its own transaction. When the
        answer to its COMMIT is lost it is not tried again (it may have been written:
        a key created twice would fail as a duplicate, a flag be counted twice):
        :class:`~turnout.errors.CommitUnknown`, for the caller to check."""
        commit = _Commit()

        def execute(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
            commit.sent = False
            with conn.transaction():
                conn.execute(self._write_timeout)
                conn.execute(Dialect.POSTGRES.sql(sql), params)
                commit.sent = True

        self._call("write", self._write_bound_s, execute, commit)

    def close(self) -> None:
        super().close()
        self._watchdog.close()

    def committed(self, transaction: str) -> bool:
        """Whether the write that raised :class:`~turnout.errors.CommitUnknown` naming
        ``transaction`` was committed (:class:`~turnout.tracing.store.CommitStatus`).
        False also when that cannot be known any more: a transaction too old for the
        server to remember, or one of another database (the store now elsewhere, a
        restored backup that never had it)."""
        server, _, xid = transaction.rpartition("/")
        if not server or not xid.isdigit():
            return False

        def ask(conn: psycopg.Connection[tuple[Any, ...]]) -> str | None:
            import psycopg

            if self._xact is None or self._server_id(conn) != server:
                return None
            try:
                row = conn.execute(self._xact.status, (xid,)).fetchone()
            except psycopg.errors.InvalidParameterValue:
                return None  # "in the future": not in this server's history
            return None if row is None or row[0] is None else str(row[0])

        status = self._call("commit check", self._write_bound_s, ask)
        if status == "in progress":
            raise StoreError(
                f"trace store {self.display}: transaction {xid} is still in progress: "
                "whether its write committed is not known yet"
            )
        return status == "committed"

    # -- TraceStore --------------------------------------------------------------------

    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        """Upsert runs and steps, insert attempts: one transaction, all or nothing."""
        self.write_named(runs, steps, attempts)

    def write_named(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        *,
        on_named: Callable[[str], None] | None = None,
    ) -> None:
        """:meth:`write_batch`; ``on_named`` hears the transaction's name (as
        :meth:`committed` takes it) once it has one, before anything is written (a spill
        file's replay records it, to ask after a crash whether the batch was written)
        (:class:`~turnout.tracing.store.NamesWrites`)."""
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

        commit = _Commit()

        def write(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
            commit.transaction, commit.sent = None, False
            server = None if self._xact is None else self._server_id(conn)
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(self._begin)  # statement_timeout (and the transaction's id)
                if server is not None:
                    row = cur.fetchone()
                    assert row is not None
                    commit.transaction = f"{server}/{row[1]}"
                    if on_named is not None:
                        on_named(commit.transaction)
                for one_by_one, all_at_once, table_rows, payload in batches:
                    if payload is None:
                        cur.executemany(one_by_one, table_rows)
                    else:
                        cur.execute(all_at_once, (payload,))
                commit.sent = True  # from here on a lost answer leaves the outcome unknown

        # A connection found broken before COMMIT was sent (server restarted, idle
        # connection cut) rolled the transaction back: the batch is written once more on a
        # new one. After: CommitUnknown, for the replay to ask about.
        self._call("write", self._write_bound_s, write, commit)

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
