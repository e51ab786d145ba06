"""``turnout bench``: the same workflow under several policies, side by side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from turnout.bench.cases import BenchCase, load_cases
from turnout.bench.runner import BenchResult, run_bench
from turnout.cli.common import config_option, input_option, parse_inputs
from turnout.cli.output import bench_json, bench_table, make_console, price_notes, print_notes
from turnout.cli.session import trace_writer
from turnout.config.loader import load_settings
from turnout.errors import ConfigError
from turnout.routing.registry import build_policy
from turnout.routing.setup import build_executor
from turnout.workflows.binding import bind_inputs, check_against_pool
from turnout.workflows.loader import load_workflow
from turnout.workflows.results import RunResult
from turnout.workflows.runner import Runner


@click.command("bench")
@click.argument("workflow_path", metavar="WORKFLOW.yaml", type=click.Path(path_type=Path))
@config_option
@click.option("--policies", "policy_list", required=True, help="Comma-separated policy names.")
@click.option(
    "--runs",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs per case and policy.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs in flight at once (per-model limits still apply).",
)
@input_option
@click.option(
    "--cases",
    "cases_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL or CSV file: one row of inputs per case.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JSON to this file ('-' for stdout).",
)
@click.option("--store", "store_url", help="Trace store: a SQLite path or postgresql://... URL.")
@click.option("--no-trace", is_flag=True, help="Do not record the runs.")
@click.option(
    "--use-cache",
    is_flag=True,
    help="Let the configured caches answer (off by default: repeats would measure the cache).",
)
def bench_cmd(
    workflow_path: Path,
    config_path: Path,
    policy_list: str,
    runs: int,
    concurrency: int,
    inputs: tuple[str, ...],
    cases_path: Path | None,
    json_out: Path | None,
    store_url: str | None,
    no_trace: bool,
    use_cache: bool,
) -> None:
    """Run WORKFLOW.yaml N times under each policy and compare them."""
    settings = load_settings(config_path)
    workflow = load_workflow(workflow_path)
    names = [n.strip() for n in policy_list.split(",") if n.strip()]
    if not names:
        raise ConfigError("--policies needs at least one policy name")
    if len(set(names)) != len(names):
        raise ConfigError("--policies names a policy twice")
    policies = [build_policy(n, settings) for n in names]
    check_against_pool(workflow, settings)
    defaults = parse_inputs(inputs)
    cases = (
        load_cases(cases_path, defaults=defaults) if cases_path else [BenchCase("input", defaults)]
    )
    for case in cases:
        try:
            bind_inputs(workflow, case.inputs)
        except ConfigError as exc:
            where = f"{cases_path}: case {case.id}" if cases_path else "--input"
            raise ConfigError(f"{where}: {exc}") from None
    to_stdout = json_out is not None and str(json_out) == "-"
    console = make_console(stderr=to_stdout)
    total = len(cases) * runs

    async def go() -> BenchResult:
        with (
            trace_writer(settings, store_url, enabled=not no_trace) as writer,
            Progress(
                TextColumn("{task.description:<16}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as progress,
        ):
            tasks = {p.name: progress.add_task(p.name, total=total, last="") for p in policies}

            def on_run(r: RunResult) -> None:
                mark = "✓" if r.ok else "✗"
                progress.update(tasks[r.policy], advance=1, last=f"{mark} {r.latency_s:.1f}s")

            executor, resources = build_executor(settings, use_cache=use_cache)
            runner = Runner(settings, executor=executor, sink=writer.submit if writer else None)
            try:
                return await run_bench(
                    runner,
                    workflow,
                    policies,
                    cases,
                    runs=runs,
                    concurrency=concurrency,
                    on_run=on_run,
                )
            finally:
                await runner.aclose()
                await resources.aclose()

    shape = f"{len(policies)} policies × {len(cases)} case(s) × {runs} run(s)"
    console.print(f"[bold]bench[/] {workflow.name}: {shape}")
    bench = asyncio.run(go())
    summaries = bench.summaries()
    console.print(bench_table(summaries, f"bench {bench.bench_id} · {workflow.name}"))
    models = [s.model for rs in bench.results.values() for r in rs for s in r.steps if s.model]
    print_notes(console, price_notes(settings, models))
    data = bench_json(bench, settings)
    if json_out is not None:
        text = json.dumps(data, indent=2) + "\n"
        if to_stdout:
            click.echo(text, nl=False)
        else:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            tmp = json_out.with_name(json_out.name + ".tmp")
            tmp.write_text(text, "utf-8")
            tmp.replace(json_out)
            console.print(f"results written to {json_out}")
