"""``turnout whatif``: what the recorded steps would have cost under another policy.

Thin over :func:`turnout.reports.whatif.whatif`; everything printed is labelled
an ESTIMATE.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from turnout.cli.common import config_option
from turnout.cli.flag import existing_store
from turnout.cli.output import make_console
from turnout.cli.traces import STORE_HELP, opened_store
from turnout.cli.when import parse_since
from turnout.config.loader import load_settings
from turnout.pricing.money import usd, usd_number
from turnout.reports.whatif import WhatIfReport, whatif

METHOD = (
    "no model was called: every recorded LLM step was decided again by the policy and "
    "re-priced at the pool's prices with its recorded token counts"
)


@click.command("whatif")
@click.option("--policy", "-p", "policy", required=True, metavar="NAME", help="The policy to try.")
@config_option
@click.option("--since", metavar="DATE", help="ISO date or age such as 7d [default: 7d].")
@click.option("--workflow", "-w", metavar="NAME", help="Only steps of this workflow.")
@click.option("--store", "store_url", metavar="URL", envvar="TURNOUT_STORE", help=STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def whatif_cmd(
    policy: str,
    config_path: Path,
    since: str | None,
    workflow: str | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Estimate what the recorded steps would have cost under policy NAME, and which
    steps it would have sent to another tier. No model is called."""
    settings = load_settings(config_path)
    start = parse_since(since) if since else None
    url = store_url or settings.storage
    existing_store(url)
    with opened_store(url) as store:
        result = whatif(store, settings, policy, since=start, workflow=workflow)
    if as_json:
        click.echo(json.dumps(report_json(result), indent=2))
        return
    print_report(result, make_console())


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def report_json(r: WhatIfReport) -> dict[str, Any]:
    return {
        "estimate": True,
        "method": METHOD,
        "policy": r.policy,
        "since": _iso(r.since),
        "until": _iso(r.until),
        "workflow": r.workflow,
        "steps": r.steps,
        "actual_usd": usd_number(r.actual),
        "projected_usd": usd_number(r.projected),
        "saving": r.saving,
        "without_context": r.without_context,
        "cascades_priced_at_first_rung": r.cascades,
        "ensembles_priced_at_every_member": r.ensembles,
        "tier_changes": [{"from": a, "to": b, "steps": n} for a, b, n in r.tier_changes],
        "unchanged_tier": r.unchanged_tier,
        "model_changes_within_tier": r.model_changes,
        "examples": [
            {
                "run_id": e.run_id, "workflow": e.workflow, "step_id": e.step_id,
                "from_model": e.from_model, "from_tier": e.from_tier,
                "to_models": list(e.to_models), "to_tier": e.to_tier, "reason": e.reason,
                "actual_usd": usd_number(e.actual), "projected_usd": usd_number(e.projected),
            }
            for e in r.examples
        ],
        "by_step": [
            {
                "workflow": s.workflow, "step_id": s.step_id, "steps": s.steps,
                "actual_usd": usd_number(s.actual), "projected_usd": usd_number(s.projected),
                "models_before": list(s.models_before), "models_after": list(s.models_after),
                "tier_changes": s.tier_changes,
            }
            for s in r.by_step
        ],
        "by_tier": [
            {
                "tier": t.tier,
                "actual_usd": usd_number(t.actual),
                "projected_usd": usd_number(t.projected),
            }
            for t in r.by_tier
        ],
        "output_ratios": [
            {
                "workflow": x.workflow, "step_id": x.step_id, "from_model": x.from_model,
                "to_model": x.to_model, "ratio": float(x.ratio), "from_samples": x.from_samples,
                "to_samples": x.to_samples, "applied_to_steps": x.applied,
            }
            for x in r.ratios
        ],
        "min_ratio_samples": r.min_ratio_samples,
        "skipped": [
            {"reason": s.reason, "steps": s.steps, "actual_usd": usd_number(s.actual)}
            for s in r.skipped
        ],
    }  # fmt: skip


def _change(actual: Decimal, projected: Decimal) -> str:
    if not actual:
        return "—"
    return f"{float((projected - actual) / actual):+.1%}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def print_report(r: WhatIfReport, console: Console) -> None:
    where = f" of workflow {r.workflow}" if r.workflow else ""
    console.print(
        f"[bold yellow]ESTIMATE[/] policy [bold]{r.policy}[/] over {r.steps:,} recorded LLM "
        f"steps{where}, {_when(r.since)} → {_when(r.until)} UTC"
    )
    console.print(f"[dim]{METHOD}[/]")
    if r.saving is None:
        verdict = ""
    elif r.saving >= 0:
        verdict = f" ({r.saving:.1%} cheaper)"
    else:
        verdict = f" ({-r.saving:.1%} dearer)"
    console.print(
        f"Actual {usd(r.actual)} → projected [bold]{usd(r.projected)}[/]{verdict}  "
        "[yellow](estimate)[/]"
    )
    moves = " · ".join(f"{a} → {b} {n:,}" for a, b, n in r.tier_changes) or "none"
    console.print(
        f"Tier changes: {moves}; unchanged {r.unchanged_tier:,}"
        + (f"; {r.model_changes:,} change model within their tier" if r.model_changes else "")
    )
    for e in r.examples:
        console.print(
            f"  e.g. run {e.run_id[:12]} {e.workflow}/{e.step_id}: {e.from_model} "
            f"({e.from_tier}) → {'+'.join(e.to_models)} ({e.to_tier}), "
            f"{usd(e.actual)} → {usd(e.projected)}  [dim]{e.reason}[/]"
        )
    if r.by_step:
        t = Table(title="By step (estimate)", title_justify="left")
        for col in ("Workflow", "Step", "Steps", "Actual", "Projected", "Change"):
            t.add_column(
                col, justify="right" if col in ("Steps", "Actual", "Projected") else "left"
            )
        t.add_column("Recorded model(s)")
        t.add_column("Policy's model(s)")
        t.add_column("Tier changes", justify="right")
        for s in r.by_step:
            t.add_row(
                s.workflow, s.step_id, f"{s.steps:,}", usd(s.actual), usd(s.projected),
                _change(s.actual, s.projected), ", ".join(s.models_before),
                ", ".join(s.models_after), f"{s.tier_changes:,}",
            )  # fmt: skip
        console.print(t)
    if r.by_tier:
        t = Table(title="By tier (estimate)", title_justify="left")
        for col in ("Tier", "Actual", "Projected", "Change"):
            t.add_column(col, justify="left" if col == "Tier" else "right")
        for tier in r.by_tier:
            t.add_row(
                tier.tier, usd(tier.actual), usd(tier.projected),
                _change(tier.actual, tier.projected),
            )  # fmt: skip
        console.print(t)
    _print_notes(r, console)


def _print_notes(r: WhatIfReport, console: Console) -> None:
    if r.ratios:
        console.print(
            "Output tokens scaled by ratios learned from bench runs (mean output tokens of the "
            f"new model / of the recorded model, same step, at least {r.min_ratio_samples} "
            "samples each):"
        )
        for x in r.ratios:
            console.print(
                f"  {x.workflow}/{x.step_id} {x.from_model} → {x.to_model} ×{float(x.ratio):.3g} "
                f"(bench samples: {x.from_samples} {x.from_model}, {x.to_samples} {x.to_model}; "
                f"applied to {x.applied:,} steps)"
            )
    else:
        console.print(
            "No output-token ratio known from bench runs: output tokens kept as recorded."
        )
    for s in r.skipped:
        console.print(
            f"[yellow]Skipped {s.steps:,} steps ({usd(s.actual)} actual, in neither total): "
            f"{s.reason}[/]"
        )
    if r.without_context:
        console.print(
            f"{r.without_context:,} steps were recorded without their prompt or annotation "
            "(before turnout kept them) and were decided on step id, workflow and tags alone."
        )
    if r.cascades:
        console.print(
            f"{r.cascades:,} cascade decisions priced at their first rung only: a lower bound."
        )
    if r.ensembles:
        console.print(f"{r.ensembles:,} ensemble decisions priced at every member.")
