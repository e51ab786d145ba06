"""The implicit ``workflow`` policy: the workflow's own routing.

Used when no ``--policy`` is given: a step's ``model:`` wins, then its
``tier:`` (cheapest healthy model in that tier), then the workflow's
``default_model``; a step with none of them goes to the cheapest frontier
model ("when in doubt, route up").
"""

from __future__ import annotations

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.policies.tiers import TierChooser
from turnout.types import Decision, Tier

NAME = "workflow"


class WorkflowDefaultPolicy:
    def __init__(self, settings: Settings, name: str = NAME) -> None:
        self.name = name
        self.settings = settings
        self._tiers = TierChooser(settings)

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        step = ctx.step_id or "request"
        if ctx.step_model:
            return Decision(
                (ctx.step_model,), f"workflow: {step} names {ctx.step_model}", self.name
            )
        if ctx.step_tier is not None:
            c = self._tiers.choose(ctx.step_tier, health)
            return Decision(
                c.models, f"workflow: {step} asks tier {c.describe()}", self.name, c.strategy
            )
        if ctx.default_model:
            return Decision(
                (ctx.default_model,), f"workflow: default model {ctx.default_model}", self.name
            )
        c = self._tiers.choose(Tier.FRONTIER, health)
        return Decision(
            c.models, f"workflow: no model given, route up -> {c.describe()}", self.name, c.strategy
        )
