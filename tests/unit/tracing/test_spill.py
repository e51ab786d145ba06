"""The spill file and the writer's use of it, with a SQLite store that can be made to
fail: batches spill, are replayed in order when the store is back, nothing twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.errors import CommitUnknown, StoreError
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.tracing.spill import SpillFile, claim_spill, decode_batch, encode_batch
from turnout.tracing.sqlite import SQLiteStore
from turnout.tracing.writer import TraceWriter


class Flaky:
    """A real SQLite store whose writes fail while ``down``, and take ``delay_s`` each
    (a loaded database; one that is down too: a store that stopped answering, which
    fails a write only after its timeout)."""

    def __init__(self, path: Path, delay_s: float = 0.0) -> None:
        self.inner = SQLiteStore(path)
        self.down = False
        self.delay_s = delay_s
        self.batches = 0

    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        time.sleep(self.delay_s)
        if self.down:
            raise StoreError("trace store: cannot connect (test)")
        self.batches += 1
        self.inner.write_batch(runs, steps, attempts)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _run(i: int, status: str = "succeeded") -> RunRecord:
    return RunRecord(f"run-{i:04d}", "gateway", "rules", status, 1.0 + i,  # type: ignore[arg-type]
                     tags={"key": "team-a"}, cost_usd=Decimal("0.000123"))  # fmt: skip


def _attempt(i: int) -> AttemptRecord:
    return AttemptRecord(f"run-{i:04d}", "chat", 1, "haiku", "hosted", "efficient", "rules",
                         "why", 1.0 + i, 0.2, "ok", cost_usd=Decimal("0.000123"))  # fmt: skip


def test_rows_round_trip() -> None:
    run, attempt = _run(1), _attempt(1)
    batch = decode_batch(encode_batch([run], [], [attempt]))
    assert batch.runs == (run,) and batch.attempts == (attempt,)


def test_bounded_and_counted(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl", max_bytes=2000)
    stored = sum(spill.append([_run(i)], [], [_attempt(i)]) for i in range(20))
    assert 0 < stored < 20
    assert spill.spilled == 2 * stored and spill.dropped == 2 * (20 - stored)
    assert (tmp_path / "spill.jsonl").stat().st_size <= 2000


def test_replay_resumes_without_writing_twice(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    for i in range(3):
        spill.append([_run(i)], [], [_attempt(i)])
    seen: list[str] = []

    def write(runs: Sequence[RunRecord], steps: object, attempts: object) -> None:
        if len(seen) == 2:
            raise StoreError("down again")
        seen.append(runs[0].run_id)

    with pytest.raises(StoreError):
        spill.replay(write)
    assert seen == ["run-0000", "run-0001"] and spill.pending
    again = SpillFile(tmp_path / "spill.jsonl")  # a new process finds the file
    again.replay(lambda runs, steps, attempts: seen.append(runs[0].run_id))
    assert seen == ["run-0000", "run-0001", "run-0002"]
    assert not again.pending and not (tmp_path / "spill.jsonl").exists()


def test_writer_spills_and_replays_in_order(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "traces.db")
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = TraceWriter(store, spill=spill, retry_s=0.05, max_delay_s=0.001)  # type: ignore[arg-type]
    writer.submit(_run(0, "running"))
    writer.flush()
    store.down = True
    writer.submit(_run(1, "running"))
    writer.submit(_attempt(1))
    writer.flush()  # spilled: on disk, so the flush succeeds
    writer.submit(_run(1))  # the final status, behind the spilled "running"
    writer.flush()
    assert spill.spilled == 3 and spill.pending
    store.down = False
    deadline = time.monotonic() + 5
    while spill.pending and time.monotonic() < deadline:
        time.sleep(0.02)  # the idle writer replays by itself
    writer.close()
    assert not spill.pending and spill.replayed == 3
    assert store.inner.get_run("run-0001").run.status == "succeeded"  # type: ignore[union-attr]
    assert len(store.inner.list_runs()) == 2
    store.inner.close()


def test_closing_while_the_store_hangs_waits_out_one_timeout_not_two(tmp_path: Path) -> None:
    """SIGTERM's drain with a store that stopped answering: the batch written at close
    fails after the store's timeout and spills, and the last replay is not tried against
    a store that failed while closing."""
    store = Flaky(tmp_path / "traces.db")
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = TraceWriter(store, spill=spill, retry_s=0.05, max_delay_s=0.001)  # type: ignore[arg-type]
    writer.submit(_run(0))
    writer.flush()
    store.down, store.delay_s = True, 0.5  # each write fails after 0.5 s
    writer.submit(_run(1))
    writer.submit(_attempt(1))
    started = time.monotonic()
    writer.close()  # no StoreError: on disk
    assert time.monotonic() - started < 0.8
    assert spill.spilled == 2 and spill.pending
    store.inner.close()


def test_closing_soon_after_the_store_came_back_replays_the_file(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "traces.db")
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = TraceWriter(store, spill=spill, retry_s=60, max_delay_s=0.001)  # type: ignore[arg-type]
    store.down = True
    writer.submit(_run(1))
    writer.flush()
    assert spill.pending
    store.down = False
    writer.close()  # long before retry_s: the last try at close writes it
    assert not spill.pending and store.inner.get_run("run-0001") is not None
    store.inner.close()


def test_a_replay_gives_way_when_told_and_resumes_after(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    for i in range(4):
        spill.append([_run(i)], [], [_attempt(i)])
    seen: list[str] = []

    def write(runs: Sequence[RunRecord], steps: object, attempts: object) -> None:
        seen.append(runs[0].run_id)

    assert spill.replay(write, stop=lambda: len(seen) == 1) == 2  # one batch, then away
    assert seen == ["run-0000"] and spill.pending
    assert spill.replay(write, stop=lambda: False) == 6
    assert seen == [f"run-{i:04d}" for i in range(4)] and not spill.pending


def test_a_store_slower_than_the_traffic_spills_instead_of_dropping(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "traces.db", delay_s=0.05)
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = TraceWriter(
        store,  # type: ignore[arg-type]
        spill=spill, max_batch=50, max_pending=1_000, spill_backlog=200, max_delay_s=0.001,
    )  # fmt: skip
    count = 3_000  # 3,000 records a second for a second: the store takes 1,000
    for i in range(count // 3):
        writer.submit(_run(i, "running"))
        writer.submit(_attempt(i))
        writer.submit(_run(i))  # the final status must win over the "running" row
        if i % 10 == 9:
            time.sleep(0.01)
    writer.flush()  # no StoreError: nothing was dropped
    assert spill.spilled > 0 and spill.dropped == 0
    store.delay_s = 0  # the database keeps up again: the idle writer drains the file
    deadline = time.monotonic() + 20
    while spill.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.close()
    assert not spill.pending
    runs = store.inner.list_runs(limit=10_000)
    assert len(runs) == count // 3 and {r.status for r in runs} == {"succeeded"}
    assert store.inner.query("SELECT count(*) FROM attempts")[0][0] == count // 3
    store.inner.close()


def test_a_store_that_keeps_up_is_written_to_directly(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "traces.db", delay_s=0)
    spill = SpillFile(tmp_path / "spill.jsonl")
    with TraceWriter(store, spill=spill, max_delay_s=0.001) as writer:  # type: ignore[arg-type]
        for i in range(200):
            writer.submit(_run(i))
            time.sleep(0.0005)
    assert spill.spilled == 0 and len(store.inner.list_runs(limit=1_000)) == 200
    store.inner.close()


def test_a_replay_that_reaches_the_end_leaves_no_dead_bytes(tmp_path: Path) -> None:
    one = len(encode_batch([_run(0)], [], [_attempt(0)]))
    spill = SpillFile(tmp_path / "spill.jsonl", max_bytes=3 * one + 10)
    for cycle in range(6):  # each batch replayed by a replay that would give way
        assert spill.append([_run(cycle)], [], [_attempt(cycle)])
        assert spill.replay(lambda runs, steps, attempts: None, stop=lambda: True) == 2
        assert not spill.pending
    assert spill.dropped == 0


def test_a_full_spill_file_sends_a_backlog_to_the_store_not_away(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "traces.db", delay_s=0.02)
    one = len(encode_batch([_run(0)] * 17, [], [_attempt(0)] * 16))
    spill = SpillFile(tmp_path / "spill.jsonl", max_bytes=3 * one)  # room for a few batches
    writer = TraceWriter(
        store,  # type: ignore[arg-type]
        spill=spill, max_batch=50, spill_backlog=100, max_delay_s=0.001,
    )  # fmt: skip
    for i in range(1_000):
        writer.submit(_run(i, "running"))
        writer.submit(_attempt(i))
        writer.submit(_run(i))
    writer.flush()  # no StoreError: what did not fit waited in memory
    writer.close()
    assert spill.dropped == 0 and not spill.pending
    runs = store.inner.list_runs(limit=10_000)
    assert len(runs) == 1_000 and {r.status for r in runs} == {"succeeded"}
    store.inner.close()


def test_a_backlog_of_nothing_is_refused(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "traces.db", delay_s=0)
    with pytest.raises(ValueError, match="spill_backlog"):
        TraceWriter(store, spill_backlog=0)  # type: ignore[arg-type]
    writer = TraceWriter(store, max_pending=1, max_batch=1)  # type: ignore[arg-type]
    assert writer.spill_backlog == 1
    writer.close()
    store.inner.close()


OLD_LINE = (
    b'{"v":1,"runs":[["run-0007","gateway","rules","succeeded",8.0,null,"{}",'
    b'"{\\"key\\":\\"team-a\\"}",null,null,0,0.0,0,0,0,123000000,null,null,null,null,'
    b'"team-a"]],"steps":[],"attempts":[["run-0007","chat",1,"haiku","hosted","efficient",'
    b'"rules","why",8.0,0.2,"ok",null,0,0,0,123000000,null,null,null,0,0]]}\n'
)
"""A spill line as versions before ``in_doubt`` wrote it."""


def test_an_old_format_line_still_replays(tmp_path: Path) -> None:
    (tmp_path / "spill.jsonl").write_bytes(OLD_LINE)
    spill = SpillFile(tmp_path / "spill.jsonl")
    asked: list[str] = []
    written: list[tuple[RunRecord, ...]] = []

    def committed(transaction: str) -> bool:
        asked.append(transaction)
        return True

    replayed = spill.replay(
        lambda runs, steps, attempts: written.append((*runs, *attempts)),  # type: ignore[arg-type]
        committed=committed,
    )
    assert replayed == 2 and asked == [] and spill.found_written == 0
    assert written == [(_run(7), _attempt(7))] and not spill.pending


def test_a_batch_in_doubt_is_written_only_if_its_transaction_did_not_commit(
    tmp_path: Path,
) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([_run(0)], [], [_attempt(0)], in_doubt="tx-committed")
    spill.append([_run(1)], [], [_attempt(1)], in_doubt="tx-aborted")
    spill.append([_run(2)], [], [_attempt(2)])
    assert decode_batch(encode_batch([_run(0)], [], [], ["tx"])).in_doubt == ("tx",)
    asked: list[str] = []
    written: list[str] = []

    def committed(transaction: str) -> bool:
        asked.append(transaction)
        return transaction == "tx-committed"

    def write(runs: Sequence[RunRecord], steps: object, attempts: object) -> None:
        written.append(runs[0].run_id)

    assert spill.replay(write, committed=committed) == 6
    assert asked == ["tx-committed", "tx-aborted"] and written == ["run-0001", "run-0002"]
    assert spill.replayed == 6 and spill.found_written == 2 and not spill.pending


def test_a_replay_left_in_doubt_asks_about_its_own_write_next_time(tmp_path: Path) -> None:
    """The replay's write of a batch fails after COMMIT was sent: the next replay (a new
    process here) asks about that write's transaction too before writing the batch."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([_run(0)], [], [_attempt(0)], in_doubt="tx-1")
    spill.append([_run(1)], [], [_attempt(1)])
    written: list[str] = []

    def cut_at_commit(runs: Sequence[RunRecord], steps: object, attempts: object) -> None:
        written.append(runs[0].run_id)  # the store took it, then the answer was lost
        raise CommitUnknown("write failed after COMMIT was sent", transaction="tx-2")

    committed_ones = {"tx-2"}
    with pytest.raises(CommitUnknown):
        spill.replay(cut_at_commit, committed=committed_ones.__contains__)
    assert written == ["run-0000"] and spill.pending
    again = SpillFile(tmp_path / "spill.jsonl")
    asked: list[str] = []

    def committed(transaction: str) -> bool:
        asked.append(transaction)
        return transaction in committed_ones

    again.replay(lambda runs, steps, attempts: written.append(runs[0].run_id), committed=committed)
    assert asked == ["tx-1", "tx-2"] and written == ["run-0000", "run-0001"]
    assert again.found_written == 2 and not again.pending
    assert not again.doubt_path.exists() and not again.offset_path.exists()


def test_a_batch_whose_outcome_is_not_known_yet_waits(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([_run(0)], [], [_attempt(0)], in_doubt="tx-1")
    written: list[str] = []

    def still_running(transaction: str) -> bool:
        raise StoreError(f"transaction {transaction} is still in progress")

    with pytest.raises(StoreError, match="in progress"):
        spill.replay(lambda r, s, a: written.append(r[0].run_id), committed=still_running)
    assert written == [] and spill.pending
    spill.replay(lambda r, s, a: written.append(r[0].run_id), committed=lambda t: False)
    assert written == ["run-0000"] and not spill.pending


class CommitLost(Flaky):
    """A store whose next write commits but whose answer is lost (``lose_next``), and
    which can tell afterwards which of its writes committed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.lose_next = False
        self.commits: set[str] = set()

    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        super().write_batch(runs, steps, attempts)
        transaction = f"tx-{self.batches}"
        self.commits.add(transaction)
        if self.lose_next:
            self.lose_next = False
            raise CommitUnknown("answer to COMMIT lost", transaction=transaction)

    def committed(self, transaction: str) -> bool:
        return transaction in self.commits


def test_the_writer_does_not_write_twice_a_batch_whose_commit_answer_was_lost(
    tmp_path: Path,
) -> None:
    store = CommitLost(tmp_path / "traces.db")
    spill = SpillFile(tmp_path / "spill.jsonl")
    writer = TraceWriter(store, spill=spill, retry_s=0.05, max_delay_s=0.001)  # type: ignore[arg-type]
    for i in range(3):
        store.lose_next = i == 1
        writer.submit(_run(i))
        writer.submit(_attempt(i))
        writer.flush()
    deadline = time.monotonic() + 5
    while spill.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.close()
    assert spill.spilled >= 2 and spill.found_written == 2 and not spill.pending
    assert store.inner.query("SELECT count(*) FROM attempts")[0][0] == 3
    store.inner.close()


def test_one_file_one_process_and_unclaimed_files_are_adopted(tmp_path: Path) -> None:
    base = tmp_path / "spill.jsonl"
    legacy = SpillFile(base)  # as an earlier version named a configured file
    legacy.append([_run(0)], [], [])
    left = SpillFile(tmp_path / "spill-3.jsonl")  # a run with more workers left it
    left.append([_run(1)], [], [])
    held = SpillFile(tmp_path / "spill-1.jsonl")  # another live gateway's
    held.append([_run(9)], [], [])
    assert held.claim()
    first = claim_spill(base, index=0)
    assert first.path.name == "spill-0.jsonl"
    assert [a.path.name for a in first.adopted] == ["spill.jsonl", "spill-3.jsonl"]
    second = claim_spill(base, index=0)  # the same number asked for: the next free one
    assert second.path.name == "spill-2.jsonl" and second.adopted == []
    counted: list[tuple[int, int]] = []
    first.on_count = lambda spilled, dropped: counted.append((spilled, dropped))
    first.append([_run(2)], [], [_attempt(2)])
    assert counted == [(2, 0)] and first.pending
    seen: list[str] = []
    written = first.replay(lambda runs, steps, attempts: seen.append(runs[0].run_id))
    assert seen == ["run-0000", "run-0001", "run-0002"]  # the adopted ones first
    assert written == first.replayed == 4 and not first.pending and first.adopted == []
    assert not base.exists() and not (tmp_path / "spill-3.jsonl").exists()
    assert SpillFile(tmp_path / "spill-3.jsonl").claim()  # let go once replayed
    assert held.pending  # the live one's file was left to it
    for spill in (held, first, second):
        spill.release()
    assert claim_spill(base, index=0).adopted[0].path.name == "spill-1.jsonl"


def test_an_unclaimed_file_replayed_to_its_end_is_removed(tmp_path: Path) -> None:
    done = SpillFile(tmp_path / "spill-4.jsonl")
    done.append([_run(4)], [], [])
    done._set_offset((tmp_path / "spill-4.jsonl").stat().st_size)  # replayed, then a crash
    assert claim_spill(tmp_path / "spill.jsonl").adopted == []
    assert sorted(p.name for p in tmp_path.glob("spill-4.jsonl*")) == []  # its lock too


def test_a_clean_stop_leaves_no_lock_file_but_one_beside_batches_still_to_replay(
    tmp_path: Path,
) -> None:
    store = Flaky(tmp_path / "traces.db")
    spill = claim_spill(tmp_path / "spill.jsonl")
    writer = TraceWriter(store, spill=spill, retry_s=0.05, max_delay_s=0.001)  # type: ignore[arg-type]
    store.down = True
    writer.submit(_run(1))
    writer.flush()  # spilled
    store.down = False
    deadline = time.monotonic() + 5
    while spill.pending and time.monotonic() < deadline:
        time.sleep(0.02)  # replayed, the file removed
    writer.close()
    assert not spill.pending and sorted(p.name for p in tmp_path.glob("spill*")) == []
    kept = claim_spill(tmp_path / "spill.jsonl")
    kept.append([_run(2)], [], [])
    kept.release()  # the store never came back: the file and its lock stay for the next
    assert sorted(p.name for p in tmp_path.glob("spill*")) == [
        "spill-0.jsonl",
        "spill-0.jsonl.lock",
    ]
    assert claim_spill(tmp_path / "spill.jsonl").pending  # and the next one takes it
    store.inner.close()


def test_a_lock_file_removed_while_another_process_waits_to_lock_it_is_not_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of removing lock files: B opens the lock file, A (holding it) lets go and
    removes it, C makes a new one and locks it, then B's lock on the old one succeeds.
    B must see that it holds a lock on a file no longer there, and try again."""
    import fcntl

    path = tmp_path / "spill-0.jsonl"
    a, b, c = SpillFile(path), SpillFile(path), SpillFile(path)
    assert a.claim()
    real_flock = fcntl.flock
    raced: list[bool] = []

    def flock(fd: int, operation: int) -> None:
        if not raced:  # b's first lock, after its open: the others act in between
            raced.append(True)
            a.release()  # nothing in it: its lock file goes
            assert not b.lock_path.exists()
            assert c.claim()  # a new lock file, locked
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    assert not b.claim()  # its first lock was on the removed file; the new one is c's
    assert raced and c.lock_path.exists()
    c.release()
    assert b.claim() and b.lock_path.exists()  # free now: b takes it
    b.release()
    assert not b.lock_path.exists()


def test_a_lock_file_a_dead_process_left_is_removed_and_a_live_ones_kept(
    tmp_path: Path,
) -> None:
    (tmp_path / "spill-5.jsonl.lock").touch()  # its process died with nothing spilled
    live = SpillFile(tmp_path / "spill-6.jsonl")
    assert live.claim()
    own = claim_spill(tmp_path / "spill.jsonl")
    assert own.adopted == [] and not (tmp_path / "spill-5.jsonl.lock").exists()
    assert live.lock_path.exists()
    for spill in (own, live):
        spill.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_under_workers_only_files_past_their_count_are_adopted(tmp_path: Path) -> None:
    base = tmp_path / "spill.jsonl"
    for n in (1, 2):
        SpillFile(tmp_path / f"spill-{n}.jsonl").append([_run(n)], [], [])
    worker = claim_spill(base, index=0, first_free=2, adopt_from=2)  # --workers 2
    assert [a.path.name for a in worker.adopted] == ["spill-2.jsonl"]  # 1 is worker 1's
    assert claim_spill(base, index=1, first_free=2, adopt_from=2).path.name == "spill-1.jsonl"


def test_a_filesystem_without_locks_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(StoreError, match=r"cannot lock .*spill-0\.jsonl\.lock \(No locks"):
        claim_spill(tmp_path / "spill.jsonl")
    assert [p.name for p in tmp_path.iterdir()] == ["spill-0.jsonl.lock"]  # no loop of them


class _Dies(BaseException):
    """The process dies (not an error the replay handles)."""


class _NamingStore:
    """A store that names its writes' transactions: ``die_after_commit`` of them
    commits, then the process dies before the replay records the batch as done."""

    def __init__(self) -> None:
        self.commits: set[str] = set()
        self.written: list[str] = []
        self.die_after_commit = False

    def write_named(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        *,
        on_named: Callable[[str], None] | None = None,
    ) -> None:
        transaction = f"tx-{len(self.written)}"
        if on_named is not None:
            on_named(transaction)
        self.written.append(runs[0].run_id)
        self.commits.add(transaction)
        if self.die_after_commit:
            raise _Dies

    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        self.write_named(runs, steps, attempts)

    def committed(self, transaction: str) -> bool:
        return transaction in self.commits


def test_a_replay_that_dies_after_a_commit_does_not_write_the_batch_again(tmp_path: Path) -> None:
    """The batch's transaction is recorded before it commits: a process that dies
    between the commit and recording the offset leaves the next replay (a new process)
    to find the batch written, and to go on with the next one."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    for i in range(3):
        spill.append([_run(i)], [], [_attempt(i)])
    store = _NamingStore()

    def write(runs: Sequence[RunRecord], steps: object, attempts: object) -> None:
        raise AssertionError("a store that names its writes is written to by name")

    class Dying:
        """The store, in a process that dies after its second commit."""

        def write_named(
            self,
            runs: Sequence[RunRecord],
            steps: Sequence[StepRecord],
            attempts: Sequence[AttemptRecord],
            *,
            on_named: Callable[[str], None] | None = None,
        ) -> None:
            store.die_after_commit = len(store.written) == 1
            store.write_named(runs, steps, attempts, on_named=on_named)

    with pytest.raises(_Dies):
        spill.replay(write, committed=store.committed, named=Dying())
    assert store.written == ["run-0000", "run-0001"] and spill.pending
    store.die_after_commit = False
    again = SpillFile(tmp_path / "spill.jsonl")
    assert again.replay(write, committed=store.committed, named=store) == 4
    assert store.written == ["run-0000", "run-0001", "run-0002"]  # the second, once
    assert again.found_written == 2 and not again.pending


def test_without_a_commit_status_a_naming_store_is_written_to_as_before(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([_run(0)], [], [_attempt(0)])
    store = _NamingStore()
    assert spill.replay(store.write_batch, named=store) == 2
    assert store.written == ["run-0000"] and not spill.doubt_path.exists()
