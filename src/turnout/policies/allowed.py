"""A decision kept to the models a caller may use (a gateway key's ``models``)."""

from __future__ import annotations

from dataclasses import replace

from turnout.errors import ModelNotAllowed
from turnout.types import Decision


def only_allowed(decision: Decision, allowed: frozenset[str]) -> Decision:
    """``decision`` with the models outside ``allowed`` dropped (a fallback chain keeps
    its allowed links, a cascade its allowed rungs); :class:`ModelNotAllowed` when none
    is left."""
    models = tuple(m for m in decision.models if m in allowed)
    if models == decision.models:
        return decision
    if not models:
        chose = ", ".join(decision.models)
        raise ModelNotAllowed(
            f"policy {decision.policy!r} chose {chose}: not among the models this key may "
            f"use ({', '.join(sorted(allowed))})"
        )
    dropped = ", ".join(m for m in decision.models if m not in allowed)
    return replace(
        decision,
        models=models,
        reason=f"{decision.reason} (not allowed for this key: {dropped})",
        on_content_filter=(
            decision.on_content_filter if decision.on_content_filter in allowed else None
        ),
    )
