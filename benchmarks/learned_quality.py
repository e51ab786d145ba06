"""Held-out quality of a learned router against the heuristics and a random router.

Splits an outcome set by prompt (``--test-share`` held out, fixed seed), trains
a router on the rest (``train()`` defaults, 5-fold CV), and prints APGR,
CPT(50%) and CPT(80%) on the held-out prompts for:

* the learned router (score: p_pass(strong) - p_pass(cheap));
* ``complexity`` and ``task_type`` with their default keywords, scored by their
  decision (1 when they pick the strong model, else 0): low complexity, and
  extraction / classification / translation, go to the cheap model;
* a random router (the mean of 200 random scorings);
* the oracle (the best any scorer can do on that data).

    .venv/bin/python benchmarks/learned_quality.py OUTCOMES.jsonl [--models smol,qwen]

Outcome sets come from ``benchmarks/make_outcomes.py`` (the two local models on
graded tasks); ``tests/fixtures/local_outcomes.jsonl`` is a small sample.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from turnout.config import settings_from_dict
from turnout.learn.evaluate import Evaluation, evaluate
from turnout.learn.outcomes import read_outcomes
from turnout.learn.scoring import evaluate_router
from turnout.learn.train import order_models, pivot, train
from turnout.policies.base import RequestContext
from turnout.policies.registry import build_policy
from turnout.types import Message


def _pool(cheap: str, strong: str) -> dict[str, Any]:
    cheap_types = ("extraction", "classification", "translation")
    return {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {
            cheap: {"provider": "p", "id": cheap, "tier": "efficient",
                    "price": {"input": 1, "output": 5}},
            strong: {"provider": "p", "id": strong, "tier": "frontier",
                     "price": {"input": 5, "output": 25}},
        },
        "policies": {
            "complexity": {"kind": "complexity"},
            "task_type": {"kind": "task_type", "default": {"tier": "frontier"},
                          "types": {t: {"tier": "efficient"} for t in cheap_types}},
        },
    }  # fmt: skip


def _row(name: str, ev: Evaluation) -> str:
    def f(v: float | None) -> str:
        return "  n/a" if v is None else f"{v:.3f}"

    return f"{name:<22} APGR {f(ev.apgr)}  CPT(50%) {f(ev.cpt50)}  CPT(80%) {f(ev.cpt80)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outcomes")
    parser.add_argument("--models", help="cheap,strong [default: by cost_usd]")
    parser.add_argument("--test-share", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    outcomes = read_outcomes(args.outcomes)
    cheap, strong = args.models.split(",") if args.models else order_models(outcomes)[:2]
    keys = sorted({o.key for o in outcomes})
    rng = np.random.default_rng(args.seed)
    held = set(rng.choice(keys, int(len(keys) * args.test_share), replace=False).tolist())
    train_set = [o for o in outcomes if o.key not in held]
    test_set = [o for o in outcomes if o.key in held]
    trained = train(train_set, models=[cheap, strong], cv=5)
    ev = evaluate_router(trained.router, test_set)
    print(f"{len(keys) - len(held)} prompts to train, {ev.n} held out; "
          f"pass rate {cheap} {ev.cheap_rate:.1%}, {strong} {ev.strong_rate:.1%}, "
          f"oracle {ev.oracle_rate:.1%}; trained in {trained.seconds:.1f} s")  # fmt: skip
    print(_row("learned", ev))
    table = pivot(test_set, [cheap, strong])
    both = ~np.isnan(table.passed).any(axis=1)
    y = table.passed[both]
    items = [table.items[i] for i in np.flatnonzero(both)]
    settings = settings_from_dict(_pool(cheap, strong))
    for name in ("complexity", "task_type"):
        policy = build_policy(name, settings)
        scores = [
            float(policy.decide(RequestContext(messages=(Message("user", it.text),))).model
                  == strong)
            for it in items
        ]  # fmt: skip
        print(_row(f"{name} (decision)", evaluate(scores, y[:, 0], y[:, 1])))
    randoms = [evaluate(rng.random(len(y)), y[:, 0], y[:, 1]).apgr or 0.0 for _ in range(200)]
    print(f"{'random (mean of 200)':<22} APGR {np.mean(randoms):.3f}")
    print(f"{'oracle':<22} APGR {ev.oracle_apgr:.3f}")


if __name__ == "__main__":
    main()
