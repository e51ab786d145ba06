"""Choosing models inside a tier: the one home of that rule, precomputed so that a
decision costs a few lookups. Shared by the ``rules``, ``complexity``, ``task_type``
policies and the workflow's own tier routing:

- the candidates of a tier are the preferred models (in ``prefer`` order) that
  belong to it, then the others from cheapest to dearest (input + output price
  per million tokens; ties keep the pool order);
- the first healthy candidate wins; when every model of the tier is unavailable
  the first candidate is used anyway (the executor and its breakers decide);
- a tier with no model at all routes up (efficient -> standard -> frontier), and
  only when nothing above exists, down.

With ``fallback`` the decision names every healthy model of the tier in that
order (strategy ``fallback``): the chain "rules -> tier -> fallback inside the
tier".

With ``within_tier: fastest`` (or for a request marked ``latency: sensitive``,
whatever the configured rule) the healthy candidates are instead ranked by observed
speed (:func:`turnout.policies.speed.rank_fastest`, over the snapshot in the pool's
health): fastest first, cold start in the cheapest-first order, a small share
explored. Such choices depend on the snapshot, so they are not memoised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.policies.base import PoolHealth, RequestContext
from turnout.policies.speed import FastestRule, fastest_rule, rank_fastest, request_key
from turnout.types import Strategy, Tier


@dataclass(frozen=True, slots=True)
class Choice:
    """The models picked, the tier they came from, and why (None when there was no choice).

    ``named`` is set when the config named the model itself (no tier was chosen).
    """

    models: tuple[str, ...]
    tier: Tier
    why: str | None
    strategy: Strategy = "single"
    named: bool = False
    text: str = field(init=False, default="")
    """:meth:`describe`, computed once."""

    def __post_init__(self) -> None:
        head = "" if self.named else f"{self.tier.value} -> "
        if self.strategy == "fallback":
            why = f"fallback, {self.why}" if self.why else "fallback"
            text = f"{head}{', '.join(self.models)} ({why})"
        else:
            tail = f" ({self.why})" if self.why else ""
            text = f"{head}{self.models[0]}{tail}"
        object.__setattr__(self, "text", text)

    def describe(self) -> str:
        """``tier -> model (why)``, or ``tier -> a, b (fallback, why)`` for a chain;
        a named model is shown without its tier."""
        return self.text


_MEMO_MAX = 1024


class TierChooser:
    """Candidates per tier computed once; choices memoised per pool health."""

    __slots__ = (
        "_candidates", "_fallback", "_fastest", "_memo", "_model_tier", "_order", "_preferred",
        "_sensitive",
    )  # fmt: skip

    def __init__(
        self,
        settings: Settings,
        *,
        prefer: Sequence[str] = (),
        fallback: bool = False,
        fastest: FastestRule | None = None,
    ) -> None:
        if not settings.models:
            raise ConfigError("the model pool is empty", file=settings.source, field="models")
        self._fallback = fallback
        self._fastest = fastest
        self._sensitive = fastest or FastestRule()
        self._preferred = frozenset(prefer)
        pool = list(settings.models.values())
        rank = {name: i for i, name in enumerate(prefer)}
        self._candidates: dict[Tier, tuple[str, ...]] = {}
        for tier in Tier:
            members = [m for m in pool if m.tier is tier]
            preferred = sorted((m for m in members if m.name in rank), key=lambda m: rank[m.name])
            rest = sorted(
                (m for m in members if m.name not in rank),
                key=lambda m: m.price.input + m.price.output,
            )
            self._candidates[tier] = tuple(m.name for m in preferred + rest)
        self._order = {tier: tier.route_order() for tier in Tier}
        self._model_tier = {m.name: m.tier for m in pool}
        self._memo: dict[tuple[Tier | str, frozenset[str]], Choice] = {}

    def candidates(self, tier: Tier) -> tuple[str, ...]:
        """The models of ``tier`` in the rule's order (preferred, then cheapest first); an
        empty tier routes up (then down)."""
        used = next(t for t in self._order[tier] if self._candidates[t])
        return self._candidates[used]

    @property
    def by_speed(self) -> bool:
        """Whether every choice ranks by speed (``within_tier: fastest``)."""
        return self._fastest is not None

    def speed_rule(self, ctx: RequestContext | None) -> FastestRule | None:
        """The speed rule for this request: the configured one, or the default rule for a
        latency-sensitive request; None to choose by price or preference."""
        if self._fastest is not None:
            return self._fastest
        if ctx is not None and ctx.latency == "sensitive":
            return self._sensitive
        return None

    def choose(self, tier: Tier, health: PoolHealth, ctx: RequestContext | None = None) -> Choice:
        """The model (or fallback chain) for ``tier`` under ``health``; ``ctx`` marks a
        latency-sensitive request (and keys the exploration draw)."""
        rule = self.speed_rule(ctx)
        if rule is not None:
            return self._by_speed(tier, health, rule, ctx)
        key = (tier, health.unavailable)
        choice = self._memo.get(key)
        if choice is None:
            choice = self._remember(key, self._choose(tier, health.unavailable, None))
        return choice

    def named(self, model: str, health: PoolHealth) -> Choice:
        """A model the config names; if it is unavailable, the rule for its tier."""
        key = (model, health.unavailable)
        choice = self._memo.get(key)
        if choice is None:
            choice = self._remember(key, self._named(model, health.unavailable))
        return choice

    def _remember(self, key: tuple[Tier | str, frozenset[str]], choice: Choice) -> Choice:
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[key] = choice
        return choice

    def _named(self, model: str, unavailable: frozenset[str]) -> Choice:
        tier = self._model_tier[model]
        if model not in unavailable:
            if not self._fallback:
                return Choice((model,), tier, None, named=True)
            rest = tuple(m for m in self._candidates[tier] if m != model and m not in unavailable)
            return Choice((model, *rest), tier, "named model first", "fallback", named=True)
        return self._choose(tier, unavailable, model)

    def _choose(self, tier: Tier, unavailable: frozenset[str], named: str | None) -> Choice:
        for used in self._order[tier]:
            candidates = self._candidates[used]
            if not candidates:
                continue
            healthy = (
                tuple(m for m in candidates if m not in unavailable) if unavailable else candidates
            )
            notes: list[str] = []
            if not healthy:
                healthy = candidates
                notes.append(f"every {used.value} model unavailable")
            else:
                # the unavailable models the rule would otherwise have put first
                passed = (
                    candidates if self._fallback else candidates[: candidates.index(healthy[0])]
                )
                skipped = [m for m in passed if m in unavailable and m != named]
                if skipped:
                    notes.append(f"skipped unavailable {', '.join(skipped)}")
            if used is not tier:
                notes.append(f"{tier.value} has no model, routed to {used.value}")
            lead = f"{named} unavailable" if named else None
            return self._choice(used, candidates, healthy, lead, notes)
        raise AssertionError("unreachable: the pool is not empty")  # pragma: no cover

    def _by_speed(
        self, tier: Tier, health: PoolHealth, rule: FastestRule, ctx: RequestContext | None
    ) -> Choice:
        unavailable = health.unavailable
        used = next(t for t in self._order[tier] if self._candidates[t])
        candidates = self._candidates[used]
        healthy = tuple(m for m in candidates if m not in unavailable)
        notes: list[str] = []
        if not healthy:
            healthy = candidates
            notes.append(f"every {used.value} model unavailable")
        elif len(healthy) < len(candidates):
            skipped = [m for m in candidates if m in unavailable]
            notes.append(f"skipped unavailable {', '.join(skipped)}")
        if used is not tier:
            notes.append(f"{tier.value} has no model, routed to {used.value}")
        key = request_key(ctx.tags.get("run"), ctx.step_id) if ctx is not None else ""
        ranked = rank_fastest(
            healthy, health.speeds, rule, max_tokens=ctx.max_tokens if ctx else None, key=key
        )
        why = "; ".join([ranked.why, *notes])
        if self._fallback:
            return Choice(ranked.models, used, why, "fallback")
        return Choice(ranked.models[:1], used, why)

    def _choice(
        self,
        tier: Tier,
        candidates: tuple[str, ...],
        healthy: tuple[str, ...],
        lead: str | None,
        notes: list[str],
    ) -> Choice:
        first = healthy[0]
        why: str | None = None
        if len(candidates) > 1 or notes or lead:
            preferred = first in self._preferred
            if self._fallback:
                rule = "preferred first" if preferred else "cheapest first"
            else:
                rule = f"{'preferred' if preferred else 'cheapest'} in {tier.value}"
            why = "; ".join([*([lead] if lead else []), rule, *notes])
        if self._fallback:
            return Choice(healthy, tier, why, "fallback")
        return Choice((first,), tier, why)


def within_tier_speed(options: Mapping[str, Any]) -> FastestRule | None:
    """``within_tier: fastest`` (tuned by an optional ``fastest: {metric, explore, ...}``),
    else None."""
    if options.get("within_tier") != "fastest":
        return None
    return fastest_rule(options.get("fastest") or {})


def prefer_list(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The preference order: ``prefer: [...]`` or ``within_tier: {prefer: [...]}``."""
    within = options.get("within_tier")
    if isinstance(within, Mapping):
        return tuple(str(m) for m in within.get("prefer") or ())
    return tuple(str(m) for m in options.get("prefer") or ())
