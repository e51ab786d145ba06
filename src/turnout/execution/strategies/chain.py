"""The walk: one decision's attempts in order, the same for every chain strategy
(``single``, ``fallback``, ``cascade``) and for both modes.

Which model comes next, and whether to pause first, depends only on the route and
the failure, never on the mode: the upstream calls, the pauses, the trace rows
and the cost are the same streamed and unstreamed. The one difference is a
failure after tokens reached a streaming caller, which follows ``on_stream_cut``
(:mod:`turnout.execution.stream_cut`), once the run's ``on_cut_spend`` (a key's budget,
in the gateway) has agreed to pay for what comes next on top of the part that was cut.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

from turnout.errors import BadRequest, BudgetExceeded, error_class_of
from turnout.execution.attempt import Attempt
from turnout.execution.run import DecisionRun
from turnout.execution.strategies.base import Route
from turnout.execution.stream_cut import Restart, continuation
from turnout.execution.timeouts import TotalExpired
from turnout.providers.base import replay
from turnout.types import ChatRequest, ChatResponse, StreamEnd, StreamEvent, Usage

Event = StreamEvent | Restart


class Walk:
    """Iterate :meth:`events` (streamed: the answer's events; unstreamed: nothing);
    afterwards ``response``, ``model`` and ``note`` say how it ended. A walk that found
    no answer raises its error at the end."""

    def __init__(self, run: DecisionRun, route: Route, request: ChatRequest) -> None:
        self.run = run
        self.route = route
        self.request = request
        self.response: ChatResponse | None = None
        self.model: str | None = None
        self.note: str | None = None
        self.ttft_s: float | None = None
        self.current: str | None = None
        """The model of the attempt in flight (streamed: the one whose tokens come now)."""

    async def events(self) -> AsyncGenerator[Event, None]:
        run, route, ledger = self.run, self.route, self.run.ledger
        forward = run.streamed and not route.judged
        t0 = time.perf_counter()
        shown = ""  # text the caller already has, from attempts that were cut
        carried = Usage()  # what those attempts consumed
        continuing = False
        pending: tuple[int, ChatResponse, str, str] | None = None  # the last answer not accepted
        calls: dict[str, int] = {}
        model: str | None = route.first()
        try:
            while model is not None:
                if run.deadline.expired():
                    raise TotalExpired
                calls[model] = calls.get(model, 0) + 1
                asked = continuation(self.request, shown) if continuing else self.request
                attempt = Attempt(run, model, asked)
                self.current = model
                events = attempt.events()
                try:
                    async for event in events:
                        if forward:
                            if self.ttft_s is None:
                                self.ttft_s = time.perf_counter() - t0
                            yield event
                finally:
                    await events.aclose()
                answer = attempt.response
                if answer is not None:
                    if pending is not None:  # superseded: that answer was not used
                        ledger.reject(pending[0], pending[3])
                        pending = None
                    why = route.judge(model, self.request, answer)
                    if why is None:
                        self._answer(answer, model, shown, carried)
                        break
                    pending = (len(ledger.attempts) - 1, answer, model, why)
                    model = route.after_reject(model)
                    continue
                if ledger.fatal is not None:
                    route.stopped(model, error_class_of(ledger.fatal))
                    break
                error = attempt.error
                assert error is not None
                rejected = continuing and isinstance(error, BadRequest)
                nxt = route.after_error(model, error, moving_on=rejected)
                wait: float | None = None
                if nxt is not None and nxt == model:  # the same model again, after a pause
                    wait = run.executor.backoff.delay(calls[model], error)
                    if wait is None:  # it asked to be left alone for longer than we wait
                        nxt = None
                if forward and attempt.started:  # the caller has some of this answer
                    rule = run.on_stream_cut
                    if attempt.sent_tool_calls and rule == "continue":
                        rule = "fail"
                    if rule == "fail" or nxt is None:  # never ended as if it had succeeded
                        raise error
                    if rule == "restart":  # a caller that cannot restart stops reading here
                        yield Restart(model, nxt, str(error), error)
                        await self._may_go_on(model, nxt, error, self.request)
                        shown, carried, continuing = "", Usage(), False
                    else:
                        following = continuation(self.request, shown + attempt.text)
                        await self._may_go_on(model, nxt, error, following)
                        shown += attempt.text
                        a = ledger.attempts[-1]
                        carried = carried + Usage(
                            a.input_tokens, a.output_tokens, a.cached_input_tokens,
                            a.usage_estimated,
                        )  # fmt: skip
                        continuing = True
                if wait is not None:
                    await run.deadline.within(run.executor.backoff.pause(wait))
                model = nxt
        except TotalExpired:
            ledger.errors.append(run.deadline.error(started=bool(shown) or self.ttft_s is not None))
            route.stopped(model or "", "total timeout")
            self.note = route.note(None)
            raise ledger.failure() from None
        if self.response is None and pending is not None:  # nothing passed: keep the last
            _, answer, kept, _ = pending
            self._answer(answer, kept, shown, carried, kept_rejected=True)
        if self.response is None:
            self.note = route.note(None)
            raise ledger.failure()
        if run.streamed:
            if forward:
                r = self.response
                yield StreamEnd(
                    r.finish_reason, r.usage, r.model, r.response_id, self.ttft_s, r.extra
                )
            else:  # judged whole: now it may be shown
                self.ttft_s = time.perf_counter() - t0 - ledger.queued_s
                for event in replay(self.response, self.ttft_s):
                    yield event

    async def _may_go_on(
        self, model: str, nxt: str, error: BaseException, following: ChatRequest
    ) -> None:
        """The cut part is paid: may the request pay for ``nxt`` too (the run's
        ``on_cut_spend``)? Raises :class:`BudgetExceeded` if not (naming the models and the
        error's class only: its text may say where the provider is)."""
        run = self.run
        if run.on_cut_spend is None:
            return
        if not await run.on_cut_spend(run.ledger.cost, nxt, following):
            raise BudgetExceeded(
                f"the answer from {model} was cut ({error_class_of(error)}); going on with "
                f"{nxt} would pass the key's budget",
                scope="key",
            ) from error

    def _answer(
        self,
        answer: ChatResponse,
        model: str,
        shown: str,
        carried: Usage,
        *,
        kept_rejected: bool = False,
    ) -> None:
        if shown:  # a continued answer: what the caller saw, then the continuation
            answer = ChatResponse(
                shown + answer.text, carried + answer.usage, answer.model, answer.finish_reason,
                answer.tool_calls, answer.latency_s, self.ttft_s, answer.response_id,
            )  # fmt: skip
        self.response = answer
        self.model = model
        self.note = self.route.note(model, kept_rejected=kept_rejected)
