"""An A/B report for people: rich text, and one self-contained HTML page.

The page reuses the bench report's style sheet, verdict list and cost-vs-success
chart (:mod:`turnout.reports.bench_html`, :mod:`turnout.reports.bench_charts`): a
variant is shown exactly as a bench shows a policy.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from turnout import __version__
from turnout.reports.ab import ABReport, VariantStats
from turnout.reports.bench_charts import cost_vs_success, policy_colors
from turnout.reports.bench_html import CSS, _num, _route, _verdict
from turnout.reports.fmt import count, pct, pct_span, secs, usd, usd_span
from turnout.reports.prices import Pricing
from turnout.reports.svg import esc

if TYPE_CHECKING:
    from rich.console import Console


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def sticky_line(r: ABReport) -> str:
    several = r.users_with_several_variants
    verdict = "sticky" if several == 0 else "NOT sticky (did the weights or the salt change?)"
    tail = f"; {r.runs_without_key:,} runs had no {r.key} tag" if r.runs_without_key else ""
    return (
        f"Sticky assignment: {several:,} of {r.users:,} {r.key}s saw more than one variant: "
        f"{verdict}{tail}"
    )


def print_ab(r: ABReport, console: Console) -> None:
    from rich.table import Table

    a = r.analysis
    console.print(
        f"[bold]A/B test {r.policy}[/] {_when(r.since)} → {_when(r.until)} UTC, "
        f"baseline {a.baseline or '—'}"
    )
    if not r.variants:
        console.print("No finished runs of this policy with a variant in the period.")
        return
    level = f"{a.level * 100:g}% CI"
    t = Table(title_justify="left")
    for col in ("Variant", "Runs", "Calls", "Errors", f"Success ({level})",
                "Latency p50 / p95", f"Cost per run ({level})",
                f"Cost per successful run ({level})"):  # fmt: skip
        t.add_column(col, justify="left" if col == "Variant" else "right")
    for v in r.variants:
        s = v.stats
        t.add_row(
            v.name, count(s.runs), count(s.calls), pct(v.error_rate, 1),
            f"{pct(s.success_rate)} ({pct_span(s.success_ci)})",
            f"{secs(s.latency_p50_s)} / {secs(s.latency_p95_s)}",
            f"{usd(v.cost_per_run)} ({usd_span(v.cost_per_run_ci)})",
            f"{usd(s.cost_per_success)} ({usd_span(s.cost_per_success_ci)})",
        )  # fmt: skip
    console.print(t)
    for line in r.verdicts:
        console.print(line)
    console.print(sticky_line(r))


def render_ab_html(r: ABReport, pricing: Pricing, *, generated_at: float | None = None) -> str:
    a = r.analysis
    colors = policy_colors(a)
    head = (
        f"<h1>A/B test <code>{esc(r.policy)}</code></h1>"
        f'<p class="meta">Runs started {esc(_when(r.since))} → {esc(_when(r.until))} UTC · '
        f"{count(sum(v.stats.runs for v in r.variants))} runs · baseline "
        f"<code>{esc(a.baseline or '—')}</code></p>"
    )
    sticky_ok = r.users_with_several_variants == 0
    sticky = (
        f'<p class="banner{" info" if sticky_ok else ""}" id="sticky">{esc(sticky_line(r))}</p>'
    )
    items = [_verdict(c, colors) for c in a.comparisons]
    verdicts = '<h2 id="verdicts">Verdicts against the baseline</h2>' + (
        f'<ul class="verdicts">{"".join(items)}</ul>'
        if items
        else '<p class="note">Nothing to compare: fewer than two variants.</p>'
    )
    level = f"{a.level * 100:g}% CI"
    cols = ["Variant", "Runs", "Calls", "Error rate", f"Success ({level})", "Latency p50 / p95",
            f"Cost per run ({level})", f"Cost per successful run ({level})", "Models"]  # fmt: skip
    th = "".join(f'<th class="{"" if i == 0 else "n"}">{esc(c)}</th>' for i, c in enumerate(cols))
    rows = "".join(_row(v, colors, v.name == a.baseline) for v in r.variants)
    table = (
        f'<h2 id="variants">Variants</h2><div class="wide"><table><thead><tr>{th}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
        '<p class="note">Success: the run\'s checks passed; runs without checks succeed unless '
        "a step was flagged needed_frontier. Error rate: failed model calls / calls. Intervals: "
        "Wilson (success), percentile bootstrap over runs (costs).</p>"
    )
    chart = (
        f'<h2 id="charts">Cost and success</h2><figure id="chart-cost-vs-success">'
        f"{cost_vs_success(a, pricing)}</figure>"
        if r.variants
        else ""
    )
    when = time.time() if generated_at is None else generated_at
    foot = f"<footer>turnout {esc(__version__)} · generated {esc(_when(when))} UTC</footer>"
    title = f"turnout A/B test {r.policy}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{head}{sticky}{verdicts}{table}{chart}{foot}</main></body></html>\n"
    )


def _row(v: VariantStats, colors: dict[str, str], base: bool) -> str:
    s = v.stats
    return (
        "<tr>"
        + _route(v.name, colors, base)
        + _num(count(s.runs))
        + _num(count(s.calls))
        + _num(pct(v.error_rate, 1))
        + _num(f"{pct(s.success_rate)} ({s.successes}/{s.runs})", pct_span(s.success_ci))
        + _num(f"{secs(s.latency_p50_s)} / {secs(s.latency_p95_s)}")
        + _num(usd(v.cost_per_run), usd_span(v.cost_per_run_ci))
        + _num(usd(s.cost_per_success), usd_span(s.cost_per_success_ci))
        + f"<td>{esc(', '.join(v.models))}</td>"
        + "</tr>"
    )


def write_ab_html(r: ABReport, pricing: Pricing, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_ab_html(r, pricing), "utf-8")
    return path
