"""``turnout flag``: record a person's after-the-fact judgment of one step's routing.

The weekly report's routing-efficiency ratio is computed from these flags.
"""

from __future__ import annotations

import click

from turnout.cli.common import CLIError
from turnout.cli.traces import opened_store, store_option
from turnout.errors import StoreError
from turnout.tracing import sqlite_path_of
from turnout.tracing.meta import FlagRecord, Verdict, add_flag

VERDICT_WORDS: dict[Verdict, str] = {
    "could_be_cheaper": "could have been cheaper",
    "needed_frontier": "needed the frontier",
}


def existing_store(
    store_url: str | None, what: str = "", *, why: str = "nothing recorded yet"
) -> None:
    """Refuse, in one line, a SQLite store that does not exist (opening would create it):
    what a read-only command must do rather than leave an empty store behind."""
    try:
        path = sqlite_path_of(store_url)
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    if path is not None and not path.exists():
        raise CLIError(f"{what}no trace store at {path}: {why}")


@click.command("flag")
@click.argument("run_id")
@click.argument("step")
@click.option(
    "--could-be-cheaper",
    "cheaper",
    is_flag=True,
    help="A cheaper model would have done: the step was over-routed.",
)
@click.option(
    "--needed-frontier",
    "frontier",
    is_flag=True,
    help="The step needed a frontier model: it was under-routed (not with --could-be-cheaper).",
)
@click.option("--by", "by", required=True, metavar="NAME", help="Who judged.")
@click.option("--why", "why", required=True, metavar="TEXT", help="Why, in a sentence.")
@store_option
def flag_cmd(
    run_id: str,
    step: str,
    cheaper: bool,
    frontier: bool,
    by: str,
    why: str,
    store_url: str | None,
) -> None:
    """Flag STEP of run RUN_ID (any unique prefix of its id) as over- or under-routed."""
    if cheaper and frontier:
        raise click.UsageError("--could-be-cheaper and --needed-frontier exclude each other")
    if not (cheaper or frontier):
        raise click.UsageError("say which: --could-be-cheaper or --needed-frontier")
    verdict: Verdict = "could_be_cheaper" if cheaper else "needed_frontier"
    by, why = by.strip(), " ".join(why.split())
    if not by:
        raise click.UsageError("--by must name someone")
    if not why:
        raise click.UsageError("--why must say why")
    existing_store(store_url, f"no run {run_id!r}: ")
    with opened_store(store_url) as store:
        trace = store.get_run(run_id)
        if trace is None:
            raise CLIError(f"no run {run_id!r} in the trace store")
        found = next((s for s in trace.steps if s.step_id == step), None)
        if found is None:
            steps = ", ".join(s.step_id for s in trace.steps) or "none"
            raise CLIError(f"run {trace.run.run_id} has no step {step!r} (its steps: {steps})")
        if found.kind != "llm":
            raise CLIError(
                f"step {step!r} of run {trace.run.run_id} is a {found.kind} step: "
                "only LLM steps are routed, so only they can be flagged"
            )
        add_flag(store, FlagRecord(trace.run.run_id, step, verdict, by, why))
    where = f"{found.model} ({found.tier})" if found.model else "no model"
    click.echo(
        f"flagged {trace.run.run_id[:12]} {step} [{where}]: {VERDICT_WORDS[verdict]} "
        f"(by {by}: {why})"
    )
