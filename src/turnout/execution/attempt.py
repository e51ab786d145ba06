"""One attempt: one call to one model through every concern, streamed or not.

The same code serves both modes. Unstreamed, the provider's ``complete`` is read
as a stream of one delta (:class:`_Completion`); streamed, its ``stream``. Around
the call, in this order and the same way in both modes: the caches (a hit answers
at cost 0, replayed as a stream), the breaker, the budget hold, the concurrency
limit (its wait is queueing, bounded by the total deadline), and the timeouts
(``attempt_s`` for each wait on the provider, the total deadline over all). The
attempt is recorded in the ledger whatever happens: answered, failed (charged
what the provider said it consumed, else an estimate of what it streamed, marked
``usage_estimated``), cut by the total timeout, or abandoned by the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from turnout.config.settings import ModelSpec
from turnout.errors import ProviderError, ProviderTimeout, StreamAbandoned
from turnout.execution.budget import BudgetGate
from turnout.execution.limits import ConcurrencyGate
from turnout.execution.timeouts import TotalExpired
from turnout.execution.watchdog import Expired, Watchdog
from turnout.pricing.tokens import estimated_usage
from turnout.providers.base import Provider, replay
from turnout.types import (
    NO_EXTRA,
    ChatRequest,
    ChatResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from turnout.execution.run import DecisionRun


class _Completion:
    """An unstreamed call read as a stream: the whole answer as one delta."""

    __slots__ = ("provider", "request", "response")

    def __init__(self, provider: Provider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request
        self.response: ChatResponse | None = None

    def __aiter__(self) -> AsyncGenerator[StreamEvent, None]:
        return self._events()

    async def _events(self) -> AsyncGenerator[StreamEvent, None]:
        r = await self.provider.complete(self.request)
        self.response = r
        for event in replay(r):
            yield event


class Attempt:
    """Iterate :meth:`events` for the answer's deltas (never the StreamEnd); afterwards
    ``response`` holds the answer, or ``error`` why there is none (also in the ledger)."""

    __slots__ = (
        "_said", "_tools", "error", "model", "parts", "request", "response", "run", "started",
        "ttft",
    )  # fmt: skip

    def __init__(self, run: DecisionRun, model: str, request: ChatRequest) -> None:
        self.run = run
        self.model = model
        self.request = request
        self.response: ChatResponse | None = None
        self.error: ProviderError | None = None
        self.started = False
        self.parts: list[str] = []
        self._tools: dict[int, list[str]] = {}
        self._said: list[str] = []  # text the answer gave besides its content (a refusal)
        self.ttft: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def sent_tool_calls(self) -> bool:
        return bool(self._tools)

    async def events(self) -> AsyncGenerator[StreamEvent, None]:
        run = self.run
        ex = run.executor
        ledger = run.ledger
        spec = ex.pool.spec(self.model)
        if spec.max_tokens_param is None:
            request = replace(self.request, model=spec.id)
        else:  # the model takes the cap under one name only
            request = replace(self.request, model=spec.id, max_tokens_param=spec.max_tokens_param)
        hit = await ex.cache.lookup(request)
        if hit is not None:
            self.response = hit.response
            ledger.record(spec, time.time(), 0.0, "ok", hit.response.usage, hit.response,
                          cache=hit.kind, saved=hit.cost_usd)  # fmt: skip
            for event in replay(hit.response)[:-1]:
                yield event
            return
        refused = await ex.breaker_gate.admit(self.model)
        if refused is not None:
            self._fail(refused)
            return
        budget = BudgetGate(ledger.budget, ledger.step_id)
        over = budget.admit(spec.price, request)
        if over is not None:
            ledger.fatal = over
            return
        gate = ConcurrencyGate(ex.pool.limiter(self.model))
        try:
            ledger.queued_s += await gate.acquire(run.deadline)
        except BaseException:  # queued past the deadline, or cancelled: no call was made
            budget.release()
            raise
        provider = ex.pool.provider_for(self.model)
        source: AsyncIterator[StreamEvent] | _Completion = (
            provider.stream(request) if run.streamed else _Completion(provider, request)
        )
        started_at = time.time()
        t0 = time.perf_counter()
        watch = run.deadline.watchdog(ex.timeouts.attempt_s)
        end: StreamEnd | None = None
        try:
            events = aiter(source)
            while True:
                try:
                    event = await self._next(watch, events)
                except StopAsyncIteration:
                    break
                if isinstance(event, StreamEnd):
                    end = event
                    continue
                if not self.started:
                    self.started = True
                    self.ttft = time.perf_counter() - t0
                if isinstance(event, TextDelta):
                    self.parts.append(event.text)
                    if event.extra.message:
                        self._said.append(event.extra.output_text())
                else:
                    self._tools.setdefault(event.index, [event.id or "", event.name or ""])
                    self._tools[event.index].append(event.arguments)
                yield event
        except ProviderError as exc:
            if exc.model != self.model:  # the pool model, as callers name it
                exc.name_model(self.model)
            if exc.endpoint is None:
                exc.endpoint = provider.endpoint
            # what it consumed if it said; else what it streamed, and a timed-out call
            # the prompt it had (the provider bills it); else nothing
            sent = self.started or (isinstance(exc, ProviderTimeout) and exc.sent)
            usage = exc.usage or (self._estimate() if sent else Usage())
            budget.settle(self._record(spec, started_at, t0, usage, exc))
            self._fail(exc)
            await ex.breaker_gate.failed(self.model, exc)
            return
        except Expired:  # the decision's total timeout: recorded, charged, never retried
            cut = ProviderTimeout(
                f"cut by the total timeout of {ex.timeouts.total_s:g}s {self._progress()}",
                model=self.model,
            )
            usage = self._estimate()  # the prompt reached the provider: it bills it
            budget.settle(self._record(spec, started_at, t0, usage, cut))
            if self.started:
                await ex.breaker_gate.succeeded(self.model)  # it was answering
            raise TotalExpired from None
        except (GeneratorExit, asyncio.CancelledError):
            if self.response is None:  # the caller stopped waiting: charge what was sent
                why = f"the caller stopped waiting {self._progress()}"  # and streamed
                abandoned = StreamAbandoned(why, model=self.model)
                usage = self._estimate()  # the prompt reached the provider: it bills it
                budget.settle(self._record(spec, started_at, t0, usage, abandoned))
                if self.started:
                    await ex.breaker_gate.succeeded(self.model)
            raise
        finally:
            watch.close()
            close = getattr(source, "aclose", None)
            if close is not None:  # a stream left early (or cut by a timeout): close it now
                await close()
            gate.release()
        latency = time.perf_counter() - t0
        response = source.response if isinstance(source, _Completion) else None
        if response is not None:
            if 0 < response.latency_s < latency:
                # The provider measured the call itself, without time spent waiting inside it
                # (a local model busy with another request): that wait is queueing.
                ledger.queued_s += latency - response.latency_s
                latency = response.latency_s
        else:
            response = self._assemble(end, spec.id, latency)
        self.response = response
        record = ledger.record(spec, started_at, latency, "ok", response.usage, response)
        ex.speeds.observe(
            self.model, latency, response.ttft_s, response.usage.output_tokens, started_at + latency
        )
        budget.settle(record.cost_usd)
        await ex.breaker_gate.succeeded(self.model)
        await ex.cache.store(request, response, record.cost_usd)

    async def _next(self, watch: Watchdog, events: AsyncIterator[StreamEvent]) -> StreamEvent:
        """The provider's next event, within ``attempt_s`` (and the total deadline)."""
        limit = self.run.executor.timeouts.attempt_s
        try:
            return await watch.wait(anext(events))
        except Expired as exc:
            if exc.total:
                raise
            if not self.run.streamed:
                raise ProviderTimeout(
                    f"no answer within the attempt timeout of {limit:g}s", model=self.model
                ) from None
            if self.started:
                why = f"the stream stalled: no chunk within the attempt timeout of {limit:g}s"
            else:
                why = f"no first token within the attempt timeout of {limit:g}s"
            raise ProviderTimeout(f"{why} {self._progress()}", model=self.model) from None
        except TimeoutError as exc:  # the provider's own
            why = f"timed out ({exc})" if str(exc) else "timed out"
            if self.run.streamed:
                why = f"{why} {self._progress()}"
            raise ProviderTimeout(why, model=self.model) from None

    def _assemble(self, end: StreamEnd | None, model_id: str, latency: float) -> ChatResponse:
        calls = tuple(
            ToolCall(parts[0], parts[1], "".join(parts[2:]))
            for _, parts in sorted(self._tools.items())
        )
        usage = end.usage if end is not None else self._estimate()
        return ChatResponse(
            self.text or (None if calls else ""), usage, end.model if end else model_id,
            end.finish_reason if end else None, calls, latency_s=latency,
            ttft_s=end.ttft_s if end is not None and end.ttft_s is not None else self.ttft,
            response_id=end.response_id if end else None, extra=end.extra if end else NO_EXTRA,
        )  # fmt: skip

    def _record(
        self, spec: ModelSpec, started_at: float, t0: float, usage: Usage, error: ProviderError
    ) -> Decimal:
        """Record this attempt as failed, with what it streamed; return its cost."""
        partial = ChatResponse(self.text, usage, spec.id, None, ttft_s=self.ttft)
        latency = time.perf_counter() - t0
        record = self.run.ledger.record(
            spec, started_at, latency, "error", usage, partial, error=error
        )
        error.attempt = record.attempt
        return record.cost_usd

    def _fail(self, error: ProviderError) -> None:
        self.error = error
        self.run.ledger.errors.append(error)

    def _progress(self) -> str:
        if not self.started:
            return "(before its first token)" if self.run.streamed else "(before it answered)"
        return f"(after {len(self.text)} characters)"

    def _estimate(self) -> Usage:
        said = self.text + "".join(self._said)
        return estimated_usage(self.request.messages, said, self.request.tools)
