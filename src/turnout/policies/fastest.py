"""``kind: fastest``: the model that has been answering quickest.

::

    snappy:
      kind: fastest
      models: [haiku, nano, flash]     # or: tier: standard (cheapest first for a cold start)
      metric: ttft                     # ttft | per_token | total (for the request's max_tokens)
      explore: 0.05                    # share of requests sent to a thin or stale model
      min_samples: 3                   # fewer samples than this: thin
      stale_s: 300                     # no sample for this long: stale
      default_tokens: 256              # total's output length when max_tokens is not set
      fallback: false                  # true: every healthy candidate, fastest first, as a chain

The estimates come from the pool's health (observed by the executor over recent
successful attempts; see :mod:`turnout.execution.speed`); the ranking is
:func:`turnout.policies.speed.rank_fastest`: fastest first, ties and a cold start in
list order, and a deterministic share ``explore`` of requests (by a hash of the
request's run and step and the snapshot's sample count) sent to the thinnest or
stalest candidate so its estimate stays fresh. Unavailable models (open breakers)
are skipped unless every candidate is unavailable. The reason names every
candidate's estimate and sample count, e.g.
``fastest by ttft: haiku 0.210s n=14, nano 0.090s n=9 -> nano``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.policies.speed import FastestRule, fastest_rule, rank_fastest, request_key
from turnout.policies.tiers import TierChooser
from turnout.types import Decision, Tier


class FastestPolicy:
    def __init__(
        self,
        name: str,
        candidates: Sequence[str],
        rule: FastestRule | None = None,
        *,
        fallback: bool = False,
    ) -> None:
        if not candidates:
            raise ConfigError(f"policy {name!r}: no candidate models", field=f"policies.{name}")
        self.name = name
        self.candidates = tuple(candidates)
        self.rule = rule or FastestRule()
        self.fallback = fallback

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> FastestPolicy:
        models = options.get("models")
        if models:
            candidates = tuple(settings.model(str(m)).name for m in models)
        else:
            tier = Tier.parse(options.get("tier") or "standard")
            candidates = TierChooser(settings).candidates(tier)
        return cls(name, candidates, fastest_rule(options), fallback=bool(options.get("fallback")))

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        down = health.unavailable
        healthy = tuple(m for m in self.candidates if m not in down) if down else self.candidates
        note = ""
        if not healthy:
            healthy = self.candidates
            note = "; every candidate unavailable"
        elif len(healthy) < len(self.candidates):
            note = f"; skipped unavailable {', '.join(m for m in self.candidates if m in down)}"
        ranked = rank_fastest(
            healthy,
            health.speeds,
            self.rule,
            max_tokens=ctx.max_tokens,
            key=request_key(ctx.tags.get("run"), ctx.step_id),
        )
        reason = f"{ranked.why}{note}"
        if self.fallback and len(ranked.models) > 1:
            return Decision(ranked.models, reason, self.name, "fallback")
        return Decision(ranked.models[:1], reason, self.name)
