"""`turnout whatif` over a seeded SQLite trace file: recorded steps re-decided and re-priced.

Pool prices per million tokens: opus 5 / 25 (cached 0.5), sonnet 3 / 15, haiku 1 / 5
(cached 0.1). In the week, on opus: two planners (1,000 in, 200 out: $0.01 each) and
three implementers (2,000 in of which 1,000 cached, 1,000 out: $0.0305 each), the third
recorded without prompt or annotation; on haiku a support classify (100 in, 10 out:
$0.00015); and a planner on gpt-3, which has left the pool ($0.02). Before the week, a
bench ran the implementer 3 times on opus (100 output tokens each) and 3 on haiku (50
each): the output ratio haiku / opus is 0.5.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner

from turnout.cli.whatif import whatif_cmd
from turnout.config import Settings, settings_from_dict
from turnout.config.settings import PolicyConfig
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.policies.registry import register_policy
from turnout.reports.whatif import WhatIfReport, whatif
from turnout.tracing import RunRecord, SQLiteStore, StepRecord
from turnout.types import Annotation, Decision, Message

SINCE = 1_767_571_200.0  # 2026-01-05 UTC
UNTIL = SINCE + 7 * 86400
T = SINCE + 3600

CONFIG: dict[str, Any] = {
    "providers": {"hosted": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "opus": {"provider": "hosted", "id": "o", "tier": "frontier",
                 "price": {"input": 5, "output": 25, "cached_input": 0.5}},
        "sonnet": {"provider": "hosted", "id": "s", "tier": "standard",
                   "price": {"input": 3, "output": 15}},
        "haiku": {"provider": "hosted", "id": "h", "tier": "efficient",
                  "price": {"input": 1, "output": 5, "cached_input": 0.1}},
    },
    "policies": {
        "cheap_impl": {"kind": "per_step", "default": "opus", "steps": {"implementer": "haiku"}},
        "by_rules": {
            "kind": "rules",
            "must_stay_frontier": [{"ambiguity": "high"}],
            "rules": [{"when": {"ambiguity": "low"}, "tier": "efficient"}],
            "default": "standard",
        },
        "casc": {"kind": "cascade", "models": ["haiku", "opus"]},
        "ens": {"kind": "ensemble", "models": ["haiku", "sonnet"]},
    },
}  # fmt: skip

PROMPT = (
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Plan a CSV export"},
)


def _llm(run_id: str, step_id: str, at: float, model: str, tier: str, tokens: tuple[int, int, int],
         cost: str, *, context: bool = True, annotation: dict[str, str] | None = None,
         status: str = "succeeded") -> StepRecord:  # fmt: skip
    inp, out, cached = tokens
    return StepRecord(
        run_id=run_id, step_id=step_id, kind="llm", status=status, started_at=at,  # type: ignore[arg-type]
        latency_s=1.0, model=model, tier=tier, input_tokens=inp, output_tokens=out,
        cached_input_tokens=cached, cost_usd=D(cost), calls=1,
        annotation=annotation if context else None, prompt=PROMPT if context else (),
    )  # fmt: skip


PLAN = (1000, 200, 0)
IMPL = (2000, 1000, 1000)
HIGH, LOW = {"ambiguity": "high"}, {"ambiguity": "low"}


@pytest.fixture
def settings() -> Settings:
    return settings_from_dict(CONFIG)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    runs = [
        RunRecord("ra", "csv-export", "rules", "succeeded", T, tags={"team": "data"}),
        RunRecord("rb", "csv-export", "rules", "succeeded", T + 1),
        RunRecord("rc", "csv-export", "rules", "succeeded", T + 3),
        RunRecord("rd", "support", "rules", "succeeded", T + 5),
    ]
    steps = [
        _llm("ra", "planner", T + 1, "opus", "frontier", PLAN, "0.01", annotation=HIGH),
        _llm("ra", "implementer", T + 2, "opus", "frontier", IMPL, "0.0305", annotation=LOW),
        _llm("rb", "planner", T + 2, "opus", "frontier", PLAN, "0.01", annotation=HIGH),
        _llm("rb", "implementer", T + 3, "opus", "frontier", IMPL, "0.0305", annotation=LOW),
        _llm("rc", "implementer", T + 4, "opus", "frontier", IMPL, "0.0305", context=False),
        _llm("rc", "planner", T + 4, "gpt-3", "frontier", PLAN, "0.02", annotation=HIGH),
        StepRecord("rc", "words", "code", "succeeded", T + 5, 0.01),
        _llm(
            "rd", "classify", T + 6, "haiku", "efficient", (100, 10, 0), "0.00015", annotation=LOW
        ),
    ]
    for i, (model, out, status) in enumerate(
        [("opus", 100, "succeeded")] * 3 + [("haiku", 50, "succeeded")] * 3
        + [("haiku", 0, "failed")] * 2
    ):  # fmt: skip
        run_id = f"bench-run-{i}"
        runs.append(RunRecord(run_id, "csv-export", model, "succeeded", SINCE - 9000 + i,
                              bench_id="bench-1"))  # fmt: skip
        steps.append(_llm(run_id, "implementer", SINCE - 9000 + i, model, "x", (2000, out, 0),
                          "0", status=status))  # fmt: skip
    with SQLiteStore(path) as store:
        store.write_batch(runs, steps, [])
    return path


def _whatif(db: Path, settings: Settings, policy: str, **kw: Any) -> WhatIfReport:
    with SQLiteStore(db) as store:
        return whatif(store, settings, policy, since=SINCE, until=UNTIL, **kw)


def test_per_step_policy_with_a_learned_output_ratio(db: Path, settings: Settings) -> None:
    r = _whatif(db, settings, "cheap_impl")
    assert r.steps == 6
    assert r.actual == D("0.11165")
    # implementers on haiku: 1000 x $1 + 1000 cached x $0.1 + 1000 x 0.5 out x $5 = $0.0036
    # classify goes to the default, opus: 100 x $5 + 10 x $25 = $0.00075
    assert r.projected == D("0.03155")
    assert r.tier_changes == (("frontier", "efficient", 3), ("efficient", "frontier", 1))
    assert (r.unchanged_tier, r.model_changes, r.without_context) == (2, 0, 1)
    assert [(s.workflow, s.step_id, s.steps, s.actual, s.projected) for s in r.by_step] == [
        ("csv-export", "implementer", 3, D("0.0915"), D("0.0108")),
        ("csv-export", "planner", 2, D("0.02"), D("0.02")),
        ("support", "classify", 1, D("0.00015"), D("0.00075")),
    ]
    assert r.by_step[0].models_before == ("opus",) and r.by_step[0].models_after == ("haiku",)
    assert [(t.tier, t.actual, t.projected) for t in r.by_tier] == [
        ("frontier", D("0.1115"), D("0.02075")),
        ("efficient", D("0.00015"), D("0.0108")),
    ]
    (ratio,) = r.ratios
    assert (ratio.workflow, ratio.step_id, ratio.from_model, ratio.to_model) == (
        "csv-export", "implementer", "opus", "haiku",
    )  # fmt: skip
    assert (ratio.ratio, ratio.from_samples, ratio.to_samples, ratio.applied) == (D("0.5"), 3, 3, 3)
    assert [(s.reason, s.steps, s.actual) for s in r.skipped] == [
        ("model 'gpt-3' is no longer in the pool", 1, D("0.02"))
    ]
    ex = r.examples[0]
    assert (ex.run_id, ex.step_id, ex.from_model, ex.to_models, ex.to_tier) == (
        "ra", "implementer", "opus", ("haiku",), "efficient",
    )  # fmt: skip
    assert (ex.actual, ex.projected) == (D("0.0305"), D("0.0036"))
    assert r.saving == pytest.approx(1 - 0.03155 / 0.11165)


def test_without_enough_bench_samples_output_tokens_stay(db: Path, settings: Settings) -> None:
    r = _whatif(db, settings, "cheap_impl", min_ratio_samples=4)
    assert r.ratios == ()
    assert r.by_step[0].projected == D("0.0183")  # 3 x (1000 + 100 + 1000 x 5) / 1e6


def test_pages_give_the_same_answer(db: Path, settings: Settings) -> None:
    assert _whatif(db, settings, "cheap_impl", page=2) == _whatif(db, settings, "cheap_impl")


def test_rules_see_the_recorded_annotation(db: Path, settings: Settings) -> None:
    r = _whatif(db, settings, "by_rules")
    # high -> frontier (planners stay); low -> efficient (two implementers move, classify
    # stays); the implementer recorded without annotation routes up: frontier, unchanged.
    assert r.tier_changes == (("frontier", "efficient", 2),)
    assert (r.unchanged_tier, r.without_context) == (4, 1)
    assert r.projected == D("0.02") + 2 * D("0.0036") + D("0.0305") + D("0.00015")


def test_cascades_are_priced_at_their_first_rung(db: Path, settings: Settings) -> None:
    r = _whatif(db, settings, "casc")
    assert r.cascades == 6
    planners = next(s for s in r.by_step if s.step_id == "planner")
    assert planners.projected == 2 * D("0.002")  # 1000 x $1 + 200 x $5
    assert planners.models_after == ("haiku+opus",)


def test_ensembles_are_priced_at_every_member(db: Path, settings: Settings) -> None:
    r = _whatif(db, settings, "ens")
    assert r.ensembles == 6
    classify = next(s for s in r.by_step if s.step_id == "classify")
    assert classify.projected == D("0.00015") + D("0.00045")  # haiku + sonnet (300 + 150)
    frontier_to = {(a, b): n for a, b, n in r.tier_changes}
    assert frontier_to == {("frontier", "efficient"): 5}


def test_workflow_filter(db: Path, settings: Settings) -> None:
    r = _whatif(db, settings, "cheap_impl", workflow="support")
    assert r.steps == 1 and r.actual == D("0.00015") and r.skipped == ()


class _Probe:
    """A policy that remembers what it was shown."""

    seen: ClassVar[list[RequestContext]] = []

    def __init__(self, name: str, options: object, settings: Settings) -> None:
        self.name = name

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        _Probe.seen.append(ctx)
        return Decision(("sonnet",), "probe", self.name)


def test_the_policy_sees_what_the_step_recorded(db: Path, settings: Settings) -> None:
    register_policy("test_probe", _Probe)
    probe = replace(settings, policies={"probe": PolicyConfig("probe", "test_probe")})
    _Probe.seen.clear()
    r = _whatif(db, probe, "probe")
    assert r.steps == 6
    first = _Probe.seen[0]
    assert first.step_id == "planner" and first.workflow == "csv-export"
    assert first.messages == (Message("system", "Be brief."), Message("user", "Plan a CSV export"))
    assert first.annotation == Annotation(ambiguity="high")
    assert dict(first.tags) == {"team": "data"}
    legacy = next(c for c in _Probe.seen if c.annotation is None)
    assert legacy.messages == () and legacy.step_id == "implementer"


def test_an_unknown_policy_is_a_config_error(db: Path, settings: Settings) -> None:
    from turnout.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        _whatif(db, settings, "nope")


def _cli(tmp_path: Path, db: Path, *args: str) -> str:
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    result = CliRunner().invoke(
        whatif_cmd,
        ["--policy", "cheap_impl", "-c", str(config), "--store", str(db), "--since", "2026-01-05",
         *args],
        env={"COLUMNS": "220"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_json_is_labelled_an_estimate(tmp_path: Path, db: Path) -> None:
    out = json.loads(_cli(tmp_path, db, "--json"))
    assert out["estimate"] is True
    assert (out["steps"], out["actual_usd"], out["projected_usd"]) == (6, 0.11165, 0.03155)
    assert out["output_ratios"][0]["ratio"] == 0.5
    assert out["skipped"][0]["steps"] == 1


def test_cli_text(tmp_path: Path, db: Path) -> None:
    text = _cli(tmp_path, db)
    assert text.startswith("ESTIMATE policy cheap_impl over 6 recorded LLM steps")
    assert "Actual $0.112 → projected $0.0316 (71.7% cheaper)  (estimate)" in text
    assert "Tier changes: frontier → efficient 3 · efficient → frontier 1; unchanged 2" in text
    assert "csv-export/implementer opus → haiku ×0.5 (bench samples: 3 opus, 3 haiku" in text
    assert "Skipped 1 steps ($0.02 actual, in neither total): model 'gpt-3'" in text
    assert "1 steps were recorded without their prompt or annotation" in text


def test_a_learned_policy_replays_recorded_traffic(db: Path, tmp_path: Path) -> None:
    from turnout.learn.outcomes import parse_outcome
    from turnout.learn.router_file import save_router
    from turnout.learn.train import train

    lines = [
        {"id": str(i), "prompt": text, "model": m, "passed": m == "opus" or "CSV" not in text}
        for i, text in enumerate(["Plan a CSV export", "Say hello", "Plan a CSV import"] * 6)
        for m in ("haiku", "opus")
    ]  # fmt: skip
    router = train([parse_outcome(x) for x in lines], models=["haiku", "opus"], cv=3,
                   embedding=None, c_grid=(1.0,)).router  # fmt: skip
    save_router(router, tmp_path / "r.json")
    raw = json.loads(json.dumps(CONFIG))
    raw["policies"]["learned"] = {"kind": "learned", "router": str(tmp_path / "r.json"),
                                  "threshold": 0.2}  # fmt: skip
    r = _whatif(db, settings_from_dict(raw), "learned")
    assert r.steps == 6 and len(r.skipped) == 1  # gpt-3 left the pool; nothing else skipped
    # every recorded prompt is "Plan a CSV export", which the router says needs opus: the
    # steps on opus stay, the one recorded on haiku moves up
    assert r.tier_changes == (("efficient", "frontier", 1),)
    assert any("learned: p_pass haiku" in e.reason for e in r.examples)
