"""Training time on 10,000 outcomes, and scikit-learn's logistic regression vs LightGBM.

Makes ``--prompts`` distinct prompts (the graded task generator's word problems,
labels, extraction and code prompts) answered by two simulated models: the cheap
one passes the easy kinds often and the hard ones rarely (the chance also falls
with the numbers' size), the strong one passes most. Then:

1. ``train()`` end to end (embedding every prompt, text signals, 5-fold CV over
   the C grid, the final fit): the time to beat is 60 s on 2 cores for 10,000
   outcomes;
2. on the same standardised feature rows, 5-fold CV APGR and fit time of
   logistic regression (the C ``train`` chose) and of LightGBM (when installed),
   which is how the trainer's model was chosen.

    .venv/bin/python benchmarks/learned_training.py [--prompts 5000] [--outcomes FILE]

``--outcomes`` runs step 2 on a real outcome set instead (e.g. one made by
``benchmarks/make_outcomes.py``).
"""

from __future__ import annotations

import argparse
import random
import re
import time

import numpy as np

from turnout.learn.evaluate import evaluate
from turnout.learn.features import Featurizer
from turnout.learn.outcomes import Outcome, read_outcomes
from turnout.learn.train import _folds, order_models, pivot, train

_EASY = {"add": 0.85, "sentiment": 0.8, "email": 0.75, "change": 0.3, "code": 0.2}


def simulated(n: int, seed: int = 0) -> list[Outcome]:
    from turnout.learn.datasets import tasks

    rng = random.Random(seed)
    out = []
    for t in tasks(n, seed=seed):
        numbers = [int(x) for x in re.findall(r"\d+", t.prompt)] or [0]
        p_cheap = _EASY[t.kind] * (0.7 if max(numbers) > 30 else 1.0)
        cheap = rng.random() < p_cheap
        strong = cheap or rng.random() < 0.8
        prompt = f"{t.prompt} (#{t.id})"  # every prompt distinct, as in real traffic
        out.append(Outcome(prompt, "cheap", float(cheap), id=t.id))
        out.append(Outcome(prompt, "strong", float(strong), id=t.id))
    return out


def cv_compare(outcomes: list[Outcome], c: float, folds: int = 5) -> None:
    from sklearn.linear_model import LogisticRegression

    models = order_models(outcomes)[:: len({o.model for o in outcomes}) - 1][:2]
    table = pivot(outcomes, models)
    both = ~np.isnan(table.passed).any(axis=1)
    items = [table.items[i] for i in np.flatnonzero(both)]
    y = table.passed[both] >= 0.5
    began = time.perf_counter()
    x = Featurizer(train_spec(), threads=None).matrix(items)
    print(f"features: {x.shape[0]} prompts x {x.shape[1]} in {time.perf_counter() - began:.1f} s")
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)
    learners = {"logistic regression (scikit-learn)": lambda: LogisticRegression(C=c, max_iter=500)}
    try:
        import lightgbm

        learners["LightGBM (200 trees, 15 leaves)"] = lambda: lightgbm.LGBMClassifier(
            n_estimators=200, num_leaves=15, learning_rate=0.05, verbose=-1
        )
    except ImportError:
        print("LightGBM is not installed: pip install lightgbm to compare")
    for name, make in learners.items():
        p = np.zeros(y.shape)
        began = time.perf_counter()
        for test in _folds(len(x), folds, 0):
            train_rows = np.setdiff1d(np.arange(len(x)), test)
            for j in range(2):
                if len(np.unique(y[train_rows, j])) < 2:
                    p[test, j] = float(y[train_rows, j][0])
                    continue
                p[test, j] = (
                    make().fit(x[train_rows], y[train_rows, j]).predict_proba(x[test])[:, 1]
                )
        spent = time.perf_counter() - began
        ev = evaluate(p[:, 1] - p[:, 0], y[:, 0].astype(float), y[:, 1].astype(float))
        print(f"{name:<36} CV APGR {ev.apgr:.3f}  CPT(50%) {ev.cpt50:.3f}  "
              f"CPT(80%) {ev.cpt80:.3f}  fit {spent:.1f} s ({folds} folds x 2 models)")  # fmt: skip


def train_spec():  # type: ignore[no-untyped-def]
    from turnout.learn.features import FeatureSpec

    return FeatureSpec()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--outcomes", help="compare the learners on this outcome set")
    args = parser.parse_args()
    if args.outcomes:
        cv_compare(read_outcomes(args.outcomes), c=0.1)
        return
    outcomes = simulated(args.prompts)
    began = time.perf_counter()
    trained = train(outcomes, models=["cheap", "strong"], cv=5)
    spent = time.perf_counter() - began
    cv = trained.router.meta["cv"]
    print(f"train(): {len(outcomes)} outcomes ({args.prompts} prompts) in {spent:.1f} s "
          f"(target < 60 s); C={trained.c}; CV APGR {cv['apgr']:.3f}")  # fmt: skip
    for c, apgr, loss in trained.by_c:
        print(f"  C={c:<6} CV APGR {apgr:.3f}  log loss {loss:.3f}")
    cv_compare(outcomes, trained.c)


if __name__ == "__main__":
    main()
