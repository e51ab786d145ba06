"""How the variants of an A/B test did, from the runs in the trace store.

An ``ab`` policy records each run's variant (``runs.variant``, with ``runs.policy``
the ab policy's name). Over a period (runs started in ``[since, until)``, finished
ones only), per variant:

- runs and model calls, and the **error rate** (failed calls / calls; a cascade's
  rejected answer is not an error);
- the **success rate** with its Wilson interval. A run succeeds when its checks
  passed (the run's status); a run whose steps have no checks at all is judged by
  the feedback recorded on it: it fails when any of its steps was last flagged
  ``needed_frontier`` (``turnout flag``), and succeeds otherwise when it finished;
- run latency p50 / p95, **cost per run** and **cost per successful run**, each with
  a percentile bootstrap interval over runs;
- the pairwise verdict of every variant against the baseline (the first variant by
  name, or ``baseline=``), the same line ``turnout bench --baseline`` prints.

The statistics are :func:`turnout.bench.analysis.analyze`'s, over the variants as
if they were a bench's policies: one home for Wilson, bootstrap and verdict code.

**Sticky assignment** is checked: the runs' ``key`` tag (``user`` by default, the ab
policy's ``key``) is grouped, and the report counts the users who saw more than one
variant (0 unless the weights or the salt changed during the period).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from turnout.bench.analysis import BenchAnalysis, PolicyStats, analyze
from turnout.bench.data import BenchData, RunSample
from turnout.bench.stats import Interval, bootstrap
from turnout.errors import ConfigError
from turnout.tracing.meta import BenchRecord
from turnout.tracing.rows import pico_to_cost
from turnout.tracing.store import TraceStore

_WHERE = (
    "r.policy = ? AND r.variant IS NOT NULL AND r.status <> 'running' "
    "AND r.started_at >= ? AND r.started_at < ?"
)
_RUNS_SQL = (
    "SELECT r.run_id, r.variant, r.tags, r.status, r.cost_picousd, r.latency_s, r.started_at, "
    f"r.ended_at, r.calls, r.input_tokens, r.output_tokens, r.workflow FROM runs r WHERE {_WHERE} "
    "ORDER BY r.started_at, r.run_id"
)
_CHECKED_SQL = (
    "SELECT DISTINCT s.run_id FROM runs r JOIN steps s ON s.run_id = r.run_id "
    f"WHERE {_WHERE} AND s.checks <> '[]'"
)
_FLAGS_SQL = (
    "SELECT f.run_id, f.step_id, f.verdict, f.created_at FROM runs r "
    f"JOIN flags f ON f.run_id = r.run_id WHERE {_WHERE} ORDER BY f.created_at, f.id"
)
_CALLS_SQL = (
    "SELECT r.variant, a.model, COUNT(*), SUM(CASE WHEN a.status = 'error' THEN 1 ELSE 0 END) "
    f"FROM runs r JOIN attempts a ON a.run_id = r.run_id WHERE {_WHERE} GROUP BY r.variant, a.model"
)
_POLICIES_SQL = (
    "SELECT policy, COUNT(*), COUNT(DISTINCT variant) FROM runs WHERE variant IS NOT NULL "
    "AND status <> 'running' AND started_at >= ? AND started_at < ? GROUP BY policy ORDER BY policy"
)


@dataclass(frozen=True, slots=True)
class VariantStats:
    """One variant: the bench statistics of its runs, plus what only traffic has."""

    stats: PolicyStats
    error_calls: int
    cost_per_run: Decimal | None
    cost_per_run_ci: Interval | None
    models: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.stats.policy

    @property
    def error_rate(self) -> float | None:
        calls = self.stats.calls
        return self.error_calls / calls if calls else None


@dataclass(frozen=True, slots=True)
class ABReport:
    policy: str
    since: float
    until: float
    key: str
    analysis: BenchAnalysis
    variants: tuple[VariantStats, ...]
    users: int
    """Distinct values of the ``key`` tag among the runs."""
    users_with_several_variants: int
    runs_without_key: int

    @property
    def verdicts(self) -> tuple[str, ...]:
        return tuple(c.verdict for c in self.analysis.comparisons)

    def as_json(self) -> dict[str, Any]:
        a = self.analysis
        return {
            "policy": self.policy,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "level": a.level,
            "baseline": a.baseline,
            "variants": [_variant_json(v) for v in self.variants],
            "comparisons": [
                {
                    "variant": c.policy,
                    "baseline": c.baseline,
                    "cost_saving": c.cost_saving,
                    "cost_saving_ci": _ci(c.cost_saving_ci),
                    "cost_significant": c.cost_significant,
                    "success_diff": c.success_diff,
                    "success_diff_ci": _ci(c.success_diff_ci),
                    "success_significant": c.success_significant,
                    "verdict": c.verdict,
                }
                for c in a.comparisons
            ],
            "sticky": {
                "key": self.key,
                "users": self.users,
                "users_with_several_variants": self.users_with_several_variants,
                "runs_without_key": self.runs_without_key,
            },
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _ci(ci: Interval | None) -> list[float] | None:
    return None if ci is None else ci.as_list()


def _usd(v: Decimal | None) -> float | None:
    return None if v is None else float(v)


def _variant_json(v: VariantStats) -> dict[str, Any]:
    s = v.stats
    return {
        "variant": v.name,
        "runs": s.runs,
        "successes": s.successes,
        "success_rate": s.success_rate,
        "success_ci": _ci(s.success_ci),
        "calls": s.calls,
        "error_calls": v.error_calls,
        "error_rate": v.error_rate,
        "latency_p50_s": s.latency_p50_s,
        "latency_p95_s": s.latency_p95_s,
        "cost_usd": float(s.cost_usd),
        "cost_per_run_usd": _usd(v.cost_per_run),
        "cost_per_run_ci": _ci(v.cost_per_run_ci),
        "cost_per_success_usd": _usd(s.cost_per_success),
        "cost_per_success_ci": _ci(s.cost_per_success_ci),
        "models": list(v.models),
    }


def ab_report(
    store: TraceStore,
    policy: str,
    *,
    since: float,
    until: float,
    key: str = "user",
    baseline: str | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> ABReport:
    """The report of ab policy ``policy`` over runs started in ``[since, until)``."""
    period = (policy, since, until)
    checked = {str(r[0]) for r in store.query(_CHECKED_SQL, period)}
    needed_frontier = _needed_frontier(store.query(_FLAGS_SQL, period))
    samples: list[RunSample] = []
    seen: dict[str, set[str]] = defaultdict(set)
    without_key = 0
    workflow = ""
    for row in store.query(_RUNS_SQL, period):
        run_id, variant, tags = str(row[0]), str(row[1]), json.loads(row[2] or "{}")
        workflow = workflow or str(row[11])
        user = tags.get(key)
        if user is None:
            without_key += 1
        else:
            seen[str(user)].add(variant)
        ok = row[3] == "succeeded" and (run_id in checked or run_id not in needed_frontier)
        ended = float(row[7]) if row[7] is not None else float(row[6])
        samples.append(
            RunSample(
                run_id=run_id, policy=variant, case="", repeat=1,
                status="succeeded" if ok else "failed", cost=pico_to_cost(row[4]),
                latency_s=float(row[5] or 0), wall_s=ended - float(row[6]),
                calls=int(row[8] or 0), input_tokens=int(row[9] or 0),
                output_tokens=int(row[10] or 0), started_at=float(row[6]), steps=(),
            )
        )  # fmt: skip
    names = sorted({s.policy for s in samples})
    if baseline is not None and names:
        if baseline not in names:
            raise ConfigError(
                f"baseline {baseline!r} is not a variant of {policy!r} in the period "
                f"(variants: {', '.join(names)})"
            )
        names = [baseline, *(n for n in names if n != baseline)]
    bench = BenchRecord(
        f"ab:{policy}", workflow, since, "finished", {"policies": names, "baseline": baseline}
    )
    analysis = analyze(
        BenchData(bench, tuple(samples)),
        baseline=baseline if names else None,
        level=level,
        n_boot=n_boot,
        seed=seed,
    )
    errors: dict[str, int] = defaultdict(int)
    models: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for variant, model, calls, failed in store.query(_CALLS_SQL, period):
        errors[str(variant)] += int(failed or 0)
        models[str(variant)].append((-int(calls or 0), str(model)))
    variants = tuple(
        _variant(
            p, [s for s in samples if s.policy == p.policy], errors[p.policy],
            tuple(m for _, m in sorted(models[p.policy])), level, n_boot, seed,
        )
        for p in analysis.policies
    )  # fmt: skip
    return ABReport(
        policy=policy, since=since, until=until, key=key, analysis=analysis, variants=variants,
        users=len(seen), users_with_several_variants=sum(1 for v in seen.values() if len(v) > 1),
        runs_without_key=without_key,
    )  # fmt: skip


def _needed_frontier(rows: Sequence[Sequence[Any]]) -> set[str]:
    """Runs with a step whose latest flag is ``needed_frontier`` (rows in flag order)."""
    latest: dict[tuple[str, str], str] = {}
    for run_id, step_id, verdict, _ in rows:
        latest[(str(run_id), str(step_id))] = str(verdict)
    return {run for (run, _), v in latest.items() if v == "needed_frontier"}


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _variant(
    p: PolicyStats,
    runs: Sequence[RunSample],
    error_calls: int,
    models: tuple[str, ...],
    level: float,
    n_boot: int,
    seed: int,
) -> VariantStats:
    costs = [float(r.cost) for r in runs]
    ci = bootstrap(_mean, costs, level=level, n_boot=n_boot, seed=seed)
    per_run = sum((r.cost for r in runs), Decimal(0)) / len(runs) if runs else None
    return VariantStats(p, error_calls, per_run, ci, models)


@dataclass(frozen=True, slots=True)
class ABTest:
    """One A/B test seen in a period, for the weekly report."""

    policy: str
    runs: int
    variants: int
    verdicts: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "runs": self.runs,
            "variants": self.variants,
            "verdicts": list(self.verdicts),
        }


def ab_tests(store: TraceStore, *, since: float, until: float, n_boot: int = 1000) -> list[ABTest]:
    """Every ab policy with runs started in the period, with its one-line verdicts."""
    out = []
    for policy, runs, variants in store.query(_POLICIES_SQL, (since, until)):
        report = ab_report(store, str(policy), since=since, until=until, n_boot=n_boot)
        out.append(ABTest(str(policy), int(runs), int(variants), report.verdicts))
    return out
