"""``kind: per_step``: a default model and a step -> model map."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.types import Decision


class PerStepPolicy:
    def __init__(self, name: str, default: str, steps: Mapping[str, str]) -> None:
        self.name = name
        self.default = default
        self.steps = MappingProxyType(dict(steps))

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> PerStepPolicy:
        return cls(name, str(options["default"]), dict(options.get("steps") or {}))

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        step = ctx.step_id
        if step is not None and step in self.steps:
            model = self.steps[step]
            return Decision((model,), f"per_step: {step} -> {model}", self.name)
        return Decision(
            (self.default,), f"per_step: {step or 'request'} -> default {self.default}", self.name
        )
