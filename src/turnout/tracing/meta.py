"""Benches and flags: the records around runs, read and written through a store.

A **bench** row holds what a bench was asked to do (workflow, config, policies,
cases, runs per case, concurrency) so it can be reported on later and resumed
after an interruption. A **flag** is a person's after-the-fact judgment of one
step's routing: ``could_be_cheaper`` or ``needed_frontier``; the weekly
report's routing-efficiency ratio is computed from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from turnout.errors import StoreError
from turnout.tracing.store import TraceStore

Verdict = Literal["could_be_cheaper", "needed_frontier"]
BenchStatus = Literal["running", "finished", "interrupted"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class BenchRecord:
    bench_id: str
    workflow: str
    created_at: float
    status: BenchStatus
    spec: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class FlagRecord:
    run_id: str
    step_id: str
    verdict: Verdict
    by: str
    why: str
    created_at: float = field(default_factory=time.time)


_UPSERT_BENCH = (
    "INSERT INTO benches (bench_id, workflow, created_at, status, spec) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (bench_id) DO UPDATE SET status = excluded.status, spec = excluded.spec"
)


def save_bench(store: TraceStore, bench: BenchRecord) -> None:
    store.execute(
        _UPSERT_BENCH,
        (
            bench.bench_id,
            bench.workflow,
            bench.created_at,
            bench.status,
            json.dumps(dict(bench.spec)),
        ),
    )


def set_bench_status(store: TraceStore, bench_id: str, status: BenchStatus) -> None:
    store.execute("UPDATE benches SET status = ? WHERE bench_id = ?", (status, bench_id))


def get_bench(store: TraceStore, bench_id: str) -> BenchRecord | None:
    """A bench by id or unique id prefix."""
    rows = store.query(
        "SELECT bench_id, workflow, created_at, status, spec FROM benches "
        "WHERE substr(bench_id, 1, ?) = ? ORDER BY bench_id LIMIT 6",
        (len(bench_id), bench_id),
    )
    if not rows:
        return None
    exact = [r for r in rows if r[0] == bench_id]
    if len(rows) > 1 and not exact:
        ids = ", ".join(str(r[0]) for r in rows[:5])
        raise StoreError(f"bench id prefix {bench_id!r} is ambiguous: it matches {ids}")
    r = exact[0] if exact else rows[0]
    spec = json.loads(r[4]) if r[4] else {}
    return BenchRecord(str(r[0]), str(r[1]), float(r[2]), r[3], spec)


def list_benches(store: TraceStore, limit: int = 20) -> list[BenchRecord]:
    rows = store.query(
        "SELECT bench_id, workflow, created_at, status, spec FROM benches "
        "ORDER BY created_at DESC LIMIT ?",
        (limit,),
    )
    return [
        BenchRecord(str(r[0]), str(r[1]), float(r[2]), r[3], json.loads(r[4]) if r[4] else {})
        for r in rows
    ]


def add_flag(store: TraceStore, flag: FlagRecord) -> None:
    store.execute(
        "INSERT INTO flags (run_id, step_id, verdict, flagged_by, why, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (flag.run_id, flag.step_id, flag.verdict, flag.by, flag.why, flag.created_at),
    )


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """Whether an answer was good (``score`` in [0, 1]; 1 passed, 0 failed), said after."""

    run_id: str
    step_id: str
    score: float
    by: str
    created_at: float = field(default_factory=time.time)


def add_feedback(
    store: TraceStore, feedback: FeedbackRecord, *, key_name: str | None = None
) -> None:
    """Record feedback on a run's step; StoreError when the run has no such step (or,
    with ``key_name``, was not made with that virtual key: not told apart, so a key
    cannot learn of other keys' runs)."""
    sql, params = "SELECT 1 FROM steps WHERE run_id = ? AND step_id = ?", [
        feedback.run_id, feedback.step_id,
    ]  # fmt: skip
    if key_name is not None:
        sql += " AND run_id IN (SELECT run_id FROM runs WHERE run_id = ? AND key_name = ?)"
        params += [feedback.run_id, key_name]
    known = store.query(sql, params)
    if not known:
        raise StoreError(f"no step {feedback.step_id!r} in a run {feedback.run_id!r}")
    store.execute(
        "INSERT INTO feedback (run_id, step_id, score, given_by, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (feedback.run_id, feedback.step_id, feedback.score, feedback.by, feedback.created_at),
    )


def list_flags(store: TraceStore, *, since: float | None = None) -> list[FlagRecord]:
    sql = "SELECT run_id, step_id, verdict, flagged_by, why, created_at FROM flags"
    params: list[Any] = []
    if since is not None:
        sql += " WHERE created_at >= ?"
        params.append(since)
    rows = store.query(sql + " ORDER BY created_at", params)
    return [FlagRecord(str(r[0]), str(r[1]), r[2], str(r[3]), str(r[4]), float(r[5])) for r in rows]
