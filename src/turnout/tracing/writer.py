"""Background trace writing: the request path submits, one thread writes batches.

:meth:`TraceWriter.submit` never blocks and never touches the disk or network,
so it is safe from any thread and from the event loop. A background thread
takes records off a queue, gathers up to ``max_batch`` of them (waiting at most
``max_delay_s`` after the first), and writes them with one
:meth:`~turnout.tracing.store.TraceStore.write_batch` call.

Order is kept: records are written in the order submitted, and within one batch
the last record of a run (or step) wins, so a run's final status replaces its
``running`` row. A failed write never raises into the request path: the error
is kept and raised as :class:`~turnout.errors.StoreError` by the next
:meth:`~TraceWriter.flush` or :meth:`~TraceWriter.close`. So is a record
dropped because more than ``max_pending`` were waiting (a store far slower than
the traffic): memory stays bounded, and nothing is lost without a word.

With a :class:`~turnout.tracing.spill.SpillFile` (``spill=``), a batch the store
cannot take is appended to that local file instead of being lost, and the store is
left alone for ``retry_s``; while batches wait in the file, newer ones queue behind
them there (so a run's final status is never overwritten by its older ``running``
row), and the file is replayed, in order, as soon as the store takes writes again
(also when idle, once more when the writer closes, and at start for a file left by
an earlier process: a file that could not be replayed stays for then). Records in the
spill file count as written for :meth:`~TraceWriter.flush`: they are on disk.

A write that failed with its outcome unknown (:class:`~turnout.errors.CommitUnknown`: the
PostgreSQL store lost the connection after COMMIT was sent) spills its batch with the
name of its transaction, and the replay asks the store
(:class:`~turnout.tracing.store.CommitStatus`) before writing it: a batch the store
committed after all is not written twice (attempts are plain inserts).

A store that answers but slower than the traffic (a loaded database, a lock held) is
met the same way: while at least ``spill_backlog`` records wait in memory, batches go
to the spill file, not to the store, and a replay gives way (after the batch it is
writing) as soon as the backlog is back. So memory stays bounded by the backlog, not
by ``max_pending``, while the file has room; once it is full, batches go to the store
again (the file replayed first, whole), so they wait in memory rather than being
dropped. The file drains once the store keeps up again. This needs the writer's thread
to come back from the store between batches: a write the store never answers would
hold it, so the store must bound its writes (the PostgreSQL store fails a write within
``write_timeout_s`` + 1 s whatever the server or the network does). With such a store
:meth:`~TraceWriter.close` is bounded too: the batch it writes fails within that time
and spills, and the last replay before stopping is not tried when the store failed
while closing (the spill file waits for the next start).

The writer does not close its store; whoever opened the store closes it.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

from turnout.errors import CommitUnknown, StoreError
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord, TraceRecord
from turnout.tracing.spill import SpillFile
from turnout.tracing.store import CommitStatus, NamesWrites, TraceStore

log = logging.getLogger("turnout.tracing")


@dataclass(slots=True)
class _Marker:
    """Queued behind records: set once everything before it is written."""

    done: threading.Event = field(default_factory=threading.Event)
    stop: bool = False


_Item = RunRecord | StepRecord | AttemptRecord | _Marker


@dataclass(slots=True)
class _Failures:
    errors: list[str] = field(default_factory=list)
    lost: int = 0
    dropped: int = 0

    def __bool__(self) -> bool:
        return bool(self.errors or self.dropped)

    def message(self) -> str:
        parts: list[str] = []
        if self.errors:
            first = self.errors[0]
            more = (
                f" (and {len(self.errors) - 1} more failed writes)" if len(self.errors) > 1 else ""
            )
            parts.append(f"{self.lost} trace record(s) not written: {first}{more}")
        if self.dropped:
            parts.append(
                f"{self.dropped} trace record(s) dropped: the writer queue was full "
                "(the trace store is slower than the traffic)"
            )
        return "; ".join(parts)


class TraceWriter:
    """Writes trace records to ``store`` from a background thread, in batches.

    ``max_delay_s`` is 10 ms: turning a batch into rows is Python work that holds the
    GIL, and a request arriving meanwhile waits for it. Longer batches cost the writer
    less (beside a never-idle uvloop taking 1,500 gateway requests a second, about 70 µs
    of CPU a request with 100 ms batches against 115 µs with 10 ms, and the loop turned
    about 10% more round trips: ``benchmarks/trace_writes.py --beside-loop``), but in
    ``turnout serve`` at concurrency 1 the added p99 rose from 0.4-0.75 ms to 1.0-2.5 ms
    in four paired runs of ``benchmarks/gateway_overhead.py --native``, although the
    conversion offers the GIL every 32 records: a request that meets a long batch waits
    at each of its turns of the loop. A full batch (``max_batch``) and a flush or close
    do not wait out the delay."""

    def __init__(
        self,
        store: TraceStore,
        *,
        max_batch: int = 500,
        max_delay_s: float = 0.01,
        max_pending: int = 100_000,
        spill: SpillFile | None = None,
        retry_s: float = 2.0,
        spill_backlog: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_delay_s < 0:
            raise ValueError("max_delay_s must not be negative")
        self.store = store
        self._committed = store.committed if isinstance(store, CommitStatus) else None
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_pending = max_pending
        self.spill = spill
        self.retry_s = retry_s
        if spill_backlog is not None and spill_backlog < 1:
            raise ValueError("spill_backlog must be at least 1")
        self.spill_backlog = (
            spill_backlog
            if spill_backlog is not None
            else max(1, min(10 * max_batch, max_pending // 2))
        )
        self._slow = False  # spilling because the store is slower than the traffic
        self._store_failed_at = -math.inf
        self._closing_at = math.inf
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._wake = threading.Event()  # cuts a batch's wait short: flush, close, full
        self._failures = _Failures()
        self._failures_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="turnout-trace-writer", daemon=True)
        self._thread.start()

    # -- request path ------------------------------------------------------------------

    def submit(self, record: TraceRecord) -> None:
        """Queue one record for writing. Never blocks; raises only if closed."""
        if self._closed:
            raise StoreError("trace writer is closed")
        if not isinstance(record, RunRecord | StepRecord | AttemptRecord):
            raise TypeError(f"not a trace record: {type(record).__name__}")
        waiting = self._queue.qsize()
        if waiting >= self.max_pending:
            with self._failures_lock:
                self._failures.dropped += 1
            return
        self._queue.put(record)
        if waiting + 2 > self.max_batch:  # with the one the writer holds, a full batch
            self._wake.set()  # no reason to wait out the delay

    def submit_many(self, records: Sequence[TraceRecord]) -> None:
        for record in records:
            self.submit(record)

    # -- waiting -----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record submitted so far is written (or has failed).

        Raises :class:`~turnout.errors.StoreError` for writes that failed (or
        records dropped) since the last flush, or if ``timeout`` seconds pass.
        From async code use :meth:`aflush`.
        """
        if self._thread.is_alive():
            marker = _Marker()
            self._queue.put(marker)
            self._wake.set()
            if not marker.done.wait(timeout):
                raise StoreError(f"trace writer: flush timed out after {timeout} s")
        self._raise_failures()

    async def aflush(self) -> None:
        """:meth:`flush` without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.flush)

    def close(self, timeout: float | None = None) -> None:
        """Write everything submitted, stop the thread, and raise any failure.

        Later :meth:`submit` calls raise; closing twice is harmless.
        """
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._closing_at = time.monotonic()
                marker = _Marker(stop=True)
                self._queue.put(marker)
                self._wake.set()
                if not marker.done.wait(timeout):
                    raise StoreError(f"trace writer: close timed out after {timeout} s")
                self._thread.join(timeout)
                self._count_late_records()
                if self.spill is not None:
                    self.spill.release()  # a later writer in this process may claim it
        self._raise_failures()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except StoreError as store_error:
            if exc is None:
                raise
            # Do not hide the body's own exception; tell of the lost traces beside it.
            exc.add_note(f"also, {store_error}")

    def _count_late_records(self) -> None:
        """Records that raced :meth:`close` (queued behind the stop marker)."""
        late = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            late += not isinstance(item, _Marker)
        if late:
            with self._failures_lock:
                self._failures.errors.append("records were submitted while the writer closed")
                self._failures.lost += late

    def _raise_failures(self) -> None:
        with self._failures_lock:
            failures, self._failures = self._failures, _Failures()
        if failures:
            raise StoreError(failures.message())

    # -- background thread -------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, markers = self._gather()
            try:
                self._write(batch)
                if any(m.stop for m in markers) and self._store_failed_at < self._closing_at:
                    # One last try before stopping, unless the store failed while closing:
                    # trying again would hold the close for another of its timeouts.
                    self._replay(force=True)
            finally:
                for marker in markers:
                    stop = stop or marker.stop
                    marker.done.set()

    def _gather(self) -> tuple[list[TraceRecord], list[_Marker]]:
        """Records up to ``max_batch``, ending early at a marker.

        The thread waits on the queue only while it is idle (while the spill file holds
        batches, at most ``retry_s``: an empty batch, so that an idle writer still replays
        the file). Once a record has come it sleeps for ``max_delay_s`` and then takes
        what arrived meanwhile: records submitted in that window wake no one (a blocked
        ``get`` would be woken, and the GIL handed over, for every record, which costs
        the request path far more than the write itself)."""
        try:
            first = self._queue.get(timeout=self.retry_s if self.behind() else None)
        except queue.Empty:
            return [], []
        if isinstance(first, _Marker):
            return [], [first]
        batch: list[TraceRecord] = [first]
        if self.max_delay_s and 1 + self._queue.qsize() < self.max_batch:
            self._wake.wait(self.max_delay_s)
        self._wake.clear()
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Marker):
                return batch, [item]
            batch.append(item)
        if len(batch) >= self.max_batch:
            self._wake.set()  # more may wait (a flush's marker too): the next batch at once
        return batch, []

    def behind(self) -> bool:
        """Whether records the store does not have yet wait in the spill file (a file
        left by an earlier process counts too)."""
        return self.spill is not None and self.spill.pending

    def _backlogged(self) -> bool:
        """More records wait in memory than the store is keeping up with (spill on)."""
        return self.spill is not None and self._queue.qsize() >= self.spill_backlog

    def _replay(self, *, force: bool = False, give_way: bool = True) -> bool:
        """Replay the spill file if the store may be back (``force``: try now); True
        when nothing waits. A replay gives way to a backlog (unless forced, or not
        ``give_way``): what is left waits for the next turn."""
        if self.spill is None or not self.spill.pending:
            return True
        if not force and time.monotonic() < self._store_failed_at + self.retry_s:
            return False
        stop = self._backlogged if give_way and not force else None
        try:
            written = self.spill.replay(
                self.store.write_batch, stop=stop, committed=self._committed,
                named=self.store if isinstance(self.store, NamesWrites) else None,
            )  # fmt: skip
        except Exception:
            self._store_failed_at = time.monotonic()
            return False
        if self.spill.pending:
            return False
        log.info("trace store %s is back: %d spilled record(s) replayed", self.store, written)
        self._slow = False
        return True

    def _write(self, batch: list[TraceRecord]) -> None:
        if not batch:
            self._replay()
            return
        runs: dict[str, RunRecord] = {}
        steps: dict[tuple[str, str], StepRecord] = {}
        attempts: list[AttemptRecord] = []
        for record in batch:
            if isinstance(record, AttemptRecord):
                attempts.append(record)
            elif isinstance(record, StepRecord):
                steps[(record.run_id, record.step_id)] = record  # the last one wins
            else:
                runs[record.run_id] = record
        run_list, step_list = list(runs.values()), list(steps.values())
        room = True
        if self._backlogged():
            assert self.spill is not None
            room = self.spill.append(run_list, step_list, attempts, or_drop=False)
            if room:
                if not self._slow:
                    self._slow = True
                    log.warning(
                        "trace store %s is slower than the traffic (%d records waiting); "
                        "spilling traces to %s until it keeps up",
                        self.store, self._queue.qsize(), self.spill.path,
                    )  # fmt: skip
                return
        if not self._replay(give_way=room):
            self._to_spill(run_list, step_list, attempts, batch, None)
            return
        try:
            self.store.write_batch(run_list, step_list, attempts)
        except Exception as exc:
            text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            if self.spill is not None:
                self._store_failed_at = time.monotonic()
                in_doubt = exc.transaction if isinstance(exc, CommitUnknown) else None
                self._to_spill(run_list, step_list, attempts, batch, text, in_doubt)
                return
            with self._failures_lock:
                self._failures.errors.append(text)
                self._failures.lost += len(batch)

    def _to_spill(
        self,
        runs: list[RunRecord],
        steps: list[StepRecord],
        attempts: list[AttemptRecord],
        batch: list[TraceRecord],
        error: str | None,
        in_doubt: str | None = None,
    ) -> None:
        assert self.spill is not None
        was_pending = self.spill.pending
        if self.spill.append(runs, steps, attempts, in_doubt=in_doubt):
            if error is not None and not was_pending:
                log.warning(
                    "trace store unreachable (%s); spilling traces to %s until it is back",
                    error,
                    self.spill.path,
                )
            return
        with self._failures_lock:
            self._failures.errors.append(f"the spill file {self.spill.path} is full")
            self._failures.lost += len(batch)
