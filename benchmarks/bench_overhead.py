"""Bench bookkeeping overhead per run, model time excluded.

Runs the CSV-export example workflow under three policies (all_strong,
all_cheap, mixed) through ``run_bench`` against an in-process function provider
that answers at once, then reads the bench back from the SQLite trace store and
analyses it, and reports milliseconds per run for each part of the bookkeeping:

- running: ``run_bench``'s own work per run (job list, interleaving, the
  concurrency gate, tags, callbacks), measured with a stub runner that hands
  back a finished run at once; as a check, ``run_bench`` over the real runner
  minus the same jobs run with ``Runner.run`` directly (both hand their records
  to an in-memory sink) is printed too, and is noisy on a busy machine;
- writing: the trace records of those runs written to a temporary SQLite store
  through the background ``TraceWriter`` (submit + flush);
- loading: ``load_bench_data`` (the bench read back for analysis);
- analysing: ``analyze`` (Wilson and Newcombe intervals, bootstraps with
  2,000 resamples) and the report's JSON.

    .venv/bin/python benchmarks/bench_overhead.py [--repeats 100] [--concurrency 1]

Target (issue 4): under 5 ms per run in all.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from turnout.bench.analysis import analyze
from turnout.bench.cases import BenchCase
from turnout.bench.data import load_bench_data
from turnout.bench.runner import run_bench
from turnout.cli.bench_output import bench_report
from turnout.config import Settings, load_settings
from turnout.policies import build_policy
from turnout.policies.base import Policy
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.tracing import TraceWriter, open_store
from turnout.tracing.meta import BenchRecord, save_bench
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.types import ChatRequest
from turnout.workflows.loader import load_workflow
from turnout.workflows.results import RunResult
from turnout.workflows.runner import Runner
from turnout.workflows.spec import Workflow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/csv_export"
POLICIES = ("all_strong", "all_cheap", "mixed")
ANSWER = (
    "## Affected files\nbilling/export.py\n## Risks\nleaks\n## Acceptance criteria\nok\n"
    "## Tests\nunit\n## Rollback\nrevert\nCSV escaping, authorization, timestamps, "
    "security, privacy, commands, evidence"
)
Record = RunRecord | StepRecord | AttemptRecord


def answer(req: ChatRequest) -> str:
    return ANSWER


def make_runner(settings: Settings, sink: list[Record]) -> Runner:
    provider = FunctionProvider(answer)
    pool = ModelPool(settings, providers=dict.fromkeys(settings.providers, provider))
    return Runner(settings, pool=pool, sink=sink.append)


async def runner_alone(
    settings: Settings, workflow: Workflow, cases: list[BenchCase], repeats: int
) -> float:
    """The runner's own work for the same jobs, without the bench around it."""
    records: list[Record] = []
    runner = make_runner(settings, records)
    policies = [build_policy(p, settings) for p in POLICIES]
    t0 = time.perf_counter()
    for n in range(1, repeats + 1):
        for case in cases:
            for policy in policies:
                await runner.run(workflow, case.inputs, policy=policy, bench_id="bx",
                                 tags={"case": case.id, "repeat": str(n)})  # fmt: skip
    elapsed = time.perf_counter() - t0
    await runner.aclose()
    return elapsed


class StubRunner:
    """Stands in for :class:`Runner`: every run is a copy of one finished run."""

    def __init__(self, result: RunResult) -> None:
        self.result = result

    async def run(
        self, workflow: Workflow, inputs: Mapping[str, Any], *, policy: Policy,
        bench_id: str | None = None, tags: Mapping[str, str] | None = None,
    ) -> RunResult:  # fmt: skip
        return replace(self.result, policy=policy.name, tags=dict(tags or {}))


async def machinery(
    settings: Settings, workflow: Workflow, cases: list[BenchCase], repeats: int, concurrency: int
) -> float:
    """``run_bench`` around a runner that takes no time at all."""
    records: list[Record] = []
    real = make_runner(settings, records)
    policies = [build_policy(p, settings) for p in POLICIES]
    sample = await real.run(workflow, cases[0].inputs, policy=policies[0])
    await real.aclose()
    stub = cast(Runner, StubRunner(sample))
    done: list[str] = []
    t0 = time.perf_counter()
    await run_bench(
        stub, workflow, policies, cases, runs=repeats, concurrency=concurrency,
        on_run=lambda r: done.append(r.run_id),
    )  # fmt: skip
    return time.perf_counter() - t0


async def bench_run(
    settings: Settings,
    workflow: Workflow,
    cases: list[BenchCase],
    repeats: int,
    concurrency: int,
    records: list[Record],
) -> tuple[float, str]:
    runner = make_runner(settings, records)
    policies = [build_policy(p, settings) for p in POLICIES]
    done: list[str] = []
    t0 = time.perf_counter()
    result = await run_bench(
        runner, workflow, policies, cases, runs=repeats, concurrency=concurrency,
        on_run=lambda r: done.append(r.run_id),
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    await runner.aclose()
    return elapsed, result.bench_id


def measure(repeats: int, concurrency: int, rounds: int) -> dict[str, float]:
    settings = load_settings(EXAMPLE / "turnout.yaml")
    workflow = load_workflow(EXAMPLE / "workflow.yaml")
    cases = [BenchCase("a", {"task": "Add a CSV export"}), BenchCase("b", {"task": "Add audit"})]
    runs = repeats * len(cases) * len(POLICIES)
    # warm up imports, templates and caches on both paths
    asyncio.run(runner_alone(settings, workflow, cases, 5))
    asyncio.run(bench_run(settings, workflow, cases, 5, concurrency, []))

    t_machinery = min(
        asyncio.run(machinery(settings, workflow, cases, repeats, concurrency)) for _ in range(3)
    )
    # alternate the two paths so that a busy machine slows both alike; keep the best of each
    t_runner = best = float("inf")
    records: list[Record] = []
    kept_id = ""
    for _ in range(rounds):
        t_runner = min(t_runner, asyncio.run(runner_alone(settings, workflow, cases, repeats)))
        sink: list[Record] = []
        elapsed, bench_id = asyncio.run(
            bench_run(settings, workflow, cases, repeats, concurrency, sink)
        )
        if elapsed < best:
            best, records, kept_id = elapsed, sink, bench_id

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "traces.db"))
        spec = {"policies": list(POLICIES), "runs": repeats, "baseline": "all_strong",
                "cases": [{"id": c.id, "inputs": dict(c.inputs)} for c in cases]}  # fmt: skip
        save_bench(store, BenchRecord(kept_id, workflow.name, time.time(), "running", spec))
        writer = TraceWriter(store)
        t0 = time.perf_counter()
        writer.submit_many(records)
        writer.flush()
        t_write = time.perf_counter() - t0
        writer.close()

        t0 = time.perf_counter()
        data = load_bench_data(store, kept_id)
        t_load = time.perf_counter() - t0
        assert len(data.runs) == runs, (len(data.runs), runs)

        t0 = time.perf_counter()
        analysis = analyze(data)
        t_analyse = time.perf_counter() - t0
        t0 = time.perf_counter()
        bench_report(data, settings, baseline=analysis.baseline).as_json()
        t_report = time.perf_counter() - t0
        store.close()

    ms = 1e3 / runs
    return {
        "runs": runs,
        "runner": t_runner * ms,
        "running": t_machinery * ms,
        "difference": (best - t_runner) * ms,  # may come out negative: noise
        "writing": t_write * ms,
        "loading": t_load * ms,
        "analysing": t_analyse * ms,
        "report": t_report * ms,
        "records": len(records),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=100, help="repeats per case and policy")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="best of this many timings")
    args = ap.parse_args()
    r = measure(args.repeats, args.concurrency, args.rounds)
    overhead = r["running"] + r["writing"] + r["loading"] + r["analysing"]
    print(
        f"bench overhead per run ({r['runs']:.0f} runs of 4 steps, 3 policies x 2 cases x "
        f"{args.repeats} repeats, concurrency {args.concurrency}, {r['records']:.0f} records):"
    )
    print(f"  runner's own work (not counted) {r['runner']:7.3f} ms")
    for key in ("running", "writing", "loading", "analysing"):
        print(f"  {key:<31} {r[key]:7.3f} ms")
    print(f"  {'(the whole report, JSON too)':<31} {r['report']:7.3f} ms")
    print(f"  {'(check: bench - runner alone)':<31} {r['difference']:7.3f} ms")
    print(f"  {'total bookkeeping':<31} {overhead:7.3f} ms  (target < 5 ms)")


if __name__ == "__main__":
    main()
