"""Router files: plain JSON data plus metadata, never a pickle.

A router file holds everything needed to score a request with numpy alone: the
models (cheapest first), the feature spec, and per model a logistic head whose
weights already include the training-time standardisation (``p = sigmoid(w . x
+ b)`` on the raw feature row). Metadata says how it was made: number of
outcomes and prompts, date, cross-validated figures, the turnout version. The
default ``threshold`` (and the ``target`` it was calibrated for) and a
``calibration`` sample of out-of-fold predictions let the ``learned`` policy
re-choose a threshold for another target without retraining.

``format_version`` is checked on load: a version this turnout cannot read is a
one-line :class:`~turnout.errors.ConfigError`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from turnout.errors import ConfigError
from turnout.learn.features import FeatureSpec

FORMAT = "turnout-router"
FORMAT_VERSION = 1
F64 = NDArray[np.float64]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Router:
    """Scores a feature row: the probability each model's answer passes."""

    models: tuple[str, ...]
    spec: FeatureSpec
    weights: F64
    """(models, features), standardisation folded in."""
    bias: F64
    threshold: float = 0.0
    """Default: a model is close enough when the strongest's p_pass exceeds its own by at
    most this much."""
    target: Mapping[str, float] | None = None
    calibration_p: F64 | None = None
    """Out-of-fold p_pass of a sample of training prompts, (prompts, models)."""
    calibration_passed: F64 | None = None
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def p_pass(self, row: F64) -> F64:
        z = self.weights @ row + self.bias
        out: F64 = 1.0 / (1.0 + np.exp(-z))
        return out

    def p_pass_many(self, rows: F64) -> F64:
        z = rows @ self.weights.T + self.bias
        out: F64 = 1.0 / (1.0 + np.exp(-z))
        return out

    def as_json(self) -> dict[str, Any]:
        def nums(a: F64) -> list[Any]:
            return np.round(a, 7).tolist()  # type: ignore[no-any-return]

        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **dict(self.meta),
            "models": list(self.models),
            "features": self.spec.as_json(),
            "threshold": self.threshold,
            "target": dict(self.target) if self.target else None,
            "heads": {
                m: {"bias": float(self.bias[i]), "weights": nums(self.weights[i])}
                for i, m in enumerate(self.models)
            },
        }
        if self.calibration_p is not None and self.calibration_passed is not None:
            out["calibration"] = {
                "p_pass": np.round(self.calibration_p, 4).tolist(),
                "passed": np.round(self.calibration_passed, 4).tolist(),
            }
        return out


_META = ("turnout_version", "created", "n_outcomes", "n_prompts", "cv", "trainer")


def save_router(router: Router, path: str | Path) -> None:
    """Write the router file whole (through a temporary file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(router.as_json(), separators=(",", ":")) + "\n", "utf-8")
    os.replace(tmp, path)


def _array(raw: Any, shape: tuple[int, ...], what: str) -> F64:
    a = np.asarray(raw, dtype=np.float64)
    if a.shape != shape or not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: expected {shape} finite numbers")
    return a


def router_from_json(raw: Any) -> Router:
    """A router from its JSON object; ValueError says what is wrong."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError("not a turnout router file")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"router format version {version} cannot be read by this turnout "
            f"(it reads version {FORMAT_VERSION}); retrain it with `turnout learn`"
        )
    models = tuple(str(m) for m in raw.get("models") or ())
    if len(models) < 2:
        raise ValueError("a router needs at least two models")
    spec = FeatureSpec.from_json(raw.get("features") or {})
    heads = raw.get("heads") or {}
    missing = [m for m in models if m not in heads]
    if missing:
        raise ValueError(f"no head for model {missing[0]!r}")
    weights = np.vstack([_array(heads[m]["weights"], (spec.width,), m) for m in models])
    bias = np.array([float(heads[m]["bias"]) for m in models])
    cal_p = cal_passed = None
    cal = raw.get("calibration")
    if cal:
        k = len(cal.get("p_pass") or ())
        cal_p = _array(cal["p_pass"], (k, len(models)), "calibration.p_pass")
        cal_passed = _array(cal["passed"], (k, len(models)), "calibration.passed")
    threshold = float(raw.get("threshold", 0.0))
    if not math.isfinite(threshold):
        raise ValueError("threshold must be a number")
    target = raw.get("target")
    return Router(
        models=models,
        spec=spec,
        weights=weights,
        bias=bias,
        threshold=threshold,
        target={str(k): float(v) for k, v in target.items()} if target else None,
        calibration_p=cal_p,
        calibration_passed=cal_passed,
        meta=MappingProxyType({k: raw[k] for k in _META if k in raw}),
    )


def load_router(path: str | Path) -> Router:
    path = Path(path)
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read router file ({exc})", file=str(path)) from None
    except ValueError as exc:
        raise ConfigError(f"not JSON ({exc})", file=str(path)) from None
    try:
        return router_from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(exc), file=str(path)) from None
