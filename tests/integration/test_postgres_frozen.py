"""PostgreSQL that stops answering without going away: a TCP proxy of the test's own
stops forwarding but keeps every connection open (what a SIGSTOPped server, or a proxy
or network that blackholes a connection, looks like to the client), or is a process of
the test's own that it SIGSTOPs. Every call of the store fails within its bound, the
writer spills instead of hanging (closing too), and once the database answers again
the spill file is replayed: rows = records written. Also when the answer lost is the one
to COMMIT (the proxy freezes, or cuts the connection, right after forwarding it): the
server may have committed, so the batch is spilled naming its transaction and replayed
only if that did not commit; attempt rows are written exactly once."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.integration.test_postgres_spill import _drain, _request

from support.pg import throwaway_database
from support.tcp_proxy import TcpProxy
from turnout.errors import CommitUnknown, StoreError
from turnout.tracing.postgres import PostgresStore
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.tracing.spill import SpillFile, decode_batch
from turnout.tracing.writer import TraceWriter

pytestmark = pytest.mark.postgres

WRITE_TIMEOUT_S = 0.3
BOUND_S = WRITE_TIMEOUT_S + 1.0  # the store's client-side bound of a write
CONNECT_S = 2.0  # psycopg's least connect_timeout
SLACK_S = 1.0


def _host_port(dsn: str) -> tuple[str, str, int]:
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    return host_port, host, int(port or 5432)


@contextmanager
def _frozen_path(dsn: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of the database (migrated first) and the DSN through it."""
    PostgresStore(dsn).close()
    host_port, host, port = _host_port(dsn)
    proxy = TcpProxy((host, port))
    proxy.start()
    try:
        yield proxy, dsn.replace(host_port, f"127.0.0.1:{proxy.port}")
    finally:
        proxy.thaw()
        proxy.stop()


def _timed(call: Callable[[], object], limit_s: float, release: Callable[[], None]) -> float:
    """Seconds ``call`` took to raise StoreError; fails (after ``release``, so the
    blocked thread can finish) if it is still waiting after ``limit_s``."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    elapsed = time.monotonic() - started
    if thread.is_alive():
        release()
        thread.join(30)
        pytest.fail(f"still waiting for the database after {limit_s} s")
    assert len(errors) == 1 and isinstance(errors[0], StoreError), errors
    return elapsed


def _counts(dsn: str) -> tuple[int, int]:
    with PostgresStore(dsn) as direct:
        ((runs,),) = direct.query("SELECT count(*) FROM runs", ())
        ((attempts,),) = direct.query("SELECT count(*) FROM attempts", ())
    return int(runs), int(attempts)


def _batch(i: int) -> tuple[list[RunRecord], list[StepRecord], list[AttemptRecord]]:
    """Request ``i``'s records, as one write."""
    run, attempt = _request(i)
    return [run], [], [attempt]


def _fds() -> int:
    gc.collect()  # psycopg leaves a timed-out connection attempt's socket to the collector
    return len(os.listdir("/proc/self/fd"))


def test_each_call_on_a_frozen_connection_fails_within_its_bound() -> None:
    with throwaway_database() as dsn:
        fds = _fds()
        with _frozen_path(dsn) as (proxy, via_proxy):
            store = PostgresStore(
                via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S, read_timeout_s=0.5
            )

            def frozen(call: Callable[[], object], bound_s: float) -> float:
                proxy.freeze()
                try:
                    return _timed(call, bound_s + SLACK_S, proxy.thaw)
                finally:
                    proxy.thaw()

            try:
                store.write_batch(*_batch(0))
                took = frozen(lambda: store.write_batch(*_batch(1)), BOUND_S)
                assert BOUND_S - 0.1 < took < BOUND_S + SLACK_S
                # The connection was dropped; a new one is not made while frozen.
                took = frozen(lambda: store.write_batch(*_batch(1)), CONNECT_S)
                assert took < CONNECT_S + SLACK_S
                assert store.query("SELECT count(*) FROM runs") == [(1,)]  # reconnected
                took = frozen(lambda: store.query("SELECT 1"), 0.5)
                assert 0.4 < took < 0.5 + SLACK_S
                store.query("SELECT 1")
                took = frozen(lambda: store.execute("SELECT 1"), BOUND_S)
                assert BOUND_S - 0.1 < took < BOUND_S + SLACK_S
                store.write_batch(*_batch(1))  # the failed writes did not land: written once
            finally:
                store.close()
            assert not [t for t in threading.enumerate() if t.name == "turnout-postgres-watchdog"]
        assert _fds() == fds  # the store's connections and the watchdog's duplicates closed
        assert _counts(dsn) == (2, 2)


def test_a_writer_spills_within_the_bound_when_the_database_freezes(tmp_path: Path) -> None:
    requests = 300
    with throwaway_database() as dsn, _frozen_path(dsn) as (proxy, via_proxy):
        store = PostgresStore(via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S)
        spill = SpillFile(tmp_path / "spill.jsonl")
        writer = TraceWriter(store, spill=spill, retry_s=0.1, max_delay_s=0.005)
        try:
            for i in range(requests):
                if i == 100:
                    writer.flush()
                    proxy.freeze()  # mid-traffic: the connection stays, nothing comes back
                    frozen_at = time.monotonic()
                if i == 200:
                    writer.flush(timeout=BOUND_S + SLACK_S)  # spilled, not held
                    assert time.monotonic() - frozen_at < BOUND_S + SLACK_S
                    assert spill.spilled > 0 and spill.pending
                    proxy.thaw()
                for record in _request(i):
                    writer.submit(record)
                time.sleep(0.001)
            _drain(writer, spill)
        finally:
            proxy.thaw()
            store.close()
        assert spill.dropped == 0 and spill.replayed == spill.spilled > 0
        assert _counts(dsn) == (requests, requests)


def test_closing_a_writer_while_the_database_is_frozen_is_bounded(tmp_path: Path) -> None:
    """SIGTERM's drain: the records still in memory go to the spill file within one
    bound, and a writer started later on a working path replays them."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    with throwaway_database() as dsn:
        with _frozen_path(dsn) as (proxy, via_proxy):
            store = PostgresStore(via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S)
            writer = TraceWriter(store, spill=spill, retry_s=0.1, max_delay_s=0.005)
            try:
                for i in range(100):
                    if i == 50:
                        writer.flush()
                        proxy.freeze()
                    writer.submit_many(_request(i))
                started = time.monotonic()
                writer.close(timeout=BOUND_S + SLACK_S)  # nothing lost: no error
                assert time.monotonic() - started < BOUND_S + SLACK_S
            finally:
                proxy.thaw()
                store.close()
        assert spill.spilled == 50 * 2 and spill.dropped == 0 and spill.pending
        with PostgresStore(dsn) as direct:  # the next start, straight to the database
            TraceWriter(direct, spill=SpillFile(spill.path)).close()
        assert _counts(dsn) == (100, 100) and not spill.pending


def _writer_losing_one_commit(tmp_path: Path, *, forward: bool) -> tuple[str, SpillFile, int]:
    """Three requests through a writer; the second one's COMMIT is forwarded (the server
    commits) or dropped (it never gets it, and rolls back when the connection goes), and
    the proxy freezes: the answer never comes. The DSN, the spill file and how many
    transactions its spilled lines named."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    with throwaway_database() as dsn, _frozen_path(dsn) as (proxy, via_proxy):
        store = PostgresStore(via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S)
        writer = TraceWriter(store, spill=spill, retry_s=0.1, max_delay_s=0.005)
        try:
            writer.submit_many(_request(0))
            writer.flush()
            proxy.trip_on(b"COMMIT", forward=forward)
            writer.submit_many(_request(1))
            writer.flush(timeout=BOUND_S + SLACK_S)  # spilled after the write's bound
            lines = spill.path.read_bytes().splitlines(keepends=True)
            named = sum(len(decode_batch(line).in_doubt) for line in lines)
            proxy.thaw()
            writer.submit_many(_request(2))
            _drain(writer, spill)
        finally:
            proxy.thaw()
            store.close()
        assert spill.dropped == 0 and spill.replayed == spill.spilled > 0
        assert _counts(dsn) == (3, 3)  # rows = requests: each attempt exactly once
        return dsn, spill, named


def test_a_batch_whose_commit_answer_was_lost_is_not_written_twice(tmp_path: Path) -> None:
    _, spill, named = _writer_losing_one_commit(tmp_path, forward=True)
    assert named == 1 and spill.found_written == 2  # asked, found committed: not rewritten


def test_a_batch_in_doubt_that_the_server_rolled_back_is_replayed(tmp_path: Path) -> None:
    _, spill, named = _writer_losing_one_commit(tmp_path, forward=False)
    assert named == 1 and spill.found_written == 0  # asked, found not committed: written


def _cut_after_commit(store: PostgresStore, proxy: TcpProxy) -> str | None:
    """A batch written, then one whose connection is cut once its COMMIT went out: the
    name of the transaction that may have been written."""
    store.write_batch(*_batch(0))
    proxy.trip_on(b"COMMIT", then="cut")
    with pytest.raises(CommitUnknown, match="may have been written") as cut:
        store.write_batch(*_batch(1))
    return cut.value.transaction


def test_a_connection_cut_after_commit_is_not_written_again_on_a_new_one() -> None:
    """The connection breaks while COMMIT is answered: before, the store wrote the batch
    once more on a new connection, as for a connection found broken before the write."""
    import psycopg

    with throwaway_database() as dsn, _frozen_path(dsn) as (proxy, via_proxy):
        with PostgresStore(
            via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S
        ) as store:
            transaction = _cut_after_commit(store, proxy)
            assert transaction is not None and store.committed(transaction)
            assert _counts(dsn) == (2, 2)
            proxy.trip_on(b"COMMIT", forward=False, then="cut")  # never reaches the server
            with pytest.raises(CommitUnknown) as dropped:
                store.write_batch(*_batch(2))
            assert dropped.value.transaction is not None
            deadline = time.monotonic() + 5
            while True:  # the server rolls back once it sees the connection gone
                try:
                    assert not store.committed(dropped.value.transaction)
                    break
                except StoreError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            server, _, xid = transaction.rpartition("/")
            with psycopg.connect(dsn) as other:  # a transaction still open
                ((open_xid,),) = other.execute("SELECT txid_current()").fetchall()
                with pytest.raises(StoreError, match="still in progress"):
                    store.committed(f"{server}/{open_xid}")
            assert not store.committed(f"{server}/{int(xid) + 10**9}")  # not yet: never was
            assert not store.committed(f"0/1/{xid}")  # another database's transaction
            assert not store.committed("not a transaction")
        assert _counts(dsn) == (2, 2)


@pytest.mark.parametrize("version", [120000, 90600])
def test_older_servers_name_the_transaction_their_way_or_not_at_all(
    version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL 10-12 (``txid_current()``, ``txid_status()``) and before 10 (no way to
    ask: the write is in doubt, unnamed), on a server where ``pg_control_system()`` may
    not be called (the database alone names where a transaction ran)."""
    from turnout.tracing import postgres

    functions = postgres._xact_functions(version)
    monkeypatch.setattr(postgres, "_xact_functions", lambda _: functions)
    monkeypatch.setattr(postgres, "_SERVER_ID", "SELECT no_such_function()")
    with throwaway_database() as dsn, _frozen_path(dsn) as (proxy, via_proxy):
        with PostgresStore(
            via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S
        ) as store:
            transaction = _cut_after_commit(store, proxy)
            if functions is None:
                assert transaction is None
            else:
                assert transaction is not None and transaction.startswith("-/")
                assert store.committed(transaction)
        assert _counts(dsn) == (2, 2)


def test_a_replay_whose_commit_answer_was_lost_is_not_written_twice(tmp_path: Path) -> None:
    """The replay's own write loses its COMMIT's answer: the next replay asks about that
    transaction, finds it committed and moves on."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append(*_batch(1))
    spill.append(*_batch(2))
    with throwaway_database() as dsn, _frozen_path(dsn) as (proxy, via_proxy):
        with PostgresStore(
            via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S
        ) as store:
            proxy.trip_on(b"COMMIT", then="cut")
            with pytest.raises(CommitUnknown):
                spill.replay(store.write_batch, committed=store.committed)
            assert spill.pending and spill.doubt_path.exists()
            assert spill.replay(store.write_batch, committed=store.committed) == 4
        assert spill.found_written == 2 and not spill.pending
        assert _counts(dsn) == (2, 2)


class _Dies(BaseException):
    """The process dies (not an error the replay handles)."""


def test_a_replay_that_dies_after_a_commit_writes_that_batch_once(tmp_path: Path) -> None:
    """The replay records each batch's transaction before it commits: a process that
    dies after a batch's commit, before recording it replayed, leaves the next replay to
    ask the server, find it committed, and go on; attempt rows are written once."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    for i in range(3):
        spill.append(*_batch(i))
    with throwaway_database() as dsn, PostgresStore(dsn) as store:

        class DiesAfterSecond:
            def write_named(
                self,
                runs: Sequence[RunRecord],
                steps: Sequence[StepRecord],
                attempts: Sequence[AttemptRecord],
                *,
                on_named: Callable[[str], None] | None = None,
            ) -> None:
                store.write_named(runs, steps, attempts, on_named=on_named)
                if runs[0].run_id == _batch(1)[0][0].run_id:
                    raise _Dies

        with pytest.raises(_Dies):
            spill.replay(store.write_batch, committed=store.committed, named=DiesAfterSecond())
        assert spill.pending and _counts(dsn) == (2, 2)
        again = SpillFile(tmp_path / "spill.jsonl")
        assert again.replay(store.write_batch, committed=store.committed, named=store) == 4
        assert again.found_written == 2 and not again.pending
        assert _counts(dsn) == (3, 3)


@contextmanager
def _proxy_process(port: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A forwarding process of the test's own and the port it listens on."""
    tests = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.tcp_proxy", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tests)},
    )
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.communicate(timeout=10)


def test_a_sigstopped_process_in_the_path_is_cut_off_and_the_store_recovers() -> None:
    """The test's own forwarding process is SIGSTOPped: its kernel still takes every
    byte, as a stopped PostgreSQL's would, and answers nothing."""
    with throwaway_database() as dsn:
        PostgresStore(dsn).close()
        host_port, _, port = _host_port(dsn)
        with _proxy_process(port) as (proc, proxy_port):
            via = dsn.replace(host_port, f"127.0.0.1:{proxy_port}")
            with PostgresStore(via, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S) as store:
                store.write_batch(*_batch(0))
                proc.send_signal(signal.SIGSTOP)
                try:
                    took = _timed(
                        lambda: store.write_batch(*_batch(1)),
                        BOUND_S + SLACK_S,
                        lambda: proc.send_signal(signal.SIGCONT),
                    )
                    assert took < BOUND_S + SLACK_S
                finally:
                    proc.send_signal(signal.SIGCONT)
                store.write_batch(*_batch(1))  # a new connection through the live process
        assert _counts(dsn) == (2, 2)


def test_a_statement_whose_commit_answer_was_lost_is_not_run_again() -> None:
    """``execute`` (keys, flags, feedback): the connection cut while COMMIT is answered.
    Before, the statement ran once more on a new connection: a key created twice failed
    as a duplicate though the first had been written."""
    with (
        throwaway_database() as dsn,
        _frozen_path(dsn) as (proxy, via_proxy),
        PostgresStore(via_proxy, connect_timeout_s=1, write_timeout_s=WRITE_TIMEOUT_S) as store,
    ):
        store.execute("CREATE TABLE notes (id TEXT PRIMARY KEY)")
        proxy.trip_on(b"COMMIT", then="cut")
        with pytest.raises(CommitUnknown, match="may have been written"):
            store.execute("INSERT INTO notes (id) VALUES (?)", ("n1",))
        assert store.query("SELECT id FROM notes", ()) == [("n1",)]
