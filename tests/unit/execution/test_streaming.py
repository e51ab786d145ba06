"""StreamExecution and the executor's timeouts, with in-process scripted streams.

The scenarios on real sockets are in tests/integration/test_stream_timeouts.py;
these cover what is easier to arrange in process: the provider's stream being
closed, a concurrency-limit queue, a caller dwelling on a Restart, a provider's
own TimeoutError, and the watchdog that times each wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

from turnout.config import Settings, settings_from_dict
from turnout.errors import ProviderConnectionError, ProviderTimeout, TurnoutError
from turnout.execution.budget import Budget
from turnout.execution.executor import ExecutionStream as StreamExecution
from turnout.execution.executor import Executor
from turnout.execution.retry import RetryPolicy
from turnout.execution.stream_cut import Restart
from turnout.execution.timeouts import Timeouts
from turnout.providers.base import Provider
from turnout.providers.function import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.types import (
    NO_EXTRA,
    ChatRequest,
    ChatResponse,
    Decision,
    Message,
    StreamEnd,
    TextDelta,
    Usage,
    WireExtra,
)

REQ = ChatRequest((Message.user("hello there"),))
Step = str | float | BaseException | TextDelta
"""A scripted stream: text is a token, a float a silence (seconds), an exception raised."""


class Scripted(Provider):
    """Streams one script per call; counts the streams it closed."""

    def __init__(self, *scripts: Sequence[Step]) -> None:
        self.scripts = list(scripts)
        self.calls = 0
        self.closed = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError

    async def stream(self, request: ChatRequest) -> AsyncIterator[Any]:
        script = self.scripts[self.calls]
        self.calls += 1
        try:
            for step in script:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield step if isinstance(step, TextDelta) else TextDelta(step)
            yield StreamEnd("stop", Usage(10, 2), request.model)
        finally:
            self.closed += 1


def executor(
    settings: Settings,
    hosted: Provider,
    backup: Provider | None = None,
    *,
    attempt_s: float | None = None,
    total_s: float | None = None,
) -> Executor:
    pool = ModelPool(settings, providers={"hosted": hosted, "backup": backup or hosted})
    return Executor(
        pool, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01),
        timeouts=Timeouts(attempt_s, total_s), rng=random.Random(1),
    )  # fmt: skip


def stream(ex: Executor, *models: str, **kw: Any) -> StreamExecution:
    kw.setdefault("on_stream_cut", "fail")  # these tests were written for that rule
    d = Decision(tuple(models), "r", "p", strategy="fallback")
    return ex.stream(d, REQ, run_id="r", step_id="s", **kw)


async def consume(s: StreamExecution) -> tuple[list[Any], TurnoutError | None]:
    events: list[Any] = []
    try:
        async for event in s:
            events.append(event)
            if isinstance(event, Restart):
                await asyncio.sleep(0.15)  # the caller takes its time over a restart
    except TurnoutError as exc:
        return events, exc
    return events, None


def text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_attempt_timeout_closes_the_stream_it_cuts(settings: Settings) -> None:
    hosted = Scripted([5.0, "never"])
    backup = Scripted(["from ", "backup"])
    ex = executor(settings, hosted, backup, attempt_s=0.05)
    s = stream(ex, "opus", "nano")
    events, error = await consume(s)
    assert error is None and text(events) == "from backup"
    assert hosted.closed == hosted.calls == 1 and backup.closed == 1
    out = s.execution
    assert out is not None and [a.error_class for a in out.attempts] == ["timeout", None]


async def test_stall_timer_restarts_with_every_chunk(settings: Settings) -> None:
    """Four silences of 0.03 s under attempt_s 0.05: 0.12 s in all, never cut."""
    hosted = Scripted([0.03, "a", 0.03, "b", 0.03, "c", 0.03])
    ex = executor(settings, hosted, attempt_s=0.05)
    events, error = await consume(stream(ex, "opus"))
    assert error is None and text(events) == "abc"


async def test_total_timeout_while_queued_makes_no_call(pool_dict: dict[str, Any]) -> None:
    pool_dict["models"]["opus"]["max_concurrency"] = 1
    settings = settings_from_dict(pool_dict)
    hosted = Scripted(["first ", 5.0, "never"], ["second"])
    ex = executor(settings, hosted, total_s=0.1)
    budget = Budget()
    first = stream(ex, "opus")
    second = stream(ex, "opus", budget=budget)
    async with contextlib.aclosing(aiter(first)) as events:
        assert isinstance(await anext(events), TextDelta)  # first holds opus's only slot
        async with asyncio.timeout(2):  # without total_s it would wait for the slot forever
            got, error = await consume(second)
    assert got == [] and _timed_out(error)
    assert str(error) == "no answer within the total timeout of 0.1s"
    assert second.execution is not None and second.execution.attempts == ()
    assert hosted.calls == 1 and budget.held == 0 and budget.spent == 0


async def test_caller_cancelled_while_queued_gives_back_the_hold(
    pool_dict: dict[str, Any],
) -> None:
    pool_dict["models"]["opus"]["max_concurrency"] = 1
    settings = settings_from_dict(pool_dict)
    hosted = Scripted(["first ", 5.0, "never"])
    ex = executor(settings, hosted)
    budget = Budget()
    async with contextlib.aclosing(aiter(stream(ex, "opus"))) as events:
        await anext(events)
        waiting = asyncio.create_task(consume(stream(ex, "opus", budget=budget)))
        await asyncio.sleep(0.02)
        assert budget.held > 0  # admitted, queued on the limit
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert budget.held == 0 and hosted.calls == 1


async def test_total_timeout_passed_over_a_restart_calls_no_other_model(
    settings: Settings,
) -> None:
    hosted = Scripted(["partial ", ProviderConnectionError("reset")])
    backup = Scripted(["from backup"])
    ex = executor(settings, hosted, backup, total_s=0.1)
    s = stream(ex, "opus", "nano", on_stream_cut="restart")
    events, error = await consume(s)  # dwells 0.15 s on the Restart
    assert isinstance(events[-1], Restart) and _timed_out(error)
    assert "total timeout of 0.1s" in str(error)
    assert backup.calls == 0
    out = s.execution
    assert out is not None and [a.error_class for a in out.attempts] == ["connection"]


async def test_a_providers_own_timeout_is_a_recorded_provider_timeout(
    settings: Settings,
) -> None:
    hosted = Scripted([TimeoutError("socket read")])
    backup = Scripted(["ok"])
    ex = executor(settings, hosted, backup, attempt_s=1.0)
    s = stream(ex, "opus", "nano")
    events, error = await consume(s)
    assert error is None and text(events) == "ok"
    out = s.execution
    assert out is not None and out.attempts[0].error_class == "timeout"
    assert out.attempts[0].error == "opus: timed out (socket read) (before its first token)"


async def test_caller_cancelled_mid_wait_is_abandoned_not_timed_out(settings: Settings) -> None:
    hosted = Scripted(["partial ", 5.0, "never"])
    ex = executor(settings, hosted, attempt_s=1.0, total_s=2.0)
    s = stream(ex, "opus")
    reader = asyncio.create_task(consume(s))
    await asyncio.sleep(0.05)  # waiting on the provider's silence
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    assert reader.cancelled()
    out = s.execution
    assert out is not None and [a.error_class for a in out.attempts] == ["abandoned"]
    assert hosted.closed == 1


def _timed_out(error: object) -> bool:
    """The decision ended on its total timeout (alone, or last of several failures)."""
    from turnout.errors import AllAttemptsFailed

    if isinstance(error, AllAttemptsFailed):
        error = error.errors[-1]
    return isinstance(error, ProviderTimeout) and "total timeout" in str(error)


# -- what an upstream said besides its text ------------------------------------------------

SAID = WireExtra(
    response={"system_fingerprint": "fp_1"},
    choice={"logprobs": {"content": [{"token": "hi", "logprob": -0.1}]}},
)


def saying(extra: WireExtra) -> FunctionProvider:
    return FunctionProvider(
        stream_fn=lambda r: [
            TextDelta("hi", extra),
            StreamEnd("stop", Usage(3, 1), r.model, extra=extra),
        ]
    )


async def test_what_a_stream_said_besides_reaches_the_caller_and_the_answer(
    settings: Settings,
) -> None:
    s = stream(executor(settings, saying(SAID)), "opus")
    events, error = await consume(s)
    assert error is None and events[0] == TextDelta("hi", SAID)
    assert isinstance(events[-1], StreamEnd) and events[-1].extra == SAID
    assert s.execution is not None and s.execution.response is not None
    assert s.execution.response.extra == SAID


async def test_a_continued_answer_has_no_single_upstream_to_speak_for_it(
    settings: Settings,
) -> None:
    hosted = Scripted(["partial ", ProviderConnectionError("reset")])
    s = stream(executor(settings, hosted, saying(SAID)), "opus", "nano", on_stream_cut="continue")
    events, error = await consume(s)
    assert error is None and TextDelta("hi", SAID) in events  # each chunk as it came
    assert isinstance(events[-1], StreamEnd) and events[-1].extra == NO_EXTRA
    assert s.execution is not None and s.execution.response is not None
    assert s.execution.response.extra == NO_EXTRA


async def test_a_refusal_cut_short_is_charged_as_output(settings: Settings) -> None:
    refusal = TextDelta("", WireExtra(message={"refusal": "x" * 40}))
    hosted = Scripted([refusal, ProviderConnectionError("reset")])
    s = stream(executor(settings, hosted), "opus")
    events, error = await consume(s)
    assert events == [refusal] and isinstance(error, ProviderConnectionError)
    assert s.execution is not None
    attempt = s.execution.attempts[0]
    assert attempt.output_tokens == 10 and attempt.usage_estimated
