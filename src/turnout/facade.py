"""The library façade: what the CLI and the gateway both sit on.

::

    from turnout import Turnout

    async with Turnout.from_config("turnout.yaml", store=".turnout/traces.db") as t:
        answer = await t.chat([{"role": "user", "content": "..."}], policy="resilient",
                              tags={"user": "42"}, step="draft")
        async for event in (stream := t.stream(messages, policy="resilient")):
            ...
        print(stream.answer.model, stream.answer.cost)
        result = await t.run(workflow, {"task": "..."}, policy="mixed")

Every ``chat`` and ``stream`` is traced as a one-step run (workflow ``chat`` and
step ``chat`` unless named), with every attempt; ``run`` traces a workflow run.
The trace sink is chosen per call, so one façade serves many callers at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, get_args

from turnout.config.loader import load_settings
from turnout.config.settings import Settings
from turnout.errors import ConfigError, StoreError, TurnoutError, error_class_of
from turnout.execution.budget import Budget
from turnout.execution.executor import ExecutionStream, Executor
from turnout.execution.ledger import Execution
from turnout.execution.run import StreamCutRule
from turnout.execution.setup import Resources, build_executor
from turnout.execution.stream_cut import Restart
from turnout.policies.allowed import only_allowed
from turnout.policies.base import HEALTHY, Latency, Policy, PoolHealth, RequestContext
from turnout.policies.registry import build_policy
from turnout.tracing.records import AttemptRecord, RunRecord, TraceRecord
from turnout.tracing.spill import SpillFile
from turnout.tracing.store import TraceStore
from turnout.tracing.writer import TraceWriter
from turnout.types import (
    Annotation,
    ChatRequest,
    ChatResponse,
    Decision,
    MaxTokensParam,
    Message,
    StreamEvent,
    Usage,
)
from turnout.workflows.results import RunResult, StepResult
from turnout.workflows.runner import Runner, StepCallback, new_run_id
from turnout.workflows.spec import Workflow

MessageLike = Message | Mapping[str, Any]
CHAT = "chat"


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's outcome: the answer (or why there is none) and what it took."""

    run_id: str
    policy: str
    decision: Decision
    execution: Execution

    @property
    def ok(self) -> bool:
        return self.execution.ok

    @property
    def response(self) -> ChatResponse | None:
        return self.execution.response

    @property
    def text(self) -> str:
        r = self.execution.response
        return r.text if r is not None else ""

    @property
    def model(self) -> str | None:
        """The pool model that answered."""
        return self.execution.model

    @property
    def reason(self) -> str:
        return self.execution.explained().reason

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        return self.execution.attempts

    @property
    def usage(self) -> Usage:
        return self.execution.usage

    @property
    def cost(self) -> Decimal:
        return self.execution.cost

    @property
    def latency_s(self) -> float:
        return self.execution.latency_s

    @property
    def error(self) -> TurnoutError | None:
        return self.execution.error


def to_messages(messages: Iterable[MessageLike]) -> tuple[Message, ...]:
    """Messages as :class:`~turnout.types.Message` (OpenAI-shaped dicts accepted)."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, Message):
            out.append(m)
            continue
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ConfigError(f"messages[{i}].role: expected system, user, assistant or tool")
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise ConfigError(f"messages[{i}].content: expected text")
        out.append(Message(role, content, tool_call_id=m.get("tool_call_id"), name=m.get("name")))
    if not out:
        raise ConfigError("messages: at least one message is needed")
    return tuple(out)


@dataclass(slots=True)
class _Call:
    """One chat request being carried out: its context, decision and trace."""

    run_id: str
    workflow: str
    step: str
    policy: Policy
    decision: Decision
    request: ChatRequest
    tags: Mapping[str, str]
    annotation: Annotation | None
    started_at: float = field(default_factory=time.time)


class Turnout:
    """Policies, executor and trace store for one configuration. Use it as an async
    context manager (or call :meth:`aclose`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: str | TraceStore | None = None,
        trace: bool = True,
        use_cache: bool = True,
        on_stream_cut: StreamCutRule | None = None,
        spill: SpillFile | None = None,
    ) -> None:
        """``store``: a URL or path (default: ``storage:`` in the config, else
        ``.turnout/traces.db``) or an open :class:`TraceStore` (left open for its owner);
        ``trace=False`` records nothing."""
        self.settings = settings
        self.executor: Executor
        self._resources: Resources
        self.executor, self._resources = build_executor(
            settings, use_cache=use_cache, on_stream_cut=on_stream_cut
        )
        self._policies: dict[str | None, Policy] = {}
        self.defer: Callable[[Callable[[], None]], object] | None = None
        """Where a finished request's step and run records are built: None, at once
        (before ``chat`` returns, before a stream's last event); a server passes its
        loop's ``call_soon``, so that they are built after the answer has gone out."""
        self._own_store = False
        self.store: TraceStore | None = None
        self.writer: TraceWriter | None = None
        if trace:
            if store is None or isinstance(store, str):
                from turnout.tracing.open import open_store

                self.store = open_store(store or settings.storage)
                self._own_store = True
            else:
                self.store = store
            self.writer = TraceWriter(self.store, spill=spill)  # spill: see tracing.spill

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> Turnout:
        return cls(load_settings(path), **kwargs)

    async def __aenter__(self) -> Turnout:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close providers and Redis, write every pending trace, close the store."""
        try:
            await self.executor.pool.aclose()
            await self._resources.aclose()
        finally:
            try:
                if self.writer is not None:
                    self.writer.close()
            finally:
                if self._own_store and self.store is not None:
                    self.store.close()

    def _sink(self, record: TraceRecord) -> None:
        if self.writer is not None:
            self.writer.submit(record)

    def policy(self, name: str | None) -> Policy:
        """The policy called ``name`` (None: the workflow's own routing), built once."""
        policy = self._policies.get(name)
        if policy is None:
            policy = self._policies[name] = build_policy(name, self.settings)
        return policy

    # -- one request ---------------------------------------------------------------------

    async def chat(self, messages: Iterable[MessageLike], **options: Any) -> Answer:
        """One request, decided by ``policy`` (or exactly ``model``) and traced as a
        one-step run. Options: ``policy``, ``model``, ``tags``, ``step``, ``workflow``,
        ``session``, ``annotation``, ``latency`` (``sensitive``: the fastest model inside
        a tier), ``run_id``, ``budget``, ``allowed_models`` (the pool models that may
        answer: the policy's other choices are dropped, and :class:`ModelNotAllowed`
        raised if none is left; or a function giving them, or None for any, asked once
        ``admitted`` is done), ``admitted`` (an async function awaited once the policy
        has decided, before anything is traced, looked up or sent: a caller's go-ahead,
        such as a key's limits being checked meanwhile; what it raises is the call's)
        and the request's own
        ``max_tokens`` (sent as ``max_tokens`` unless ``max_tokens_param`` says
        ``max_completion_tokens``), ``temperature``, ``top_p``, ``stop``, ``seed``,
        ``tools``, ``tool_choice``, ``response_format``, ``extra``. ``on_abandon``: called with the
        answer so far (what its attempts cost included) when the call is cancelled."""
        on_abandon = options.pop("on_abandon", None)
        call, budget = await self._prepare(messages, options)

        def abandoned(execution: Execution) -> None:  # the run ends, traced and paid for
            self._finished(call, execution)
            if on_abandon is not None:
                on_abandon(Answer(call.run_id, call.policy.name, call.decision, execution))

        execution = await self.executor.execute(
            call.decision, call.request, run_id=call.run_id, step_id=call.step,
            budget=budget, sink=self._sink, on_abandon=abandoned,
        )  # fmt: skip
        self._finished(call, execution)
        return Answer(call.run_id, call.policy.name, call.decision, execution)

    def stream(self, messages: Iterable[MessageLike], **options: Any) -> ChatStream:
        """The same as :meth:`chat`, streamed: iterate the result for events; afterwards
        ``answer`` holds the outcome. ``on_stream_cut`` overrides the config's rule;
        ``on_cut_spend`` is asked before an answer cut mid-way is continued or restarted
        whether the request may go on paying
        (:data:`~turnout.execution.run.CutSpend`)."""
        return ChatStream(self, messages, options)

    async def _prepare(
        self, messages: Iterable[MessageLike], options: dict[str, Any]
    ) -> tuple[_Call, Budget | None]:
        msgs = to_messages(messages)
        tags = {str(k): str(v) for k, v in (options.pop("tags", None) or {}).items()}
        session = options.pop("session", None)
        if session:
            tags["session"] = str(session)
        run_id = options.pop("run_id", None) or new_run_id()
        tags.setdefault("run", run_id)
        step = options.pop("step", None) or CHAT
        workflow = options.pop("workflow", None) or CHAT
        annotation = options.pop("annotation", None)
        latency: Latency = "sensitive" if options.pop("latency", None) == "sensitive" else "normal"
        budget = options.pop("budget", None)
        model = options.pop("model", None)
        name = options.pop("policy", None)
        allowed = options.pop("allowed_models", None)
        admitted = options.pop("admitted", None)
        request_fields = {
            k: options.pop(k) for k in list(options) if k in ChatRequest.__dataclass_fields__
        }
        if options:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(options))}")
        param = request_fields.get("max_tokens_param", "max_tokens")
        if param not in get_args(MaxTokensParam):  # a typo would go upstream, the cap lost
            raise ConfigError(
                f"max_tokens_param must be max_tokens or max_completion_tokens, not {param!r}"
            )
        request = ChatRequest(msgs, **request_fields)
        if model is not None:
            self.executor.pool.spec(model)  # a ConfigError naming the model if unknown
            named = _Named(model)
            policy = self.policy(name) if name else named
            decision = named.decide(RequestContext())
        else:
            policy = self.policy(name)
            ctx = RequestContext(
                messages=msgs, step_id=step, workflow=workflow, annotation=annotation,
                tags=tags, max_tokens=request.max_tokens, latency=latency,
            )  # fmt: skip
            decision = policy.decide(ctx, await self.executor.health())
            for m in decision.models:
                self.executor.pool.spec(m)
        if admitted is not None:
            await admitted()
        if callable(allowed):
            allowed = allowed()
        if allowed is not None:
            decision = only_allowed(decision, frozenset(allowed))
        call = _Call(run_id, workflow, step, policy, decision, request, tags, annotation)
        self._sink(
            RunRecord(
                run_id=run_id, workflow=workflow, policy=policy.name, status="running",
                started_at=call.started_at, tags=tags,
            )
        )  # fmt: skip
        return call, budget

    def _finished(self, call: _Call, execution: Execution) -> None:
        if self.defer is None:
            self._finish(call, execution)
        else:
            self.defer(lambda: self._finish(call, execution))

    def _finish(self, call: _Call, execution: Execution) -> None:
        """The step and the final run of a one-step run."""
        decision = execution.explained()
        spec = self.executor.pool.spec(execution.model or call.decision.model)
        response = execution.response
        step = StepResult(
            step_id=call.step, kind="llm",
            status="succeeded" if response is not None else "failed",
            started_at=call.started_at, latency_s=execution.latency_s,
            text=response.text if response is not None else None,
            value=response.text if response is not None else None,
            decision=decision, model=spec.name, tier=spec.tier.value,
            attempts=execution.attempts, ttft_s=response.ttft_s if response else None,
            usage=execution.usage, cost=execution.cost,
            error_class=error_class_of(execution.error) if execution.error else None,
            error=str(execution.error) if execution.error else None,
            annotation=call.annotation, messages=call.request.messages,
        )  # fmt: skip
        self._sink(step.record(call.run_id))
        result = RunResult(
            run_id=call.run_id, workflow=call.workflow, policy=call.policy.name,
            status="succeeded" if response is not None else "failed",
            started_at=call.started_at, wall_s=time.time() - call.started_at, steps=(step,),
            inputs={}, tags=call.tags, variant=decision.variant,
            error=str(execution.error) if execution.error else None,
        )  # fmt: skip
        self._sink(result.record())

    async def feedback(
        self,
        run_id: str,
        *,
        passed: bool | None = None,
        score: float | None = None,
        by: str = "unknown",
        step: str = CHAT,
        key_name: str | None = None,
    ) -> None:
        """Record whether a request's answer was good (``passed``, or a ``score`` in
        [0, 1]), after the fact: ``turnout learn`` learns from it. ConfigError for a bad
        value, StoreError for a run (or step) the store does not have; with ``key_name``
        (a gateway with keys), also for a run made with another key."""
        if (passed is None) == (score is None):
            raise ConfigError("feedback: give either passed or score")
        value = float(passed) if passed is not None else float(score or 0.0)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"feedback: score must be in [0, 1], got {score!r}")
        if self.store is None or self.writer is None:
            raise StoreError("feedback: this Turnout records no traces")
        from turnout.tracing.meta import FeedbackRecord, add_feedback

        record = FeedbackRecord(run_id, step, value, by)
        await self.writer.aflush()  # the run may still be on its way to the store
        await asyncio.to_thread(add_feedback, self.store, record, key_name=key_name)

    # -- workflows -----------------------------------------------------------------------

    async def run(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        *,
        policy: str | None = None,
        tags: Mapping[str, str] | None = None,
        on_step: StepCallback | None = None,
        budget: Budget | None = None,
        run_id: str | None = None,
    ) -> RunResult:
        """Run ``workflow`` once under ``policy`` (None: the workflow's own routing)."""
        runner = Runner(self.settings, executor=self.executor, sink=self._sink)
        return await runner.run(
            workflow, inputs, policy=self.policy(policy), tags=tags, on_step=on_step,
            budget=budget, run_id=run_id,
        )  # fmt: skip

    async def bench(
        self,
        workflow: Workflow,
        policies: Sequence[str],
        cases: Sequence[Any],
        *,
        runs: int = 1,
        concurrency: int = 1,
    ) -> Any:
        """Run ``workflow`` ``runs`` times per case under each policy (see ``turnout bench``)."""
        from turnout.bench.runner import run_bench

        runner = Runner(self.settings, executor=self.executor, sink=self._sink)
        return await run_bench(
            runner, workflow, [self.policy(p) for p in policies], cases, runs=runs,
            concurrency=concurrency,
        )  # fmt: skip


class ChatStream:
    """Iterate for :class:`~turnout.types.StreamEvent` (and a :class:`Restart` under
    ``on_stream_cut: restart``); a request that found no answer raises its error at the
    end. Afterwards ``answer`` holds the outcome (also when the caller stopped early)."""

    def __init__(
        self, t: Turnout, messages: Iterable[MessageLike], options: dict[str, Any]
    ) -> None:
        self._t = t
        self._messages = messages
        self._options = dict(options)
        self.answer: Answer | None = None
        self.decision: Decision | None = None
        """What the policy decided, known before the first event."""
        self._stream: ExecutionStream | None = None

    @property
    def model(self) -> str | None:
        """The pool model whose answer is streaming now."""
        return self._stream.model if self._stream is not None else None

    def __aiter__(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        t = self._t
        rule = self._options.pop("on_stream_cut", None)
        on_cut_spend = self._options.pop("on_cut_spend", None)
        call, budget = await t._prepare(self._messages, self._options)
        self.decision = call.decision
        stream = self._stream = t.executor.stream(
            call.decision, call.request, run_id=call.run_id, step_id=call.step, budget=budget,
            sink=t._sink, on_stream_cut=rule, on_cut_spend=on_cut_spend,
        )  # fmt: skip
        assert stream is not None
        events = aiter(stream)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
            execution = stream.execution
            assert execution is not None
            t._finished(call, execution)
            self.answer = Answer(call.run_id, call.policy.name, call.decision, execution)


class _Named:
    """The policy of a request that named its model: exactly that model."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"model:{model}"

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        return Decision((self.model,), f"model {self.model} asked for by name", self.name)
