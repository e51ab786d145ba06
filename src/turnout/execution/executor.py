"""The executor: carries a decision out against the real providers.

It owns everything a policy must not do: calling providers, timeouts, retries
with backoff that honour Retry-After, fallback chains, cascade escalation on
failed checks, ensembles, circuit breakers, caches, budget caps and per-model
concurrency limits. One pipeline serves :meth:`Executor.execute` (the finished
answer) and :meth:`Executor.stream` (its tokens as they come): the same attempts
(:mod:`~turnout.execution.attempt`), walked the same way by each strategy
(:mod:`~turnout.execution.strategies`). It records every attempt, failed ones
too, with its cost counted once, and hands them to the call's trace sink. It
never raises for a provider failure from ``execute``: the
:class:`~turnout.execution.ledger.Execution` says what happened.

Strategies (``Decision.strategy``): ``single`` (one model, retried with backoff),
``fallback`` (down the chain), ``cascade`` (cheap to expensive until an answer
passes) and ``ensemble`` (every model at once, one answer chosen).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace

from turnout.errors import StreamAbandoned, TurnoutError
from turnout.execution.breaker_gate import BreakerGate, Breakers
from turnout.execution.budget import Budget
from turnout.execution.cache_gate import CacheGate, ResponseCache
from turnout.execution.ledger import Execution, Ledger
from turnout.execution.retry import Backoff, RetryPolicy, Sleep
from turnout.execution.run import CutSpend, DecisionRun, StreamCutRule
from turnout.execution.speed import SpeedBoard
from turnout.execution.strategies import CascadeRoute, FallbackRoute, Route, SingleRoute
from turnout.execution.strategies.cascade import Acceptor
from turnout.execution.strategies.chain import Event, Walk
from turnout.execution.strategies.ensemble import EnsembleWalk
from turnout.execution.timeouts import Deadline, Timeouts
from turnout.policies.base import PoolHealth
from turnout.providers.pool import ModelPool
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatRequest, Decision, Message

AttemptSink = Callable[[AttemptRecord], None]

__all__ = ["Acceptor", "AttemptSink", "Execution", "ExecutionStream", "Executor", "apply_decision"]


def apply_decision(decision: Decision, request: ChatRequest) -> ChatRequest:
    """A policy's system prompt (prepended) and temperature (``task_type``)."""
    if decision.system_prompt:
        request = replace(
            request, messages=(Message.system(decision.system_prompt), *request.messages)
        )
    if decision.temperature is not None and request.temperature is None:
        request = replace(request, temperature=decision.temperature)
    return request


class Executor:
    def __init__(
        self,
        pool: ModelPool,
        *,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        on_attempt: AttemptSink | None = None,
        breakers: Breakers | None = None,
        caches: Sequence[ResponseCache] = (),
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_stream_cut: StreamCutRule = "continue",
    ) -> None:
        """``on_attempt`` is the default trace sink (each call may name its own)."""
        self.pool = pool
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.on_attempt = on_attempt
        self.breakers = breakers
        self.breaker_gate = BreakerGate(breakers)
        self.cache = CacheGate(caches)
        self.backoff = Backoff(self.retry, sleep=sleep, rng=rng)
        self.on_stream_cut: StreamCutRule = on_stream_cut
        self.speeds = SpeedBoard()
        """Observed speed per model, recorded after each successful attempt."""

    async def health(self) -> PoolHealth:
        """What policies may know of the pool now: models whose breaker is open, and the
        observed speed per model."""
        speeds = self.speeds.snapshot()
        if self.breakers is None:
            return PoolHealth(speeds=speeds)
        return PoolHealth(await self.breakers.unavailable(), speeds)

    async def execute(
        self,
        decision: Decision,
        request: ChatRequest,
        *,
        run_id: str,
        step_id: str,
        accept: Acceptor | None = None,
        budget: Budget | None = None,
        sink: AttemptSink | None = None,
        on_abandon: Callable[[Execution], None] | None = None,
    ) -> Execution:
        """Carry ``decision`` out and return the finished answer (or why there is none).
        Cancelled (the caller stopped waiting), the execution so far, its attempts
        recorded as abandoned, goes to ``on_abandon`` before the cancellation goes on."""
        stream = ExecutionStream(
            self, decision, request, run_id=run_id, step_id=step_id, accept=accept,
            budget=budget, sink=sink, streamed=False, on_stream_cut=self.on_stream_cut,
        )  # fmt: skip
        try:
            async for _ in stream:
                pass
        except TurnoutError:
            pass  # in the execution
        except asyncio.CancelledError:
            if on_abandon is not None and stream.execution is not None:
                on_abandon(stream.execution)
            raise
        assert stream.execution is not None
        return stream.execution

    def stream(
        self,
        decision: Decision,
        request: ChatRequest,
        *,
        run_id: str,
        step_id: str,
        accept: Acceptor | None = None,
        budget: Budget | None = None,
        sink: AttemptSink | None = None,
        on_stream_cut: StreamCutRule | None = None,
        on_cut_spend: CutSpend | None = None,
    ) -> ExecutionStream:
        """Stream ``decision``'s answer: its events as they come (for an ensemble, or a
        cascade with checks to pass, once it has been judged). ``on_cut_spend``: asked
        before an answer cut mid-way is continued or restarted (:data:`CutSpend`)."""
        return ExecutionStream(
            self, decision, request, run_id=run_id, step_id=step_id, accept=accept,
            budget=budget, sink=sink, streamed=True,
            on_stream_cut=on_stream_cut or self.on_stream_cut, on_cut_spend=on_cut_spend,
        )  # fmt: skip

    def route(self, decision: Decision, accept: Acceptor | None) -> Route:
        if decision.strategy == "cascade":
            return CascadeRoute(decision, accept)
        if decision.strategy == "fallback" and len(decision.models) > 1:
            return FallbackRoute(decision, self.pool)
        return SingleRoute(decision.model, self.retry.max_attempts)


class ExecutionStream:
    """Iterate it for the answer's events (:class:`~turnout.types.StreamEvent`, and a
    :class:`~turnout.execution.stream_cut.Restart` under ``on_stream_cut: restart``);
    a decision that found no answer raises its error at the end. Afterwards
    ``execution`` holds the outcome and every attempt. A caller that stops early
    should close the iterator (``contextlib.aclosing``) so the attempt in flight is
    recorded, and charged, at once."""

    def __init__(
        self,
        executor: Executor,
        decision: Decision,
        request: ChatRequest,
        *,
        run_id: str,
        step_id: str,
        accept: Acceptor | None,
        budget: Budget | None,
        sink: AttemptSink | None,
        streamed: bool,
        on_stream_cut: StreamCutRule,
        on_cut_spend: CutSpend | None = None,
    ) -> None:
        self.executor = executor
        self.decision = decision
        self.request = apply_decision(decision, request)
        self.accept = accept
        self.ledger = Ledger(run_id, step_id, decision, budget)
        self.sink = sink if sink is not None else executor.on_attempt
        self.streamed = streamed
        self.on_stream_cut = on_stream_cut
        self.on_cut_spend = on_cut_spend
        self.execution: Execution | None = None
        self._walk: Walk | EnsembleWalk | None = None

    @property
    def model(self) -> str | None:
        """The pool model whose answer is coming now (None before the first attempt)."""
        return self._walk.current if self._walk is not None else None

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Event, None]:
        ex = self.executor
        start = time.perf_counter()
        run = DecisionRun(
            ex, self.ledger, Deadline(ex.timeouts.total_s), self.streamed, self.on_stream_cut,
            self.on_cut_spend,
        )  # fmt: skip
        walk: Walk | EnsembleWalk = (
            EnsembleWalk(run, self.request, self.accept)
            if self.decision.strategy == "ensemble"
            else Walk(run, ex.route(self.decision, self.accept), self.request)
        )
        self._walk = walk
        error: TurnoutError | None = None
        events = walk.events()
        try:
            async for event in events:
                yield event
        except TurnoutError as exc:
            error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            error = StreamAbandoned("the caller stopped waiting for the answer")
            raise
        finally:
            await events.aclose()
            if self.sink is not None:
                for a in self.ledger.attempts:
                    self.sink(a)
            self.execution = Execution.of(
                self.ledger, walk.response, walk.model, error, start, walk.note
            )
