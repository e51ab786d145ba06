"""Streaming a decision's answer, with fallback where it is safe.

A failure *before* the first token falls back to the next model of the chain
transparently: the caller never sees it (but the trace does). A failure
*after* the first token is recorded and raised, unless the caller allowed a
restart, in which case a :class:`Restart` event says so and the next model
streams its answer from the beginning. A ``fallback`` decision's chain moves as
:meth:`~turnout.routing.executor.Executor.reroute` says (a larger window after
context length exceeded, ``on_content_filter`` after a refusal; other
non-retryable failures stop it). A cut stream's tokens are estimated and
charged, so no cost is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from turnout.errors import AllAttemptsFailed, ProviderError, TurnoutError
from turnout.providers.function import estimate_tokens
from turnout.routing.attempts import Ledger
from turnout.routing.budget import Budget
from turnout.types import (
    ChatRequest,
    ChatResponse,
    Decision,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

if TYPE_CHECKING:
    from turnout.routing.executor import Execution, Executor


@dataclass(frozen=True, slots=True)
class Restart:
    """The stream from ``failed`` broke after its first token; ``next`` starts over."""

    failed: str
    next: str
    error: str


class StreamAbandoned(ProviderError):
    """The caller stopped reading a stream before it ended (closed it, or was cancelled).

    Only recorded, never raised: the attempt is charged for what was streamed so far."""

    error_class = "abandoned"


class StreamExecution:
    """Iterate it for events; afterwards ``execution`` holds the outcome and attempts.

    A caller that stops early should close the iterator (``contextlib.aclosing``) so
    the attempt in flight is recorded, and charged, at once."""

    def __init__(
        self,
        executor: Executor,
        request: ChatRequest,
        decision: Decision,
        *,
        run_id: str,
        step_id: str,
        allow_restart: bool,
        budget: Budget | None,
    ) -> None:
        self.executor = executor
        self.request = request
        self.decision = decision
        self.allow_restart = allow_restart
        self.ledger = Ledger(run_id, step_id, decision, budget)
        self.execution: Execution | None = None

    def __aiter__(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        from turnout.routing.executor import Execution

        d = self.decision
        if d.strategy in ("fallback", "cascade"):
            chain = list(d.models)
        else:  # one model: retried (with backoff) like Executor.execute, before its first token
            chain = [d.model] * self.executor.retry.max_attempts
        reroutes = d.strategy == "fallback" and len(d.models) > 1  # as Executor.execute does
        tried: list[str] = []
        start = time.perf_counter()
        response: ChatResponse | None = None
        model_used: str | None = None
        error: TurnoutError | None = None
        try:
            i = 0
            while i < len(chain):
                model = chain[i]
                tried.append(model)
                outcome = self._one(model)
                events = aiter(outcome)
                try:
                    async for event in events:
                        yield event
                finally:  # the caller may stop reading: close it now, so it records its attempt
                    await events.aclose()
                if outcome.response is not None:
                    response, model_used = outcome.response, model
                    break
                if self.ledger.fatal is not None:
                    break
                last = self.ledger.errors[-1]
                rest: list[str] | None = None
                if reroutes:
                    rest = self.executor.reroute(d, chain, i, tried, last)
                elif last.retryable or outcome.started:
                    rest = chain
                if outcome.started:
                    nxt = rest[i + 1] if rest is not None and i + 1 < len(rest) else None
                    if not self.allow_restart or nxt is None:
                        raise last
                    yield Restart(model, nxt, str(last))
                if rest is None:
                    break
                chain = rest
                if not outcome.started and i + 1 < len(chain) and chain[i + 1] == model:
                    await self.executor.runner.pause(tried.count(model), last)
                i += 1
            if response is None:
                if self.ledger.fatal is not None:
                    error = self.ledger.fatal
                elif len(self.ledger.errors) == 1:
                    error = self.ledger.errors[0]
                else:
                    error = AllAttemptsFailed(self.ledger.step_id, self.ledger.errors)
                raise error
        except TurnoutError as exc:
            error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            error = StreamAbandoned("the caller stopped reading the stream")
            raise
        finally:
            sink = self.executor.on_attempt
            if sink is not None:
                for a in self.ledger.attempts:
                    sink(a)
            self.execution = Execution(
                d, tuple(self.ledger.attempts), response, model_used,
                None if response is not None else error,
                latency_s=time.perf_counter() - start - self.ledger.queued_s,
                queued_s=self.ledger.queued_s,
            )  # fmt: skip

    def _one(self, model: str) -> _OneStream:
        return _OneStream(self, model)


class _OneStream:
    """One model's stream: yields its events and remembers how it ended."""

    def __init__(self, parent: StreamExecution, model: str) -> None:
        self.parent = parent
        self.model = model
        self.started = False
        self.response: ChatResponse | None = None

    def __aiter__(self) -> AsyncGenerator[StreamEvent, None]:
        return self._events()

    async def _events(self) -> AsyncGenerator[StreamEvent, None]:
        p = self.parent
        runner = p.executor.runner
        ledger = p.ledger
        if not await runner.admit(ledger, self.model, p.request):
            return
        spec = runner.pool.spec(self.model)
        request = replace(p.request, model=spec.id)
        limiter = runner.pool.limiter(self.model)
        if limiter is not None:
            t_wait = time.perf_counter()
            await limiter.acquire()
            ledger.queued_s += time.perf_counter() - t_wait
        started_at = time.time()
        t0 = time.perf_counter()
        parts: list[str] = []
        ttft: float | None = None
        stream = runner.pool.provider_for(self.model).stream(request)
        try:
            end: StreamEnd | None = None
            async for event in stream:
                if isinstance(event, StreamEnd):
                    end = event
                    continue
                if not self.started:
                    self.started = True
                    ttft = time.perf_counter() - t0
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                yield event
            usage = end.usage if end is not None else self._estimate(parts)
            latency = time.perf_counter() - t0
            self.response = ChatResponse(
                "".join(parts), usage, end.model if end else spec.id,
                end.finish_reason if end else None, latency_s=latency, ttft_s=ttft,
                response_id=end.response_id if end else None,
            )  # fmt: skip
            runner.record(ledger, self.model, started_at, latency, "ok", usage, self.response)
            if runner.breakers is not None:
                await runner.breakers.record(self.model, True)
            yield StreamEnd(self.response.finish_reason, usage, self.response.model,
                            self.response.response_id, ttft)  # fmt: skip
        except ProviderError as exc:
            if exc.model is None:
                exc.model = self.model
            usage = self._estimate(parts) if self.started else Usage()
            partial = ChatResponse("".join(parts), usage, spec.id, None, ttft_s=ttft)
            runner.record(ledger, self.model, started_at, time.perf_counter() - t0, "error",
                          usage, partial, error=exc)  # fmt: skip
            ledger.errors.append(exc)
            if runner.breakers is not None:
                # A refusal or a bad request is an answer: nothing against the model's health. It
                # must still be recorded, or a half-open probe would stay in flight (the model
                # refused to everyone) until probe_timeout_s.
                await runner.breakers.record(self.model, not exc.retryable)
        except (GeneratorExit, asyncio.CancelledError):
            if self.response is None:  # cut short by the caller: charge what was streamed
                usage = self._estimate(parts) if self.started else Usage()
                partial = ChatResponse("".join(parts), usage, spec.id, None, ttft_s=ttft)
                cut = StreamAbandoned(
                    f"the caller stopped reading after {len(''.join(parts))} characters",
                    model=self.model,
                )
                runner.record(ledger, self.model, started_at, time.perf_counter() - t0,
                              "error", usage, partial, error=cut)  # fmt: skip
                if self.started and runner.breakers is not None:
                    await runner.breakers.record(self.model, True)  # it was answering
            raise
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:  # a stream left early: release its connection now
                await close()
            if limiter is not None:
                limiter.release()

    def _estimate(self, parts: list[str]) -> Usage:
        prompt = sum(len(m.content or "") + 8 for m in self.parent.request.messages)
        return Usage(estimate_tokens("x" * prompt), estimate_tokens("".join(parts)))
