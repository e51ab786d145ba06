"""Rendering results for people (rich tables) and machines (JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from turnout.config.settings import Settings
from turnout.workflows.results import RunResult, StepResult

BENCH_COLUMNS = (
    "Route",
    "Calls",
    "Total latency",
    "Total tokens",
    "Output tokens",
    "Cost",
    "Score",
    "Successful runs",
    "Cost per successful run",
    "Latency per successful run",
)


def money(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    v = float(value)
    if v == 0:
        return "$0"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    if abs(v) >= 0.01:
        return f"${v:.4f}"
    return f"${v:.6f}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def checks_cell(step: StepResult) -> str:
    """``3/5 ✗ contains_any[risk,pitfall] (none found of: risk, pitfall); ...``: each
    failed check by what it looked for, and what was missing."""
    if not step.checks:
        return ""
    passed = sum(1 for c in step.checks if c.passed)
    failed = [f"{c.name} ({c.detail})" if c.detail else c.name for c in step.checks if not c.passed]
    text = f"{passed}/{len(step.checks)}"
    # escaped: a check's name holds brackets (contains_any[a,b]) that rich reads as markup
    return escape(text + (f" ✗ {'; '.join(failed)}" if failed else " ✓"))


def model_cell(step: StepResult) -> str:
    """The model a step ran on; ``code`` for a code step, ``skipped`` for a step that never
    ran (an LLM step skipped because its input failed has no model)."""
    if step.status == "skipped":
        return "skipped"
    return step.model or "code"


def step_line(step: StepResult) -> str:
    """One line of progress for a finished step."""
    mark = {"succeeded": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]-[/]"}[
        step.status
    ]
    where = f"{step.model} ({step.tier})" if step.model else model_cell(step)
    u = step.usage
    parts = [f"{mark} {step.step_id:<18} {where:<28} {seconds(step.latency_s):>8}"]
    if step.kind == "llm" and step.model:
        parts.append(f"{u.input_tokens:>5}→{u.output_tokens:<5} tok {money(step.cost):>10}")
    if step.checks:
        parts.append(f"checks {checks_cell(step)}")
    if step.error:
        parts.append(f"[red]{escape(step.error)}[/]")
    return "  ".join(parts)


def run_table(result: RunResult) -> Table:
    t = Table(title=f"run {result.run_id} · {result.workflow} · policy {result.policy}")
    for col in (
        "Step",
        "Model",
        "Tier",
        "Status",
        "Latency",
        "In",
        "Out",
        "Cost",
        "Score",
        "Checks",
    ):
        t.add_column(
            col, justify="right" if col in ("Latency", "In", "Out", "Cost", "Score") else "left"
        )
    for s in result.steps:
        t.add_row(
            s.step_id,
            model_cell(s),
            s.tier or "—",
            s.status,
            seconds(s.latency_s),
            str(s.usage.input_tokens),
            str(s.usage.output_tokens),
            money(s.cost),
            "" if s.score is None else f"{s.score:.2f}",
            checks_cell(s),
        )
    u = result.usage
    t.add_section()
    t.add_row(
        "total",
        "",
        "",
        result.status,
        seconds(result.latency_s),
        str(u.input_tokens),
        str(u.output_tokens),
        money(result.cost),
        "" if result.score is None else f"{result.score:.2f}",
        f"{result.checks_passed}/{result.checks_total}",
    )
    return t


def price_notes(settings: Settings, models: Sequence[str]) -> list[str]:
    notes = []
    for name in dict.fromkeys(models):
        spec = settings.models.get(name)
        if spec is not None and spec.price_label:
            notes.append(f"{name}: {spec.price_label}")
    return notes


def run_json(result: RunResult, settings: Settings) -> dict[str, Any]:
    u = result.usage
    return {
        "run_id": result.run_id,
        "workflow": result.workflow,
        "policy": result.policy,
        "status": result.status,
        "error": result.error,
        "steps": [_step_json(s) for s in result.steps],
        "totals": {
            "calls": result.calls,
            "latency_s": result.latency_s,
            "wall_s": result.wall_s,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cached_input_tokens": u.cached_input_tokens,
            "total_tokens": u.total_tokens,
            "cost_usd": float(result.cost),
            "score": result.score,
            "checks_passed": result.checks_passed,
            "checks_total": result.checks_total,
        },
        "price_labels": _labels(settings, [s.model for s in result.steps if s.model]),
    }


def _step_json(s: StepResult) -> dict[str, Any]:
    return {
        "id": s.step_id,
        "kind": s.kind,
        "model": s.model,
        "tier": s.tier,
        "status": s.status,
        "reason": s.decision.reason if s.decision else None,
        "latency_s": s.latency_s,
        "ttft_s": s.ttft_s,
        "input_tokens": s.usage.input_tokens,
        "output_tokens": s.usage.output_tokens,
        "cached_input_tokens": s.usage.cached_input_tokens,
        "cost_usd": float(s.cost),
        "score": s.score,
        "checks": [c.as_dict() for c in s.checks],
        "output": s.value if s.kind == "code" or not isinstance(s.value, str) else s.text,
        "error": s.error,
        "attempts": [
            {
                "model": a.model,
                "status": a.status,
                "error": a.error,
                "error_class": a.error_class,
                "latency_s": a.latency_s,
                "input_tokens": a.input_tokens,
                "output_tokens": a.output_tokens,
                "cost_usd": float(a.cost_usd),
            }
            for a in s.attempts
        ],
    }


def _labels(settings: Settings, models: Sequence[str]) -> dict[str, str]:
    return {
        m: settings.models[m].price_label or ""
        for m in dict.fromkeys(models)
        if m in settings.models and settings.models[m].price_label
    }


def print_notes(
    console: Console, notes: Sequence[str], extra: Mapping[str, str] | None = None
) -> None:
    if notes:
        console.print("[dim]Cost: " + "; ".join(notes) + "[/]")
    for k, v in (extra or {}).items():
        console.print(f"[dim]{k}: {v}[/]")


def identifier_column(table: Table, header: str, values: Sequence[str]) -> None:
    """A column of names people type (model ids, price sheet entries): as wide as the
    longest, never wrapped or cut with an ellipsis; the other columns give way."""
    width = max([len(header), *(len(v) for v in values)])
    table.add_column(header, no_wrap=True, min_width=width, overflow="ignore")


def make_console(*, stderr: bool = False) -> Console:
    """A console for CLI output; when not a terminal (CI logs, pipes, files) it is
    wide enough that tables are never folded."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=max(console.width, 200))
    return console
