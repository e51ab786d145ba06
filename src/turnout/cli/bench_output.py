"""A bench's results for people (tables and verdicts) and machines (JSON).

For people: the comparison table (the foundation's columns, with bootstrap
intervals inside the per-successful-run cells), a second table with success
rates and their Wilson intervals, wall time and run latency percentiles, one
verdict line per policy against the baseline, and where each policy's spend
and time go step by step. For machines: the same as JSON (see
:meth:`BenchReport.as_json`). Everything is computed by
:func:`turnout.bench.analysis.analyze`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from turnout.bench.analysis import BenchAnalysis, Comparison, PolicyStats, StepStats, analyze
from turnout.bench.data import BenchData
from turnout.bench.stats import Interval
from turnout.cli.output import money, price_notes, print_notes, seconds
from turnout.config.settings import Settings

BENCH_COLUMNS = (
    "Route", "Calls", "Total latency", "Total tokens", "Output tokens", "Cost", "Score",
    "Successful runs", "Cost per successful run", "Latency per successful run",
)  # fmt: skip
RATE_COLUMNS = ("Route", "Success rate", "Wall time", "Run latency p50", "Run latency p95")
STEP_COLUMNS = ("Step", "Model", "Share of spend", "Share of latency", "Pass rate")


@dataclass(slots=True)
class BenchReport:
    data: BenchData
    settings: Settings
    baseline: str | None = None
    analysis: BenchAnalysis | None = None

    def __post_init__(self) -> None:
        if self.analysis is None:
            self.analysis = analyze(self.data, baseline=self.baseline)
        self.baseline = self.analysis.baseline

    @property
    def result(self) -> BenchAnalysis:
        assert self.analysis is not None  # set in __post_init__
        return self.analysis

    # -- for people -----------------------------------------------------------------

    def table(self) -> Table:
        t = Table(title=f"bench {self.data.bench.bench_id} · {self.data.bench.workflow}")
        for col in BENCH_COLUMNS:
            t.add_column(col, justify="left" if col == "Route" else "right")
        for p in self.result.policies:
            t.add_row(
                _route(p.policy, self.baseline),
                str(p.calls),
                seconds(p.total_latency_s),
                f"{p.total_tokens:,}",
                f"{p.output_tokens:,}",
                money(p.cost_usd),
                f"{p.checks_passed}/{p.checks_total}" if p.checks_total else "—",
                f"{p.successes}/{p.runs}",
                _with_ci(
                    money(p.cost_per_success),
                    p.cost_per_success_ci,
                    _bare_money(p.cost_per_success),
                ),
                _with_ci(seconds(p.latency_per_success_s), p.latency_per_success_ci, _bare_s),
            )
        return t

    def rates_table(self) -> Table:
        pct = f"{self.result.level * 100:g}%"
        t = Table(title=f"success and latency ({pct} intervals)")
        for col in RATE_COLUMNS:
            t.add_column(col, justify="left" if col == "Route" else "right")
        for p in self.result.policies:
            rate = "—" if not p.runs else f"{p.success_rate:.2f}"
            t.add_row(
                _route(p.policy, self.baseline),
                _with_ci(rate, p.success_ci if p.runs else None, lambda v: f"{v:.2f}"),
                seconds(p.wall_s),
                seconds(p.latency_p50_s),
                seconds(p.latency_p95_s),
            )
        return t

    def step_table(self, policy: str) -> Table:
        t = Table(title=f"{policy}: per step")
        for col in STEP_COLUMNS:
            t.add_column(col, justify="left" if col in ("Step", "Model") else "right")
        for s in self.result.steps.get(policy, ()):
            t.add_row(
                s.step_id,
                _models_cell(s),
                f"{s.spend_share:.0%}",
                f"{s.latency_share:.0%}",
                _pass_cell(s),
            )
        return t

    def verdicts(self) -> list[str]:
        return [c.verdict for c in self.result.comparisons]

    def print(self, console: Console) -> None:
        console.print(self.table())
        console.print(self.rates_table())
        if self.result.comparisons:
            console.print(f"[bold]against the baseline, {self.baseline}:[/]")
            for line in self.verdicts():
                console.print(f"  {line}", markup=False, highlight=False)
        for p in self.result.policies:
            if self.result.steps.get(p.policy):
                console.print(self.step_table(p.policy))
        print_notes(console, price_notes(self.settings, self.models()))

    def models(self) -> list[str]:
        return [s.model for r in self.data.runs for s in r.steps if s.model]

    # -- for machines ---------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        labels = {
            m: self.settings.models[m].price_label or ""
            for m in dict.fromkeys(self.models())
            if m in self.settings.models and self.settings.models[m].price_label
        }
        a = self.result
        return {
            "bench_id": self.data.bench.bench_id,
            "workflow": self.data.bench.workflow,
            "status": self.data.bench.status,
            "runs_per_case": self.data.bench.spec.get("runs"),
            "cases": [c.get("id") for c in self.data.bench.spec.get("cases", [])],
            "baseline": a.baseline,
            "level": a.level,
            "policies": {p.policy: _policy_json(p, a.steps.get(p.policy, ())) for p in a.policies},
            "comparisons": [_comparison_json(c) for c in a.comparisons],
            "price_labels": labels,
        }


def bench_report(
    data: BenchData,
    settings: Settings,
    *,
    baseline: str | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> BenchReport:
    analysis = analyze(data, baseline=baseline, level=level, n_boot=n_boot, seed=seed)
    return BenchReport(data, settings, analysis.baseline, analysis)


# -- JSON ---------------------------------------------------------------------------


def _ci(iv: Interval | None) -> list[float] | None:
    return None if iv is None else iv.as_list()


def _policy_json(p: PolicyStats, steps: Sequence[StepStats]) -> dict[str, Any]:
    cps = p.cost_per_success
    return {
        "runs": p.runs,
        "successes": p.successes,
        "success_rate": p.success_rate,
        "success_ci": _ci(p.success_ci),
        "calls": p.calls,
        "total_latency_s": round(p.total_latency_s, 6),
        "wall_s": round(p.wall_s, 6),
        "total_tokens": p.total_tokens,
        "output_tokens": p.output_tokens,
        "cost_usd": float(p.cost_usd),
        "score": p.score,
        "cost_per_success_usd": None if cps is None else float(cps),
        "cost_per_success_ci": _ci(p.cost_per_success_ci),
        "latency_per_success_s": p.latency_per_success_s,
        "latency_per_success_ci": _ci(p.latency_per_success_ci),
        "latency_p50_s": p.latency_p50_s,
        "latency_p95_s": p.latency_p95_s,
        "input_tokens": p.total_tokens - p.output_tokens,
        "checks_passed": p.checks_passed,
        "checks_total": p.checks_total,
        "steps": {s.step_id: _step_json(s) for s in steps},
    }


def _step_json(s: StepStats) -> dict[str, Any]:
    return {
        "model": s.model,
        "models": list(s.models),
        "cost_usd": float(s.cost_usd),
        "spend_share": s.spend_share,
        "latency_s": round(s.latency_s, 6),
        "latency_share": s.latency_share,
        "pass_rate": s.pass_rate,
        "pass_ci": _ci(s.pass_ci),
        "passed": s.passed,
        "n": s.n,
    }


def _comparison_json(c: Comparison) -> dict[str, Any]:
    return {
        "policy": c.policy,
        "baseline": c.baseline,
        "cost_saving": c.cost_saving,
        "cost_saving_ci": _ci(c.cost_saving_ci),
        "cost_significant": c.cost_significant,
        "success_diff": c.success_diff,
        "success_diff_ci": _ci(c.success_diff_ci),
        "success_significant": c.success_significant,
        "verdict": c.verdict,
    }


# -- cells --------------------------------------------------------------------------


def _route(policy: str, baseline: str | None) -> str:
    return f"{policy} (baseline)" if policy == baseline else policy


def _bare_money(point: Decimal | None) -> Callable[[float], str]:
    """Interval ends without ``$``, at the precision ``money`` gives the point value."""
    v = abs(float(point or 0))
    places = 2 if v >= 1 else 4 if v >= 0.01 else 6
    return lambda x: f"{x:,.{places}f}"


def _bare_s(v: float) -> str:
    return f"{v:.2f}"


def _with_ci(text: str, iv: Interval | None, fmt: Callable[[float], str]) -> str:
    """``$0.0123 (0.0101-0.0150)``: a value with its interval, compactly."""
    if iv is None or text == "—":
        return text
    return f"{text} ({fmt(iv.low)}-{fmt(iv.high)})"


def _models_cell(s: StepStats) -> str:
    if s.model is None:
        return "skipped" if s.kind == "llm" else "code"
    return s.model if len(s.models) == 1 else f"{s.model} (+{', '.join(s.models[1:])})"


def _pass_cell(s: StepStats) -> str:
    if s.pass_rate is None or s.pass_ci is None:
        return "—"
    return f"{s.passed}/{s.n} {s.pass_rate:.2f} ({s.pass_ci.low:.2f}-{s.pass_ci.high:.2f})"
