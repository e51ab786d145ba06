"""``turnout run``: one workflow, one policy, every step printed and traced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import click

from turnout.cli.common import config_option, input_option, parse_inputs
from turnout.cli.output import (
    make_console,
    price_notes,
    print_notes,
    run_json,
    run_table,
    step_line,
)
from turnout.cli.session import tracing
from turnout.cli.traces import STORE_HELP
from turnout.config.loader import load_settings
from turnout.execution.budget import Budget
from turnout.execution.setup import build_executor
from turnout.policies.registry import build_policy
from turnout.pricing.cost import to_decimal
from turnout.workflows.binding import bind_inputs, check_against_pool
from turnout.workflows.loader import load_workflow
from turnout.workflows.overrides import apply_overrides, parse_overrides
from turnout.workflows.results import RunResult, StepResult
from turnout.workflows.runner import Runner


@click.command("run")
@click.argument("workflow_path", metavar="WORKFLOW.yaml", type=click.Path(path_type=Path))
@config_option
@click.option(
    "--policy",
    "-p",
    "policy_name",
    help="A policy from turnout.yaml (default: the workflow's own routing).",
)
@input_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--store", "store_url", envvar="TURNOUT_STORE", help=STORE_HELP)
@click.option("--no-trace", is_flag=True, help="Do not record the run.")
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="STEP=MODEL",
    help="Take STEP's model out of the policy's hands (repeatable; needs --by and --why).",
)
@click.option("--by", "override_by", metavar="NAME", help="Who made the override.")
@click.option("--why", "override_why", metavar="TEXT", help="Why (recorded in the audit trail).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A tag for policies (e.g. user=42 for ab).",
)
@click.option(
    "--max-cost",
    "max_cost",
    type=float,
    help="Refuse calls that would take the run past this many USD.",
)
def run_cmd(
    workflow_path: Path,
    config_path: Path,
    policy_name: str | None,
    inputs: tuple[str, ...],
    as_json: bool,
    store_url: str | None,
    no_trace: bool,
    overrides: tuple[str, ...],
    override_by: str | None,
    override_why: str | None,
    tags: tuple[str, ...],
    max_cost: float | None,
) -> None:
    """Run WORKFLOW.yaml once under a policy and show each step."""
    settings = load_settings(config_path)
    workflow = load_workflow(workflow_path)
    workflow = apply_overrides(workflow, parse_overrides(overrides, override_by, override_why))
    run_tags = {k: str(v) for k, v in parse_inputs(tags).items()}
    budget = Budget(run_usd=to_decimal(max_cost)) if max_cost is not None else None
    policy = build_policy(policy_name, settings)
    check_against_pool(workflow, settings)
    values = bind_inputs(workflow, parse_inputs(inputs))
    console = make_console(stderr=as_json)

    def on_step(step: StepResult) -> None:
        if not as_json:
            console.print(step_line(step))

    async def go() -> RunResult:
        with contextlib.ExitStack() as stack:
            t = None if no_trace else stack.enter_context(tracing(settings, store_url))
            executor, resources = build_executor(settings, store=t.store if t else None)
            runner = Runner(settings, executor=executor, sink=t.writer.submit if t else None)
            try:
                return await runner.run(
                    workflow, values, policy=policy, on_step=on_step, tags=run_tags, budget=budget
                )
            finally:
                await runner.aclose()
                await resources.aclose()

    if not as_json:
        console.print(f"[bold]{workflow.name}[/] under policy [bold]{policy.name}[/]")
    result = asyncio.run(go())
    if as_json:
        sys.stdout.write(json.dumps(run_json(result, settings), indent=2) + "\n")
    else:
        console.print(run_table(result))
        for s in result.steps:
            if s.decision is not None:
                console.print(f"[dim]{s.step_id}: {s.decision.reason}[/]")
        print_notes(console, price_notes(settings, [s.model for s in result.steps if s.model]))
        status = "[green]succeeded[/]" if result.ok else f"[red]failed[/]: {result.error}"
        console.print(f"run {result.run_id} {status}")
    if not result.ok:
        raise SystemExit(1)
