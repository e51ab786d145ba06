"""One model call, done properly: the unit every strategy is built from.

:class:`AttemptRunner` makes a single call to one model (cache look-up,
breaker, budget check, concurrency limit, per-attempt timeout) and records it
as an :class:`~turnout.tracing.records.AttemptRecord`, whatever happened.
:meth:`AttemptRunner.call` adds bounded retries with backoff on that model.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

from turnout.errors import (
    BudgetExceeded,
    CircuitOpen,
    ProviderError,
    ProviderTimeout,
    TurnoutError,
)
from turnout.execution.budget import Budget, estimate_cost
from turnout.execution.cache.answer import CachedAnswer
from turnout.execution.retry import RetryPolicy
from turnout.execution.speed import SpeedBoard
from turnout.providers.pool import ModelPool
from turnout.tracing.records import AttemptRecord, AttemptStatus
from turnout.types import ChatRequest, ChatResponse, Decision, Usage

Sleep = Callable[[float], Awaitable[None]]


class Breakers(Protocol):
    """What the executor needs of a breaker board (see :mod:`turnout.execution.breaker`)."""

    async def allow(self, model: str) -> bool: ...

    async def record(self, model: str, ok: bool) -> object: ...

    async def unavailable(self) -> frozenset[str]: ...


class ResponseCache(Protocol):
    """What the executor needs of a cache (exact or semantic)."""

    async def lookup(self, request: ChatRequest) -> CachedAnswer | None: ...

    async def store(self, request: ChatRequest, response: ChatResponse, cost: Decimal) -> bool: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``attempt_s`` bounds one call; ``total_s`` bounds a whole decision, retries included.

    For a streamed decision ``attempt_s`` bounds the wait for the first token and each
    silence between two chunks, not the whole answer (see :mod:`turnout.execution.streaming`).
    """

    attempt_s: float | None = None
    total_s: float | None = None


@dataclass(slots=True)
class Ledger:
    """Everything one decision's execution did: attempts (in order) and errors."""

    run_id: str
    step_id: str
    decision: Decision
    budget: Budget | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    queued_s: float = 0.0
    fatal: TurnoutError | None = None
    held: Decimal = Decimal(0)
    """The budget hold of the call in flight (one at a time per ledger), released when
    the call is recorded."""

    @property
    def cost(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))

    def release_hold(self) -> None:
        """Give back the budget hold of the call in flight (recorded, or never made)."""
        if self.held and self.budget is not None:
            self.budget.release(self.step_id, self.held)
        self.held = Decimal(0)

    def reject(self, index: int, why: str) -> None:
        """Mark a successful attempt whose answer a cascade did not accept."""
        a = self.attempts[index]
        self.attempts[index] = replace(a, status="rejected", error_class="rejected", error=why)


class AttemptRunner:
    def __init__(
        self,
        pool: ModelPool,
        *,
        retry: RetryPolicy,
        timeouts: Timeouts,
        breakers: Breakers | None = None,
        caches: tuple[ResponseCache, ...] = (),
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.retry = retry
        self.timeouts = timeouts
        self.breakers = breakers
        self.caches = caches
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.speeds = SpeedBoard()  # observed speed per model (build_executor may share it)

    async def call(
        self, ledger: Ledger, model: str, request: ChatRequest, *, attempts: int | None = None
    ) -> ChatResponse | None:
        """Call ``model`` with up to ``attempts`` tries (retryable failures only)."""
        limit = attempts or self.retry.max_attempts
        for n in range(1, limit + 1):
            response = await self.once(ledger, model, request)
            if response is not None:
                return response
            if ledger.fatal is not None:
                return None
            error = ledger.errors[-1]
            if not error.retryable or isinstance(error, CircuitOpen):
                return None
            if n < limit:
                await self._sleep(self.retry.delay(n, error, self._rng))
        return None

    async def once(self, ledger: Ledger, model: str, request: ChatRequest) -> ChatResponse | None:
        """One attempt. Returns the answer, or None with the error added to the ledger."""
        spec = self.pool.spec(model)
        request = replace(request, model=spec.id)
        for cache in self.caches:
            hit = await cache.lookup(request)
            if hit is not None:
                self.record(ledger, model, time.time(), 0.0, "ok", hit.response.usage, hit.response,
                          cache=hit.kind, saved=hit.cost_usd)  # fmt: skip
                return hit.response
        if not await self.admit(ledger, model, request):
            return None
        provider = self.pool.provider_for(model)
        limiter = self.pool.limiter(model)
        if limiter is not None:
            t_wait = time.perf_counter()
            try:
                await limiter.acquire()
            except asyncio.CancelledError:  # cut short while queued: no call was made
                ledger.release_hold()
                raise
            ledger.queued_s += time.perf_counter() - t_wait
        started_at = time.time()
        t0 = time.perf_counter()
        try:
            try:
                if self.timeouts.attempt_s is None:
                    response = await provider.complete(request)
                else:
                    async with asyncio.timeout(self.timeouts.attempt_s):
                        response = await provider.complete(request)
            except TimeoutError as exc:
                limit = self.timeouts.attempt_s
                if limit is None:  # the provider's own TimeoutError
                    why = f"timed out ({exc})" if str(exc) else "timed out"
                else:
                    why = f"no answer within the attempt timeout of {limit:g}s"
                raise ProviderTimeout(why, model=model) from None
        except asyncio.CancelledError:
            # Cut short from outside (the decision's total timeout, or its caller): the call
            # was made, so it is recorded; whoever cancelled it reports the error.
            cut = ProviderTimeout("cancelled before it answered", model=model)
            self.record(ledger, model, started_at, time.perf_counter() - t0, "error", Usage(),
                        None, error=cut)  # fmt: skip
            raise
        except ProviderError as exc:
            if exc.model is None:
                exc.model = model
            self.record(ledger, model, started_at, time.perf_counter() - t0, "error",
                        exc.usage or Usage(), None, error=exc)  # fmt: skip
            ledger.errors.append(exc)
            if self.breakers is not None:
                # A refusal or a bad request is an answer: nothing against the model's health. It
                # must still be recorded, or a half-open probe would stay in flight (the model
                # refused to everyone) until probe_timeout_s.
                await self.breakers.record(model, not exc.retryable)
            return None
        finally:
            if limiter is not None:
                limiter.release()
        latency = time.perf_counter() - t0
        if 0 < response.latency_s < latency:
            # The provider measured the call itself, without time spent waiting inside it
            # (a local model busy with another request): that wait is queueing, not latency.
            ledger.queued_s += latency - response.latency_s
            latency = response.latency_s
        cost = self.record(ledger, model, started_at, latency, "ok", response.usage, response)
        if self.breakers is not None:
            await self.breakers.record(model, True)
        for cache in self.caches:
            await cache.store(request, response, cost)
        return response

    async def pause(self, attempt: int, error: ProviderError) -> None:
        """Wait before retrying the same model (backoff with jitter, or Retry-After)."""
        await self._sleep(self.retry.delay(attempt, error, self._rng))

    async def admit(self, ledger: Ledger, model: str, request: ChatRequest) -> bool:
        """May ``model`` be called now? Its breaker must allow it and the budget afford it."""
        if self.breakers is not None and not await self.breakers.allow(model):
            ledger.errors.append(CircuitOpen("circuit breaker is open", model=model))
            return False
        if ledger.budget is not None:
            estimate = estimate_cost(self.pool.spec(model).price, request)
            try:
                ledger.budget.hold(ledger.step_id, estimate)
            except BudgetExceeded as exc:
                ledger.fatal = exc
                return False
            ledger.held = estimate
        return True

    def record(
        self,
        ledger: Ledger,
        model: str,
        started_at: float,
        latency: float,
        status: AttemptStatus,
        usage: Usage,
        response: ChatResponse | None,
        *,
        error: ProviderError | None = None,
        cache: str | None = None,
        saved: Decimal = Decimal(0),
    ) -> Decimal:
        """Append one attempt to the ledger (charging its cost to the budget, releasing the
        call's hold); return its cost."""
        spec = self.pool.spec(model)
        cost = Decimal(0) if cache else spec.price.cost(usage)
        ledger.release_hold()
        if ledger.budget is not None:
            ledger.budget.charge(ledger.step_id, cost)
        if status == "ok" and cache is None:
            self.speeds.observe(model, latency, response.ttft_s if response else None,
                                usage.output_tokens, started_at + latency)  # fmt: skip
        d = ledger.decision
        ledger.attempts.append(
            AttemptRecord(
                run_id=ledger.run_id,
                step_id=ledger.step_id,
                attempt=len(ledger.attempts) + 1,
                model=model,
                provider=spec.provider,
                tier=spec.tier.value,
                policy=d.policy,
                reason=d.reason,
                started_at=started_at,
                latency_s=latency,
                status=status,
                ttft_s=response.ttft_s if response is not None else None,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cost_usd=cost,
                error_class=error.error_class if error else None,
                error=str(error)[:500] if error else None,
                cache=cache,
                saved_usd=saved,
            )
        )
        return cost
