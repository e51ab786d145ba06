"""The trace store protocol, and opening a store from a URL or path.

Stores are synchronous and are written from a background thread by
:class:`~turnout.tracing.writer.TraceWriter`, so the request path never waits on
disk or network. A store must accept the same run twice (``running``, then its
final status): runs and steps are upserts, attempts are inserts.

So a batch must not be written twice: a store whose write can fail with its outcome
unknown (the PostgreSQL store, when the connection is lost after COMMIT was sent) raises
:class:`~turnout.errors.CommitUnknown` naming the write's transaction, and answers
:class:`CommitStatus` so that the spill file's replay can ask before writing the batch
again. Such a store also tells a write's transaction before it commits
(:class:`NamesWrites`): the replay records it first, so a process that dies between a
batch's commit and recording it replayed leaves the next replay to ask, not to write it
twice. The SQLite store commits in the process, with no answer to lose on the way: it
needs neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from turnout.tracing.records import AttemptRecord, RunRecord, RunTrace, StepRecord

DEFAULT_SQLITE_PATH = Path(".turnout") / "traces.db"


class TraceStore(Protocol):
    def write_batch(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
    ) -> None:
        """Write one batch in one transaction."""

    def list_runs(
        self,
        *,
        limit: int = 20,
        workflow: str | None = None,
        bench_id: str | None = None,
        since: float | None = None,
    ) -> list[RunRecord]:
        """Most recent runs first."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL written once for both databases (``?`` placeholders);
        the store adapts it to its dialect. Reports are built on this."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement in the shared dialect (benches, flags), in its own transaction."""

    def get_run(self, run_id: str) -> RunTrace | None:
        """A run with its steps and attempts, or None. Accepts a unique id prefix."""

    def close(self) -> None: ...


@runtime_checkable
class CommitStatus(Protocol):
    """A store that can tell whether a write that left its outcome unknown
    (:class:`~turnout.errors.CommitUnknown`) was committed after all."""

    def committed(self, transaction: str) -> bool:
        """True: the transaction committed (its batch is written); False: it did not, or
        the store cannot know any more (write the batch). Raises
        :class:`~turnout.errors.StoreError` while that cannot be told yet (the
        transaction still in progress, the store unreachable)."""


@runtime_checkable
class NamesWrites(Protocol):
    """A store whose write tells its transaction's name (as ``committed`` takes it)
    once it has one, before it commits."""

    def write_named(
        self,
        runs: Sequence[RunRecord],
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        *,
        on_named: Callable[[str], None] | None = None,
    ) -> None: ...
