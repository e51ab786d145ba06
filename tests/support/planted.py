"""A planted-signal outcome set and a pool to score the heuristics on it."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.execution.cache.embedding import semantic_available
from turnout.learn.datasets import planted_outcomes
from turnout.learn.outcomes import Outcome, parse_outcome

needs_minilm = pytest.mark.skipif(
    not semantic_available(), reason="needs the MiniLM model package (make setup)"
)
PLANTED_POOL: dict[str, Any] = {
    "providers": {"hosted": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "cheap": {"provider": "hosted", "id": "c", "tier": "efficient",
                  "price": {"input": 0.1, "output": 0.4}},
        "strong": {"provider": "hosted", "id": "s", "tier": "frontier",
                   "price": {"input": 5.0, "output": 25.0}},
    },
    "policies": {
        "complexity": {"kind": "complexity"},
        "task_type": {"kind": "task_type", "default": {"tier": "frontier"},
                      "types": {t: {"tier": "efficient"} for t in
                                ("extraction", "classification", "translation")}},
    },
}  # fmt: skip


def planted(n: int, seed: int, animals: float = 0.9) -> list[Outcome]:
    """Outcomes where the cheap model passes exactly on prompts about animals."""
    return [parse_outcome(line) for line in planted_outcomes(n, seed=seed, animals=animals)]
