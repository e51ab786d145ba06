"""A bench analysed: per-policy figures with intervals, per-step breakdowns, and
every policy compared with a baseline.

The figure that matters is *cost and latency per successful run*: everything a
policy spent (failed runs included) divided by the runs that succeeded. Each
comes with a percentile bootstrap interval over runs; success rates come with
Wilson intervals; comparisons with the baseline are

- the saving in cost per successful run, ``1 - policy / baseline``, with a
  percentile bootstrap interval of the ratio: each policy's runs are resampled
  independently, once, and the resamples paired by index (the same draws give
  each policy's own cost-per-success interval); significant when the interval
  of the saving excludes 0;
- the difference in success rate with Newcombe's hybrid score interval,
  significant when it excludes 0.

See :mod:`turnout.bench.stats` for the formulas and references.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType

from turnout.bench.data import BenchData, RunSample, StepSample
from turnout.bench.stats import (
    Interval,
    Resampled,
    bootstrap_ratio,
    newcombe,
    quantile,
    ratio_interval,
    ratio_of_ratios_interval,
    resample_sums,
    wilson,
    z_value,
)
from turnout.bench.summary import summarize
from turnout.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PolicyStats:
    policy: str
    runs: int
    successes: int
    success_rate: float
    success_ci: Interval
    calls: int
    total_latency_s: float
    wall_s: float
    total_tokens: int
    output_tokens: int
    cost_usd: Decimal
    score: float | None
    checks_passed: int
    checks_total: int
    cost_per_success: Decimal | None
    cost_per_success_ci: Interval | None
    latency_per_success_s: float | None
    latency_per_success_ci: Interval | None
    latency_p50_s: float | None
    latency_p95_s: float | None


@dataclass(frozen=True, slots=True)
class StepStats:
    policy: str
    step_id: str
    model: str | None
    """The model used most (None: a code step, or an LLM step that was always skipped)."""
    models: tuple[str, ...]
    """Every model used, most used first."""
    n: int
    """Times the step ran (skipped steps not counted)."""
    passed: int
    pass_rate: float | None
    pass_ci: Interval | None
    cost_usd: Decimal
    spend_share: float
    latency_s: float
    latency_share: float
    kind: str = "llm"
    """``llm`` or ``code``."""


@dataclass(frozen=True, slots=True)
class Comparison:
    policy: str
    baseline: str
    level: float
    cost_saving: float | None
    """Fraction cheaper per successful run (0.64 = 64% cheaper; negative = dearer)."""
    cost_saving_ci: Interval | None
    cost_significant: bool
    success_diff: float
    """Policy success rate minus the baseline's."""
    success_diff_ci: Interval
    success_significant: bool
    verdict: str


@dataclass(frozen=True, slots=True)
class BenchAnalysis:
    bench_id: str
    workflow: str
    level: float
    baseline: str | None
    policies: tuple[PolicyStats, ...]
    steps: Mapping[str, tuple[StepStats, ...]]
    """By policy, in workflow step order."""
    comparisons: tuple[Comparison, ...]
    """Every policy but the baseline."""

    def policy(self, name: str) -> PolicyStats:
        for p in self.policies:
            if p.policy == name:
                return p
        raise KeyError(name)

    def comparison(self, name: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.policy == name), None)


def analyze(
    data: BenchData,
    *,
    baseline: str | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> BenchAnalysis:
    """Analyse a bench. ``baseline`` defaults to the bench plan's baseline, else
    the first policy. Deterministic for a given ``seed``."""
    z_value(level)
    names = data.policies
    base = _baseline(data, names, baseline)
    runs = {p: data.runs_of(p) for p in names}
    costs = {p: _cost_resamples(runs[p], n_boot, _seed(seed, p, "cost")) for p in names}
    stats = tuple(
        _policy_stats(p, runs[p], costs[p], level, n_boot, _seed(seed, p, "latency")) for p in names
    )
    order = data.step_ids()
    steps = MappingProxyType({p: _step_stats(p, runs[p], order, level) for p in names})
    by_name = {s.policy: s for s in stats}
    comparisons = tuple(
        _compare(by_name[p], by_name[base], costs[p], costs[base], level)
        for p in names
        if base is not None and p != base
    )
    return BenchAnalysis(
        bench_id=data.bench.bench_id,
        workflow=data.bench.workflow,
        level=level,
        baseline=base,
        policies=stats,
        steps=steps,
        comparisons=comparisons,
    )


def _baseline(data: BenchData, names: Sequence[str], asked: str | None) -> str | None:
    if asked is not None:
        if asked not in names:
            raise ConfigError(
                f"baseline {asked!r} is not a policy of bench {data.bench.bench_id} "
                f"({', '.join(names) or 'none'})"
            )
        return asked
    planned = data.bench.spec.get("baseline")
    if isinstance(planned, str) and planned in names:
        return planned
    return names[0] if names else None


def _seed(seed: int, *parts: str) -> int:
    """A distinct, reproducible seed for each bootstrap of an analysis."""
    return seed * 1_000_003 + zlib.crc32("\x1f".join(parts).encode())


def _costs(runs: Sequence[RunSample]) -> list[float]:
    return [float(r.cost) for r in runs]


def _oks(runs: Sequence[RunSample]) -> list[float]:
    return [1.0 if r.ok else 0.0 for r in runs]


def _cost_resamples(runs: Sequence[RunSample], n_boot: int, seed: int) -> Resampled | None:
    """Bootstrap resamples of a policy's (cost, successes): drawn once, they give its
    cost-per-success interval and, paired by resample, every comparison it is in."""
    if not any(r.ok for r in runs):
        return None
    return resample_sums(_costs(runs), _oks(runs), n_boot=n_boot, seed=seed)


def _policy_stats(
    policy: str,
    runs: Sequence[RunSample],
    costs: Resampled | None,
    level: float,
    n_boot: int,
    seed: int,
) -> PolicyStats:
    s = summarize(policy, runs)
    latencies = [r.latency_s for r in runs]
    cps_ci = lps_ci = None
    if costs is not None:
        cps_ci = ratio_interval(costs, level=level)
        lps_ci = bootstrap_ratio(latencies, _oks(runs), level=level, n_boot=n_boot, seed=seed)
    return PolicyStats(
        policy=policy,
        runs=s.runs,
        successes=s.successes,
        success_rate=s.success_rate,
        success_ci=wilson(s.successes, s.runs, level),
        calls=s.calls,
        total_latency_s=s.total_latency_s,
        wall_s=s.wall_s,
        total_tokens=s.total_tokens,
        output_tokens=s.output_tokens,
        cost_usd=s.cost_usd,
        score=s.score,
        checks_passed=s.checks_passed,
        checks_total=s.checks_total,
        cost_per_success=s.cost_per_success,
        cost_per_success_ci=cps_ci,
        latency_per_success_s=s.latency_per_success,
        latency_per_success_ci=lps_ci,
        latency_p50_s=quantile(latencies, 0.5) if latencies else None,
        latency_p95_s=quantile(latencies, 0.95) if latencies else None,
    )


def _step_stats(
    policy: str, runs: Sequence[RunSample], order: Sequence[str], level: float
) -> tuple[StepStats, ...]:
    by_step: dict[str, list[StepSample]] = {}
    for r in runs:
        for st in r.steps:
            by_step.setdefault(st.step_id, []).append(st)
    total_cost = sum((st.cost for ss in by_step.values() for st in ss), Decimal(0))
    total_latency = sum(st.latency_s for ss in by_step.values() for st in ss)
    out = []
    for step_id in [*order, *(s for s in by_step if s not in order)]:
        samples = by_step.get(step_id, [])
        ran = [st for st in samples if st.status != "skipped"]
        passed = sum(1 for st in ran if st.ok)
        models = tuple(m for m, _ in Counter(st.model for st in ran if st.model).most_common())
        cost = sum((st.cost for st in samples), Decimal(0))
        latency = sum(st.latency_s for st in samples)
        out.append(
            StepStats(
                policy=policy,
                step_id=step_id,
                model=models[0] if models else None,
                models=models,
                n=len(ran),
                passed=passed,
                pass_rate=passed / len(ran) if ran else None,
                pass_ci=wilson(passed, len(ran), level) if ran else None,
                cost_usd=cost,
                spend_share=float(cost / total_cost) if total_cost else 0.0,
                latency_s=latency,
                latency_share=latency / total_latency if total_latency else 0.0,
                kind=samples[0].kind if samples else "llm",
            )
        )
    return tuple(out)


def _compare(
    p: PolicyStats,
    b: PolicyStats,
    p_costs: Resampled | None,
    b_costs: Resampled | None,
    level: float,
) -> Comparison:
    saving: float | None = None
    saving_ci: Interval | None = None
    pc, bc = p.cost_per_success, b.cost_per_success
    if pc is not None and bc is not None and bc > 0:
        saving = 1.0 - float(pc / bc)
        if p_costs is not None and b_costs is not None:
            ratio_ci = ratio_of_ratios_interval(p_costs, b_costs, level=level)
            if ratio_ci is not None:
                saving_ci = Interval(1.0 - ratio_ci.high, 1.0 - ratio_ci.low)
    diff, diff_ci = newcombe(p.successes, p.runs, b.successes, b.runs, level)
    cost_sig = saving_ci is not None and saving_ci.excludes(0.0)
    success_sig = p.runs > 0 and b.runs > 0 and diff_ci.excludes(0.0)
    c = Comparison(
        policy=p.policy,
        baseline=b.policy,
        level=level,
        cost_saving=saving,
        cost_saving_ci=saving_ci,
        cost_significant=cost_sig,
        success_diff=diff,
        success_diff_ci=diff_ci,
        success_significant=success_sig,
        verdict="",
    )
    return _with_verdict(c, p, b)


def _with_verdict(c: Comparison, p: PolicyStats, b: PolicyStats) -> Comparison:
    return replace(c, verdict=f"{p.policy}: {_cost_part(c, p, b)}; {_success_part(c, p, b)}")


def _pct(x: float) -> str:
    return f"{x * 100:.0f}"


def _ci_text(c: Comparison, ci: Interval | None, significant: bool) -> str:
    label = f"{c.level * 100:g}% CI"
    if ci is None:
        return "too few runs for an interval"
    lo, hi = _pct(ci.low), _pct(ci.high)
    span = f"{lo}-{hi}%" if ci.low >= 0 else f"{lo}% to {hi}%"
    return f"{label} {span}" + ("" if significant else ", not significant")


def _cost_part(c: Comparison, p: PolicyStats, b: PolicyStats) -> str:
    base = c.baseline
    if p.cost_per_success is None and b.cost_per_success is None:
        return "no successful runs under either policy"
    if p.cost_per_success is None:
        return "no successful runs"
    if b.cost_per_success is None:
        return f"{base} had no successful runs to compare cost with"
    if c.cost_saving is None:  # the baseline costs nothing per successful run
        if p.cost_per_success == 0:
            return f"same cost per successful run as {base} ($0)"
        return f"dearer per successful run than {base} ({_usd(p.cost_per_success)} vs $0)"
    s, ci = c.cost_saving, c.cost_saving_ci
    if round(s * 100) == 0:
        return f"same cost per successful run as {base} ({_ci_text(c, ci, c.cost_significant)})"
    if s > 0:
        return (
            f"{_pct(s)}% cheaper per successful run than {base} "
            f"({_ci_text(c, ci, c.cost_significant)})"
        )
    dearer = None if ci is None else Interval(-ci.high, -ci.low)
    return (
        f"{_pct(-s)}% dearer per successful run than {base} "
        f"({_ci_text(c, dearer, c.cost_significant)})"
    )


def _success_part(c: Comparison, p: PolicyStats, b: PolicyStats) -> str:
    n = f"n={p.runs}" if p.runs == b.runs else f"n={p.runs} vs {b.runs}"
    which = "a significant difference" if c.success_significant else "not a significant difference"
    return f"success {p.success_rate:.2f} vs {b.success_rate:.2f}, {which} at {n}"


def _usd(value: Decimal) -> str:
    v = float(value)
    return f"${v:.4f}" if v >= 0.01 else f"${v:.6f}"
