"""Running one step: render, decide, execute, parse, check."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from turnout.checks.json_extract import extract_json
from turnout.checks.scoring import evaluate
from turnout.errors import TurnoutError, error_class_of
from turnout.execution.budget import Budget
from turnout.execution.executor import Acceptor, AttemptSink, Executor
from turnout.policies.base import HEALTHY, Policy, PoolHealth, RequestContext
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatRequest, ChatResponse, CheckResult, Decision, Message, Usage
from turnout.workflows.handoff import serialize
from turnout.workflows.results import StepResult
from turnout.workflows.spec import Step, Workflow


def decide(
    step: Step,
    workflow: Workflow,
    policy: Policy,
    messages: tuple[Message, ...],
    tags: Mapping[str, str],
    health: PoolHealth = HEALTHY,
) -> Decision:
    """The policy's decision for a step, unless a human override supersedes it."""
    if step.override is not None:
        o = step.override
        return Decision((o.model,), f"override by {o.by}: {o.why} -> {o.model}", policy.name)
    ctx = RequestContext(
        messages=messages,
        step_id=step.id,
        workflow=workflow.name,
        annotation=step.annotation,
        tags=tags,
        step_model=step.model,
        step_tier=step.tier,
        default_model=workflow.default_model,
        max_tokens=step.max_tokens,
        latency=step.latency,
    )
    return policy.decide(ctx, health)


def parse_output(step: Step, text: str) -> tuple[Any, tuple[CheckResult, ...]]:
    """The value a step passes on, and a failed check when ``output: json`` cannot parse."""
    if step.output != "json":
        return text, ()
    try:
        return extract_json(text), ()
    except ValueError as exc:
        return text, (CheckResult("output is JSON", False, str(exc)),)


def judge(step: Step, text: str) -> tuple[Any, tuple[CheckResult, ...]]:
    """Parse and check one answer: the value and every check's result."""
    value, extra = parse_output(step, text)
    results, _, _ = evaluate(step.checks, text, value)
    return value, extra + results


def acceptor(step: Step) -> Acceptor:
    """For cascades and ensembles: None when an answer passes the step's required checks."""

    def accept(response: ChatResponse) -> str | None:
        _, results = judge(step, response.text)
        failed = [c for c in results if c.required and not c.passed]
        if not failed:
            return None
        return "failed " + ", ".join(c.name for c in failed)

    return accept


async def run_llm_step(
    step: Step,
    workflow: Workflow,
    values: Mapping[str, Any],
    *,
    policy: Policy,
    executor: Executor,
    run_id: str,
    tags: Mapping[str, str],
    budget: Budget | None = None,
    sink: AttemptSink | None = None,
    on_start: Callable[[str, str | None], None] | None = None,
) -> StepResult:
    """``on_start(step_id, model)`` is told once the policy has chosen the first model."""
    started_at = time.time()
    t0 = time.perf_counter()
    assert step.prompt is not None
    try:
        messages: list[Message] = []
        if step.system is not None:
            messages.append(Message.system(step.system.render(values, step=step.id)))
        messages.append(Message.user(step.prompt.render(values, step=step.id)))
        msgs = tuple(messages)
        decision = decide(step, workflow, policy, msgs, tags, await executor.health())
        for name in decision.models:
            executor.pool.spec(name)
    except TurnoutError as exc:
        return _failed(step, started_at, time.perf_counter() - t0, exc)
    if on_start is not None:
        on_start(step.id, decision.model)
    request = ChatRequest(msgs, max_tokens=step.max_tokens, temperature=step.temperature)
    execution = await executor.execute(
        decision, request, run_id=run_id, step_id=step.id, accept=acceptor(step), budget=budget,
        sink=sink,
    )  # fmt: skip
    decision = execution.explained()
    spec = executor.pool.spec(execution.model or decision.model)
    common: dict[str, Any] = {
        "step_id": step.id,
        "kind": "llm",
        "started_at": started_at,
        "latency_s": execution.latency_s,
        "decision": decision,
        "model": spec.name,
        "tier": spec.tier.value,
        "attempts": execution.attempts,
        "cost": execution.cost,
        "override_by": step.override.by if step.override else None,
        "override_why": step.override.why if step.override else None,
        "annotation": step.annotation,
        "messages": msgs,
    }
    usage = sum_usage(execution.attempts)
    if execution.response is None:
        err = execution.error
        return StepResult(
            status="failed",
            usage=usage,
            error_class=error_class_of(err) if err else "error",
            error=str(err) if err else "no answer",
            **common,
        )
    text = execution.response.text
    value, results = judge(step, text)
    passed_required = all(c.passed for c in results if c.required)
    return StepResult(
        status="succeeded" if passed_required else "failed",
        value=value,
        text=text,
        checks=results,
        score=_score(results),
        ttft_s=execution.response.ttft_s,
        usage=usage,
        **common,
    )


async def run_code_step(step: Step, values: Mapping[str, Any]) -> StepResult:
    started_at = time.time()
    t0 = time.perf_counter()
    assert step.run is not None
    try:
        if inspect.iscoroutinefunction(step.run):
            value = await step.run(dict(values))
        else:
            value = await asyncio.to_thread(step.run, dict(values))
    except Exception as exc:  # a code step's own bug: recorded, never a crash
        return StepResult(
            step_id=step.id,
            kind="code",
            status="failed",
            started_at=started_at,
            latency_s=time.perf_counter() - t0,
            error_class=type(exc).__name__,
            error=f"step {step.id!r}: {step.run_ref} raised {type(exc).__name__}: {exc}",
        )
    text = serialize(value)
    results, _, passed_required = evaluate(step.checks, text, value)
    return StepResult(
        step_id=step.id,
        kind="code",
        status="succeeded" if passed_required else "failed",
        started_at=started_at,
        latency_s=time.perf_counter() - t0,
        value=value,
        text=text,
        checks=results,
        score=_score(results),
    )


def skipped(step: Step, because: str) -> StepResult:
    return StepResult(
        step_id=step.id,
        kind=step.kind,
        status="skipped",
        started_at=time.time(),
        latency_s=0.0,
        error_class="skipped",
        error=f"skipped: input {because!r} has no output",
    )


def _failed(step: Step, started_at: float, latency: float, exc: TurnoutError) -> StepResult:
    return StepResult(
        step_id=step.id,
        kind=step.kind,
        status="failed",
        started_at=started_at,
        latency_s=latency,
        error_class=error_class_of(exc),
        error=str(exc),
    )


def _score(results: tuple[CheckResult, ...]) -> float | None:
    return sum(1 for c in results if c.passed) / len(results) if results else None


def sum_usage(attempts: Sequence[AttemptRecord]) -> Usage:
    total = Usage()
    for a in attempts:
        total = total + Usage(a.input_tokens, a.output_tokens, a.cached_input_tokens)
    return total
