"""A decision kept to the models a caller may use (a gateway key's ``models``)."""

from __future__ import annotations

from dataclasses import replace

from turnout.errors import ModelNotAllowed
from turnout.types import Decision


def only_allowed(decision: Decision, allowed: frozenset[str]) -> Decision:
    """``decision`` kept to ``allowed``: the chain's other models dropped (a fallback
    keeps its allowed links, a cascade its allowed rungs), a content-filter alternative
    or an ensemble judge outside it dropped, and the set carried on for the executor's
    own picks. :class:`ModelNotAllowed` when no model is left, or an ensemble that must
    be judged has a judge outside it."""
    models = tuple(m for m in decision.models if m in allowed)
    if not models:
        raise ModelNotAllowed(
            f"policy {decision.policy!r} chose {', '.join(decision.models)}: not among the "
            f"models this key may use ({', '.join(sorted(allowed))})"
        )
    ensemble = decision.ensemble
    if ensemble is not None and ensemble.judge is not None and ensemble.judge not in allowed:
        if ensemble.mode == "judge":
            raise ModelNotAllowed(
                f"policy {decision.policy!r} is judged by {ensemble.judge}: not among the "
                f"models this key may use ({', '.join(sorted(allowed))})"
            )
        ensemble = replace(ensemble, judge=None)
    dropped = [m for m in decision.models if m not in allowed]
    reason = decision.reason
    if dropped:
        reason = f"{reason} (not allowed for this key: {', '.join(dropped)})"
    alternative = decision.on_content_filter
    return replace(
        decision,
        models=models,
        reason=reason,
        on_content_filter=alternative if alternative in allowed else None,
        ensemble=ensemble,
        allowed=allowed,
    )
