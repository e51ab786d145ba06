"""Choosing a model inside a tier: the cheapest healthy one, or a stated preference."""

from __future__ import annotations

from collections.abc import Sequence

from turnout.config.settings import ModelSpec, Settings
from turnout.errors import ConfigError
from turnout.routing.policy import HEALTHY, PoolHealth
from turnout.types import Tier


def blended_price(m: ModelSpec) -> tuple[object, ...]:
    """Sort key: input + output price per million, then the pool order (stable)."""
    return (m.price.input + m.price.output,)


def pick_in_tier(
    settings: Settings,
    tier: Tier,
    *,
    health: PoolHealth = HEALTHY,
    prefer: Sequence[str] = (),
) -> tuple[ModelSpec, Tier, str]:
    """The model for ``tier``: a preferred healthy one, else the cheapest healthy one.

    When the tier has no (healthy) model, route up; only when nothing above
    exists either, route down. Returns the model, the tier actually used and a
    short reason.
    """
    for candidate_tier in tier.route_order():
        members = settings.models_in_tier(candidate_tier)
        healthy = [m for m in members if health.healthy(m.name)] or list(members)
        if not healthy:
            continue
        moved = (
            ""
            if candidate_tier is tier
            else f" ({tier.value} has no model, routed to {candidate_tier.value})"
        )
        for name in prefer:
            for m in healthy:
                if m.name == name:
                    return m, candidate_tier, f"preferred in {candidate_tier.value}{moved}"
        best = min(healthy, key=blended_price)
        return best, candidate_tier, f"cheapest in {candidate_tier.value}{moved}"
    raise ConfigError("the model pool is empty", file=settings.source, field="models")
