"""The weekly report for people: rich text and tables (see :mod:`turnout.reports.weekly`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from turnout.pricing.money import usd
from turnout.reports.weekly import EFFICIENCY_RULE, SpendLine, WeeklyReport


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _table(title: str, first: Iterable[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in first:
        t.add_column(col, justify="right" if col == "Runs" else "left")
    for col in ("Calls", "Spend", "Share", "Tokens in", "Tokens out"):
        t.add_column(col, justify="right")
    return t


def _row(line: SpendLine) -> list[str]:
    return [
        f"{line.calls:,}", usd(line.cost), f"{line.share:.1%}",
        f"{line.input_tokens:,}", f"{line.output_tokens:,}",
    ]  # fmt: skip


def print_weekly(r: WeeklyReport, console: Console) -> None:
    """The report for people: a summary, the efficiency ratio with its counts, then spend
    by tier, by model and by workflow step."""
    console.print(f"[bold]Weekly report[/] {_when(r.since)} → {_when(r.until)} UTC")
    console.print(
        f"Total spend [bold]{usd(r.total_cost)}[/] over {r.calls:,} model calls "
        f"({r.failed_calls:,} failed or rejected); tokens {r.input_tokens:,} in "
        f"({r.cached_input_tokens:,} cached) / {r.output_tokens:,} out"
    )
    console.print(
        f"Runs {r.runs:,} ({_statuses(r)}), costing {usd(r.runs_cost)}: "
        f"average {usd(r.cost_per_run)} per run, "
        f"{usd(r.cost_per_successful_run)} per successful run"
    )
    lone = (
        f"; {r.runs_without_session:,} runs had no session and count as a session each"
        if r.runs_without_session
        else ""
    )
    console.print(f"Sessions {r.sessions:,}: average {usd(r.cost_per_session)} per session{lone}")
    if r.cache_hits:
        console.print(f"Cache {r.cache_hits:,} hits saved {usd(r.cache_saved)}")
    e = r.efficiency
    ratio = "n/a (no LLM step)" if e.ratio is None else f"{e.ratio:.1%}"
    console.print(
        f"Routing efficiency [bold]{ratio}[/] = 1 - ({e.could_be_cheaper:,} could be cheaper "
        f"+ {e.needed_frontier:,} needed frontier) / {e.llm_steps:,} LLM steps"
    )
    if e.flagged:
        console.print(
            f"  steps flagged could-be-cheaper cost {usd(e.could_be_cheaper_cost)}; "
            f"needed-frontier {usd(e.needed_frontier_cost)}"
        )
    console.print(f"[dim]{EFFICIENCY_RULE}[/]")
    for title, column, lines in (
        ("Spend by tier", "Tier", r.by_tier),
        ("Spend by model", "Model", r.by_model),
        ("Spend by key (gateway)", "Key", r.by_key),
    ):
        if lines:
            t = _table(title, [column])
            for line in lines:
                t.add_row(line.name, *_row(line))
            console.print(t)
    if r.by_step:
        t = _table("Spend by step (LLM steps)", ["Workflow", "Step", "Runs"])
        for line in r.by_step:
            t.add_row(line.workflow or "", line.name, f"{line.steps or 0:,}", *_row(line))
        console.print(t)
    if r.unattributed_cost:
        console.print(
            f"[dim]{usd(r.unattributed_cost)} of the spend belongs to no LLM step started "
            "in the period (gateway requests, or steps that began before it)[/]"
        )
    if r.ab_tests:
        console.print("[bold]A/B tests[/] (see `turnout report ab POLICY`)")
        for ab in r.ab_tests:
            verdicts = "; ".join(ab.verdicts) or "a single variant, nothing to compare"
            console.print(f"  {ab.policy} ({ab.runs:,} runs, {ab.variants} variants): {verdicts}")


def _statuses(r: WeeklyReport) -> str:
    """``5 succeeded, 1 failed, 1 interrupted``: how the period's runs ended."""
    if not r.runs_by_status:
        return f"{r.succeeded_runs:,} succeeded"
    return ", ".join(f"{n:,} {status}" for status, n in r.runs_by_status)
