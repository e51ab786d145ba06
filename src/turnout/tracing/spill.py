"""Nothing lost when the trace store is away: batches spill to a local file and are
replayed when the store is back.

The spill file is append-only JSON Lines, one batch a line: the rows of its runs,
steps and attempts exactly as the stores write them (:mod:`turnout.tracing.rows`),
so a replayed batch is the batch that would have been written. The file is bounded
(``max_bytes``): a batch that does not fit is dropped and counted, never kept in
memory. Replay writes the batches in order; after each one the offset reached is
recorded beside the file (``.offset``), so a replay cut short (a crash, the store
failing again) resumes where it stopped and never writes a batch twice. Once every
batch is written, the file and its offset are removed.

A batch whose write failed with its outcome unknown (:class:`~turnout.errors.CommitUnknown`:
the connection lost after COMMIT was sent, so the store may have it already) carries the
name of that write's transaction, ``"in_doubt": [...]`` on its line (lines without it,
as earlier versions wrote them, replay as before). A replay of such a batch first asks
the store (``committed``, :class:`~turnout.tracing.store.CommitStatus`): committed, the
batch is not written again but counts as replayed; not committed, it is written. When a
replay's own write of a batch leaves its outcome unknown, its transaction is recorded
beside the file (``.doubt``: the batch's offset and the names), for the next replay to
ask about as well. A store that names its writes' transactions before committing
(:class:`~turnout.tracing.store.NamesWrites`, the PostgreSQL store) has every replayed
batch's transaction recorded there before it commits: a process that dies after a
batch's commit and before its offset is recorded leaves the next replay to ask, not to
write the batch twice.

Counters (for metrics): ``spilled`` / ``dropped`` / ``replayed`` records, and of the
replayed, ``found_written``: those of in-doubt batches the store turned out to have.
``on_count`` hears of each record spilled or dropped as it happens.

One file, one writer: a process *claims* its file (:meth:`SpillFile.claim`, an
exclusive ``flock`` on ``<file>.lock``, which the kernel releases when the process
dies), so two gateways started in one directory, or workers given one ``spill:`` path,
never append to or replay the same file. A process that lets go of a file with nothing
left in it removes the lock file too, while it still holds the lock; so that no one
is left holding a lock on a file no longer there (opened just before the removal,
locked just after), a claim counts only when the lock taken is on the file that is at
the path then, and is tried again otherwise. A process that dies leaves its lock file
(the kernel frees the lock, not the name): the next process to claim it removes it,
once it finds nothing to replay. :func:`claim_spill` gives each process a
numbered file beside a base path (``spill-0.jsonl``, ``spill-1.jsonl``, ...) and has it
*adopt* the files no live process claims (left by a run with more workers, or by a
process that crashed): they are replayed before the process's own file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from turnout.errors import CommitUnknown, StoreError
from turnout.tracing import rows
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord

if TYPE_CHECKING:
    from turnout.tracing.store import NamesWrites

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_VERSION = 1

WriteBatch = Callable[[Sequence[RunRecord], Sequence[StepRecord], Sequence[AttemptRecord]], None]
Committed = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Batch:
    runs: tuple[RunRecord, ...]
    steps: tuple[StepRecord, ...]
    attempts: tuple[AttemptRecord, ...]
    in_doubt: tuple[str, ...] = ()
    """Transactions that may have written this batch already (their outcome unknown)."""

    def __len__(self) -> int:
        return len(self.runs) + len(self.steps) + len(self.attempts)


def encode_batch(
    runs: Sequence[RunRecord],
    steps: Sequence[StepRecord],
    attempts: Sequence[AttemptRecord],
    in_doubt: Sequence[str] = (),
) -> bytes:
    run_rows, step_rows, attempt_rows = rows.batch_rows(runs, steps, attempts)
    line = {"v": _VERSION, "runs": run_rows, "steps": step_rows, "attempts": attempt_rows}
    if in_doubt:
        line["in_doubt"] = list(in_doubt)
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def decode_batch(line: bytes) -> Batch:
    value: dict[str, Any] = json.loads(line)
    if value.get("v") != _VERSION:
        raise ValueError(f"unknown spill line version {value.get('v')!r}")
    return Batch(
        tuple(rows.run_from_row(r) for r in value["runs"]),
        tuple(rows.step_from_row(s) for s in value["steps"]),
        tuple(rows.attempt_from_row(a) for a in value["attempts"]),
        tuple(str(t) for t in value.get("in_doubt", ())),
    )


class SpillFile:
    """A bounded, append-only file of trace batches waiting for their store."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = Path(path)
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.doubt_path = self.path.with_name(self.path.name + ".doubt")
        self.max_bytes = max_bytes
        self.adopted: list[SpillFile] = []
        """Files no live process claims, replayed before this one (then let go)."""
        self.spilled = 0
        self.dropped = 0
        self.replayed = 0
        self.found_written = 0
        self.on_count: Callable[[int, int], None] | None = None
        """Called with (records spilled, records dropped) as each batch is."""
        self._lock = threading.Lock()
        self._claim: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"SpillFile({str(self.path)!r})"

    @property
    def pending(self) -> bool:
        """Whether batches wait to be replayed (also those left by an earlier process)."""
        return self._holds_batches() or any(other.pending for other in self.adopted)

    def claim(self) -> bool:
        """Take the file for this process until :meth:`release` (or its exit); False
        when another live process holds it."""
        if self._claim is not None:
            return True
        lock = self.lock_path
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise StoreError(f"spill file {self.path}: cannot open {lock}: {exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another live process holds it
                os.close(fd)
                return False
            except OSError as exc:  # a filesystem without locks (some network mounts)
                os.close(fd)
                raise StoreError(
                    f"spill file {self.path}: cannot lock {lock} ({exc.strerror}); "
                    "put gateway.spill on a local filesystem"
                ) from None
            if _same_file(fd, lock):
                self._claim = fd
                return True
            # The lock file was removed by a process letting go of it between our open
            # and our lock: what we hold locks nothing anyone else can see. Again.
            os.close(fd)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def release(self) -> None:
        """Let the file go (and every adopted one). With nothing left to replay, the file
        and its lock file go too: removed while the lock is still held (see :meth:`claim`
        for why that is safe)."""
        for other in self.adopted:
            other.release()
        if self._claim is not None:
            if not self._holds_batches():
                self._remove()
                self.lock_path.unlink(missing_ok=True)
            os.close(self._claim)
            self._claim = None

    def _holds_batches(self) -> bool:
        """Whether this file (not the adopted ones) has batches not yet replayed."""
        try:
            return self.path.stat().st_size > self._offset()
        except FileNotFoundError:
            return False

    def watch(self, on_count: Callable[[int, int], None]) -> None:
        """Have ``on_count`` hear of the records spilled and dropped so far, then of each
        batch as it spills or drops (none counted twice, none missed)."""
        with self._lock:
            on_count(self.spilled, self.dropped)
            self.on_count = on_count

    def _count(self, spilled: int, dropped: int) -> None:
        self.spilled += spilled
        self.dropped += dropped
        if self.on_count is not None:
            self.on_count(spilled, dropped)

    def append(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        *,
        or_drop: bool = True,
        in_doubt: str | None = None,
    ) -> bool:
        """Append one batch; False when the file is full, the batch then counted as
        dropped (unless ``or_drop`` is False: the caller keeps it). ``in_doubt``: the
        transaction of a failed write of this batch that may have committed."""
        count = len(runs) + len(steps) + len(attempts)
        if not count:
            return True
        line = encode_batch(runs, steps, attempts, () if in_doubt is None else (in_doubt,))
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and self._offset() >= size:  # all replayed: start the file afresh
                self._remove()
                size = 0
            if size + len(line) > self.max_bytes:
                if or_drop:
                    self._count(0, count)
                return False
            with self.path.open("ab") as f:
                f.write(line)
                f.flush()
            self._count(count, 0)
        return True

    def replay(
        self,
        write: WriteBatch,
        *,
        stop: Callable[[], bool] | None = None,
        committed: Committed | None = None,
        named: NamesWrites | None = None,
    ) -> int:
        """Write every pending batch with ``write``, in order; returns the records
        written. A failing ``write`` stops the replay (its exception propagates) with
        the batches before it recorded as done; so does ``stop()`` answering True after
        a batch (the rest stays pending). A batch in doubt is first looked up with
        ``committed`` (None: written all the same): one found committed counts as
        written; a failing ``committed`` stops the replay as a failing ``write`` does.

        ``named``: a store that names its writes' transactions, written to instead when
        ``committed`` is given: each batch's transaction is recorded as a doubt before
        it commits, so a process that dies between the commit and recording the offset
        reached leaves the next replay to find the batch written, not to write it
        twice."""
        written = 0
        while self.adopted:  # the oldest first
            other = self.adopted[0]
            before = other.found_written
            written += other.replay(write, stop=stop, committed=committed, named=named)
            self.found_written += other.found_written - before
            if other.pending:
                self.replayed += written
                return written
            other.release()
            self.adopted.pop(0)
        self.replayed += written
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            for start, end, batch in self._batches():
                doubts = batch.in_doubt + self._doubts_at(start)
                if committed is not None and any(committed(t) for t in doubts):
                    self.found_written += len(batch)
                else:
                    try:
                        if named is not None and committed is not None:
                            self._write_named(named, start, batch)
                        else:
                            write(batch.runs, batch.steps, batch.attempts)
                    except CommitUnknown as exc:
                        known, transaction = self._doubts_at(start), exc.transaction
                        if transaction is not None and transaction not in known:
                            self._set_doubts(start, (*known, transaction))
                        raise
                self._set_offset(end)
                written += len(batch)
                self.replayed += len(batch)
                if stop is not None and end < size and stop():
                    return written
            self._remove()
        return written

    def _write_named(self, store: NamesWrites, start: int, batch: Batch) -> None:
        def record(transaction: str) -> None:
            known = self._doubts_at(start)
            if transaction not in known:
                self._set_doubts(start, (*known, transaction))

        store.write_named(batch.runs, batch.steps, batch.attempts, on_named=record)

    def skip_one(self) -> int:
        """Give up on the next pending batch (it fails however often it is tried);
        returns its record count, counted as dropped."""
        for other in self.adopted:
            if other.pending:
                skipped = other.skip_one()
                with self._lock:
                    self._count(0, skipped)
                return skipped
        with self._lock:
            for _, end, batch in self._batches():
                self._set_offset(end)
                self._count(0, len(batch))
                return len(batch)
        return 0

    def _batches(self) -> Iterator[tuple[int, int, Batch]]:
        """The pending batches: where each starts and ends in the file, and the batch."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(self._offset())
            while True:
                start = f.tell()
                line = f.readline()
                if not line:
                    return
                if not line.endswith(b"\n"):
                    return  # the last append is still being written (or was cut by a crash)
                try:
                    batch = decode_batch(line)
                except (ValueError, KeyError, TypeError):
                    # a line a crash cut short, with the next append glued to it
                    self._set_offset(f.tell())
                    continue
                yield start, f.tell(), batch

    def _remove(self) -> None:
        """The file and what is kept beside it; the doubts first, so that a crash
        midway never leaves them to be read as a later file's."""
        self.doubt_path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        self.offset_path.unlink(missing_ok=True)

    def _doubts_at(self, start: int) -> tuple[str, ...]:
        """Transactions of the replays of the batch at ``start`` that left it in doubt."""
        try:
            value = json.loads(self.doubt_path.read_bytes())
            if value["at"] == start:
                return tuple(str(t) for t in value["in_doubt"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            pass
        return ()

    def _set_doubts(self, start: int, transactions: Sequence[str]) -> None:
        tmp = self.doubt_path.with_name(self.doubt_path.name + ".tmp")
        tmp.write_text(json.dumps({"at": start, "in_doubt": list(transactions)}), "utf-8")
        os.replace(tmp, self.doubt_path)

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text("ascii") or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _set_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        tmp.write_text(str(offset), "ascii")
        os.replace(tmp, self.offset_path)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is open on the file now at ``path``."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


_NUMBERED = re.compile(r"-(\d+)$")


def numbered(base: Path, index: int) -> Path:
    """``spill.jsonl`` -> ``spill-3.jsonl``."""
    return base.with_name(f"{base.stem}-{index}{base.suffix}")


def claim_spill(
    base: str | os.PathLike[str],
    *,
    index: int = 0,
    first_free: int = 1,
    adopt_from: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SpillFile:
    """This process's spill file beside ``base``: ``<base>-<index>``, or if a live
    process holds that one, the first free from ``first_free`` on. It adopts every file
    beside it that no live process claims: ``base`` itself (as earlier versions named a
    configured file) and the numbered ones from ``adopt_from`` on (under ``--workers N``,
    N: lower numbers belong to workers that may still be starting)."""
    base = Path(base)
    own = SpillFile(numbered(base, index), max_bytes=max_bytes)
    candidate = first_free
    while not own.claim():
        own = SpillFile(numbered(base, candidate), max_bytes=max_bytes)
        candidate += 1
    found: dict[Path, int] = {}
    if base.exists() or base.with_name(base.name + ".lock").exists():
        found[base] = -1
    for lock in (False, True):  # the files, and the lock files a dead process left alone
        pattern = f"{base.stem}-*{base.suffix}" + (".lock" if lock else "")
        for path in base.parent.glob(pattern):
            path = path.with_name(path.name.removesuffix(".lock")) if lock else path
            match = _NUMBERED.search(path.name.removesuffix(base.suffix))
            if match is not None and path.name.endswith(base.suffix):
                number = int(match.group(1))
                if number >= adopt_from and path != own.path:
                    found[path] = number
    for path, _ in sorted(found.items(), key=lambda item: item[1]):
        other = SpillFile(path, max_bytes=max_bytes)
        if other.claim():
            if other.pending:
                own.adopted.append(other)
            else:  # replayed to its end already, or only a lock: what is left of it goes
                other.release()
    return own
