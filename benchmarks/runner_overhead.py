"""Runner overhead per step, model time excluded.

Runs the four-step CSV-export workflow (planner -> implementer -> reviewer ->
verifier, with its keyword checks) many times against an in-process function
provider that answers at once, so everything measured is turnout's own work:
template rendering, the policy decision, the executor, checks, records and
(optionally) handing records to the SQLite trace writer.

    .venv/bin/python benchmarks/runner_overhead.py [--runs 2000] [--trace]

Target (issue 2): under 1 ms per step.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from turnout.config import load_settings
from turnout.policies import build_policy
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.tracing import TraceWriter, open_store
from turnout.types import ChatRequest
from turnout.workflows.loader import load_workflow
from turnout.workflows.runner import Runner

ROOT = Path(__file__).resolve().parent.parent
ANSWER = (
    "## Affected files\nbilling/export.py\n## Risks\nleaks\n## Acceptance criteria\nok\n"
    "## Tests\nunit\n## Rollback\nrevert\nCSV escaping, authorization, timestamps, "
    "security, privacy, commands, evidence"
)


def answer(req: ChatRequest) -> str:
    return ANSWER


async def bench(runs: int, trace: bool) -> list[float]:
    settings = load_settings(ROOT / "examples/csv_export/turnout.yaml")
    workflow = load_workflow(ROOT / "examples/csv_export/workflow.yaml")
    provider = FunctionProvider(answer)
    pool = ModelPool(settings, providers=dict.fromkeys(settings.providers, provider))
    tmp = tempfile.TemporaryDirectory()
    writer = TraceWriter(open_store(str(Path(tmp.name) / "traces.db"))) if trace else None
    runner = Runner(settings, pool=pool, sink=writer.submit if writer else None)
    policy = build_policy("mixed", settings)
    steps = len(workflow.steps)
    per_step: list[float] = []
    for _ in range(50):  # warm up
        await runner.run(workflow, {"task": "x"}, policy=policy)
    for _ in range(runs):
        provider.calls.clear()
        t0 = time.perf_counter()
        await runner.run(workflow, {"task": "Add a CSV export"}, policy=policy)
        per_step.append((time.perf_counter() - t0) / steps)
    if writer:
        writer.close()
    tmp.cleanup()
    return per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument(
        "--trace", action="store_true", help="also hand records to the SQLite trace writer"
    )
    args = ap.parse_args()
    for trace in [False, True] if not args.trace else [True]:
        per_step = asyncio.run(bench(args.runs, trace))
        per_step.sort()
        p50 = statistics.median(per_step) * 1e3
        p99 = per_step[int(len(per_step) * 0.99) - 1] * 1e3
        mean = statistics.fmean(per_step) * 1e3
        label = "with SQLite tracing" if trace else "no tracing"
        print(
            f"runner overhead per step ({label}, {args.runs} runs x 4 steps): "
            f"mean {mean:.3f} ms, p50 {p50:.3f} ms, p99 {p99:.3f} ms  (target < 1 ms)"
        )


if __name__ == "__main__":
    main()
