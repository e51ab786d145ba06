"""PostgreSQL unreachable mid-traffic (a TCP proxy of the test's own is cut; the
machine's server keeps running): traces spill to the local file and are replayed when
the database is back; rows = requests."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from support.pg import throwaway_database
from support.tcp_proxy import TcpProxy
from turnout.errors import StoreError
from turnout.tracing.postgres import PostgresStore
from turnout.tracing.records import AttemptRecord, RunRecord
from turnout.tracing.spill import SpillFile
from turnout.tracing.writer import TraceWriter

pytestmark = pytest.mark.postgres

REQUESTS = 300


def _request(i: int) -> tuple[RunRecord, AttemptRecord]:
    run_id = f"req-{i:05d}"
    cost = Decimal("0.000021")
    return (
        RunRecord(run_id, "gateway", "rules", "succeeded", 1.0 + i, tags={"key": "team-a"},
                  calls=1, cost_usd=cost),
        AttemptRecord(run_id, "chat", 1, "haiku", "hosted", "efficient", "rules", "why",
                      1.0 + i, 0.01, "ok", input_tokens=12, output_tokens=3, cost_usd=cost),
    )  # fmt: skip


def _drain(writer: TraceWriter, spill: SpillFile) -> None:
    """Flush, wait for the idle writer to replay the spill file, close."""
    writer.flush()
    deadline = time.monotonic() + 15
    while spill.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.close()


def _assert_rows_are_requests(dsn: str, spill: SpillFile) -> None:
    assert spill.dropped == 0 and spill.replayed == spill.spilled > 0
    with PostgresStore(dsn) as direct:
        runs = direct.query("SELECT count(*), count(DISTINCT run_id) FROM runs", ())
        attempts = direct.query("SELECT count(*) FROM attempts", ())
    assert runs == [(REQUESTS, REQUESTS)]
    assert attempts == [(REQUESTS,)]


def test_unreachable_postgres_spills_and_replays(tmp_path: Path) -> None:
    with throwaway_database() as dsn:
        PostgresStore(dsn).close()  # migrated before the proxy is cut
        host_port = dsn.split("@", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        proxy = TcpProxy((host, int(port or 5432)))
        proxy.start()
        via_proxy = dsn.replace(host_port, f"127.0.0.1:{proxy.port}")
        store = PostgresStore(via_proxy, connect_timeout_s=1)
        spill = SpillFile(tmp_path / "spill.jsonl")
        writer = TraceWriter(store, spill=spill, retry_s=0.1, max_delay_s=0.005)
        try:
            for i in range(REQUESTS):
                if i == 100:
                    writer.flush()
                    proxy.stop()  # the database is gone
                if i == 200:
                    writer.flush()
                    assert spill.spilled > 0 and spill.pending
                    assert writer.behind()  # a key's spend is not read from the store now
                    proxy.start()  # and back
                run, attempt = _request(i)
                writer.submit(run)
                writer.submit(attempt)
            unspilled = TraceWriter(store)
            assert not unspilled.behind()  # no spill file: never behind
            unspilled.close()
            _drain(writer, spill)
            assert not writer.behind()
        finally:
            proxy.stop()
            store.close()
        _assert_rows_are_requests(dsn, spill)


def test_a_write_held_by_a_lock_times_out_spills_and_is_replayed(tmp_path: Path) -> None:
    """A slow database, not a gone one: another session holds a lock on ``attempts`` for
    a while. The held write is cancelled after ``write_timeout_s`` instead of stalling
    the writer, the traffic meanwhile goes to the spill file, and once the lock is
    released it is all replayed; rows = requests."""
    import psycopg

    with throwaway_database() as dsn:
        store = PostgresStore(dsn, write_timeout_s=0.3)
        spill = SpillFile(tmp_path / "spill.jsonl")
        writer = TraceWriter(store, spill=spill, retry_s=0.1, max_delay_s=0.005)
        locker = psycopg.connect(dsn)
        try:
            for i in range(REQUESTS):
                if i == 100:
                    writer.flush()
                    locker.execute("LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE")
                    locked_at = time.monotonic()
                if i == 200:
                    writer.flush()  # the held batch timed out and spilled: flush returns
                    assert time.monotonic() - locked_at < 5
                    assert spill.spilled > 0 and spill.pending
                    locker.rollback()  # the lock goes
                run, attempt = _request(i)
                writer.submit(run)
                writer.submit(attempt)
                time.sleep(0.002)
            _drain(writer, spill)
        finally:
            locker.close()
            store.close()
        _assert_rows_are_requests(dsn, spill)


def test_a_write_past_its_timeout_is_a_one_line_error() -> None:
    import psycopg

    with throwaway_database() as dsn, PostgresStore(dsn, write_timeout_s=0.2) as store:
        run, attempt = _request(1)
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"write failed: .*statement timeout") as info:
                store.write_batch([run], [], [attempt])
            assert time.monotonic() - started < 3 and "\n" not in str(info.value)
        store.write_batch([run], [], [attempt])  # the lock gone, the store writes again
        assert store.get_run(run.run_id) is not None
