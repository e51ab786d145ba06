"""``kind: cascade``: start cheap, escalate when the answer is not good enough.

The executor asks each model in turn; an answer is accepted when it passes the
step's own checks and the policy's answer-quality checks (minimum length, no
refusal or "I don't know", a code block where code was asked for). Every rung
is an attempt in the trace and its cost is counted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.types import DEFAULT_REFUSALS, Decision, QualitySpec


class CascadePolicy:
    def __init__(self, name: str, models: tuple[str, ...], quality: QualitySpec) -> None:
        self.name = name
        self.models = models
        self.quality = quality
        self._reason = f"cascade: {' -> '.join(models)} (escalate when an answer fails its checks)"

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> CascadePolicy:
        q = options.get("quality") or {}
        phrases = q.get("refusal_phrases")
        quality = QualitySpec(
            min_chars=int(q.get("min_chars", 0)),
            refusal_phrases=tuple(phrases) if phrases is not None else DEFAULT_REFUSALS,
            code_block_when_asked=bool(q.get("code_block_when_asked", True)),
        )
        return cls(name, tuple(options["models"]), quality)

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        models = tuple(m for m in self.models if health.healthy(m)) or self.models
        reason = self._reason
        if len(models) != len(self.models):
            skipped = ", ".join(m for m in self.models if m not in models)
            reason = f"cascade: {' -> '.join(models)} ({skipped} unhealthy, skipped)"
        return Decision(models, reason, self.name, strategy="cascade", quality=self.quality)
