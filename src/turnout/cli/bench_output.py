"""A bench's results for people (the comparison table) and machines (JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from turnout.bench.data import BenchData
from turnout.bench.summary import PolicySummary, summarize
from turnout.cli.output import money, price_notes, print_notes, seconds
from turnout.config.settings import Settings

BENCH_COLUMNS = (
    "Route", "Calls", "Total latency", "Total tokens", "Output tokens", "Cost", "Score",
    "Successful runs", "Cost per successful run", "Latency per successful run",
)  # fmt: skip


@dataclass(slots=True)
class BenchReport:
    data: BenchData
    settings: Settings
    summaries: list[PolicySummary]
    baseline: str | None = None

    def table(self) -> Table:
        t = Table(title=f"bench {self.data.bench.bench_id} · {self.data.bench.workflow}")
        for col in BENCH_COLUMNS:
            t.add_column(col, justify="left" if col == "Route" else "right")
        for s in self.summaries:
            t.add_row(
                s.policy,
                str(s.calls),
                seconds(s.total_latency_s),
                f"{s.total_tokens:,}",
                f"{s.output_tokens:,}",
                money(s.cost_usd),
                f"{s.checks_passed}/{s.checks_total}" if s.checks_total else "—",
                f"{s.successes}/{s.runs}",
                money(s.cost_per_success),
                seconds(s.latency_per_success),
            )
        return t

    def print(self, console: Console) -> None:
        console.print(self.table())
        print_notes(console, price_notes(self.settings, self.models()))

    def models(self) -> list[str]:
        return [s.model for r in self.data.runs for s in r.steps if s.model]

    def as_json(self) -> dict[str, Any]:
        labels = {
            m: self.settings.models[m].price_label or ""
            for m in dict.fromkeys(self.models())
            if m in self.settings.models and self.settings.models[m].price_label
        }
        return {
            "bench_id": self.data.bench.bench_id,
            "workflow": self.data.bench.workflow,
            "runs_per_case": self.data.bench.spec.get("runs"),
            "cases": [c.get("id") for c in self.data.bench.spec.get("cases", [])],
            "policies": {s.policy: s.as_dict() for s in self.summaries},
            "price_labels": labels,
        }


def bench_report(
    data: BenchData, settings: Settings, *, baseline: str | None = None
) -> BenchReport:
    summaries = [summarize(p, data.runs_of(p)) for p in data.policies]
    return BenchReport(data, settings, summaries, baseline)
