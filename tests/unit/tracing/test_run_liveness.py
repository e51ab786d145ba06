"""A `running` run whose writer process is gone reads back as `abandoned`."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from turnout.tracing import RunRecord, SQLiteStore
from turnout.tracing.liveness import seen_status, this_writer, writer_gone

T0 = 1_767_571_200.0


def dead_writer() -> str:
    """``pid@host`` of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return f"{int(proc.stdout)}@{socket.gethostname()}"


def test_liveness_of_writers() -> None:
    assert not writer_gone(this_writer())
    assert writer_gone(dead_writer())
    assert not writer_gone(f"{os.getpid() + 10**7}@another-host")  # cannot tell: not gone
    assert not writer_gone(None) and not writer_gone("garbage")
    assert seen_status("running", dead_writer()) == "abandoned"
    assert seen_status("running", this_writer()) == "running"
    assert seen_status("succeeded", dead_writer()) == "succeeded"


def test_a_store_shows_a_dead_writers_run_as_abandoned(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        store.write_batch(
            [
                RunRecord("r-dead", "w", "p", "running", T0, writer=dead_writer()),
                RunRecord("r-live", "w", "p", "running", T0 + 1, writer=this_writer()),
                RunRecord("r-done", "w", "p", "interrupted", T0 + 2),
            ],
            [],
            [],
        )
        statuses = {r.run_id: r.status for r in store.list_runs()}
        trace = store.get_run("r-dead")
    assert statuses == {"r-dead": "abandoned", "r-live": "running", "r-done": "interrupted"}
    assert trace is not None and trace.run.status == "abandoned"
    conn = sqlite3.connect(tmp_path / "t.db")  # the stored status is left as written
    assert conn.execute("SELECT status FROM runs WHERE run_id = 'r-dead'").fetchone() == (
        "running",
    )
    conn.close()
