"""Fixtures for the tracing tests: ``s``, sample records with every field set."""

from __future__ import annotations

from decimal import Decimal

import pytest

from turnout.tracing import AttemptRecord, RunRecord, StepRecord
from turnout.types import CheckResult

T0 = 1_750_000_000.123456


def run(run_id: str = "run-0001", **changes: object) -> RunRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "workflow": "support-ticket",
        "policy": "cascade",
        "status": "succeeded",
        "started_at": T0,
        "ended_at": T0 + 2.5,
        "inputs": {"ticket": "Where is my refund?", "n": 3, "nested": {"a": [1, 2]}},
        "tags": {"team": "support", "env": "test"},
        "bench_id": "bench-1",
        "variant": "B",
        "calls": 3,
        "latency_s": 2.5,
        "input_tokens": 1200,
        "output_tokens": 340,
        "cached_input_tokens": 512,
        "cost_usd": Decimal("0.000123456789"),
        "score": 0.875,
        "error": None,
    }
    fields.update(changes)
    return RunRecord(**fields)  # type: ignore[arg-type]


def step(run_id: str = "run-0001", step_id: str = "classify", **changes: object) -> StepRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "step_id": step_id,
        "kind": "llm",
        "status": "succeeded",
        "started_at": T0 + 0.01,
        "latency_s": 0.75,
        "model": "qwen-small",
        "tier": "efficient",
        "policy": "cascade",
        "reason": "annotation [scope: single-file] -> efficient",
        "ttft_s": 0.125,
        "input_tokens": 400,
        "output_tokens": 20,
        "cached_input_tokens": 100,
        "cost_usd": Decimal("0.00001875"),
        "calls": 2,
        "score": 1.0,
        "checks": (
            CheckResult("contains_any", True, "found 'refund'"),
            CheckResult("max_length", False, "too long: 300 > 200", required=False),
        ),
        "output": "refund",
        "error_class": None,
        "error": None,
        "override_by": "ana",
        "override_why": "refund wording needs the frontier model",
        "annotation": {"scope": "single-file", "domain": "docs", "ambiguity": "low"},
        "prompt": (
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": 'Is this a refund? {"a": 1}'},
        ),
    }
    fields.update(changes)
    return StepRecord(**fields)  # type: ignore[arg-type]


def attempt(
    run_id: str = "run-0001", step_id: str = "classify", attempt: int = 1, **changes: object
) -> AttemptRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "step_id": step_id,
        "attempt": attempt,
        "model": "qwen-small",
        "provider": "local",
        "tier": "efficient",
        "policy": "cascade",
        "reason": "cheapest first",
        "started_at": T0 + 0.01 * attempt,
        "latency_s": 0.3,
        "status": "error",
        "ttft_s": 0.05,
        "input_tokens": 200,
        "output_tokens": 10,
        "cached_input_tokens": 50,
        "cost_usd": Decimal("0.000000001875"),
        "error_class": "rate_limited",
        "error": "429 Too Many Requests",
        "cache": "semantic",
        "saved_usd": Decimal("0.00042"),
    }
    fields.update(changes)
    return AttemptRecord(**fields)  # type: ignore[arg-type]


class Samples:
    """Record factories: ``s.run()``, ``s.step()``, ``s.attempt()``, keyword overrides."""

    T0 = T0
    run = staticmethod(run)
    step = staticmethod(step)
    attempt = staticmethod(attempt)


@pytest.fixture
def s() -> type[Samples]:
    return Samples
