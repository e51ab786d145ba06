"""The implicit ``workflow`` policy: the workflow's own routing.

Used when no ``--policy`` is given: a step's ``model:`` wins, then its
``tier:`` (cheapest healthy model in that tier), then the workflow's
``default_model``; a step with none of them goes to the cheapest frontier
model ("when in doubt, route up").
"""

from __future__ import annotations

from turnout.config.settings import Settings
from turnout.routing.policy import HEALTHY, PoolHealth, RequestContext
from turnout.routing.selection import pick_in_tier
from turnout.types import Decision, Tier

NAME = "workflow"


class WorkflowDefaultPolicy:
    def __init__(self, settings: Settings, name: str = NAME) -> None:
        self.name = name
        self.settings = settings

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        step = ctx.step_id or "request"
        if ctx.step_model:
            return Decision(
                (ctx.step_model,), f"workflow: {step} names {ctx.step_model}", self.name
            )
        if ctx.step_tier is not None:
            m, _, why = pick_in_tier(self.settings, ctx.step_tier, health=health)
            return Decision(
                (m.name,),
                f"workflow: {step} asks tier {ctx.step_tier.value} -> {m.name} ({why})",
                self.name,
            )
        if ctx.default_model:
            return Decision(
                (ctx.default_model,), f"workflow: default model {ctx.default_model}", self.name
            )
        m, _, why = pick_in_tier(self.settings, Tier.FRONTIER, health=health)
        return Decision(
            (m.name,), f"workflow: no model given, route up -> {m.name} ({why})", self.name
        )
