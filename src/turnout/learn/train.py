"""Training a router: per model, the probability that its answer passes.

Each model gets a logistic regression (scikit-learn, lbfgs) on the standardised
feature rows of the prompts it answered. The regularisation strength ``C`` is
chosen by ``cv``-fold cross-validation over prompts, by the quantity the router
is for: the APGR of ``p_pass(strongest) - p_pass(cheapest)`` on the held-out
folds (ties broken by log loss). The out-of-fold predictions at the chosen
``C`` give the router file's cross-validated figures and calibration sample.

Why logistic regression and not LightGBM (``benchmarks/learned_training.py``, same
standardised rows, 5-fold CV, two models): on the local outcome set (228 prompts, smol
and qwen on graded tasks) logistic regression reached CV APGR 0.777 in 3.5 s of fitting,
LightGBM (200 trees, 15 leaves) 0.791 in 50.7 s; on 5,000 simulated prompts logistic
regression fitted in 18.7 s and LightGBM had not finished after four minutes. A difference
of 0.014 on 228 prompts is within the noise of the folds; fourteen times the time is not.
And a linear head exports as plain weights, so scoring needs numpy alone (no library
state, no pickle).

Scores in (0, 1) are learned as weighted pass/fail pairs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from turnout.errors import ConfigError
from turnout.learn.calibrate import threshold_for
from turnout.learn.evaluate import evaluate
from turnout.learn.features import STATIC, FeatureSpec, Featurizer, Item, categorical_fields
from turnout.learn.outcomes import Outcome
from turnout.learn.router_file import Router

F64 = NDArray[np.float64]
C_GRID = (0.003, 0.01, 0.03, 0.1)
"""Tried in ascending order as one warm-started path per fold and model."""
CALIBRATION_MAX = 2000
INSTALL_HINT = "pip install 'turnout[learn]'"


@dataclass(frozen=True, slots=True)
class Table:
    """Outcomes pivoted: one row per prompt, one column per model (NaN: not answered)."""

    keys: tuple[str, ...]
    items: tuple[Item, ...]
    models: tuple[str, ...]
    passed: F64
    cost: F64
    """Mean cost_usd per (prompt, model); NaN when unknown."""


def pivot(outcomes: Sequence[Outcome], models: Sequence[str]) -> Table:
    index: dict[str, int] = {}
    items: list[Item] = []
    for o in outcomes:
        if o.key not in index:
            index[o.key] = len(items)
            items.append(Item.of_outcome(o))
    col = {m: j for j, m in enumerate(models)}
    passed = np.full((len(items), len(models)), np.nan)
    cost = np.full((len(items), len(models)), np.nan)
    for o in outcomes:
        j = col.get(o.model)
        if j is None:
            continue
        i = index[o.key]
        passed[i, j] = o.passed  # a later line for the same pair wins
        if o.cost_usd is not None:
            cost[i, j] = o.cost_usd
    return Table(tuple(index), tuple(items), tuple(models), passed, cost)


def order_models(
    outcomes: Sequence[Outcome], prices: Mapping[str, float] | None = None
) -> list[str]:
    """The outcomes' models, cheapest first: by ``prices`` when given, else by mean
    ``cost_usd``, else by pass rate (the weakest first)."""
    names = sorted({o.model for o in outcomes})
    if prices and all(m in prices for m in names):
        return sorted(names, key=lambda m: (prices[m], m))
    by: dict[str, list[float]] = {m: [] for m in names}
    rate: dict[str, list[float]] = {m: [] for m in names}
    for o in outcomes:
        rate[o.model].append(o.passed)
        if o.cost_usd is not None:
            by[o.model].append(o.cost_usd)
    if all(by[m] for m in names):
        return sorted(names, key=lambda m: (sum(by[m]) / len(by[m]), m))
    return sorted(names, key=lambda m: (sum(rate[m]) / len(rate[m]), m))


def _sklearn() -> Any:
    try:
        from sklearn import linear_model
    except ImportError:
        raise ConfigError(f"training a router needs scikit-learn: {INSTALL_HINT}") from None
    return linear_model


def _weighted(x: F64, y: F64) -> tuple[F64, NDArray[np.bool_], F64]:
    """Fractional scores as two weighted rows (pass with weight s, fail with 1 - s)."""
    frac = (y > 0) & (y < 1)
    if not frac.any():
        return x, y >= 0.5, np.ones(len(y))
    xx = np.vstack([x, x[frac]])
    w = np.r_[np.where(frac, y, 1.0), 1.0 - y[frac]]
    yy = np.r_[np.where(frac, 1.0, y), np.zeros(int(frac.sum()))]
    return xx, yy >= 0.5, w


def _fit_path(x: F64, y: F64, c_grid: Sequence[float], tol: float = 1e-3) -> list[Any]:
    """Logistic heads for each C of an ascending grid, each fit starting from the last
    one's solution (a regularisation path: the later fits take few iterations)."""
    xx, yy, w = _weighted(x, y)
    if len(np.unique(yy)) < 2:
        return [_Constant(float(np.average(yy, weights=w)))] * len(c_grid)
    model = _sklearn().LogisticRegression(max_iter=1000, tol=tol, warm_start=True)
    heads = []
    for c in c_grid:
        model.set_params(C=c)
        model.fit(xx, yy, sample_weight=w)
        heads.append(_Frozen(model.coef_.copy(), model.intercept_.copy()))
    return heads


def _fit(x: F64, y: F64, c: float) -> Any:
    """The final head, fitted to a tighter tolerance than the cross-validation's."""
    return _fit_path(x, y, [c], tol=1e-4)[0]


class _Frozen:
    """A fitted head's weights (the path's model object moves on to the next C)."""

    def __init__(self, coef: F64, intercept: F64) -> None:
        self.coef_ = coef
        self.intercept_ = intercept

    def predict_proba(self, x: F64) -> F64:
        p = 1.0 / (1.0 + np.exp(-(x @ self.coef_[0] + self.intercept_[0])))
        return np.column_stack([1 - p, p])


class _Constant:
    """A head for a model that always (or never) passed in a fold."""

    def __init__(self, p: float) -> None:
        p = min(max(p, 1e-3), 1 - 1e-3)
        self.coef_ = np.zeros((1, 0))
        self.intercept_ = np.array([np.log(p / (1 - p))])
        self.p = p

    def predict_proba(self, x: F64) -> F64:
        return np.column_stack([np.full(len(x), 1 - self.p), np.full(len(x), self.p)])


def _folds(n: int, k: int, seed: int) -> list[NDArray[np.intp]]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::k] for i in range(k)]


def _log_loss(p: F64, y: F64) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _oof(x: F64, y: F64, folds: list[NDArray[np.intp]], c_grid: Sequence[float]) -> list[F64]:
    """Out-of-fold p_pass of each model for each C (NaN where a label is missing). The
    (fold, model) paths run on two threads: the solver's numpy and BLAS work releases the
    GIL."""
    from turnout.providers.local import available_cores

    out = [np.full(y.shape, np.nan) for _ in c_grid]

    def path(test: NDArray[np.intp], j: int) -> None:
        train = np.setdiff1d(np.arange(len(x)), test)
        tr = train[~np.isnan(y[train, j])]
        if len(tr) == 0:
            return
        for k, head in enumerate(_fit_path(x[tr], y[tr, j], c_grid)):
            out[k][test, j] = head.predict_proba(x[test])[:, 1]

    with ThreadPoolExecutor(max_workers=min(2, available_cores())) as pool:
        jobs = [pool.submit(path, test, j) for test in folds for j in range(y.shape[1])]
        for job in jobs:
            job.result()
    return out


def _score(p: F64, y: F64) -> tuple[float, float]:
    """(CV APGR of cheapest vs strongest, mean log loss); APGR -1 when undefined."""
    both = ~np.isnan(y[:, 0]) & ~np.isnan(y[:, -1])
    ev = evaluate(p[both, -1] - p[both, 0], y[both, 0], y[both, -1])
    losses = [
        _log_loss(p[~np.isnan(y[:, j]), j], y[~np.isnan(y[:, j]), j]) for j in range(y.shape[1])
    ]
    return (ev.apgr if ev.apgr is not None else -1.0), float(np.mean(losses))


@dataclass(frozen=True, slots=True)
class Trained:
    router: Router
    seconds: float
    c: float
    by_c: tuple[tuple[float, float, float], ...]
    """(C, CV APGR, CV log loss) for each C tried."""


def train(
    outcomes: Sequence[Outcome],
    *,
    models: Sequence[str] | None = None,
    cv: int = 5,
    embed_tokens: int = 256,
    embedding: str | None = STATIC,
    target: Mapping[str, object] | None = None,
    threshold: float | None = None,
    featurizer: Featurizer | None = None,
    c_grid: Sequence[float] = C_GRID,
    seed: int = 0,
    version: str = "",
) -> Trained:
    """Fit a router on ``outcomes`` for ``models`` (cheapest first)."""
    began = time.perf_counter()
    names = list(models) if models else order_models(outcomes)
    if len(names) < 2:
        raise ConfigError("outcomes: a router needs outcomes of at least two models")
    unknown = sorted({o.model for o in outcomes} - set(names))
    if models and unknown:
        raise ConfigError(f"outcomes: model {unknown[0]!r} is not one of {', '.join(names)}")
    table = pivot(outcomes, names)
    for j, m in enumerate(names):
        if np.isnan(table.passed[:, j]).all():
            raise ConfigError(f"outcomes: no outcome for model {m!r}")
    n = len(table.items)
    if n < 2 * max(cv, 2):
        raise ConfigError(f"outcomes: {n} prompts is too few to train with --cv {cv}")
    spec = FeatureSpec(
        embedding=embedding,
        embed_tokens=embed_tokens,
        categorical=categorical_fields(table.items),
    )
    feat = featurizer or Featurizer(spec, threads=None)
    if featurizer is not None and featurizer.spec != spec:
        feat = Featurizer(spec, embedder=featurizer._embedder, threads=None)
    x = feat.matrix(table.items)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = (x - mean) / scale
    y = table.passed
    folds = _folds(n, cv, seed)
    by_c: list[tuple[float, float, float]] = []
    best: tuple[float, float, float, F64] | None = None
    grid = sorted(c_grid)
    for c, p in zip(grid, _oof(xs, y, folds, grid), strict=True):
        apgr, loss = _score(p, y)
        by_c.append((c, apgr, loss))
        if best is None or (apgr, -loss) > (best[1], -best[2]):
            best = (c, apgr, loss, p)
    assert best is not None
    c, _, _, oof = best
    weights = np.zeros((len(names), x.shape[1]))
    bias = np.zeros(len(names))
    for j in range(len(names)):
        rows = ~np.isnan(y[:, j])
        head = _fit(xs[rows], y[rows, j], c)
        coef = head.coef_[0] if head.coef_.shape[1] else np.zeros(x.shape[1])
        weights[j] = coef / scale
        bias[j] = float(head.intercept_[0]) - float(coef @ (mean / scale))
    complete = ~np.isnan(y).any(axis=1)
    cal_p, cal_y = oof[complete], y[complete]
    if len(cal_p) > CALIBRATION_MAX:
        pick = np.random.default_rng(seed).choice(len(cal_p), CALIBRATION_MAX, replace=False)
        cal_p, cal_y = cal_p[np.sort(pick)], cal_y[np.sort(pick)]
    chosen = 0.0 if threshold is None else float(threshold)
    if threshold is None and target and len(cal_p):
        chosen = threshold_for(target, cal_p, cal_y)
    both = ~np.isnan(y[:, 0]) & ~np.isnan(y[:, -1])
    ev = evaluate(
        oof[both, -1] - oof[both, 0], y[both, 0], y[both, -1],
        names=(names[0], names[-1]), threshold=chosen,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    meta = {
        "turnout_version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_outcomes": len(outcomes),
        "n_prompts": n,
        "trainer": {"kind": "logistic_regression", "library": "scikit-learn", "C": c,
                    "seconds": round(seconds, 2)},
        "cv": {"folds": cv, "apgr": ev.apgr, "cpt50": ev.cpt50, "cpt80": ev.cpt80,
               "pass_rate": {names[0]: ev.cheap_rate, names[-1]: ev.strong_rate,
                             "oracle": ev.oracle_rate},
               "strong_share": ev.strong_share, "quality": ev.quality,
               "by_c": [{"C": cc, "apgr": a, "log_loss": ll} for cc, a, ll in by_c]},
    }  # fmt: skip
    router = Router(
        models=tuple(names),
        spec=spec,
        weights=weights,
        bias=bias,
        threshold=chosen,
        target=dict(target) if target else None,  # type: ignore[arg-type]
        calibration_p=cal_p,
        calibration_passed=cal_y,
        meta=meta,
    )
    return Trained(router, seconds, c, tuple(by_c))
