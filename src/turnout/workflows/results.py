"""What a run produced: per-step results and run totals, and their trace records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from turnout.tracing.records import AttemptRecord, RunRecord, RunStatus, StepRecord, StepStatus
from turnout.types import Annotation, CheckResult, Decision, Message, Usage

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StepResult:
    step_id: str
    kind: str
    status: StepStatus
    started_at: float
    latency_s: float
    value: Any = None
    text: str | None = None
    decision: Decision | None = None
    model: str | None = None
    tier: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    score: float | None = None
    ttft_s: float | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    error_class: str | None = None
    error: str | None = None
    override_by: str | None = None
    override_why: str | None = None
    annotation: Annotation | None = None
    messages: tuple[Message, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def has_output(self) -> bool:
        return self.status != "skipped" and self.error is None

    def record(self, run_id: str) -> StepRecord:
        return StepRecord(
            run_id=run_id,
            step_id=self.step_id,
            kind=self.kind,
            status=self.status,
            started_at=self.started_at,
            latency_s=self.latency_s,
            model=self.model,
            tier=self.tier,
            policy=self.decision.policy if self.decision else None,
            reason=self.decision.reason if self.decision else None,
            ttft_s=self.ttft_s,
            input_tokens=self.usage.input_tokens,
            output_tokens=self.usage.output_tokens,
            cached_input_tokens=self.usage.cached_input_tokens,
            cost_usd=self.cost,
            calls=len(self.attempts),
            score=self.score,
            checks=self.checks,
            output=self.text,
            error_class=self.error_class,
            error=self.error,
            override_by=self.override_by,
            override_why=self.override_why,
            annotation=self.annotation.as_dict() if self.annotation else None,
            prompt=tuple({"role": m.role, "content": m.content or ""} for m in self.messages),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    workflow: str
    policy: str
    status: RunStatus
    started_at: float
    wall_s: float
    steps: tuple[StepResult, ...]
    inputs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    bench_id: str | None = None
    variant: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def calls(self) -> int:
        return sum(len(s.attempts) for s in self.steps)

    @property
    def latency_s(self) -> float:
        """Sum of step latencies (model and code time, queueing excluded)."""
        return sum(s.latency_s for s in self.steps)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for s in self.steps:
            total = total + s.usage
        return total

    @property
    def cost(self) -> Decimal:
        return sum((s.cost for s in self.steps), Decimal(0))

    @property
    def checks_passed(self) -> int:
        return sum(1 for s in self.steps for c in s.checks if c.passed)

    @property
    def checks_total(self) -> int:
        return sum(len(s.checks) for s in self.steps)

    @property
    def score(self) -> float | None:
        total = self.checks_total
        return self.checks_passed / total if total else None

    def record(self) -> RunRecord:
        u = self.usage
        return RunRecord(
            run_id=self.run_id,
            workflow=self.workflow,
            policy=self.policy,
            status=self.status,
            started_at=self.started_at,
            ended_at=self.started_at + self.wall_s,
            inputs=self.inputs,
            tags=self.tags,
            bench_id=self.bench_id,
            variant=self.variant,
            calls=self.calls,
            latency_s=self.latency_s,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cached_input_tokens=u.cached_input_tokens,
            cost_usd=self.cost,
            score=self.score,
            error=self.error,
        )
