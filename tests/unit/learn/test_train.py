"""Training on a planted signal: the learned router finds it, the heuristics do not."""

from __future__ import annotations

import numpy as np
import pytest

from support.planted import PLANTED_POOL, needs_minilm, planted
from turnout.config import settings_from_dict
from turnout.errors import ConfigError
from turnout.learn.evaluate import evaluate
from turnout.learn.outcomes import parse_outcome
from turnout.learn.scoring import evaluate_router
from turnout.learn.train import Trained, order_models, pivot, train
from turnout.policies import RequestContext, build_policy
from turnout.types import Message


@needs_minilm
def test_the_learned_router_finds_the_planted_signal(planted_router: Trained) -> None:
    router = planted_router.router
    assert router.models == ("cheap", "strong")
    assert router.spec.categorical == ()  # prompt only: no step, workflow or tags
    held_out = planted(200, seed=2)
    ev = evaluate_router(router, held_out)
    assert ev.apgr is not None and ev.apgr >= 0.9
    assert ev.oracle_apgr is not None and ev.apgr >= ev.oracle_apgr - 0.02
    cv = router.meta["cv"]
    assert cv["apgr"] >= 0.85 and cv["folds"] == 4
    assert router.meta["n_prompts"] == 240 and router.meta["n_outcomes"] == 480


@needs_minilm
@pytest.mark.parametrize("policy", ["complexity", "task_type"])
def test_the_heuristics_do_not_find_it(policy: str) -> None:
    settings = settings_from_dict(PLANTED_POOL)
    p = build_policy(policy, settings)
    table = pivot(planted(200, seed=2), ["cheap", "strong"])
    scores = [
        1.0 if p.decide(RequestContext(messages=(Message("user", it.text),))).model == "strong"
        else 0.0
        for it in table.items
    ]  # fmt: skip
    ev = evaluate(scores, table.passed[:, 0], table.passed[:, 1])
    assert ev.apgr is not None and ev.apgr < 0.7


def test_a_random_router_on_the_same_data_is_about_a_half() -> None:
    table = pivot(planted(2000, seed=3), ["cheap", "strong"])
    rng = np.random.default_rng(0)
    ev = evaluate(rng.random(len(table.items)), table.passed[:, 0], table.passed[:, 1])
    assert ev.apgr == pytest.approx(0.5, abs=0.04)


def test_text_signals_and_categoricals_without_the_embedding() -> None:
    lines = []
    for i in range(60):
        step = "plan" if i % 2 else "verify"
        lines += [
            {"id": str(i), "prompt": f"task {i}", "model": "smol", "passed": step == "verify",
             "step": step, "tags": {"context": "ci" if i % 3 else "local"}},
            {"id": str(i), "prompt": f"task {i}", "model": "qwen", "passed": 0.9},
        ]  # fmt: skip
    trained = train([parse_outcome(x) for x in lines], models=["smol", "qwen"], cv=3,
                    embedding=None, c_grid=(1.0,))  # fmt: skip
    spec = trained.router.spec
    assert dict(spec.categorical) == {"step": ("plan", "verify"), "tag.context": ("ci", "local")}
    assert trained.router.meta["cv"]["apgr"] == pytest.approx(
        0.8125
    )  # the oracle's: the step says it all


def test_models_are_ordered_by_price_then_cost_then_pass_rate() -> None:
    out = [parse_outcome({"prompt": "x", "model": m, "passed": ok, "cost_usd": c})
           for m, ok, c in (("b", True, 0.1), ("a", False, 1.0))]  # fmt: skip
    assert order_models(out) == ["b", "a"]
    assert order_models(out, {"a": 1.0, "b": 2.0}) == ["a", "b"]
    no_cost = [parse_outcome({"prompt": "x", "model": m, "passed": ok})
               for m, ok in (("b", True), ("a", False))]  # fmt: skip
    assert order_models(no_cost) == ["a", "b"]


@pytest.mark.parametrize(
    ("lines", "models", "message"),
    [
        ([{"prompt": "x", "model": "a", "passed": True}], None, "at least two models"),
        ([{"prompt": "x", "model": "a", "passed": True}], ["a", "b"], "no outcome for model 'b'"),
        ([{"prompt": "x", "model": "a", "passed": True},
          {"prompt": "x", "model": "b", "passed": True}], ["a", "b"], "too few to train"),
        ([{"prompt": "x", "model": "c", "passed": True}], ["a", "b"], "model 'c' is not one of"),
    ],
)  # fmt: skip
def test_training_refuses_what_it_cannot_learn(
    lines: list[dict[str, object]], models: list[str] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        train([parse_outcome(x) for x in lines], models=models, embedding=None)


def test_the_local_sample_trains_and_evaluates_from_text_alone() -> None:
    """The shipped sample (smol and qwen on graded tasks, benchmarks/make_outcomes.py)."""
    from pathlib import Path

    from turnout.learn.outcomes import read_outcomes

    outcomes = read_outcomes(Path(__file__).parents[2] / "fixtures" / "local_outcomes.jsonl")
    assert {o.model for o in outcomes} == {"smol", "qwen"}
    assert {o.key.split("-")[0] for o in outcomes} == {
        "add",
        "change",
        "sentiment",
        "email",
        "code",
    }
    trained = train(outcomes, cv=3, embedding=None, c_grid=(0.1,))
    assert trained.router.models == ("smol", "qwen")  # ordered by cost_usd
    assert trained.router.meta["cv"]["apgr"] > 0.6
