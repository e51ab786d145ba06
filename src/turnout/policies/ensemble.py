"""``kind: ensemble``: several models at once, one answer chosen.

For classification-like steps (every answer short) a majority vote, ties going
to the higher tier; for generation, the first answer that passes the step's
checks, or (``mode: judge``) the answer a judge model picks. The total cost of
every member (and the judge) is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.types import Decision, EnsembleSpec


class EnsemblePolicy:
    def __init__(self, name: str, models: tuple[str, ...], spec: EnsembleSpec) -> None:
        self.name = name
        self.models = models
        self.spec = spec
        judge = f", judge {spec.judge}" if spec.judge else ""
        self._reason = f"ensemble: {', '.join(models)} in parallel ({spec.mode}{judge})"

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> EnsemblePolicy:
        spec = EnsembleSpec(mode=options.get("mode", "auto"), judge=options.get("judge"))
        return cls(name, tuple(options["models"]), spec)

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        models = tuple(m for m in self.models if health.healthy(m)) or self.models
        return Decision(models, self._reason, self.name, strategy="ensemble", ensemble=self.spec)
