"""The bench analysis over hand-built BenchData."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from turnout.bench.analysis import analyze
from turnout.bench.data import BenchData, RunSample, StepSample
from turnout.errors import ConfigError
from turnout.tracing.meta import BenchRecord


def step(
    step_id: str,
    model: str | None,
    cost: Decimal,
    latency: float,
    *,
    status: str = "succeeded",
    checks: tuple[int, int] = (0, 0),
) -> StepSample:
    return StepSample(
        step_id=step_id,
        kind="llm" if model else "code",
        model=model,
        tier=None,
        status=status,
        cost=cost,
        latency_s=latency,
        input_tokens=100 if model else 0,
        output_tokens=10 if model else 0,
        calls=1 if model else 0,
        checks_passed=checks[0],
        checks_total=checks[1],
    )


def run(
    policy: str,
    i: int,
    ok: bool,
    cost: Decimal,
    latency: float,
    *,
    planner: str = "opus",
    implementer: str = "haiku",
) -> RunSample:
    steps = (
        step("planner", planner, cost * Decimal("0.75"), latency * 0.5,
             status="succeeded" if ok else "failed", checks=(1 if ok else 0, 1)),
        step("implementer", implementer, cost * Decimal("0.25"), latency * 0.4),
        step("words", None, Decimal(0), latency * 0.1),
    )  # fmt: skip
    return RunSample(
        run_id=f"{policy}-{i}", policy=policy, case="c", repeat=i + 1,
        status="succeeded" if ok else "failed", cost=cost, latency_s=latency, wall_s=latency,
        calls=2, input_tokens=200, output_tokens=20, started_at=float(i), steps=steps,
    )  # fmt: skip


def bench(runs: list[RunSample], spec: Mapping[str, Any] | None = None) -> BenchData:
    policies = list(dict.fromkeys(r.policy for r in runs))
    record = BenchRecord("bench1", "csv-export", 0.0, "finished", spec or {"policies": policies})
    return BenchData(record, tuple(runs))


def noisy(rng: random.Random, base: str, spread: float) -> Decimal:
    return Decimal(base) * Decimal(f"{1 + spread * (rng.random() - 0.5):.4f}")


def clear_winner(n: int = 30) -> BenchData:
    rng = random.Random(1)
    runs = []
    for i in range(n):
        runs.append(run("all_frontier", i, True, noisy(rng, "0.0100", 0.2), 2.0 + rng.random()))
        runs.append(
            run("rules", i, i % 10 != 0, noisy(rng, "0.0036", 0.2), 1.0 + rng.random(),
                planner="opus", implementer="haiku")
        )  # fmt: skip
        runs.append(
            run("all_cheap", i, i % 2 == 0, noisy(rng, "0.0010", 0.2), 0.5, planner="haiku")
        )
    return bench(runs)


def test_clear_winner_is_significantly_cheaper() -> None:
    a = analyze(clear_winner())
    assert a.baseline == "all_frontier"
    assert [p.policy for p in a.policies] == ["all_frontier", "rules", "all_cheap"]
    assert [c.policy for c in a.comparisons] == ["rules", "all_cheap"]
    rules = a.comparison("rules")
    assert rules is not None
    assert rules.cost_saving is not None and 0.55 < rules.cost_saving < 0.65
    assert rules.cost_saving_ci is not None
    assert 0.0 < rules.cost_saving_ci.low < rules.cost_saving < rules.cost_saving_ci.high
    assert rules.cost_significant
    # 27/30 vs 30/30 is not a significant difference at n=30
    assert rules.success_diff == pytest.approx(-0.1)
    assert not rules.success_significant
    assert rules.verdict.startswith("rules: ")
    assert "% cheaper per successful run than all_frontier (95% CI " in rules.verdict
    assert rules.verdict.endswith("; success 0.90 vs 1.00, not a significant difference at n=30")
    cheap = a.comparison("all_cheap")
    assert cheap is not None and cheap.success_significant  # 15/30 vs 30/30
    assert ", a significant difference at n=30" in cheap.verdict


def test_policy_stats_figures() -> None:
    a = analyze(clear_winner())
    f = a.policy("all_frontier")
    assert f.runs == 30 and f.successes == 30 and f.success_rate == 1.0
    assert f.success_ci.high == 1.0 and f.success_ci.low == pytest.approx(0.8865, abs=1e-4)
    assert f.calls == 60 and f.total_tokens == 30 * 220 and f.output_tokens == 600
    assert f.score == 1.0 and f.checks_passed == 30 and f.checks_total == 30
    assert f.cost_per_success == f.cost_usd / 30
    assert f.cost_per_success_ci is not None
    assert f.cost_per_success_ci.low < float(f.cost_per_success) < f.cost_per_success_ci.high
    assert f.latency_per_success_s == pytest.approx(f.total_latency_s / 30)
    assert f.latency_per_success_ci is not None
    assert f.latency_p50_s is not None and f.latency_p95_s is not None
    assert 2.0 <= f.latency_p50_s <= f.latency_p95_s <= 3.0
    r = a.policy("rules")
    assert r.successes == 27 and r.cost_per_success == r.cost_usd / 27


def test_tiny_n_is_not_significant() -> None:
    runs = [run("a", i, True, Decimal("0.01"), 1.0) for i in range(3)]
    runs += [run("b", i, i != 0, Decimal("0.002"), 1.0) for i in range(3)]
    a = analyze(bench(runs))
    c = a.comparison("b")
    assert c is not None
    assert c.cost_saving == pytest.approx(1 - (0.006 / 2) / 0.01)
    assert c.cost_saving_ci is None and not c.cost_significant
    assert not c.success_significant
    assert "too few runs for an interval" in c.verdict
    assert c.verdict.endswith("success 0.67 vs 1.00, not a significant difference at n=3")
    assert a.policy("a").cost_per_success_ci is None


def test_zero_successes() -> None:
    runs = [run("base", i, True, Decimal("0.01"), 1.0) for i in range(10)]
    runs += [run("broken", i, False, Decimal("0.001"), 1.0) for i in range(10)]
    a = analyze(bench(runs))
    b = a.policy("broken")
    assert b.successes == 0 and b.success_rate == 0.0
    assert b.cost_per_success is None and b.cost_per_success_ci is None
    assert b.latency_per_success_s is None and b.latency_per_success_ci is None
    c = a.comparison("broken")
    assert c is not None and c.cost_saving is None and not c.cost_significant
    assert c.success_significant and c.success_diff == -1.0
    assert c.verdict == (
        "broken: no successful runs; success 0.00 vs 1.00, a significant difference at n=10"
    )
    # and the other way round
    a2 = analyze(bench(runs), baseline="broken")
    c2 = a2.comparison("base")
    assert c2 is not None
    assert c2.verdict.startswith("base: broken had no successful runs to compare cost with;")


def test_dearer_and_unequal_n() -> None:
    rng = random.Random(4)
    runs = [run("cheap", i, True, noisy(rng, "0.001", 0.1), 1.0) for i in range(20)]
    runs += [run("dear", i, True, noisy(rng, "0.002", 0.1), 1.0) for i in range(12)]
    a = analyze(bench(runs))
    c = a.comparison("dear")
    assert c is not None and c.cost_saving is not None and c.cost_saving < -0.8
    assert c.cost_significant
    assert "% dearer per successful run than cheap (95% CI " in c.verdict
    assert c.verdict.endswith("at n=12 vs 20")


def test_free_baseline_and_free_policy() -> None:
    runs = [run("local", i, True, Decimal(0), 1.0) for i in range(10)]
    runs += [run("local2", i, True, Decimal(0), 1.0) for i in range(10)]
    runs += [run("paid", i, True, Decimal("0.01"), 1.0) for i in range(10)]
    a = analyze(bench(runs))
    assert a.comparison("local2").verdict.startswith(  # type: ignore[union-attr]
        "local2: same cost per successful run as local ($0);"
    )
    assert a.comparison("paid").verdict.startswith(  # type: ignore[union-attr]
        "paid: dearer per successful run than local ($0.01 vs $0);"
    )
    a2 = analyze(bench(runs), baseline="paid")
    c = a2.comparison("local")
    assert c is not None and c.cost_saving == 1.0
    assert c.verdict.startswith(
        "local: 100% cheaper per successful run than paid (95% CI 100-100%)"
    )


def test_per_step_stats() -> None:
    rng = random.Random(2)
    runs = [run("p", i, i % 4 != 0, noisy(rng, "0.01", 0.5), 1.0 + rng.random()) for i in range(16)]
    # two runs of the same policy whose planner fell back to another model
    runs += [run("p", 16 + i, True, Decimal("0.01"), 1.0, planner="sonnet") for i in range(2)]
    a = analyze(bench(runs))
    steps = a.steps["p"]
    assert [s.step_id for s in steps] == ["planner", "implementer", "words"]
    planner, implementer, words = steps
    assert planner.model == "opus" and planner.models == ("opus", "sonnet")
    assert planner.n == 18 and planner.passed == 14
    assert planner.pass_rate == pytest.approx(14 / 18)
    assert planner.pass_ci is not None and planner.pass_ci.low < 14 / 18 < planner.pass_ci.high
    assert words.model is None and words.models == () and words.cost_usd == 0
    assert words.spend_share == 0.0
    assert sum(s.spend_share for s in steps) == pytest.approx(1.0)
    assert sum(s.latency_share for s in steps) == pytest.approx(1.0)
    assert planner.spend_share == pytest.approx(0.75)
    assert implementer.latency_share == pytest.approx(0.4)
    assert sum((s.cost_usd for s in steps), Decimal(0)) == a.policy("p").cost_usd


def test_skipped_steps_do_not_count_towards_pass_rate() -> None:
    r = run("p", 0, False, Decimal("0.01"), 1.0)
    skip = StepSample("words", "code", None, None, "skipped", Decimal(0), 0.0, 0, 0, 0, 0, 0)
    skipped = (*r.steps[:2], skip)
    a = analyze(bench([replace(r, steps=skipped)]))
    words = a.steps["p"][2]
    assert words.n == 0 and words.pass_rate is None and words.pass_ci is None
    assert a.steps["p"][0].pass_rate == 0.0


def test_baseline_choice() -> None:
    data = clear_winner(8)
    assert analyze(data).baseline == "all_frontier"
    spec = {"policies": ["all_frontier", "rules", "all_cheap"], "baseline": "rules"}
    planned = BenchData(BenchRecord("b", "w", 0.0, "finished", spec), data.runs)
    a = analyze(planned)
    assert a.baseline == "rules"
    assert [c.policy for c in a.comparisons] == ["all_frontier", "all_cheap"]
    assert analyze(planned, baseline="all_cheap").baseline == "all_cheap"
    with pytest.raises(ConfigError, match="baseline 'nope' is not a policy of bench b"):
        analyze(planned, baseline="nope")


def test_policy_without_runs_and_empty_bench() -> None:
    spec = {"policies": ["a", "b"]}
    data = BenchData(
        BenchRecord("b", "w", 0.0, "interrupted", spec),
        tuple(run("a", i, True, Decimal("0.01"), 1.0) for i in range(5)),
    )
    a = analyze(data)
    b = a.policy("b")
    assert b.runs == 0 and b.success_ci.low == 0.0 and b.success_ci.high == 1.0
    assert b.latency_p50_s is None and a.steps["b"][0].n == 0
    c = a.comparison("b")
    assert c is not None and not c.success_significant
    empty = analyze(BenchData(BenchRecord("e", "w", 0.0, "running", {}), ()))
    assert empty.baseline is None and empty.policies == () and empty.comparisons == ()


def test_level_and_determinism() -> None:
    data = clear_winner()
    a95 = analyze(data, seed=1)
    assert a95 == analyze(data, seed=1)
    a80 = analyze(data, level=0.80, seed=1)
    w95 = a95.policy("rules").cost_per_success_ci
    w80 = a80.policy("rules").cost_per_success_ci
    assert w95 is not None and w80 is not None
    assert w95.high - w95.low > w80.high - w80.low
    c = a80.comparison("rules")
    assert c is not None and "(80% CI " in c.verdict
    with pytest.raises(ValueError, match="between 0 and 1"):
        analyze(data, level=95)
