"""The async DAG runner: steps whose inputs are ready run concurrently.

A step whose input failed hard (an error, so no output) is skipped; a step
whose input merely failed its checks still runs, so every step is scored and a
bench can say where quality was lost. Every record goes to the trace sink as
it happens: the run as ``running`` (with its writer, ``pid@host``), each attempt,
each step, the final run. A run cancelled (Ctrl-C, SIGTERM) is recorded
``interrupted`` and one stopped by an unexpected error ``failed``, each charged
for the calls it made: no run is left ``running`` by a process that goes on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from turnout.config.settings import Settings
from turnout.execution.budget import Budget
from turnout.execution.executor import Executor
from turnout.execution.retry import RetryPolicy
from turnout.policies.ab import RUN_TAG
from turnout.policies.base import Policy
from turnout.providers.pool import ModelPool
from turnout.tracing.liveness import this_writer
from turnout.tracing.records import AttemptRecord, RunRecord, TraceRecord
from turnout.workflows.binding import bind_inputs, check_against_pool
from turnout.workflows.handoff import step_context
from turnout.workflows.results import RunResult, StepResult
from turnout.workflows.spec import Workflow
from turnout.workflows.step_exec import run_code_step, run_llm_step, skipped

TraceSink = Callable[[TraceRecord], None]
StepCallback = Callable[[StepResult], None]
StartCallback = Callable[[str, "str | None"], None]
"""``(step_id, model)`` when a step starts (model None for a code step)."""


def new_run_id() -> str:
    """Sortable by time (ms prefix), unique by a random suffix. Not a secret: the suffix
    comes from :mod:`random` (``uuid4`` reads the OS's entropy, ~30 µs a call on some
    machines, which the gateway would pay per request)."""
    return f"{int(time.time() * 1000):012x}{random.getrandbits(32):08x}"


class Runner:
    """Runs workflows on a pool under a policy. One runner may run many workflows
    concurrently (that is what ``bench`` does)."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool: ModelPool | None = None,
        sink: TraceSink | None = None,
        retry: RetryPolicy | None = None,
        executor: Executor | None = None,
    ) -> None:
        """``executor`` (one built by :func:`turnout.execution.setup.build_executor`, with
        breakers and caches) replaces the default one: retries, no breaker, no cache."""
        self.settings = settings
        self.pool = executor.pool if executor is not None else (pool or ModelPool(settings))
        self.sink = sink
        self._calls: dict[str, list[AttemptRecord]] = {}
        """Attempts of the runs in flight, so an interrupted run is charged for them."""
        self.executor = executor or Executor(self.pool, retry=retry)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def run(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        *,
        policy: Policy,
        run_id: str | None = None,
        bench_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        on_step: StepCallback | None = None,
        budget: Budget | None = None,
        on_start: StartCallback | None = None,
    ) -> RunResult:
        """Run ``workflow`` once. ``budget`` caps spend (default: the workflow's ``budget:``)."""
        check_against_pool(workflow, self.settings)
        values = bind_inputs(workflow, inputs)
        run_id = run_id or new_run_id()
        tags = {**(tags or {}), RUN_TAG: run_id}
        started_at = time.time()
        t0 = time.perf_counter()
        running = RunRecord(
            run_id=run_id,
            workflow=workflow.name,
            policy=policy.name,
            status="running",
            started_at=started_at,
            inputs=values,
            tags=tags,
            bench_id=bench_id,
            writer=this_writer(),
        )
        self._emit(running)
        if workflow.budget is not None:
            budget = workflow.budget.fresh(run_usd=budget.run_usd if budget else None)
        results: dict[str, StepResult] = {}
        self._calls[run_id] = []
        try:
            await self._schedule(
                workflow, values, policy, run_id, tags, on_step, budget, results, on_start
            )
        except BaseException as exc:
            # Ctrl-C / SIGTERM (cancelled) or a bug: never leave the run `running`.
            self._emit(self._cut_short(running, exc, time.perf_counter() - t0))
            raise
        finally:
            self._calls.pop(run_id, None)
        ordered = tuple(results[sid] for sid in workflow.order)
        failed = [s for s in ordered if not s.ok]
        error = None
        if failed:
            error = step_error(failed[0])
        result = RunResult(
            run_id=run_id,
            workflow=workflow.name,
            policy=policy.name,
            status="failed" if failed else "succeeded",
            started_at=started_at,
            wall_s=time.perf_counter() - t0,
            steps=ordered,
            inputs=values,
            tags=tags,
            bench_id=bench_id,
            variant=_variant(ordered),
            error=error,
        )
        self._emit(result.record())
        return result

    async def _schedule(
        self,
        workflow: Workflow,
        values: Mapping[str, Any],
        policy: Policy,
        run_id: str,
        tags: Mapping[str, str],
        on_step: StepCallback | None,
        budget: Budget | None,
        results: dict[str, StepResult],
        on_start: StartCallback | None = None,
    ) -> None:
        outputs: dict[str, Any] = {}
        waiting = {s.id: len(set(s.inputs)) for s in workflow.steps}
        dependents = workflow.dependents()
        running: dict[asyncio.Task[StepResult], str] = {}

        def start(step_id: str) -> None:
            step = workflow.step(step_id)
            broken = next((d for d in step.inputs if not results[d].has_output), None)
            if broken is not None:
                finish(skipped(step, broken))
                return
            ctx = step_context(values, outputs, step.inputs)
            if step.kind == "code" and on_start is not None:
                on_start(step.id, None)
            coro = (
                run_code_step(step, ctx)
                if step.kind == "code"
                else run_llm_step(
                    step,
                    workflow,
                    ctx,
                    policy=policy,
                    executor=self.executor,
                    run_id=run_id,
                    tags=tags,
                    budget=budget,
                    sink=self._attempt,
                    on_start=on_start,
                )
            )
            running[asyncio.ensure_future(coro)] = step_id

        def finish(result: StepResult) -> None:
            results[result.step_id] = result
            if result.has_output:
                outputs[result.step_id] = result.value
            self._emit(result.record(run_id))
            if on_step is not None:
                on_step(result)
            for dep in dict.fromkeys(dependents[result.step_id]):
                waiting[dep] -= 1
                if waiting[dep] == 0:
                    start(dep)

        for sid in workflow.order:
            if waiting[sid] == 0:
                start(sid)
        try:
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    del running[task]
                    finish(task.result())
        finally:
            for task in running:
                task.cancel()
            if running:  # let cancelled steps record their calls before the run's last record
                await asyncio.wait(running)

    def _emit(self, record: TraceRecord) -> None:
        if self.sink is not None:
            self.sink(record)

    def _attempt(self, record: AttemptRecord) -> None:
        calls = self._calls.get(record.run_id)
        if calls is not None:
            calls.append(record)
        self._emit(record)

    def _cut_short(self, running: RunRecord, exc: BaseException, wall_s: float) -> RunRecord:
        """The final record of a run that did not finish: ``interrupted`` (cancelled,
        Ctrl-C) or ``failed`` (an unexpected error), charged for every call it made."""
        calls = self._calls.get(running.run_id, [])
        interrupted = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit))
        return replace(
            running,
            status="interrupted" if interrupted else "failed",
            ended_at=running.started_at + wall_s,
            calls=len(calls),
            latency_s=sum(a.latency_s for a in calls),
            input_tokens=sum(a.input_tokens for a in calls),
            output_tokens=sum(a.output_tokens for a in calls),
            cached_input_tokens=sum(a.cached_input_tokens for a in calls),
            cost_usd=sum((a.cost_usd for a in calls), Decimal(0)),
            error="interrupted" if interrupted else f"{type(exc).__name__}: {exc}",
            writer=None,
        )


def step_error(step: StepResult) -> str:
    """A failed step's error, naming the step once (some errors name it already)."""
    where = f"step {step.step_id!r}: "
    text = step.error or _failed_checks(step)
    return text if text.startswith(where) else where + text


def _failed_checks(step: StepResult) -> str:
    failed = [c for c in step.checks if c.required and not c.passed]
    if not failed:
        return "checks failed"
    return "failed " + "; ".join(f"{c.name} ({c.detail})" if c.detail else c.name for c in failed)


def _variant(steps: tuple[StepResult, ...]) -> str | None:
    """The A/B variant the run was assigned (the first step decision that names one)."""
    for s in steps:
        if s.decision is not None and s.decision.variant:
            return s.decision.variant
    return None
