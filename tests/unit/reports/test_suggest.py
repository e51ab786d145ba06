"""`turnout suggest` on seeded benches: one with a clear answer, one with an ambiguous one.

Pool: opus (frontier, $5 / $25 per M) and haiku (efficient, $1 / $5). A step run costs
$0.01 on opus and $0.001 on haiku. Tolerance 0.05, at least 5 runs.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from turnout.bench.data import BenchData, RunSample, StepSample, load_bench_data
from turnout.bench.stats import wilson
from turnout.cli.suggest import suggest_cmd
from turnout.config import Settings, load_settings, settings_from_dict
from turnout.policies.base import RequestContext
from turnout.policies.registry import build_policy
from turnout.reports.suggest import Suggestion, suggest
from turnout.tracing import RunRecord, SQLiteStore, StepRecord
from turnout.tracing.meta import BenchRecord, save_bench

T0 = 1_767_571_200.0
CONFIG_TEXT = """\
providers:
  hosted: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  opus: {provider: hosted, id: o, tier: frontier, price: {input: 5, output: 25}}
  haiku: {provider: hosted, id: h, tier: efficient, price: {input: 1, output: 5}}
policies:
  all_strong: {kind: static, model: opus}
  all_cheap: {kind: static, model: haiku}
"""
COST = {"opus": D("0.01"), "haiku": D("0.001")}


@pytest.fixture
def settings() -> Settings:
    return settings_from_dict(yaml.safe_load(CONFIG_TEXT))


def _seed(
    path: Path, bench_id: str, plan: list[tuple[str, int, dict[str, tuple[str, int]]]]
) -> None:
    """``plan``: (policy, runs, {step: (model, passes)}): the first ``passes`` runs pass."""
    runs: list[RunRecord] = []
    steps: list[StepRecord] = []
    t = T0
    for policy, n, by_step in plan:
        for i in range(n):
            run_id = f"{bench_id}-{policy}-{i}"
            t += 10
            runs.append(RunRecord(run_id, "csv-export", policy, "succeeded", t, ended_at=t + 5,
                                  bench_id=bench_id, tags={"case": "c1", "repeat": str(i + 1)}))  # fmt: skip
            for k, (step_id, (model, passes)) in enumerate(by_step.items()):
                ok = i < passes
                steps.append(StepRecord(
                    run_id, step_id, "llm", "succeeded" if ok else "failed", t + k, 1.0,
                    model=model, tier="frontier" if model == "opus" else "efficient",
                    cost_usd=COST[model], calls=1,
                ))  # fmt: skip
            steps.append(StepRecord(run_id, "words", "code", "succeeded", t + 4, 0.01))
    with SQLiteStore(path) as store:
        save_bench(store, BenchRecord(bench_id, "csv-export", T0, "finished",
                                      {"policies": [p for p, _, _ in plan]}))  # fmt: skip
        store.write_batch(runs, steps, [])


@pytest.fixture
def clear_db(tmp_path: Path) -> Path:
    path = tmp_path / "clear.db"
    _seed(path, "bench-clear", [
        ("all_strong", 10, {"planner": ("opus", 10), "implementer": ("opus", 10)}),
        ("all_cheap", 10, {"planner": ("haiku", 2), "implementer": ("haiku", 10)}),
    ])  # fmt: skip
    return path


@pytest.fixture
def ambiguous_db(tmp_path: Path) -> Path:
    path = tmp_path / "ambiguous.db"
    _seed(path, "bench-amb", [
        ("all_strong", 10, {"planner": ("opus", 10), "implementer": ("opus", 10)}),
        ("cheap_planner", 10, {"planner": ("haiku", 8), "implementer": ("opus", 10)}),
        ("mixed", 3, {"planner": ("opus", 3), "implementer": ("haiku", 3)}),
    ])  # fmt: skip
    return path


def _suggest(db: Path, bench_id: str, settings: Settings | None, **kw: Any) -> Suggestion:
    with SQLiteStore(db) as store:
        return suggest(load_bench_data(store, bench_id), settings, **kw)


def test_clear_answer(clear_db: Path, settings: Settings) -> None:
    s = _suggest(clear_db, "bench-clear", settings)
    assert s.policy() == {
        "kind": "per_step", "default": "opus",
        "steps": {"planner": "opus", "implementer": "haiku"},
    }  # fmt: skip
    planner, implementer = s.steps
    assert (planner.verdict, implementer.verdict) == ("clear", "clear")
    assert [(e.model, e.n, e.passed) for e in planner.evidence] == [
        ("haiku", 10, 2),
        ("opus", 10, 10),
    ]
    haiku = planner.evidence[0]
    assert haiku.ci == wilson(2, 10) and haiku.cost_per_run == D("0.001")
    assert "haiku is cheaper but worse (0.20 vs 1.00; the 95% intervals do not overlap)" in (
        planner.notes
    )
    assert implementer.notes == (
        "haiku is within 0.05 of the best, opus (1.00 vs 1.00), and cheaper",
    )
    assert (s.runs, s.policies) == (20, ("all_strong", "all_cheap"))


def test_ambiguous_answer_keeps_the_stronger_model(ambiguous_db: Path, settings: Settings) -> None:
    s = _suggest(ambiguous_db, "bench-amb", settings)
    assert s.policy()["steps"] == {"planner": "opus", "implementer": "opus"}
    planner, implementer = s.steps
    # haiku passed 8/10 (0.80, misses 1.00 - 0.05) but its interval overlaps opus's
    assert wilson(8, 10).high >= wilson(13, 13).low
    assert planner.verdict == "too_little_evidence"
    assert any("intervals overlap: the bench cannot tell them apart" in n for n in planner.notes)
    # haiku ran the implementer only 3 times (< 5)
    assert implementer.verdict == "too_little_evidence"
    assert any("haiku is cheaper but ran only 3 times (< 5)" in n for n in implementer.notes)


def test_more_runs_or_a_looser_rule_settle_it(ambiguous_db: Path, settings: Settings) -> None:
    s = _suggest(ambiguous_db, "bench-amb", settings, tolerance=0.25, min_runs=3)
    assert s.policy()["steps"] == {"planner": "haiku", "implementer": "haiku"}
    assert [x.verdict for x in s.steps] == ["clear", "clear"]


def _sample(run: int, step: str, model: str, ok: bool) -> RunSample:
    st = StepSample(step, "llm", model, "frontier" if model == "opus" else "efficient",
                    "succeeded" if ok else "failed", COST[model], 1.0, 10, 10, 1, 0, 0)  # fmt: skip
    return RunSample(f"r{run}-{model}", model, "c", 1, "succeeded", COST[model], 1.0, 1.0, 1,
                     10, 10, T0 + run, (st,))  # fmt: skip


def _data(samples: list[RunSample]) -> BenchData:
    return BenchData(BenchRecord("b", "wf", T0, "finished", {}), tuple(samples))


def test_an_undersampled_stronger_model_that_did_better_is_kept(settings: Settings) -> None:
    samples = [_sample(i, "review", "haiku", i < 2) for i in range(10)]
    samples += [_sample(100 + i, "review", "opus", True) for i in range(3)]
    (step,) = suggest(_data(samples), settings).steps
    assert step.model == "opus" and step.verdict == "too_little_evidence"
    assert "opus ran only 3 times (< 5) but passed more often than haiku" in step.notes[0]


def test_no_model_with_enough_runs_keeps_the_strongest(settings: Settings) -> None:
    samples = [_sample(i, "review", m, True) for i in range(2) for m in ("haiku", "opus")]
    (step,) = suggest(_data(samples), settings).steps
    assert (step.model, step.verdict) == ("opus", "too_little_evidence")


def test_without_a_pool_tiers_come_from_the_samples() -> None:
    samples = [_sample(i, "review", m, True) for i in range(6) for m in ("haiku", "opus")]
    s = suggest(_data(samples))
    assert (s.default, s.steps[0].model) == ("opus", "haiku")


def test_the_snippet_is_valid_yaml_turnout_accepts(
    clear_db: Path, tmp_path: Path, settings: Settings
) -> None:
    s = _suggest(clear_db, "bench-clear", settings)
    snippet = s.snippet()
    assert yaml.safe_load(snippet) == {"policies": {"suggested": s.policy()}}
    assert "#   haiku: n=10 passed 2/10 = 0.20 95% CI [0.06, 0.51], $0.001000 per run" in snippet
    assert "# Rule: per step, among models that ran it at least 5 times" in snippet
    # pasted under the `policies:` of the same turnout.yaml (its last section)
    config = tmp_path / "turnout.yaml"
    config.write_text(CONFIG_TEXT + snippet.split("policies:\n", 1)[1])
    loaded = load_settings(config)
    assert set(loaded.policies) == {"all_strong", "all_cheap", "suggested"}
    policy = build_policy("suggested", loaded)
    assert policy.decide(RequestContext(step_id="implementer")).models == ("haiku",)
    assert policy.decide(RequestContext(step_id="other")).models == ("opus",)


def test_awkward_step_names_are_quoted(settings: Settings) -> None:
    samples = [_sample(i, "yes", "opus", True) for i in range(5)]
    snippet = suggest(_data(samples), settings, name="on").snippet()
    assert yaml.safe_load(snippet)["policies"]["on"]["steps"] == {"yes": "opus"}


def _cli(db: Path, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "turnout.yaml"
    config.write_text(CONFIG_TEXT)
    result = CliRunner().invoke(suggest_cmd, [*args, "-c", str(config), "--store", str(db)])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_prints_the_snippet(clear_db: Path, tmp_path: Path) -> None:
    out = _cli(clear_db, tmp_path, "bench-cl")
    assert yaml.safe_load(out)["policies"]["suggested"]["steps"] == {
        "planner": "opus", "implementer": "haiku",
    }  # fmt: skip


def test_cli_json(ambiguous_db: Path, tmp_path: Path) -> None:
    out = json.loads(_cli(ambiguous_db, tmp_path, "bench-amb", "--json", "--min-runs", "3"))
    assert out["min_runs"] == 3 and out["tolerance"] == 0.05
    assert out["rule"].startswith("Rule: per step")
    planner = out["steps"][0]
    assert planner["verdict"] == "too_little_evidence"
    assert planner["evidence"][0]["model"] == "haiku"
    assert planner["evidence"][0]["ci"] == pytest.approx(wilson(8, 10).as_list())
    policy = dict(out["policy"])
    name = policy.pop("name")
    assert yaml.safe_load(out["snippet"])["policies"][name] == policy


def test_cli_unknown_bench(clear_db: Path, tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    config.write_text(CONFIG_TEXT)
    result = CliRunner().invoke(suggest_cmd, ["nope", "-c", str(config), "--store", str(clear_db)])
    assert result.exit_code == 2
    assert "no bench 'nope' in the trace store" in result.output


def test_a_model_that_never_passed_is_not_proposed_over_one_that_did(settings: Settings) -> None:
    samples = [_sample(i, "review", "opus", False) for i in range(4)]
    samples += [_sample(10 + i, "review", "haiku", i > 0) for i in range(2)]
    result = suggest(_data(samples), settings)
    (step,) = result.steps
    assert (step.model, step.verdict) == ("haiku", "too_little_evidence")
    assert step.notes == ("opus never passed this step (0/4) and haiku did (1/2): kept haiku",)
    snippet = result.snippet()
    assert "# review: TOO LITTLE EVIDENCE, kept haiku" in snippet
    assert "kept the strongest, opus" not in snippet and "review: haiku" in snippet


def test_when_no_model_ever_passed_the_rule_stands(settings: Settings) -> None:
    samples = [_sample(i, "review", m, False) for i in range(2) for m in ("haiku", "opus")]
    (step,) = suggest(_data(samples), settings).steps
    assert (step.model, step.verdict) == ("opus", "too_little_evidence")


def test_cli_shows_the_learned_policy_next_to_the_snippet(clear_db: Path, tmp_path: Path) -> None:
    out = _cli(clear_db, tmp_path, "bench-cl")
    assert "#   turnout learn --bench bench-clear --out routers/bench-clear.json" in out
    assert "#   kind: learned" in out and "#   models: [haiku, opus]" in out
    yaml.safe_load(out)  # still one YAML document: the hint is comments
