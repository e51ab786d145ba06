"""A router applied to outcome or prompt files: scores, decisions, the evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from turnout.errors import ConfigError
from turnout.learn.calibrate import route_many
from turnout.learn.evaluate import Evaluation, evaluate
from turnout.learn.features import Featurizer, Item
from turnout.learn.outcomes import Outcome
from turnout.learn.router_file import Router
from turnout.learn.train import pivot

F64 = NDArray[np.float64]


def p_pass(router: Router, items: Sequence[Item], featurizer: Featurizer | None = None) -> F64:
    """(items, router models) pass probabilities."""
    feat = featurizer or Featurizer(router.spec, threads=None)
    return router.p_pass_many(feat.matrix(items))


def decisions(router: Router, p: F64, threshold: float | None = None) -> list[str]:
    t = router.threshold if threshold is None else threshold
    return [router.models[i] for i in route_many(p, t)]


def evaluate_router(
    router: Router,
    outcomes: Sequence[Outcome],
    *,
    cheap: str | None = None,
    strong: str | None = None,
    threshold: float | None = None,
    featurizer: Featurizer | None = None,
) -> Evaluation:
    """The router's curve for ``cheap`` vs ``strong`` (default: its cheapest and strongest)
    on the prompts both models answered."""
    pair = (cheap or router.models[0], strong or router.models[-1])
    for m in pair:
        if m not in router.models:
            raise ConfigError(
                f"model {m!r} is not scored by the router ({', '.join(router.models)})"
            )
    table = pivot(outcomes, list(pair))
    both = ~np.isnan(table.passed).any(axis=1)
    if not both.any():
        raise ConfigError(f"no prompt in the outcomes was answered by both {pair[0]} and {pair[1]}")
    items = [table.items[i] for i in np.flatnonzero(both)]
    p = p_pass(router, items, featurizer)
    ci, si = router.models.index(pair[0]), router.models.index(pair[1])
    scores = p[:, si] - p[:, ci]
    y = table.passed[both]
    cost = table.cost[both]
    costs = None if np.isnan(cost).any() else (cost[:, 0], cost[:, 1])
    return evaluate(
        scores,
        y[:, 0],
        y[:, 1],
        names=pair,
        threshold=router.threshold if threshold is None else threshold,
        costs=costs,
    )
