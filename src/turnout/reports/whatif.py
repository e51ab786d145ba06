"""``turnout whatif``: what recorded steps would have cost under another policy (an ESTIMATE).

Policies are pure decisions, so a recorded LLM step can be decided again offline
with no model call: the :class:`~turnout.policies.base.RequestContext` is rebuilt
from what the step recorded (its messages, its annotation, its step id, its run's
workflow and tags). Steps recorded before turnout kept the messages and annotation
(migration m004) are decided anyway, on what is left, and counted. A step's own
``model:`` / ``tier:`` and the workflow's ``default_model`` are not recorded, so the
implicit ``workflow`` policy cannot be replayed: name a configured policy.

Re-pricing (see :mod:`turnout.reports.reprice`) uses the pool's prices and the
step's recorded token counts (all its calls, retries included, as the new policy
would likely retry too). Cascades are priced at their first rung (a lower bound),
ensembles at every member, and output tokens are scaled by a ratio learned from
bench runs when one is known; the report counts the first two and lists every
ratio it applied with its samples.

Steps whose recorded model is no longer in the pool cannot be compared (their
tokens were counted by a tokenizer the pool no longer has): they are skipped and
counted, and left out of both totals. So is a step whose re-decision fails.

Steps are read a page at a time (keyset pagination on ``started_at, run_id,
step_id``), so memory stays flat however long the period.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from turnout.config.settings import Settings
from turnout.errors import TurnoutError
from turnout.policies.base import RequestContext
from turnout.policies.registry import build_policy
from turnout.reports.reprice import OutputRatio, Ratios, bench_output_means, price_decision
from turnout.reports.weekly import WEEK_S
from turnout.tracing.rows import pico_to_cost
from turnout.tracing.store import TraceStore
from turnout.types import Annotation, Decision, Message, Role

PAGE = 2000
MAX_EXAMPLES = 5

_COLUMNS = (
    "s.started_at, s.run_id, s.step_id, s.model, s.tier, s.input_tokens, s.output_tokens, "
    "s.cached_input_tokens, s.cost_picousd, s.annotation, s.prompt, r.workflow, r.tags"
)
_AFTER = (
    " AND (s.started_at > ? OR (s.started_at = ? AND (s.run_id > ? OR "
    "(s.run_id = ? AND s.step_id > ?))))"
)


@dataclass(frozen=True, slots=True)
class StepChange:
    """One recorded step the policy would have sent to another tier (an example)."""

    run_id: str
    workflow: str
    step_id: str
    from_model: str
    from_tier: str | None
    to_models: tuple[str, ...]
    to_tier: str
    reason: str
    actual: Decimal
    projected: Decimal


@dataclass(frozen=True, slots=True)
class StepProjection:
    """One workflow step over the period: what it cost, and would have cost."""

    workflow: str
    step_id: str
    steps: int
    actual: Decimal
    projected: Decimal
    models_before: tuple[str, ...]
    """Recorded models, most used first."""
    models_after: tuple[str, ...]
    tier_changes: int


@dataclass(frozen=True, slots=True)
class TierProjection:
    tier: str
    actual: Decimal
    """Spend of the steps recorded in this tier."""
    projected: Decimal
    """Projected spend of the calls the policy sends to this tier."""


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str
    steps: int
    actual: Decimal


@dataclass(frozen=True, slots=True)
class WhatIfReport:
    """An ESTIMATE: see the module docstring for how it is made."""

    policy: str
    since: float
    until: float
    workflow: str | None
    steps: int
    """Steps decided and priced (skipped ones excluded)."""
    actual: Decimal
    projected: Decimal
    without_context: int
    """Steps recorded without messages or annotation, decided on what was left."""
    cascades: int
    ensembles: int
    tier_changes: tuple[tuple[str, str, int], ...]
    """(recorded tier, new tier, steps) for every pair that differs, most first."""
    model_changes: int
    """Steps sent to another model in the same tier."""
    examples: tuple[StepChange, ...]
    by_step: tuple[StepProjection, ...]
    by_tier: tuple[TierProjection, ...]
    ratios: tuple[OutputRatio, ...]
    """The learned output-token ratios that were applied."""
    skipped: tuple[Skipped, ...]
    min_ratio_samples: int = 3

    @property
    def saving(self) -> float | None:
        """Fraction cheaper than actual (negative: dearer); None with no actual spend."""
        return None if not self.actual else float(1 - self.projected / self.actual)

    @property
    def unchanged_tier(self) -> int:
        return self.steps - sum(n for _, _, n in self.tier_changes)


def whatif(
    store: TraceStore,
    settings: Settings,
    policy_name: str,
    *,
    since: float | None = None,
    until: float | None = None,
    workflow: str | None = None,
    min_ratio_samples: int = 3,
    page: int = PAGE,
) -> WhatIfReport:
    """Re-decide and re-price every recorded LLM step of ``[since, until)`` under a policy."""
    until = time.time() if until is None else until
    since = until - WEEK_S if since is None else since
    policy = build_policy(policy_name, settings)
    tally = _Tally(settings, Ratios(bench_output_means(store), min_ratio_samples))
    for row in _step_rows(store, since, until, workflow, page):
        model, recorded = row[3], int(row[8] or 0)
        if model is None:
            tally.skip("no model recorded", recorded)
            continue
        if model not in settings.models:
            tally.skip(f"model {model!r} is no longer in the pool", recorded)
            continue
        ctx, had_context = _context(row)
        try:
            decision = policy.decide(ctx)
            for name in decision.models:
                settings.model(name)
        except TurnoutError as exc:
            tally.skip(f"the policy could not decide: {str(exc).splitlines()[0]}", recorded)
            continue
        tally.add(row, decision, had_context)
    return tally.report(policy_name, since, until, workflow)


@dataclass
class _StepAcc:
    steps: int = 0
    actual: int = 0
    projected: int = 0
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    tier_changes: int = 0


class _Tally:
    """Sums (in pico-dollars) as the steps go by."""

    def __init__(self, settings: Settings, ratios: Ratios) -> None:
        self.settings = settings
        self.ratios = ratios
        self.per_step: dict[tuple[str, str], _StepAcc] = {}
        self.tier_actual: Counter[str] = Counter()
        self.tier_projected: Counter[str] = Counter()
        self.changes: Counter[tuple[str, str]] = Counter()
        self.skipped: dict[str, list[int]] = {}
        self.examples: list[StepChange] = []
        self.counts: Counter[str] = Counter()

    def skip(self, why: str, recorded: int) -> None:
        acc = self.skipped.setdefault(why, [0, 0])
        acc[0] += 1
        acc[1] += recorded

    def add(self, row: tuple[Any, ...], decision: Decision, had_context: bool) -> None:
        run_id, step_id, model, tier = str(row[1]), str(row[2]), str(row[3]), row[4]
        recorded, workflow = int(row[8] or 0), str(row[11] or "")
        tokens = (int(row[5] or 0), int(row[6] or 0), int(row[7] or 0))
        priced = price_decision(
            decision, self.settings, self.ratios, workflow=workflow, step_id=step_id,
            recorded_model=model, tokens=tokens,
        )  # fmt: skip
        projected = sum(p for _, p in priced)
        c = self.counts
        c["steps"] += 1
        c["without_context"] += not had_context
        c["cascades"] += decision.strategy == "cascade"
        c["ensembles"] += decision.strategy == "ensemble"
        c["actual"] += recorded
        c["projected"] += projected
        old_tier = str(tier or self.settings.models[model].tier.value)
        new_tier = self.settings.models[decision.model].tier.value
        self.tier_actual[old_tier] += recorded
        for m, p in priced:
            self.tier_projected[self.settings.models[m].tier.value] += p
        acc = self.per_step.setdefault((workflow, step_id), _StepAcc())
        acc.steps += 1
        acc.actual += recorded
        acc.projected += projected
        acc.before[model] += 1
        acc.after["+".join(decision.models)] += 1
        if new_tier != old_tier:
            self.changes[(old_tier, new_tier)] += 1
            acc.tier_changes += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(
                    StepChange(
                        run_id=run_id, workflow=workflow, step_id=step_id, from_model=model,
                        from_tier=old_tier, to_models=decision.models, to_tier=new_tier,
                        reason=decision.reason, actual=pico_to_cost(recorded),
                        projected=pico_to_cost(projected),
                    )
                )  # fmt: skip
        elif decision.model != model:
            c["model_changes"] += 1

    def report(self, policy: str, since: float, until: float, workflow: str | None) -> WhatIfReport:
        c = self.counts
        steps = sorted(self.per_step.items(), key=lambda kv: (-kv[1].actual, kv[0]))
        tiers = _tier_order(set(self.tier_actual) | set(self.tier_projected))
        return WhatIfReport(
            policy=policy, since=since, until=until, workflow=workflow, steps=c["steps"],
            actual=pico_to_cost(c["actual"]), projected=pico_to_cost(c["projected"]),
            without_context=c["without_context"], cascades=c["cascades"],
            ensembles=c["ensembles"],
            tier_changes=tuple((a, b, n) for (a, b), n in self.changes.most_common()),
            model_changes=c["model_changes"], examples=tuple(self.examples),
            by_step=tuple(
                StepProjection(
                    workflow=wf, step_id=sid, steps=a.steps, actual=pico_to_cost(a.actual),
                    projected=pico_to_cost(a.projected),
                    models_before=tuple(m for m, _ in a.before.most_common()),
                    models_after=tuple(m for m, _ in a.after.most_common()),
                    tier_changes=a.tier_changes,
                )
                for (wf, sid), a in steps
            ),
            by_tier=tuple(
                TierProjection(
                    t, pico_to_cost(self.tier_actual[t]), pico_to_cost(self.tier_projected[t])
                )
                for t in tiers
            ),
            ratios=self.ratios.used(),
            skipped=tuple(
                Skipped(why, n, pico_to_cost(p)) for why, (n, p) in self.skipped.items()
            ),
            min_ratio_samples=self.ratios.min_samples,
        )  # fmt: skip


# -- reading -----------------------------------------------------------------------------


def _step_rows(
    store: TraceStore, since: float, until: float, workflow: str | None, page: int
) -> Iterator[tuple[Any, ...]]:
    """The period's LLM steps with their run's workflow and tags, a page at a time."""
    base = (
        f"SELECT {_COLUMNS} FROM steps s LEFT JOIN runs r ON r.run_id = s.run_id "
        "WHERE s.kind = 'llm' AND s.started_at >= ? AND s.started_at < ?"
    )
    params: list[Any] = [since, until]
    if workflow is not None:
        base += " AND r.workflow = ?"
        params.append(workflow)
    order = " ORDER BY s.started_at, s.run_id, s.step_id LIMIT ?"
    last: tuple[Any, ...] | None = None
    while True:
        if last is None:
            rows = store.query(base + order, (*params, page))
        else:
            t, run_id, step_id = last
            keyset = (t, t, run_id, run_id, step_id)
            rows = store.query(base + _AFTER + order, (*params, *keyset, page))
        yield from rows
        if len(rows) < page:
            return
        last = (rows[-1][0], rows[-1][1], rows[-1][2])


def _context(row: tuple[Any, ...]) -> tuple[RequestContext, bool]:
    """The policy's view of a recorded step, and whether it had messages or an annotation."""
    annotation_json, prompt_json, workflow, tags_json = row[9], row[10], row[11], row[12]
    annotation = None
    if annotation_json:
        raw = json.loads(annotation_json)
        if isinstance(raw, dict):
            annotation = Annotation(
                scope=raw.get("scope"), domain=raw.get("domain"), ambiguity=raw.get("ambiguity")
            )
    messages: tuple[Message, ...] = ()
    if prompt_json:
        raw = json.loads(prompt_json)
        if isinstance(raw, list):
            messages = tuple(
                Message(cast(Role, str(m.get("role", "user"))), m.get("content"))
                for m in raw
                if isinstance(m, dict)
            )
    tags = json.loads(tags_json) if tags_json else {}
    ctx = RequestContext(
        messages=messages,
        step_id=str(row[2]),
        workflow=str(workflow) if workflow is not None else None,
        annotation=annotation,
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    )
    return ctx, bool(messages) or annotation is not None


def _tier_order(tiers: set[str]) -> list[str]:
    known = ["frontier", "standard", "efficient"]
    return [t for t in known if t in tiers] + sorted(tiers - set(known))
