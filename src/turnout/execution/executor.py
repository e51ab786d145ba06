"""The executor: carries a decision out against the real providers.

It owns everything a policy must not do: calling providers, timeouts, retries
with backoff that honour Retry-After, fallback chains, cascade escalation on
failed checks, ensembles, circuit breakers, caches, budget caps and per-model
concurrency limits. It records every attempt (failed ones too) with its cost,
counted once. It never raises for a provider failure: the :class:`Execution`
says what happened, so the caller can trace a failed step with all its attempts.

Strategies (``Decision.strategy``):

* ``single``: one model, up to ``RetryPolicy.max_attempts`` tries;
* ``fallback``: down the chain; a retryable failure (429, 5xx, timeout, refused
  connection, malformed response, open breaker) moves to the next model; context
  length exceeded moves to a model with a larger window; a content-filter refusal
  moves to ``Decision.on_content_filter`` when one is configured;
* ``cascade``: cheap to expensive; each rung's answer must pass the step's checks
  (``accept``) and the decision's quality checks, else the next rung is asked;
* ``ensemble``: every model at once; a majority vote for short answers, else the
  first answer that passes the checks (or a judge model's pick).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from turnout.errors import (
    AllAttemptsFailed,
    ContentFiltered,
    ContextLengthExceeded,
    ProviderError,
    ProviderTimeout,
    TurnoutError,
    error_class_of,
)
from turnout.execution.attempts import (
    AttemptRunner,
    Breakers,
    Ledger,
    ResponseCache,
    Sleep,
    Timeouts,
)
from turnout.execution.budget import Budget
from turnout.execution.quality import QualityCheck
from turnout.execution.retry import RetryPolicy
from turnout.execution.vote import Ballot, classification_like, majority
from turnout.policies.base import PoolHealth
from turnout.providers.pool import ModelPool
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatRequest, ChatResponse, Decision, Message

if TYPE_CHECKING:
    from turnout.execution.judged_stream import JudgedStream
    from turnout.execution.streaming import StreamExecution

AttemptSink = Callable[[AttemptRecord], None]
Acceptor = Callable[[ChatResponse], str | None]
"""Judges an answer: None to accept it, or why it is not good enough."""

_NUMBER = re.compile(r"(?<![\d.])\d{1,3}(?![\d.]?\d)")
"""A whole number in a judge's reply (not part of a decimal)."""


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of one decision: the answer (or the error) and every attempt."""

    decision: Decision
    attempts: tuple[AttemptRecord, ...]
    response: ChatResponse | None = None
    model: str | None = None
    error: TurnoutError | None = None
    latency_s: float = 0.0
    queued_s: float = 0.0
    note: str | None = None
    """What the strategy did, e.g. ``cascade: smol rejected (...) -> qwen accepted``."""

    @property
    def ok(self) -> bool:
        return self.response is not None

    @property
    def cost(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))


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
    ) -> None:
        self.pool = pool
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.on_attempt = on_attempt
        self.breakers = breakers
        self.runner = AttemptRunner(
            pool, retry=self.retry, timeouts=self.timeouts, breakers=breakers,
            caches=tuple(caches), sleep=sleep, rng=rng,
        )  # fmt: skip

    async def health(self) -> PoolHealth:
        """What policies may know of the pool now: models whose breaker is open, and the
        observed speed per model."""
        speeds = self.runner.speeds.snapshot()
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
    ) -> Execution:
        request = apply_decision(decision, request)
        ledger = Ledger(run_id, step_id, decision, budget)
        start = time.perf_counter()
        response: ChatResponse | None = None
        model: str | None = None
        note: str | None = None
        try:
            coro = self._strategy(ledger, request, accept)
            if self.timeouts.total_s is None:
                response, model, note = await coro
            else:
                async with asyncio.timeout(self.timeouts.total_s):
                    response, model, note = await coro
        except TimeoutError:
            ledger.errors.append(
                ProviderTimeout(f"no answer within the total timeout of {self.timeouts.total_s:g}s")
            )
        finally:
            if self.on_attempt is not None:
                for a in ledger.attempts:
                    self.on_attempt(a)
        error: TurnoutError | None = None
        if response is None:
            if ledger.fatal is not None:
                error = ledger.fatal
            elif len(ledger.errors) == 1:
                error = ledger.errors[0]
            else:
                error = AllAttemptsFailed(step_id, ledger.errors)
        return Execution(
            decision, tuple(ledger.attempts), response, model, error,
            latency_s=time.perf_counter() - start - ledger.queued_s,
            queued_s=ledger.queued_s, note=note,
        )  # fmt: skip

    async def _strategy(
        self, ledger: Ledger, request: ChatRequest, accept: Acceptor | None
    ) -> tuple[ChatResponse | None, str | None, str | None]:
        d = ledger.decision
        if d.strategy == "cascade":
            return await self._cascade(ledger, request, accept)
        if d.strategy == "ensemble":
            return await self._ensemble(ledger, request, accept)
        if d.strategy == "fallback" and len(d.models) > 1:
            return await self._fallback(ledger, request)
        response = await self.runner.call(ledger, d.model, request)
        return response, d.model if response else None, None

    # -- fallback ------------------------------------------------------------------------

    async def _fallback(
        self, ledger: Ledger, request: ChatRequest
    ) -> tuple[ChatResponse | None, str | None, str | None]:
        chain = list(ledger.decision.models)
        tried: list[str] = []
        i = 0
        while i < len(chain):
            model = chain[i]
            tried.append(model)
            response = await self.runner.call(ledger, model, request, attempts=1)
            if response is not None:
                note = None if i == 0 else f"fallback: {' -> '.join(tried)}"
                return response, model, note
            if ledger.fatal is not None:
                break
            rest = self.reroute(ledger.decision, chain, i, tried, ledger.errors[-1])
            if rest is None:
                break
            chain = rest
            i += 1
        return None, None, f"fallback: {' -> '.join(tried)} all failed"

    def reroute(
        self,
        decision: Decision,
        chain: Sequence[str],
        i: int,
        tried: Sequence[str],
        error: ProviderError,
    ) -> list[str] | None:
        """The fallback chain to go on with after ``chain[i]`` failed, or None to stop.

        Context length exceeded brings a model with a larger window next; a
        content-filter refusal brings ``on_content_filter``; any other retryable
        failure goes on down the chain; anything else stops it.
        """
        nxt: str | None = None
        if isinstance(error, ContextLengthExceeded):
            nxt = self._larger_window(chain[i], chain[i + 1 :], tried)
            if nxt is None:
                return None
        elif isinstance(error, ContentFiltered):
            alt = decision.on_content_filter
            if alt is None or alt in tried:
                return None
            nxt = alt
        elif not error.retryable:
            return None
        if nxt is None:
            return list(chain)
        return [*chain[: i + 1], nxt, *(m for m in chain[i + 1 :] if m != nxt)]

    def _larger_window(self, model: str, rest: Sequence[str], tried: Sequence[str]) -> str | None:
        """The next model with a larger context window: from the chain, else the pool
        (same tier or higher, cheapest first)."""
        spec = self.pool.spec(model)
        window = spec.context_window or 0
        for name in rest:
            other = self.pool.spec(name).context_window
            if other is None or other > window:
                return name
        candidates = [
            m for m in self.pool.settings.models.values()
            if m.name not in tried and (m.context_window or 0) > window
            and m.tier.rank >= spec.tier.rank
        ]  # fmt: skip
        if not candidates:
            return None
        return min(
            candidates, key=lambda m: (m.price.input + m.price.output, m.context_window)
        ).name

    # -- cascade -------------------------------------------------------------------------

    async def _cascade(
        self, ledger: Ledger, request: ChatRequest, accept: Acceptor | None
    ) -> tuple[ChatResponse | None, str | None, str | None]:
        d = ledger.decision
        quality = QualityCheck.build(d.quality) if d.quality else None
        steps: list[str] = []
        last: tuple[ChatResponse, str] | None = None
        pending: tuple[int, str] | None = None  # the last answer's attempt, until superseded
        for model in d.models:
            response = await self.runner.call(ledger, model, request)
            if response is None:
                if ledger.fatal is not None:  # a budget cap: nothing more may be spent
                    steps.append(f"{model} not called ({error_class_of(ledger.fatal)})")
                    break
                steps.append(f"{model} failed ({ledger.errors[-1].error_class})")
                continue
            if pending is not None:
                ledger.reject(*pending)
            last = (response, model)
            why = (quality.verdict(request, response) if quality else None) or (
                accept(response) if accept else None
            )
            if why is None:
                steps.append(f"{model} accepted")
                return response, model, "cascade: " + " -> ".join(steps)
            steps.append(f"{model} rejected ({why})")
            pending = (len(ledger.attempts) - 1, why)
        note = "cascade: " + " -> ".join(steps)
        if last is None:
            return None, None, note
        return last[0], last[1], note + "; kept the last answer"

    # -- ensemble ------------------------------------------------------------------------

    async def _ensemble(
        self, ledger: Ledger, request: ChatRequest, accept: Acceptor | None
    ) -> tuple[ChatResponse | None, str | None, str | None]:
        d = ledger.decision
        ledgers = [Ledger(ledger.run_id, ledger.step_id, d, ledger.budget) for _ in d.models]
        try:
            calls = (
                self.runner.call(s, m, request) for s, m in zip(ledgers, d.models, strict=True)
            )
            answers = await asyncio.gather(*calls)
        finally:  # also when the total timeout cuts the ensemble: no attempt (or cost) is lost
            for sub in ledgers:
                for a in sub.attempts:
                    ledger.attempts.append(replace(a, attempt=len(ledger.attempts) + 1))
                ledger.errors.extend(sub.errors)
                ledger.queued_s = max(ledger.queued_s, sub.queued_s)
                ledger.fatal = ledger.fatal or sub.fatal
        ballots = [
            Ballot(m, self.pool.spec(m).tier, r)
            for m, r in zip(d.models, answers, strict=True)
            if r is not None
        ]
        if not ballots:
            return None, None, "ensemble: every model failed"
        spec = d.ensemble
        mode = spec.mode if spec else "auto"
        if mode == "auto":
            mode = (
                "vote"
                if classification_like([b.response.text for b in ballots])
                else "first_passing"
            )
        if mode == "vote":
            v = majority(ballots)
            note = f"ensemble vote: {v.votes}/{v.total} for {v.answer!r} -> {v.winner.model}"
            return v.winner.response, v.winner.model, note
        if mode == "judge" and spec is not None and spec.judge:
            picked = await self._judge(ledger, request, ballots, spec.judge)
            if picked is not None:
                return (
                    picked.response,
                    picked.model,
                    f"ensemble judge {spec.judge} chose {picked.model}",
                )
        for b in ballots:
            if accept is None or accept(b.response) is None:
                return b.response, b.model, f"ensemble: first passing answer from {b.model}"
        best = max(ballots, key=lambda b: b.tier.rank)
        return (
            best.response,
            best.model,
            f"ensemble: no answer passed; kept {best.model} (highest tier)",
        )

    async def _judge(
        self, ledger: Ledger, request: ChatRequest, ballots: Sequence[Ballot], judge: str
    ) -> Ballot | None:
        question = "\n".join(m.content or "" for m in request.messages if m.role == "user")
        listed = "\n\n".join(f"Answer {i + 1}:\n{b.response.text}" for i, b in enumerate(ballots))
        prompt = (
            f"Question:\n{question}\n\n{listed}\n\n"
            f"Which answer is best? Reply with the number only (1-{len(ballots)})."
        )
        ask = ChatRequest((Message.user(prompt),), max_tokens=8, temperature=0)
        answer = await self.runner.call(ledger, judge, ask)
        if answer is None:
            return None
        for number in _NUMBER.findall(answer.text):  # "2", "Answer 2.", "**2**"
            if 1 <= int(number) <= len(ballots):
                return ballots[int(number) - 1]
        return None

    # -- streaming -----------------------------------------------------------------------

    def stream(
        self,
        decision: Decision,
        request: ChatRequest,
        *,
        run_id: str,
        step_id: str,
        allow_restart: bool = False,
        budget: Budget | None = None,
    ) -> StreamExecution | JudgedStream:
        """Stream a decision's answer, token by token
        (:class:`~turnout.execution.streaming.StreamExecution`), or, for an ensemble or a
        cascade with quality checks, once it has been judged
        (:class:`~turnout.execution.judged_stream.JudgedStream`)."""
        from turnout.execution.judged_stream import JudgedStream, is_judged
        from turnout.execution.streaming import StreamExecution

        if is_judged(decision):
            return JudgedStream(
                self, request, decision, run_id=run_id, step_id=step_id, budget=budget
            )
        return StreamExecution(
            self, apply_decision(decision, request), decision, run_id=run_id,
            step_id=step_id, allow_restart=allow_restart, budget=budget,
        )  # fmt: skip
