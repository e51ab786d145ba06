"""Run one workflow N times under several policies, on the same cases.

Jobs are interleaved (run 1 of every case under every policy, then run 2, ...)
so that an interrupted or slow bench still compares policies on the same work.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from turnout.bench.cases import BenchCase
from turnout.bench.data import sample_of
from turnout.bench.summary import PolicySummary, summarize
from turnout.policies.base import Policy
from turnout.workflows.results import RunResult, StepResult
from turnout.workflows.runner import Runner
from turnout.workflows.spec import Workflow

RunCallback = Callable[[RunResult], None]
StepStarted = Callable[[str, str, str, "str | None"], None]
"""``(policy, job, step_id, model)`` when a step starts; ``job`` is ``case#repeat``."""
StepFinished = Callable[[str, str, StepResult], None]
"""``(policy, job, step)`` when a step finishes (or is skipped)."""


def new_bench_id() -> str:
    return f"b{int(time.time()):x}{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class BenchResult:
    bench_id: str
    workflow: str
    runs_per_case: int
    cases: tuple[BenchCase, ...]
    results: dict[str, list[RunResult]] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)

    def summaries(self) -> list[PolicySummary]:
        return [
            summarize(p, [sample_of(r) for r in rs], self.wall_s.get(p, 0.0))
            for p, rs in self.results.items()
        ]


async def run_bench(
    runner: Runner,
    workflow: Workflow,
    policies: Sequence[Policy],
    cases: Sequence[BenchCase],
    *,
    runs: int = 1,
    concurrency: int = 1,
    bench_id: str | None = None,
    on_run: RunCallback | None = None,
    skip: Collection[tuple[str, str, int]] = (),
    on_step_start: StepStarted | None = None,
    on_step: StepFinished | None = None,
    tags: Mapping[str, str] | None = None,
) -> BenchResult:
    """Run every (policy, case, repeat) not in ``skip`` (jobs a resumed bench already has);
    every run carries ``tags`` besides its case and repeat."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    bench = BenchResult(bench_id or new_bench_id(), workflow.name, runs, tuple(cases))
    for p in policies:
        bench.results[p.name] = []
    first_start: dict[str, float] = {}
    last_end: dict[str, float] = {}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def job(policy: Policy, case: BenchCase, n: int) -> None:
        async with gate:
            first_start.setdefault(policy.name, time.perf_counter())
            job_id = f"{case.id}#{n}"
            result = await runner.run(
                workflow,
                case.inputs,
                policy=policy,
                bench_id=bench.bench_id,
                tags={**(tags or {}), "case": case.id, "repeat": str(n)},
                on_start=None
                if on_step_start is None
                else lambda sid, m: on_step_start(policy.name, job_id, sid, m),
                on_step=None if on_step is None else lambda s: on_step(policy.name, job_id, s),
            )
            last_end[policy.name] = time.perf_counter()
        bench.results[policy.name].append(result)
        if on_run is not None:
            on_run(result)

    done = set(skip)
    jobs = [
        job(p, c, n)
        for n in range(1, runs + 1)
        for c in cases
        for p in policies
        if (p.name, c.id, n) not in done
    ]
    await asyncio.gather(*jobs)
    for name, start in first_start.items():
        bench.wall_s[name] = last_end.get(name, start) - start
    return bench
