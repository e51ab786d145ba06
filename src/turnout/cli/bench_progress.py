"""A bench's progress, step by step, for a terminal and for a log.

In a terminal: one bar per policy that moves as each *step* finishes (with
``--runs 1`` a run-level bar would sit at 0/1 for minutes), with the steps in
flight and their models (``implementer on smol``). Not in a terminal (piped, CI
logs, files): a plain line every :data:`EVERY_S` seconds with the same counts, so
a log shows the bench is alive, and one at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from turnout.workflows.results import RunResult, StepResult

EVERY_S = 5.0
"""Seconds between plain progress lines when the console is not a terminal."""
NOW_WIDTH = 48


@dataclass(slots=True)
class _Row:
    steps_total: int
    steps_done: int
    runs_total: int
    runs_done: int
    task: TaskID | None = None
    last: str = ""
    in_flight: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def now(self) -> str:
        text = ", ".join(f"{sid} on {m}" if m else sid for (_, sid), m in self.in_flight.items())
        return text if len(text) <= NOW_WIDTH else text[: NOW_WIDTH - 1] + "…"


class BenchProgress:
    """Counts steps and runs per policy; draws bars or prints plain lines."""

    def __init__(
        self,
        console: Console,
        jobs: dict[str, tuple[int, int]],
        steps_per_run: int,
        *,
        every_s: float | None = None,
    ) -> None:
        """``jobs``: per policy, (runs planned, runs already done). ``every_s`` defaults to
        ``$TURNOUT_PROGRESS_EVERY_S``, else :data:`EVERY_S`."""
        self.console = console
        self.every_s = every_s or float(os.environ.get("TURNOUT_PROGRESS_EVERY_S") or EVERY_S)
        self.terminal = console.is_terminal
        self.rows = {
            p: _Row(total * steps_per_run, done * steps_per_run, total, done)
            for p, (total, done) in jobs.items()
        }
        self.t0 = time.monotonic()
        self.progress: Progress | None = None

    # -- events ----------------------------------------------------------------------

    def step_started(self, policy: str, job: str, step_id: str, model: str | None) -> None:
        self.rows[policy].in_flight[(job, step_id)] = model
        self._refresh(policy)

    def step_finished(self, policy: str, job: str, step: StepResult) -> None:
        row = self.rows[policy]
        row.in_flight.pop((job, step.step_id), None)
        row.steps_done += 1
        self._refresh(policy)

    def run_finished(self, r: RunResult) -> None:
        row = self.rows[r.policy]
        row.runs_done += 1
        # a run may end with steps never started (interrupted): its steps count as done
        row.steps_done = max(row.steps_done, row.runs_done * (row.steps_total // row.runs_total))
        job = f"{r.tags.get('case', '')}#{r.tags.get('repeat', '')}"
        row.in_flight = {k: v for k, v in row.in_flight.items() if k[0] != job}
        row.last = f"{'✓' if r.ok else '✗'} {r.latency_s:.1f}s"
        self._refresh(r.policy)

    # -- output ----------------------------------------------------------------------

    def line(self) -> str:
        """One plain line: every policy's steps and runs done, and what is in flight."""
        parts = []
        for p, row in self.rows.items():
            text = (
                f"{p} {row.steps_done}/{row.steps_total} steps, "
                f"{row.runs_done}/{row.runs_total} runs"
            )
            now = row.now()
            parts.append(f"{text} ({now})" if now else text)
        return f"[{time.monotonic() - self.t0:.0f}s] " + "; ".join(parts)

    @contextmanager
    def bars(self) -> Iterator[None]:
        if not self.terminal:
            yield
            return
        with Progress(
            TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps, runs {task.fields[runs]}"), TextColumn("{task.fields[now]}"),
            TimeElapsedColumn(), console=self.console,
        ) as progress:  # fmt: skip
            self.progress = progress
            for p, row in self.rows.items():
                row.task = progress.add_task(
                    p, total=row.steps_total, completed=row.steps_done, runs=self._runs(row),
                    now="",
                )  # fmt: skip
            try:
                yield
            finally:
                self.progress = None

    @asynccontextmanager
    async def ticking(self) -> AsyncIterator[None]:
        """Plain lines every ``every_s`` seconds (not in a terminal), and one at the end."""
        task = None if self.terminal else asyncio.create_task(self._tick())
        try:
            with self.bars():
                yield
        finally:
            if task is not None:
                task.cancel()
                self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def _refresh(self, policy: str) -> None:
        row = self.rows[policy]
        if self.progress is not None and row.task is not None:
            self.progress.update(
                row.task, completed=row.steps_done, runs=self._runs(row), now=row.now() or row.last
            )

    @staticmethod
    def _runs(row: _Row) -> str:
        return f"{row.runs_done}/{row.runs_total}"


def jobs_by_policy(
    policies: Sequence[str],
    planned: Sequence[tuple[str, str, int]],
    done: set[tuple[str, str, int]],
) -> dict[str, tuple[int, int]]:
    """Per policy: (runs planned, runs already done)."""
    return {
        p: (
            sum(1 for k in planned if k[0] == p),
            sum(1 for k in done if k[0] == p and k in planned),
        )
        for p in policies
    }
