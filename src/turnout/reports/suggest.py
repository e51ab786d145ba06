"""``turnout suggest``: learn a ``per_step`` policy from a bench's evidence.

A bench in which the same steps ran on several models (all-strong, all-cheap,
mixed...) says, per step and model: how many times it ran (n), how often it passed
(its required checks), and what one run of the step cost. From that, per LLM step:

**The rule.** Among the models that ran the step at least ``min_runs`` times, take
the best pass rate; propose the cheapest of them (mean cost of one run of the
step; ties go to the weaker model) whose pass rate is within ``tolerance`` of the
best. The evidence is **too little**, and the step keeps the stronger model, when

* a cheaper model ran the step fewer than ``min_runs`` times;
* a cheaper model misses the tolerance, but its 95% Wilson interval overlaps the
  best model's: the bench cannot tell them apart (more runs would settle it);
* a stronger model ran fewer than ``min_runs`` times, yet passed more often than
  the proposal by more than the tolerance (the little evidence there is says the
  proposal may be worse): that stronger model is kept.

Over all of that, a model that never passed the step (0/n) is never proposed
over one that passed it at least once: the one that did is kept (the best pass
rate, then the stronger).

"Stronger" is the higher tier, then the higher price (input + output per
million tokens). A cheaper model that misses the tolerance with an interval
clear of the best model's is plainly worse: the step keeps the proposal, and the
evidence is called clear.

The policy's ``default`` (for steps it does not list) is the strongest model the
bench used: "when in doubt, route up". The snippet printed is YAML whose comments
carry the evidence (n, passes, pass rate, interval, cost per run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import yaml

from turnout.bench.data import BenchData, StepSample
from turnout.bench.stats import Interval, wilson
from turnout.config.settings import Settings
from turnout.types import Tier

Verdict = Literal["clear", "too_little_evidence"]
LEVEL = 0.95
_TIER_RANK = {t.value: t.rank for t in Tier}


@dataclass(frozen=True, slots=True)
class ModelEvidence:
    """One model's record on one step, over every finished run of the bench."""

    model: str
    tier: str | None
    n: int
    passed: int
    ci: Interval
    cost_per_run: Decimal
    """Mean cost of one run of the step on this model (all its calls)."""
    price: Decimal | None
    """Input + output price per million tokens in the pool, when known."""

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    def strength(self) -> tuple[int, Decimal]:
        """Sort key for "stronger": tier, then price (observed cost when unpriced)."""
        rank = _TIER_RANK.get(self.tier or "", -1)
        return rank, self.price if self.price is not None else self.cost_per_run

    def cheapness(self) -> tuple[Decimal, int, Decimal]:
        rank, price = self.strength()
        return self.cost_per_run, rank, price

    def comment(self) -> str:
        return (
            f"{self.model}: n={self.n} passed {self.passed}/{self.n} = {self.pass_rate:.2f} "
            f"95% CI [{self.ci.low:.2f}, {self.ci.high:.2f}], "
            f"${_cost(self.cost_per_run)} per run, {self.tier or 'tier unknown'}"
        )


@dataclass(frozen=True, slots=True)
class StepSuggestion:
    step_id: str
    model: str
    verdict: Verdict
    notes: tuple[str, ...]
    """Why, one line each."""
    evidence: tuple[ModelEvidence, ...]
    """Every model that ran the step, cheapest first."""


@dataclass(frozen=True, slots=True)
class Suggestion:
    bench_id: str
    workflow: str
    policy_name: str
    default: str
    tolerance: float
    min_runs: int
    runs: int
    policies: tuple[str, ...]
    steps: tuple[StepSuggestion, ...]

    def rule(self) -> str:
        return rule_text(self.tolerance, self.min_runs)

    def policy(self) -> dict[str, Any]:
        """The suggested policy as config (what the snippet's YAML holds)."""
        return {
            "kind": "per_step",
            "default": self.default,
            "steps": {s.step_id: s.model for s in self.steps},
        }

    def snippet(self) -> str:
        """``policies:`` YAML to paste into turnout.yaml, the evidence as comments."""
        lines = [
            f"# turnout suggest {self.bench_id}: workflow {self.workflow}, {self.runs} finished "
            f"runs under {', '.join(self.policies) or 'no policy'}",
            *(f"# {line}" for line in _wrap(self.rule(), 96)),
            "policies:",
            f"  {_scalar(self.policy_name)}:",
            "    kind: per_step",
            f"    default: {_scalar(self.default)}  # the strongest model the bench used",
            "    steps:" if self.steps else "    steps: {}",
        ]
        for s in self.steps:
            mark = f"TOO LITTLE EVIDENCE, kept {s.model}" if s.verdict != "clear" else "clear"
            lines.append(f"      # {s.step_id}: {mark}")
            lines += [f"      #   {e.comment()}" for e in s.evidence]
            lines += [f"      #   {note}" for note in s.notes]
            lines.append(f"      {_scalar(s.step_id)}: {_scalar(s.model)}")
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "bench_id": self.bench_id,
            "workflow": self.workflow,
            "rule": self.rule(),
            "tolerance": self.tolerance,
            "min_runs": self.min_runs,
            "level": LEVEL,
            "runs": self.runs,
            "bench_policies": list(self.policies),
            "policy": {"name": self.policy_name, **self.policy()},
            "steps": [
                {
                    "step_id": s.step_id,
                    "model": s.model,
                    "verdict": s.verdict,
                    "notes": list(s.notes),
                    "evidence": [
                        {
                            "model": e.model, "tier": e.tier, "n": e.n, "passed": e.passed,
                            "pass_rate": e.pass_rate, "ci": e.ci.as_list(),
                            "cost_per_run_usd": float(e.cost_per_run),
                        }
                        for e in s.evidence
                    ],
                }
                for s in self.steps
            ],
            "snippet": self.snippet(),
        }  # fmt: skip


def rule_text(tolerance: float, min_runs: int) -> str:
    return (
        f"Rule: per step, among models that ran it at least {min_runs} times, take the best pass "
        f"rate and propose the cheapest model (mean cost per run of the step) whose pass rate is "
        f"within {tolerance:g} of it. Too little evidence keeps the stronger model (higher tier, "
        f"then price): a cheaper model with fewer than {min_runs} runs; a cheaper model that "
        "misses the tolerance while its 95% Wilson interval overlaps the best one's; a stronger "
        f"model with fewer than {min_runs} runs that passed more often than the proposal by "
        "more than the tolerance. A model that never passed a step is never proposed over one "
        "that did."
    )


def suggest(
    data: BenchData,
    settings: Settings | None = None,
    *,
    tolerance: float = 0.05,
    min_runs: int = 5,
    name: str = "suggested",
) -> Suggestion:
    """Propose a per_step policy from a bench (see the module docstring for the rule)."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be within 0..1, not {tolerance}")
    if min_runs < 1:
        raise ValueError(f"min_runs must be at least 1, not {min_runs}")
    runs = [r for r in data.runs if r.finished]
    samples: dict[str, dict[str, list[StepSample]]] = {}
    for r in runs:
        for s in r.steps:
            if s.kind == "llm" and s.model and s.status != "skipped":
                samples.setdefault(s.step_id, {}).setdefault(s.model, []).append(s)
    steps = tuple(
        _decide(step_id, _evidence(by_model, settings), tolerance, min_runs)
        for step_id, by_model in samples.items()
    )
    seen = [e for s in steps for e in s.evidence]
    default = max(seen, key=ModelEvidence.strength).model if seen else ""
    return Suggestion(
        bench_id=data.bench.bench_id,
        workflow=data.bench.workflow,
        policy_name=name,
        default=default,
        tolerance=tolerance,
        min_runs=min_runs,
        runs=len(runs),
        policies=tuple(data.policies),
        steps=steps,
    )


def _evidence(
    by_model: dict[str, list[StepSample]], settings: Settings | None
) -> list[ModelEvidence]:
    out = []
    for model, ss in by_model.items():
        spec = settings.models.get(model) if settings is not None else None
        tiers = [s.tier for s in ss if s.tier]
        passed = sum(1 for s in ss if s.ok)
        out.append(
            ModelEvidence(
                model=model,
                tier=spec.tier.value if spec else (tiers[-1] if tiers else None),
                n=len(ss),
                passed=passed,
                ci=wilson(passed, len(ss), LEVEL),
                cost_per_run=_mean_cost([s.cost for s in ss]),
                price=spec.price.input + spec.price.output if spec else None,
            )
        )
    return sorted(out, key=ModelEvidence.cheapness)


def _decide(
    step_id: str, evidence: list[ModelEvidence], tolerance: float, min_runs: int
) -> StepSuggestion:
    """The rule, then one guard over it: a model that never passed the step is never
    proposed over one that did (whatever the evidence, a 0/n record is not a choice)."""
    s = _rule(step_id, evidence, tolerance, min_runs)
    chosen = next(e for e in evidence if e.model == s.model)
    passers = [e for e in evidence if e.passed > 0]
    if chosen.passed > 0 or not passers:
        return s
    keep = max(passers, key=lambda e: (e.pass_rate, e.strength()))
    note = (
        f"{chosen.model} never passed this step ({chosen.passed}/{chosen.n}) and "
        f"{keep.model} did ({keep.passed}/{keep.n}): kept {keep.model}"
    )
    verdict: Verdict = "clear" if min(chosen.n, keep.n) >= min_runs else "too_little_evidence"
    return StepSuggestion(step_id, keep.model, verdict, (note,), s.evidence)


def _rule(
    step_id: str, evidence: list[ModelEvidence], tolerance: float, min_runs: int
) -> StepSuggestion:
    measured = [e for e in evidence if e.n >= min_runs]
    strongest = max(evidence, key=ModelEvidence.strength)
    if not measured:
        note = f"no model ran this step {min_runs} times: kept the strongest, {strongest.model}"
        return StepSuggestion(
            step_id, strongest.model, "too_little_evidence", (note,), tuple(evidence)
        )
    best = max(measured, key=lambda e: (e.pass_rate, e.strength()))
    floor = best.pass_rate - tolerance
    choice = min((e for e in measured if e.pass_rate >= floor - 1e-12), key=ModelEvidence.cheapness)
    notes: list[str] = []
    little = False
    doubted = [
        e
        for e in evidence
        if e.n < min_runs
        and e.strength() > choice.strength()
        and e.pass_rate > choice.pass_rate + tolerance
    ]
    if doubted:
        kept = max(doubted, key=ModelEvidence.strength)
        notes.append(
            f"{kept.model} ran only {kept.n} times (< {min_runs}) but passed more often than "
            f"{choice.model} ({kept.pass_rate:.2f} vs {choice.pass_rate:.2f}): kept {kept.model}"
        )
        return StepSuggestion(
            step_id, kept.model, "too_little_evidence", tuple(notes), tuple(evidence)
        )
    if choice is best:
        notes.append(f"{choice.model} has the best pass rate")
    else:
        notes.append(
            f"{choice.model} is within {tolerance:g} of the best, {best.model} "
            f"({choice.pass_rate:.2f} vs {best.pass_rate:.2f}), and cheaper"
        )
    for e in evidence:
        if e.cheapness() >= choice.cheapness() or e is choice:
            continue
        if e.n < min_runs:
            little = True
            notes.append(
                f"{e.model} is cheaper but ran only {e.n} times (< {min_runs}): too little "
                f"evidence to move to it"
            )
        elif e.ci.high >= best.ci.low:
            little = True
            notes.append(
                f"{e.model} is cheaper but misses the tolerance ({e.pass_rate:.2f} vs "
                f"{best.pass_rate:.2f}) while the 95% intervals overlap: the bench cannot tell "
                f"them apart; more runs would settle it"
            )
        else:
            notes.append(
                f"{e.model} is cheaper but worse ({e.pass_rate:.2f} vs {best.pass_rate:.2f}; "
                "the 95% intervals do not overlap)"
            )
    verdict: Verdict = "too_little_evidence" if little else "clear"
    return StepSuggestion(step_id, choice.model, verdict, tuple(notes), tuple(evidence))


def _mean_cost(costs: Sequence[Decimal]) -> Decimal:
    if not costs:
        return Decimal(0)
    total = sum(costs, Decimal(0))
    return (total / len(costs)).quantize(Decimal("1E-12")).normalize()


def _cost(value: Decimal) -> str:
    return f"{value:.6f}" if value < 1 else f"{value:,.4f}"


def _scalar(value: str) -> str:
    """A YAML scalar, quoted only when YAML needs it (``yes``, ``1``, ``#x``...)."""
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines
