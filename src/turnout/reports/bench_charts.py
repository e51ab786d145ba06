"""The three charts of a bench report, drawn from a :class:`BenchAnalysis`.

- ``cost-vs-success``: each policy's cost per successful run against its success
  rate, with the bootstrap interval (vertical) and the Wilson interval (horizontal);
- ``step-spend``: mean spend per run, stacked by step, one bar per policy;
- ``step-pass``: each step's pass rate under each policy, with Wilson intervals.

A policy has the same colour in every chart. Every chart that shows cost carries
the price note (stand-ins are labelled as such).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from turnout.bench.analysis import BenchAnalysis, PolicyStats, StepStats
from turnout.reports.charts import Point, Series, hbar_chart, scatter_chart
from turnout.reports.fmt import pct, usd
from turnout.reports.prices import Pricing
from turnout.reports.svg import POLICY_COLORS, STEP_COLORS, Axis

CHARTS = ("cost-vs-success", "step-spend", "step-pass")
"""Chart names, in page order; PNG files are named ``OUT-<name>.png``."""

CHART_TITLES = {
    "cost-vs-success": "Cost per successful run vs success rate",
    "step-spend": "Where the money goes: mean spend per run, by step",
    "step-pass": "Pass rate per step",
}


def policy_colors(analysis: BenchAnalysis) -> dict[str, str]:
    return {
        p.policy: POLICY_COLORS[i % len(POLICY_COLORS)] for i, p in enumerate(analysis.policies)
    }


def bench_charts(analysis: BenchAnalysis, pricing: Pricing) -> dict[str, str]:
    """Every chart of the report as a standalone SVG document, by name."""
    return {
        "cost-vs-success": cost_vs_success(analysis, pricing),
        "step-spend": step_spend(analysis, pricing),
        "step-pass": step_pass(analysis),
    }


def _level(analysis: BenchAnalysis) -> str:
    return f"{analysis.level * 100:g}%"


def runs_each(policies: Sequence[PolicyStats]) -> str:
    """ "30 runs per policy", naming any policy with a different count."""
    counts = Counter(p.runs for p in policies)
    if not counts:
        return "no runs"
    usual = counts.most_common(1)[0][0]
    odd = [f"{p.policy}: {p.runs}" for p in policies if p.runs != usual]
    return f"{usual} runs per policy" + (f" ({', '.join(odd)})" if odd else "")


def cost_vs_success(analysis: BenchAnalysis, pricing: Pricing) -> str:
    colors = policy_colors(analysis)
    points: list[Point] = []
    notes: list[str] = []
    for p in analysis.policies:
        if p.cost_per_success is None:
            notes.append(
                f"Not plotted: {p.policy}, {p.successes}/{p.runs} successful runs, so no cost "
                f"per successful run (it spent {usd(p.cost_usd)})."
            )
            continue
        ci = p.cost_per_success_ci
        if ci is None:
            notes.append(f"{p.policy}: too few runs for a bootstrap interval on cost.")
        points.append(
            Point(
                label=p.policy,
                x=p.success_rate,
                y=float(p.cost_per_success),
                x_err=(p.success_ci.low, p.success_ci.high),
                y_err=None if ci is None else (ci.low, ci.high),
                color=colors[p.policy],
                tooltip=(
                    f"{p.policy}: success {pct(p.success_rate)} ({p.successes}/{p.runs}), "
                    f"{usd(p.cost_per_success)} per successful run"
                ),
            )
        )
    level = _level(analysis)
    subtitle = [
        f"Each point is a policy; the bars are {level} intervals: Wilson on the success rate "
        f"(horizontal), percentile bootstrap over runs on the cost per successful run "
        f"(vertical). n = {runs_each(analysis.policies)}.",
    ]
    return scatter_chart(
        points,
        title=CHART_TITLES["cost-vs-success"],
        subtitle=subtitle,
        x=Axis("Success rate (successful runs / runs)", kind="percent", bounds=(0.0, 1.0)),
        y=Axis("Cost per successful run (USD)", kind="usd", include_zero=True),
        notes=[*notes, pricing.note()],
        hint="better: lower and further right ↘",
    )


def _step_order(steps: Mapping[str, Sequence[StepStats]]) -> list[str]:
    return list(dict.fromkeys(s.step_id for ss in steps.values() for s in ss))


def step_spend(analysis: BenchAnalysis, pricing: Pricing) -> str:
    policies = list(analysis.policies)
    order = _step_order(analysis.steps)
    by = {(s.policy, s.step_id): s for ss in analysis.steps.values() for s in ss}
    series = []
    for step_id in order:
        values: list[float | None] = []
        labels: list[str] = []
        for p in policies:
            s = by.get((p.policy, step_id))
            per_run = float(s.cost_usd) / p.runs if s is not None and p.runs else 0.0
            values.append(per_run)
            labels.append(pct(s.spend_share) if s is not None and per_run > 0 else "")
        if any(v for v in values):
            series.append(Series(step_id, values, labels=labels))
    free = [s for s in order if s not in {x.name for x in series}]
    totals = [usd(p.cost_usd / p.runs) + " / run" if p.runs else "no runs" for p in policies]
    notes = []
    if free:
        notes.append(f"No spend (code steps or no model calls): {', '.join(free)}.")
    notes.append("Spend includes failed runs; segment labels are each step's share of spend.")
    notes.append(pricing.note())
    return hbar_chart(
        [p.policy for p in policies],
        series,
        title=CHART_TITLES["step-spend"],
        subtitle=["Total spend of each step divided by the policy's runs."],
        axis=Axis("Mean spend per run (USD)", kind="usd", include_zero=True),
        stacked=True,
        totals=totals,
        notes=notes,
        palette=STEP_COLORS,
    )


def step_pass(analysis: BenchAnalysis) -> str:
    colors = policy_colors(analysis)
    by = {(s.policy, s.step_id): s for ss in analysis.steps.values() for s in ss}
    order, notes = [], []
    for sid in _step_order(analysis.steps):
        ran = [s for (_, step), s in by.items() if step == sid and s.n]
        if ran and all(s.model is None and s.passed == s.n for s in ran):
            notes.append(f"{sid} (a code step) passed every time under every policy.")
        else:
            order.append(sid)
    series = []
    for p in analysis.policies:
        values: list[float | None] = []
        errors: list[tuple[float, float] | None] = []
        labels: list[str] = []
        for step_id in order:
            s = by.get((p.policy, step_id))
            if s is None or s.pass_rate is None:
                values.append(None)
                errors.append(None)
                labels.append("did not run")
                continue
            values.append(s.pass_rate)
            errors.append(None if s.pass_ci is None else (s.pass_ci.low, s.pass_ci.high))
            labels.append(f"{pct(s.pass_rate)} ({s.passed}/{s.n}) · {s.model or 'code'}")
        series.append(Series(p.policy, values, errors, labels, colors[p.policy]))
    code = {sid for sid in order if all(s.model is None for (_, x), s in by.items() if x == sid)}
    return hbar_chart(
        [f"{sid} (code)" if sid in code else sid for sid in order],
        series,
        title=CHART_TITLES["step-pass"],
        subtitle=[
            f"Share of the step's runs that succeeded (its checks passed), with {_level(analysis)} "
            "Wilson intervals; the label names the model used most.",
        ],
        axis=Axis("Pass rate", kind="percent", bounds=(0.0, 1.0)),
        notes=notes,
    )
