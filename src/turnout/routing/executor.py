"""The executor: carries a decision out against the real providers.

It owns everything a policy must not do: calling providers, timing, retries
with backoff (honouring Retry-After), moving down a fallback chain, per-model
concurrency limits, and recording every attempt (failed ones too) with its
cost. It never raises for a provider failure: the outcome says what happened,
so the caller can trace a failed step with all the attempts it made.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from turnout.errors import AllAttemptsFailed, ProviderError, TurnoutError
from turnout.providers.pool import ModelPool
from turnout.routing.retry import RetryPolicy
from turnout.tracing.records import AttemptRecord
from turnout.types import ChatRequest, ChatResponse, Decision

AttemptSink = Callable[[AttemptRecord], None]
Sleep = Callable[[float], Awaitable[None]]


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

    @property
    def ok(self) -> bool:
        return self.response is not None

    @property
    def cost(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))


@dataclass(frozen=True, slots=True)
class AttemptContext:
    run_id: str
    step_id: str


class Executor:
    def __init__(
        self,
        pool: ModelPool,
        *,
        retry: RetryPolicy | None = None,
        on_attempt: AttemptSink | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.retry = retry or RetryPolicy()
        self.on_attempt = on_attempt
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def execute(
        self, decision: Decision, request: ChatRequest, *, run_id: str, step_id: str
    ) -> Execution:
        ctx = AttemptContext(run_id, step_id)
        attempts: list[AttemptRecord] = []
        errors: list[ProviderError] = []
        start = time.perf_counter()
        queued = 0.0
        chain = decision.models if decision.strategy == "fallback" else decision.models[:1]
        per_model = 1 if len(chain) > 1 else self.retry.max_attempts
        for model in chain:
            for n in range(1, per_model + 1):
                response, error, waited = await self._attempt(
                    decision, model, request, ctx, attempts
                )
                queued += waited
                if response is not None:
                    return Execution(
                        decision,
                        tuple(attempts),
                        response,
                        model,
                        latency_s=time.perf_counter() - start - queued,
                        queued_s=queued,
                    )
                assert error is not None
                errors.append(error)
                if not error.retryable:
                    break
                if n < per_model:
                    await self._sleep(self.retry.delay(n, error, self._rng))
            if not errors[-1].retryable:
                break  # a non-retryable failure (auth, bad request, ...) ends the chain
        final: TurnoutError = errors[0] if len(errors) == 1 else AllAttemptsFailed(step_id, errors)
        return Execution(
            decision,
            tuple(attempts),
            None,
            None,
            final,
            latency_s=time.perf_counter() - start - queued,
            queued_s=queued,
        )

    async def _attempt(
        self,
        decision: Decision,
        model: str,
        request: ChatRequest,
        ctx: AttemptContext,
        attempts: list[AttemptRecord],
    ) -> tuple[ChatResponse | None, ProviderError | None, float]:
        spec = self.pool.spec(model)
        provider = self.pool.provider_for(model)
        limiter = self.pool.limiter(model)
        wait_start = time.perf_counter()
        if limiter is not None:
            await limiter.acquire()
        waited = time.perf_counter() - wait_start
        started_at = time.time()
        t0 = time.perf_counter()
        try:
            response = await provider.complete(replace(request, model=spec.id))
        except ProviderError as exc:
            if exc.model is None:
                exc.model = model
            latency = time.perf_counter() - t0
            record = AttemptRecord(
                run_id=ctx.run_id,
                step_id=ctx.step_id,
                attempt=len(attempts) + 1,
                model=model,
                provider=spec.provider,
                tier=spec.tier.value,
                policy=decision.policy,
                reason=decision.reason,
                started_at=started_at,
                latency_s=latency,
                status="error",
                error_class=exc.error_class,
                error=str(exc)[:500],
            )
            self._record(attempts, record)
            return None, exc, waited
        finally:
            if limiter is not None:
                limiter.release()
        latency = time.perf_counter() - t0
        record = AttemptRecord(
            run_id=ctx.run_id,
            step_id=ctx.step_id,
            attempt=len(attempts) + 1,
            model=model,
            provider=spec.provider,
            tier=spec.tier.value,
            policy=decision.policy,
            reason=decision.reason,
            started_at=started_at,
            latency_s=latency,
            status="ok",
            ttft_s=response.ttft_s,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cached_input_tokens=response.usage.cached_input_tokens,
            cost_usd=spec.price.cost(response.usage),
        )
        self._record(attempts, record)
        return response, None, waited

    def _record(self, attempts: list[AttemptRecord], record: AttemptRecord) -> None:
        attempts.append(record)
        if self.on_attempt is not None:
            self.on_attempt(record)
