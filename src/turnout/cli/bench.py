"""``turnout bench``: the same workflow under several policies, side by side.

Results land in the trace store as each run finishes; the plan is saved with
the bench, so an interrupted bench resumes with ``--resume BENCH_ID``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from turnout.bench.cases import BenchCase, load_cases
from turnout.bench.data import BenchData, load_bench_data, sample_of
from turnout.bench.plan import BenchPlan, JobKey
from turnout.bench.runner import BenchResult, new_bench_id, run_bench
from turnout.cli.bench_output import bench_report
from turnout.cli.common import config_option, input_option, parse_inputs
from turnout.cli.output import make_console
from turnout.cli.session import Tracing, tracing
from turnout.cli.traces import STORE_HELP
from turnout.config.loader import load_settings
from turnout.config.settings import Settings
from turnout.errors import ConfigError, StoreError
from turnout.execution.setup import build_executor
from turnout.policies.base import Policy
from turnout.policies.registry import build_policy
from turnout.tracing.meta import BenchRecord, get_bench, save_bench, set_bench_status
from turnout.tracing.store import TraceStore
from turnout.workflows.binding import bind_inputs, check_against_pool
from turnout.workflows.loader import load_workflow
from turnout.workflows.results import RunResult
from turnout.workflows.runner import Runner
from turnout.workflows.spec import Workflow

USE_CACHE_HELP = "Let the configured caches answer (off by default: repeats measure the cache)."


@click.command("bench")
@click.argument(
    "workflow_path", metavar="WORKFLOW.yaml", required=False, type=click.Path(path_type=Path)
)
@config_option
@click.option("--policies", "policy_list", help="Comma-separated policy names.")
@click.option("--runs", "-n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per case and policy.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs in flight at once (per-model limits still apply).")  # fmt: skip
@input_option
@click.option("--cases", "cases_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL or CSV file: one row of inputs per case.")  # fmt: skip
@click.option("--baseline", help="Compare every policy with this one (default: the first).")
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the intervals and tests.")  # fmt: skip
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results as JSON to this file ('-' for stdout).")  # fmt: skip
@click.option("--resume", "resume_id", metavar="BENCH_ID",
              help="Finish an interrupted bench: run only what it is missing.")  # fmt: skip
@click.option("--store", "store_url", envvar="TURNOUT_STORE", help=STORE_HELP)
@click.option("--no-trace", is_flag=True, help="Do not record the runs (no resume, no report).")
@click.option("--use-cache", is_flag=True, help=USE_CACHE_HELP)
def bench_cmd(
    workflow_path: Path | None,
    config_path: Path,
    policy_list: str | None,
    runs: int,
    concurrency: int,
    inputs: tuple[str, ...],
    cases_path: Path | None,
    baseline: str | None,
    level: float,
    json_out: Path | None,
    resume_id: str | None,
    store_url: str | None,
    no_trace: bool,
    use_cache: bool,
) -> None:
    """Run WORKFLOW.yaml N times under each policy and compare them."""
    if resume_id:
        if no_trace:
            raise ConfigError("--resume reads the bench from the trace store: drop --no-trace")
        plan, bench_id = _resumed_plan(resume_id, store_url)
    else:
        if workflow_path is None or not policy_list:
            raise ConfigError("bench needs WORKFLOW.yaml and --policies (or --resume BENCH_ID)")
        plan = _new_plan(workflow_path, config_path, policy_list, runs, concurrency, inputs,
                         cases_path, baseline)  # fmt: skip
        bench_id = new_bench_id()
    settings = load_settings(plan.config_path)
    workflow = load_workflow(plan.workflow_path)
    policies = [build_policy(n, settings) for n in plan.policies]
    check_against_pool(workflow, settings)
    for case in plan.cases:
        try:
            bind_inputs(workflow, case.inputs)
        except ConfigError as exc:
            raise ConfigError(f"case {case.id}: {exc}") from None
    to_stdout = json_out is not None and str(json_out) == "-"
    console = make_console(stderr=to_stdout)
    if no_trace:
        result = asyncio.run(_execute(plan, settings, workflow, policies, bench_id, console,
                                      None, use_cache, set()))  # fmt: skip
        data = BenchData(
            BenchRecord(bench_id, workflow.name, time.time(), "finished", plan.spec()),
            tuple(sample_of(r) for rs in result.results.values() for r in rs),
        )
    else:
        with tracing(settings, store_url) as t:
            data = _traced(plan, settings, workflow, policies, bench_id, console, t, use_cache,
                           resume=resume_id is not None, store_url=store_url)  # fmt: skip
    report = bench_report(data, settings, baseline=plan.baseline, level=level)
    report.print(console)
    if json_out is not None:
        _write_json(report.as_json(), json_out, to_stdout, console)


def _traced(
    plan: BenchPlan,
    settings: Settings,
    workflow: Workflow,
    policies: list[Policy],
    bench_id: str,
    console: Console,
    t: Tracing,
    use_cache: bool,
    *,
    resume: bool,
    store_url: str | None,
) -> BenchData:
    done: set[JobKey] = set()
    if resume:
        done = {(r.policy, r.case, r.repeat) for r in load_bench_data(t.store, bench_id).runs
                if r.finished}  # fmt: skip
        left = len(plan.jobs()) - len(done & set(plan.jobs()))
        console.print(f"resuming bench {bench_id}: {len(done)} run(s) done, {left} to go")
    save_bench(t.store, BenchRecord(bench_id, workflow.name, time.time(), "running", plan.spec()))
    try:
        asyncio.run(_execute(plan, settings, workflow, policies, bench_id, console, t,
                             use_cache, done))  # fmt: skip
    except (KeyboardInterrupt, asyncio.CancelledError):
        t.writer.flush()
        set_bench_status(t.store, bench_id, "interrupted")
        again = f"turnout bench --resume {bench_id}" + (
            f" --store {store_url}" if store_url else ""
        )
        console.print(f"\n[yellow]bench {bench_id} interrupted[/]; finished runs are saved.")
        console.print(f"Resume with: {again}")
        raise
    t.writer.flush()
    set_bench_status(t.store, bench_id, "finished")
    return load_bench_data(t.store, bench_id)


async def _execute(
    plan: BenchPlan,
    settings: Settings,
    workflow: Workflow,
    policies: list[Policy],
    bench_id: str,
    console: Console,
    t: Tracing | None,
    use_cache: bool,
    done: set[JobKey],
) -> BenchResult:
    shape = f"{len(policies)} policies × {len(plan.cases)} case(s) × {plan.runs} run(s)"
    console.print(f"[bold]bench {bench_id}[/] {workflow.name}: {shape}")
    todo = [k for k in plan.jobs() if k not in done]
    with Progress(
        TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        tasks = {
            p.name: progress.add_task(
                p.name, total=sum(1 for k in plan.jobs() if k[0] == p.name),
                completed=sum(1 for k in done if k[0] == p.name), last="",
            )
            for p in policies
        }  # fmt: skip

        def on_run(r: RunResult) -> None:
            mark = "✓" if r.ok else "✗"
            progress.update(tasks[r.policy], advance=1, last=f"{mark} {r.latency_s:.1f}s")

        executor, resources = build_executor(
            settings, use_cache=use_cache, store=t.store if t is not None else None
        )
        sink = t.writer.submit if t is not None else None
        runner = Runner(settings, executor=executor, sink=sink)
        try:
            if not todo:
                return BenchResult(bench_id, workflow.name, plan.runs, plan.cases)
            return await run_bench(
                runner, workflow, policies, plan.cases, runs=plan.runs,
                concurrency=plan.concurrency, bench_id=bench_id, on_run=on_run, skip=done,
            )  # fmt: skip
        finally:
            await runner.aclose()
            await resources.aclose()


def _new_plan(
    workflow_path: Path,
    config_path: Path,
    policy_list: str,
    runs: int,
    concurrency: int,
    inputs: tuple[str, ...],
    cases_path: Path | None,
    baseline: str | None,
) -> BenchPlan:
    names = [n.strip() for n in policy_list.split(",") if n.strip()]
    if not names:
        raise ConfigError("--policies needs at least one policy name")
    if len(set(names)) != len(names):
        raise ConfigError("--policies names a policy twice")
    if baseline is not None and baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not one of --policies ({', '.join(names)})")
    defaults = parse_inputs(inputs)
    cases = (
        load_cases(cases_path, defaults=defaults) if cases_path else [BenchCase("input", defaults)]
    )
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise ConfigError("case ids must be unique", file=str(cases_path))
    return BenchPlan(
        workflow_path, config_path, tuple(names), tuple(cases), runs, concurrency, baseline
    )


def _resumed_plan(resume_id: str, store_url: str | None) -> tuple[BenchPlan, str]:
    from turnout.tracing import open_store

    store: TraceStore = open_store(store_url)
    try:
        record = get_bench(store, resume_id)
    finally:
        store.close()
    if record is None:
        raise StoreError(f"no bench {resume_id!r} in the trace store")
    return BenchPlan.from_spec(record.spec, bench_id=record.bench_id), record.bench_id


def _write_json(data: dict[str, Any], out: Path, to_stdout: bool, console: Console) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if to_stdout:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(out)
    console.print(f"results written to {out}")
