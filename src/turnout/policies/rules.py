"""``kind: rules``: the written routing policy as config.

::

    written:
      kind: rules
      must_stay_frontier: [{domain: security}, {domain: schema}, {ambiguity: high}]
      rules:
        - when: {scope: single-file, domain: [docs, config, tests], ambiguity: low}
          tier: efficient
        - when: {scope: cross-service}
          tier: frontier
      default: standard
      within_tier: cheapest        # or: prefer: [model, model], or fastest (observed speed)
      fallback: false              # true: every healthy model of the tier, as a chain

How a step's annotation becomes a tier, in this order:

1. **must-stay-frontier**: if any entry matches, the tier is frontier; no rule
   can override it.
2. **rules**, first match wins.
3. **when in doubt, route up**: if the step has no annotation (or an empty
   one), or any annotation value is outside the vocabulary (scope:
   single-file | multi-file | cross-service; domain: docs | config | tests |
   feature | security | schema | refactor; ambiguity: low | medium | high; plus
   this policy's ``vocabulary:`` additions), the tier is the default moved one
   tier up (efficient -> standard -> frontier; frontier stays).
4. otherwise the **default** tier (also for a partial annotation whose values
   are all known but which no rule matched).

A condition (``when`` or a must-stay-frontier entry) matches when every key it
names matches the annotation; a value may be one string or a list (any of).
An annotation field the step leaves out never matches a condition naming it.
Any other key names a **tag** (``{context: ci, domain: review}``: the run's tag
``context`` is ``ci`` and the domain is review); such a key must be declared
under ``vocabulary`` with its values (``vocabulary: {context: [ci, local]}``),
else it is a config error. A must-stay-frontier entry that names only tags
applies to steps without an annotation too. Values are compared lower-cased.

Inside the tier a model is chosen by :mod:`turnout.policies.tiers`
(cheapest healthy, or the ``prefer`` order; an empty tier routes up). The
reason says which of the four steps decided, e.g.
``rules: domain=security is must-stay-frontier -> frontier -> opus``.

Everything is computed at construction; per annotation and pool health the
decision is memoised (bounded), so ``decide`` is a dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.config.policy_schemas import ANNOTATION_VOCABULARY
from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.policies.speed import FastestRule
from turnout.policies.tiers import TierChooser, prefer_list, within_tier_speed
from turnout.types import Annotation, Decision, Tier

KEYS = ("scope", "domain", "ambiguity")
_MEMO_MAX = 4096

Values = tuple[str | None, str | None, str | None]
"""An annotation as (scope, domain, ambiguity), lower-cased."""


def _allowed(value: Any) -> frozenset[str]:
    allowed = [value] if isinstance(value, str) else list(value)
    return frozenset(str(v).strip().lower() for v in allowed)


@dataclass(frozen=True, slots=True)
class Condition:
    """``{key: value-or-list}``: matches when every named key has an allowed value
    (annotation keys by index, any other key a tag)."""

    terms: tuple[tuple[int, frozenset[str]], ...]
    tags: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, when: Mapping[str, Any]) -> Condition:
        terms: list[tuple[int, frozenset[str]]] = []
        for i, key in enumerate(KEYS):
            value = when.get(key)
            if value is not None:
                terms.append((i, _allowed(value)))
        tags = tuple(
            (str(k), _allowed(v)) for k, v in when.items() if k not in KEYS and v is not None
        )
        return cls(tuple(terms), tags)

    def matches(self, values: Values, tags: Mapping[str, str] | None = None) -> bool:
        for i, allowed in self.terms:
            v = values[i]
            if v is None or v not in allowed:
                return False
        for key, allowed in self.tags:
            t = (tags or {}).get(key)
            if t is None or t.strip().lower() not in allowed:
                return False
        return True

    def describe(self, values: Values, tags: Mapping[str, str] | None = None) -> str:
        """The values for the keys this condition names: ``domain=docs, context=ci``."""
        parts = [f"{KEYS[i]}={values[i]}" for i, _ in self.terms]
        parts += [f"{k}={(tags or {}).get(k, '').strip().lower()}" for k, _ in self.tags]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    when: Condition
    tier: Tier


def _values(annotation: Annotation | None) -> Values | None:
    if annotation is None:
        return None
    raw = (annotation.scope, annotation.domain, annotation.ambiguity)
    if all(v is None for v in raw):
        return None
    s, d, a = (v.strip().lower() if v is not None else None for v in raw)
    return (s, d, a)


class RulesPolicy:
    """The written routing policy: must-stay-frontier, rules, route up, default."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        rules: Sequence[Rule] = (),
        must_stay_frontier: Sequence[Condition] = (),
        default: Tier = Tier.STANDARD,
        vocabulary: Mapping[str, Sequence[str]] | None = None,
        prefer: Sequence[str] = (),
        fallback: bool = False,
        fastest: FastestRule | None = None,
    ) -> None:
        self.name = name
        self.rules = tuple(rules)
        self.must_stay_frontier = tuple(must_stay_frontier)
        self.default = default
        extra = vocabulary or {}
        self._known = tuple(
            frozenset({*ANNOTATION_VOCABULARY[k], *(v.strip().lower() for v in extra.get(k, ()))})
            for k in KEYS
        )
        self._chooser = TierChooser(settings, prefer=prefer, fallback=fallback, fastest=fastest)
        self._tag_keys = tuple(
            sorted({k for c in (*self.must_stay_frontier, *(r.when for r in self.rules))
                    for k, _ in c.tags})
        )  # fmt: skip
        self._memo: dict[tuple[Any, ...], Decision] = {}

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any], settings: Settings) -> RulesPolicy:
        return cls(
            name,
            settings,
            rules=[
                Rule(Condition.parse(r["when"]), Tier.parse(r["tier"]))
                for r in options.get("rules") or ()
            ],
            must_stay_frontier=[
                Condition.parse(w) for w in options.get("must_stay_frontier") or ()
            ],
            default=Tier.parse(options.get("default") or "standard"),
            vocabulary=options.get("vocabulary") or {},
            prefer=prefer_list(options),
            fallback=bool(options.get("fallback")),
            fastest=within_tier_speed(options),
        )

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        if self._chooser.speed_rule(ctx) is not None:  # depends on the speeds: not memoised
            tier, head = self.route(ctx.annotation, ctx.tags)
            choice = self._chooser.choose(tier, health, ctx)
            return Decision(
                choice.models, f"{head} -> {choice.describe()}", self.name, choice.strategy
            )
        tags = tuple(ctx.tags.get(k) for k in self._tag_keys)
        key = (ctx.annotation, health.unavailable, tags)
        decision = self._memo.get(key)
        if decision is None:
            tier, head = self.route(ctx.annotation, ctx.tags)
            choice = self._chooser.choose(tier, health)
            decision = Decision(
                choice.models, f"{head} -> {choice.describe()}", self.name, choice.strategy
            )
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = decision
        return decision

    def route(
        self, annotation: Annotation | None, tags: Mapping[str, str] | None = None
    ) -> tuple[Tier, str]:
        """The tier for an annotation (and tags) and the head of the reason (before
        ``-> tier``)."""
        values = _values(annotation)
        up = self.default.up()
        seen: Values = values or (None, None, None)
        for cond in self.must_stay_frontier:
            if cond.matches(seen, tags):
                return Tier.FRONTIER, f"rules: {cond.describe(seen, tags)} is must-stay-frontier"
        if values is None:
            return up, f"rules: no annotation, route up: default {self.default.value}"
        for n, rule in enumerate(self.rules, 1):
            if rule.when.matches(values, tags):
                return rule.tier, f"rules: rule {n} ({rule.when.describe(values, tags)})"
        unknown = [
            f"{KEYS[i]}={v}"
            for i, v in enumerate(values)
            if v is not None and v not in self._known[i]
        ]
        if unknown:
            return (
                up,
                f"rules: unknown {', '.join(unknown)}, route up: default {self.default.value}",
            )
        given = ", ".join(f"{KEYS[i]}={v}" for i, v in enumerate(values) if v is not None)
        return self.default, f"rules: no rule matched ({given}), default"
