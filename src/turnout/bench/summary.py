"""Per-policy totals of a bench: the table users compare routes with.

The figure that matters is *cost and latency per successful run*: everything a
policy spent (failed runs included) divided by the runs that succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from turnout.bench.data import RunSample


@dataclass(frozen=True, slots=True)
class PolicySummary:
    policy: str
    runs: int
    successes: int
    calls: int
    total_latency_s: float
    wall_s: float
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    checks_passed: int
    checks_total: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def score(self) -> float | None:
        return self.checks_passed / self.checks_total if self.checks_total else None

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0

    @property
    def cost_per_success(self) -> Decimal | None:
        return self.cost_usd / self.successes if self.successes else None

    @property
    def latency_per_success(self) -> float | None:
        return self.total_latency_s / self.successes if self.successes else None

    def as_dict(self) -> dict[str, Any]:
        cps = self.cost_per_success
        return {
            "runs": self.runs,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "calls": self.calls,
            "total_latency_s": round(self.total_latency_s, 6),
            "wall_s": round(self.wall_s, 6),
            "total_tokens": self.total_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": float(self.cost_usd),
            "score": self.score,
            "checks_passed": self.checks_passed,
            "checks_total": self.checks_total,
            "cost_per_success_usd": None if cps is None else float(cps),
            "latency_per_success_s": self.latency_per_success,
        }


def summarize(policy: str, runs: Sequence[RunSample], wall_s: float | None = None) -> PolicySummary:
    """Totals over a policy's finished runs. ``wall_s`` defaults to first start to last end."""
    if wall_s is None:
        wall_s = (
            max(r.started_at + r.wall_s for r in runs) - min(r.started_at for r in runs)
            if runs
            else 0.0
        )
    return PolicySummary(
        policy=policy,
        runs=len(runs),
        successes=sum(1 for r in runs if r.ok),
        calls=sum(r.calls for r in runs),
        total_latency_s=sum(r.latency_s for r in runs),
        wall_s=wall_s,
        input_tokens=sum(r.input_tokens for r in runs),
        output_tokens=sum(r.output_tokens for r in runs),
        cost_usd=sum((r.cost for r in runs), Decimal(0)),
        checks_passed=sum(r.checks_passed for r in runs),
        checks_total=sum(r.checks_total for r in runs),
    )
