"""Streaming a decision's answer, with fallback where it is safe.

A failure *before* the first token falls back to the next model of the chain
transparently: the caller never sees it (but the trace does). A failure
*after* the first token is recorded and raised, unless the caller allowed a
restart, in which case a :class:`Restart` event says so and the next model
streams its answer from the beginning. A ``fallback`` decision's chain moves as
:meth:`~turnout.execution.executor.Executor.reroute` says (a larger window after
context length exceeded, ``on_content_filter`` after a refusal; other
non-retryable failures stop it). A cut stream's tokens are estimated and
charged, so no cost is lost.

The executor's :class:`~turnout.execution.attempts.Timeouts` apply as follows.
``attempt_s`` bounds each wait for the provider's next event: the wait for the
first token (time to first token, from the start of the attempt) and the
silence between two chunks (a stalled stream). A stream that keeps sending is
never cut by it, however long its answer; the time the caller takes between
events does not count. Past the limit the provider's connection is closed and
the attempt fails with :class:`~turnout.errors.ProviderTimeout`: before the
first token it falls back (or is retried) transparently, after it is a broken
stream like any other. ``total_s`` bounds the whole decision in wall-clock time
from the first event asked for (queueing, every attempt, backoff pauses and the
caller's own pace included); when it passes, the attempt in flight is cut and
recorded (charged for what it streamed) and the stream ends with a
``ProviderTimeout`` naming the total limit, never restarted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from turnout.errors import AllAttemptsFailed, ProviderError, ProviderTimeout, TurnoutError
from turnout.execution.attempts import Ledger
from turnout.execution.budget import Budget
from turnout.execution.watchdog import Expired, Watchdog
from turnout.providers.function import estimate_tokens
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
    from turnout.execution.executor import Execution, Executor

T = TypeVar("T")


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
        self._deadline: float | None = None
        """When ``total_s`` passes (event-loop time), set as the stream starts."""

    def __aiter__(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        return self._run()

    async def _within(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` (a queue, a pause) no later than the total deadline."""
        watch = Watchdog(None, self._deadline)
        try:
            return await watch.wait(aw)
        finally:
            watch.close()

    def _expired(self) -> bool:
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline

    def _timed_out(self, *, started: bool = False) -> ProviderTimeout:
        """The error a stream ends with when ``total_s`` passes."""
        limit = f"the total timeout of {self.executor.timeouts.total_s:g}s"
        if started:
            return ProviderTimeout(f"the streamed answer did not finish within {limit}")
        return ProviderTimeout(f"no answer within {limit}")

    async def _run(self) -> AsyncGenerator[StreamEvent | Restart, None]:
        from turnout.execution.executor import Execution

        d = self.decision
        if d.strategy in ("fallback", "cascade"):
            chain = list(d.models)
        else:  # one model: retried (with backoff) like Executor.execute, before its first token
            chain = [d.model] * self.executor.retry.max_attempts
        reroutes = d.strategy == "fallback" and len(d.models) > 1  # as Executor.execute does
        tried: list[str] = []
        start = time.perf_counter()
        total_s = self.executor.timeouts.total_s
        if total_s is not None:
            self._deadline = asyncio.get_running_loop().time() + total_s
        response: ChatResponse | None = None
        model_used: str | None = None
        error: TurnoutError | None = None
        try:
            i = 0
            while i < len(chain):
                if self._expired():  # e.g. the caller took its time over a Restart
                    raise self._timed_out()
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
                    try:
                        await self._within(self.executor.runner.pause(tried.count(model), last))
                    except Expired:
                        raise self._timed_out() from None
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
        self.parts: list[str] = []
        self.ttft: float | None = None
        self.started_at = 0.0
        self.t0 = 0.0

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
            try:
                await p._within(limiter.acquire())
            except Expired:  # queued until the total timeout: no call was made
                ledger.release_hold()
                raise p._timed_out() from None
            except asyncio.CancelledError:
                ledger.release_hold()
                raise
            ledger.queued_s += time.perf_counter() - t_wait
        self.started_at = time.time()
        self.t0 = time.perf_counter()
        watch = Watchdog(p.executor.timeouts.attempt_s, p._deadline)
        stream = runner.pool.provider_for(self.model).stream(request)
        try:
            end: StreamEnd | None = None
            while True:
                try:
                    event = await self._next(watch, stream)
                except StopAsyncIteration:
                    break
                if isinstance(event, StreamEnd):
                    end = event
                    continue
                if not self.started:
                    self.started = True
                    self.ttft = time.perf_counter() - self.t0
                if isinstance(event, TextDelta):
                    self.parts.append(event.text)
                yield event
            usage = end.usage if end is not None else self._estimate()
            latency = time.perf_counter() - self.t0
            self.response = ChatResponse(
                "".join(self.parts), usage, end.model if end else spec.id,
                end.finish_reason if end else None, latency_s=latency, ttft_s=self.ttft,
                response_id=end.response_id if end else None,
            )  # fmt: skip
            runner.record(ledger, self.model, self.started_at, latency, "ok", usage,
                          self.response)  # fmt: skip
            if runner.breakers is not None:
                await runner.breakers.record(self.model, True)
            yield StreamEnd(self.response.finish_reason, usage, self.response.model,
                            self.response.response_id, self.ttft)  # fmt: skip
        except ProviderError as exc:
            if exc.model is None:
                exc.model = self.model
            self._record_cut(exc)
            ledger.errors.append(exc)
            if runner.breakers is not None:
                # A refusal or a bad request is an answer: nothing against the model's health. It
                # must still be recorded, or a half-open probe would stay in flight (the model
                # refused to everyone) until probe_timeout_s.
                await runner.breakers.record(self.model, not exc.retryable)
        except Expired:  # the decision's total timeout: recorded, charged, never restarted
            limit = p.executor.timeouts.total_s
            self._record_cut(ProviderTimeout(
                f"cut by the total timeout of {limit:g}s {self._progress()}", model=self.model
            ))  # fmt: skip
            if self.started and runner.breakers is not None:
                await runner.breakers.record(self.model, True)  # it was answering
            raise p._timed_out(started=self.started) from None
        except (GeneratorExit, asyncio.CancelledError):
            if self.response is None:  # cut short by the caller: charge what was streamed
                self._record_cut(StreamAbandoned(
                    f"the caller stopped reading after {len(''.join(self.parts))} characters",
                    model=self.model,
                ))  # fmt: skip
                if self.started and runner.breakers is not None:
                    await runner.breakers.record(self.model, True)  # it was answering
            raise
        finally:
            watch.close()
            close = getattr(stream, "aclose", None)
            if close is not None:  # a stream left early (or cut by a timeout): close it now
                await close()
            if limiter is not None:
                limiter.release()

    async def _next(self, watch: Watchdog, stream: AsyncIterator[StreamEvent]) -> StreamEvent:
        """The provider's next event, within ``attempt_s`` (and the total deadline)."""
        limit = self.parent.executor.timeouts.attempt_s
        try:
            return await watch.wait(anext(stream))
        except Expired as exc:
            if exc.total:
                raise
            if self.started:
                why = f"the stream stalled: no chunk within the attempt timeout of {limit:g}s"
            else:
                why = f"no first token within the attempt timeout of {limit:g}s"
            raise ProviderTimeout(f"{why} {self._progress()}", model=self.model) from None
        except TimeoutError as exc:  # the provider's own, as AttemptRunner.once reports it
            why = f"timed out ({exc})" if str(exc) else "timed out"
            raise ProviderTimeout(f"{why} {self._progress()}", model=self.model) from None

    def _progress(self) -> str:
        if not self.started:
            return "(before its first token)"
        return f"(after {len(''.join(self.parts))} characters)"

    def _record_cut(self, error: ProviderError) -> None:
        """Record this attempt as failed, charged for what it streamed (an estimate)."""
        runner = self.parent.executor.runner
        usage = self._estimate() if self.started else Usage()
        spec = runner.pool.spec(self.model)
        partial = ChatResponse("".join(self.parts), usage, spec.id, None, ttft_s=self.ttft)
        latency = time.perf_counter() - self.t0
        runner.record(self.parent.ledger, self.model, self.started_at, latency, "error", usage,
                      partial, error=error)  # fmt: skip

    def _estimate(self) -> Usage:
        prompt = sum(len(m.content or "") + 8 for m in self.parent.request.messages)
        return Usage(estimate_tokens("x" * prompt), estimate_tokens("".join(self.parts)))
