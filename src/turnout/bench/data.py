"""A bench's runs as read back from the trace store: the input of every analysis.

Everything that reports on a bench (the comparison table, intervals, the
pairwise verdicts, the HTML report, ``suggest``) works from :class:`BenchData`,
so a bench can be analysed again at any time, and a resumed bench is analysed
over all its runs, old and new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from turnout.errors import StoreError
from turnout.tracing.liveness import seen_status
from turnout.tracing.meta import BenchRecord, get_bench
from turnout.tracing.records import FINISHED
from turnout.tracing.rows import pico_to_cost
from turnout.tracing.store import TraceStore
from turnout.workflows.results import RunResult


@dataclass(frozen=True, slots=True)
class StepSample:
    step_id: str
    kind: str
    model: str | None
    tier: str | None
    status: str
    cost: Decimal
    latency_s: float
    input_tokens: int
    output_tokens: int
    calls: int
    checks_passed: int
    checks_total: int

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class RunSample:
    run_id: str
    policy: str
    case: str
    repeat: int
    status: str
    cost: Decimal
    latency_s: float
    wall_s: float
    calls: int
    input_tokens: int
    output_tokens: int
    started_at: float
    steps: tuple[StepSample, ...]

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool:
        """Ran to its end (not running, interrupted or abandoned): a bench job done."""
        return self.status in FINISHED

    @property
    def checks_passed(self) -> int:
        return sum(s.checks_passed for s in self.steps)

    @property
    def checks_total(self) -> int:
        return sum(s.checks_total for s in self.steps)


@dataclass(frozen=True, slots=True)
class BenchData:
    bench: BenchRecord
    runs: tuple[RunSample, ...]

    @property
    def policies(self) -> list[str]:
        """Policy names in the order the bench was asked for (then any others seen)."""
        asked = [str(p) for p in self.bench.spec.get("policies", [])]
        seen = [r.policy for r in self.runs if r.policy not in asked]
        return list(dict.fromkeys([*asked, *seen]))

    def runs_of(self, policy: str) -> list[RunSample]:
        return [r for r in self.runs if r.policy == policy and r.finished]

    def step_ids(self) -> list[str]:
        return list(dict.fromkeys(s.step_id for r in self.runs for s in r.steps))


_RUNS = (
    "SELECT run_id, policy, tags, status, cost_picousd, latency_s, started_at, ended_at, calls, "
    "input_tokens, output_tokens, writer FROM runs WHERE bench_id = ? ORDER BY started_at, run_id"
)
_STEPS = (
    "SELECT s.run_id, s.step_id, s.kind, s.model, s.tier, s.status, s.cost_picousd, s.latency_s, "
    "s.input_tokens, s.output_tokens, s.calls, s.checks FROM steps s "
    "JOIN runs r ON r.run_id = s.run_id WHERE r.bench_id = ? ORDER BY s.started_at"
)


def load_bench_data(store: TraceStore, bench_id: str) -> BenchData:
    bench = get_bench(store, bench_id)
    if bench is None:
        raise StoreError(f"no bench {bench_id!r} in the trace store (see `turnout traces list`)")
    steps: dict[str, list[StepSample]] = {}
    for row in store.query(_STEPS, (bench.bench_id,)):
        passed, total = _checks(row[11])
        steps.setdefault(str(row[0]), []).append(
            StepSample(
                step_id=str(row[1]),
                kind=str(row[2]),
                model=row[3],
                tier=row[4],
                status=str(row[5]),
                cost=pico_to_cost(row[6]),
                latency_s=float(row[7] or 0),
                input_tokens=int(row[8] or 0),
                output_tokens=int(row[9] or 0),
                calls=int(row[10] or 0),
                checks_passed=passed,
                checks_total=total,
            )
        )
    runs = [_run(row, steps.get(str(row[0]), [])) for row in store.query(_RUNS, (bench.bench_id,))]
    return BenchData(bench, tuple(runs))


def _run(row: Sequence[Any], steps: list[StepSample]) -> RunSample:
    tags = json.loads(row[2]) if row[2] else {}
    ended = float(row[7]) if row[7] is not None else float(row[6])
    return RunSample(
        run_id=str(row[0]), policy=str(row[1]), case=str(tags.get("case", "")),
        repeat=int(tags.get("repeat", 1) or 1), status=seen_status(str(row[3]), row[11]),
        cost=pico_to_cost(row[4]), latency_s=float(row[5] or 0), wall_s=ended - float(row[6]),
        calls=int(row[8] or 0),
        input_tokens=int(row[9] or 0), output_tokens=int(row[10] or 0),
        started_at=float(row[6]), steps=tuple(steps),
    )  # fmt: skip


def _checks(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 0
    items = json.loads(text)
    return sum(1 for c in items if c.get("passed")), len(items)


def sample_of(result: RunResult) -> RunSample:
    """An in-memory run as a sample (for a bench that is not traced)."""
    steps = tuple(
        StepSample(
            step_id=s.step_id, kind=s.kind, model=s.model, tier=s.tier, status=s.status,
            cost=s.cost, latency_s=s.latency_s, input_tokens=s.usage.input_tokens,
            output_tokens=s.usage.output_tokens, calls=len(s.attempts),
            checks_passed=sum(1 for c in s.checks if c.passed), checks_total=len(s.checks),
        )
        for s in result.steps
    )  # fmt: skip
    u = result.usage
    return RunSample(
        run_id=result.run_id, policy=result.policy, case=str(result.tags.get("case", "")),
        repeat=int(result.tags.get("repeat", 1) or 1), status=result.status, cost=result.cost,
        latency_s=result.latency_s, wall_s=result.wall_s, calls=result.calls,
        input_tokens=u.input_tokens, output_tokens=u.output_tokens,
        started_at=result.started_at, steps=steps,
    )  # fmt: skip
