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
                    proxy.start()  # and back
                run, attempt = _request(i)
                writer.submit(run)
                writer.submit(attempt)
            writer.flush()
            deadline = time.monotonic() + 15
            while spill.pending and time.monotonic() < deadline:
                time.sleep(0.05)
            writer.close()
        finally:
            proxy.stop()
            store.close()
        assert spill.dropped == 0 and spill.replayed == spill.spilled > 0
        with PostgresStore(dsn) as direct:
            runs = direct.query("SELECT count(*), count(DISTINCT run_id) FROM runs", ())
            attempts = direct.query("SELECT count(*) FROM attempts", ())
        assert runs == [(REQUESTS, REQUESTS)]
        assert attempts == [(REQUESTS,)]
