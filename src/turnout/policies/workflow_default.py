"""The implicit ``workflow`` policy: the workflow's own routing.

Used when no ``--policy`` is given: a step's ``model:`` wins, then its
``tier:`` (cheapest healthy model in that tier), then the workflow's
``default_model``; a step with none of them goes to the cheapest frontier
model ("when in doubt, route up").

As ``kind: workflow`` in ``turnout.yaml`` it takes ``within_tier: fastest`` (and
``fastest: {metric, explore, ...}``): the tier choices then go by observed speed. A
step marked ``latency: sensitive`` gets the fastest model of its tier either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.policies.speed import FastestRule
from turnout.policies.tiers import TierChooser, within_tier_speed
from turnout.types import Decision, Tier

NAME = "workflow"


class WorkflowDefaultPolicy:
    def __init__(
        self, settings: Settings, name: str = NAME, *, fastest: FastestRule | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self._tiers = TierChooser(settings, fastest=fastest)

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> WorkflowDefaultPolicy:
        return cls(settings, name, fastest=within_tier_speed(options))

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        step = ctx.step_id or "request"
        if ctx.step_model:
            return Decision(
                (ctx.step_model,), f"workflow: {step} names {ctx.step_model}", self.name
            )
        if ctx.step_tier is not None:
            c = self._tiers.choose(ctx.step_tier, health, ctx)
            return Decision(
                c.models, f"workflow: {step} asks tier {c.describe()}", self.name, c.strategy
            )
        if ctx.default_model:
            return Decision(
                (ctx.default_model,), f"workflow: default model {ctx.default_model}", self.name
            )
        c = self._tiers.choose(Tier.FRONTIER, health, ctx)
        return Decision(
            c.models, f"workflow: no model given, route up -> {c.describe()}", self.name, c.strategy
        )
