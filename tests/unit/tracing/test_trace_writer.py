"""TraceWriter: non-blocking submit, batched background writes, errors never lost."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from turnout.errors import StoreError
from turnout.tracing import AttemptRecord, RunRecord, SQLiteStore, StepRecord, TraceWriter


class RecordingStore(SQLiteStore):
    """A real SQLite store that also notes each batch, and can be held or made to fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[tuple[int, int, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        self.gate.wait()
        self.batches.append((len(runs), len(steps), len(attempts)))
        if self.fail_with is not None:
            raise self.fail_with
        super().write_batch(runs, steps, attempts)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordingStore]:
    st = RecordingStore(tmp_path / "traces.db")
    yield st
    st.gate.set()
    st.close()


def _attempts(store: SQLiteStore, run_id: str | None = None) -> int:
    """Attempts written (of one run, or all), counted straight from the table."""
    sql, params = "SELECT count(*) FROM attempts", ()
    if run_id is not None:
        sql, params = sql + " WHERE run_id = ?", (run_id,)
    with sqlite3.connect(store.display) as conn:
        count: int = conn.execute(sql, params).fetchone()[0]
    return count


def test_flush_writes_everything_submitted(store: RecordingStore, s: Any) -> None:
    with TraceWriter(store) as writer:
        writer.submit(s.run(status="running"))
        writer.submit(s.step())
        for i in range(10):
            writer.submit(s.attempt(attempt=i))
        writer.flush()
        assert _attempts(store) == 10
        trace = store.get_run("run-0001")
        assert trace is not None
        assert trace.steps == (s.step(),)


def test_records_are_batched_up_to_max_batch(store: RecordingStore, s: Any) -> None:
    store.gate.clear()  # let submissions pile up behind a held write
    with TraceWriter(store, max_batch=100, max_delay_s=1.0) as writer:
        writer.submit(s.attempt(attempt=0))
        for i in range(1, 350):
            writer.submit(s.attempt(attempt=i))
        store.gate.set()
        writer.flush()
    assert _attempts(store) == 350
    assert all(a <= 100 for _, _, a in store.batches)
    assert len(store.batches) <= 5  # 1 held + 349 in batches of at most 100


def test_a_lone_record_is_written_within_max_delay(store: RecordingStore, s: Any) -> None:
    with TraceWriter(store, max_delay_s=0.02) as writer:
        writer.submit(s.run())
        deadline = time.monotonic() + 5
        while store.get_run("run-0001") is None:
            assert time.monotonic() < deadline, "record not written without a flush"
            time.sleep(0.005)


def test_flush_and_close_do_not_wait_out_the_batch_delay(store: RecordingStore, s: Any) -> None:
    writer = TraceWriter(store, max_delay_s=60.0)
    writer.submit(s.run())
    started = time.monotonic()
    writer.flush(timeout=10)  # a StoreError if the writer slept out its 60 s
    assert store.get_run("run-0001") is not None
    writer.submit(s.attempt())
    writer.close(timeout=10)
    assert time.monotonic() - started < 10
    assert _attempts(store) == 1


def test_a_full_batch_is_written_without_waiting_for_the_delay(
    store: RecordingStore, s: Any
) -> None:
    with TraceWriter(store, max_batch=10, max_delay_s=60.0) as writer:
        for i in range(10):
            writer.submit(s.attempt(attempt=i))
        deadline = time.monotonic() + 10
        while _attempts(store) < 10:  # no flush: the writer must not sleep 60 s first
            assert time.monotonic() < deadline, "a full batch waited for max_delay_s"
            time.sleep(0.005)


def test_a_flush_behind_a_full_batch_does_not_wait_out_the_delay(
    store: RecordingStore, s: Any
) -> None:
    store.gate.clear()
    writer = TraceWriter(store, max_batch=4, max_delay_s=60.0)
    try:
        for i in range(4):  # a full batch: taken at once, and held in the store's write
            writer.submit(s.attempt(attempt=i))
        deadline = time.monotonic() + 10
        while writer._queue.qsize():
            assert time.monotonic() < deadline, "a full batch waited for max_delay_s"
            time.sleep(0.005)
        for i in range(4, 10):  # a full batch and two more queue behind it, then a flush
            writer.submit(s.attempt(attempt=i))
        flushed = threading.Thread(target=writer.flush, args=(10,))
        flushed.start()
        time.sleep(0.05)
        store.gate.set()
        flushed.join(15)
        assert not flushed.is_alive() and _attempts(store) == 10
    finally:
        store.gate.set()
        writer.close(timeout=70)


def test_a_runs_final_status_wins_within_and_across_batches(store: RecordingStore, s: Any) -> None:
    with TraceWriter(store) as writer:
        writer.submit(s.run(status="running", ended_at=None))
        writer.submit(s.step(status="failed"))
        writer.submit(s.step())
        writer.submit(s.run())
        writer.flush()
        assert store.list_runs() == [s.run()]
        assert store.batches[-1][:2] == (1, 1)  # deduplicated in the batch
        writer.submit(s.run(run_id="run-0002", status="running"))
        writer.flush()
        writer.submit(s.run(run_id="run-0002", status="failed", error="boom"))
    trace = store.get_run("run-0002")
    assert trace is not None
    assert trace.run.status == "failed"


def test_a_failed_write_is_raised_by_the_next_flush_only(store: RecordingStore, s: Any) -> None:
    writer = TraceWriter(store)
    store.fail_with = StoreError("trace store x: write failed: disk I/O error")
    writer.submit(s.attempt())  # never raises into the request path
    writer.submit(s.attempt(attempt=2))
    with pytest.raises(StoreError, match=r"2 trace record\(s\) not written: .*disk I/O error"):
        writer.flush()
    # The thread survives; later records are written and the error is not repeated.
    store.fail_with = None
    writer.submit(s.attempt(attempt=3))
    writer.flush()
    writer.close()
    assert _attempts(store) == 1


def test_an_unexpected_exception_becomes_a_store_error(store: RecordingStore, s: Any) -> None:
    writer = TraceWriter(store)
    store.fail_with = RuntimeError("driver bug")
    writer.submit(s.run())
    with pytest.raises(StoreError, match="RuntimeError: driver bug"):
        writer.close()
    assert writer.closed


def test_several_failures_are_summarised(store: RecordingStore, s: Any) -> None:
    writer = TraceWriter(store, max_batch=1)
    store.fail_with = StoreError("first failure")
    for i in range(3):
        writer.submit(s.attempt(attempt=i))
    with pytest.raises(StoreError, match=r"3 trace record\(s\).*first failure \(and 2 more"):
        writer.flush()
    store.fail_with = None
    writer.close()


def test_close_flushes_stops_and_refuses_more(store: RecordingStore, s: Any) -> None:
    writer = TraceWriter(store)
    writer.submit(s.run())
    writer.close()
    assert store.get_run("run-0001") is not None
    assert not writer._thread.is_alive()
    writer.close()  # twice is harmless
    writer.flush()  # nothing pending, nothing to raise
    with pytest.raises(StoreError, match="closed"):
        writer.submit(s.run())


def test_exiting_on_an_exception_keeps_it_and_notes_lost_traces(
    store: RecordingStore, s: Any
) -> None:
    store.fail_with = StoreError("database is locked")

    def run_that_fails() -> None:
        with TraceWriter(store) as writer:
            writer.submit(s.run())
            raise KeyError("the run's own failure")

    with pytest.raises(KeyError) as info:
        run_that_fails()
    assert any("database is locked" in note for note in info.value.__notes__)


def test_a_full_queue_drops_and_says_so(store: RecordingStore, s: Any) -> None:
    store.gate.clear()
    writer = TraceWriter(store, max_pending=10, max_batch=1)
    for i in range(30):
        writer.submit(s.attempt(attempt=i))  # never blocks, even with the store held
    store.gate.set()
    with pytest.raises(StoreError, match=r"dropped: the writer queue was full"):
        writer.flush()
    writer.close()
    assert 10 <= _attempts(store) < 30


def test_flush_can_time_out(store: RecordingStore, s: Any) -> None:
    store.gate.clear()
    writer = TraceWriter(store)
    writer.submit(s.run())
    with pytest.raises(StoreError, match="timed out"):
        writer.flush(timeout=0.05)
    store.gate.set()
    writer.close()


def test_submit_refuses_what_is_not_a_record(store: RecordingStore) -> None:
    with TraceWriter(store) as writer, pytest.raises(TypeError, match="not a trace record"):
        writer.submit("run-0001")  # type: ignore[arg-type]


def test_bad_settings_are_refused(store: RecordingStore) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        TraceWriter(store, max_batch=0)
    with pytest.raises(ValueError, match="max_delay_s"):
        TraceWriter(store, max_delay_s=-1)


def test_many_threads_submit_at_once(store: RecordingStore, s: Any) -> None:
    with TraceWriter(store) as writer:

        def work(n: int) -> None:
            for i in range(200):
                writer.submit(s.attempt(run_id=f"t{n}", attempt=i))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [_attempts(store, f"t{n}") for n in range(4)] == [200] * 4


async def test_submit_from_the_event_loop_does_not_block(store: RecordingStore, s: Any) -> None:
    store.gate.clear()  # even with the store stuck, submit returns at once
    writer = TraceWriter(store)
    started = time.perf_counter()
    for i in range(1000):
        writer.submit(s.attempt(attempt=i))
    assert time.perf_counter() - started < 0.5
    store.gate.set()
    await writer.aflush()
    await writer.aclose()
    assert _attempts(store) == 1000
