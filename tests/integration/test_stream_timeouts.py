"""Streamed decisions under the executor's timeouts, on real sockets.

Same rig as the other executor fault tests (tests/support/fault_rig.py): ``alpha``
serves ``small`` and ``big`` (its own read timeout is 0.4 s), ``beta`` serves
``backup``. ``attempt_s`` bounds the wait for the first token and every silence
between two chunks; ``total_s`` bounds the whole decision. Every scenario checks
the events the caller saw, the recorded attempts, the cost (exactly the priced
usage of what the servers answered, plus the estimate for a cut stream), and that
the connection a timeout cut was closed (the server sees the client hang up long
before its 3 s stall would end).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from support.fault_rig import (
    ALPHA_REPLY,
    BETA_REPLY,
    PROMPT,
    Rig,
    classes,
    consume,
    decision,
    prompts_charged,
    text,
)
from turnout.config.settings import Settings
from turnout.errors import AllAttemptsFailed, ProviderTimeout
from turnout.execution.budget import Budget
from turnout.execution.executor import Execution, Executor
from turnout.execution.executor import ExecutionStream as StreamExecution
from turnout.execution.stream_cut import Restart
from turnout.pricing.tokens import estimate_tokens
from turnout.testing import FakeOpenAI
from turnout.tracing.records import AttemptRecord
from turnout.types import StreamEnd, Usage

ATTEMPT = {"timeouts": {"attempt_s": 0.2}}


def stream(ex: Executor, *models: str, strategy: str = "fallback", **kw: Any) -> StreamExecution:
    kw.setdefault("on_stream_cut", "fail")  # these tests were written for that rule
    d = decision(*models, strategy=strategy)
    return ex.stream(d, PROMPT, run_id="run-1", step_id="step-1", **kw)


async def hung_up(server: FakeOpenAI, n: int = 1) -> None:
    """Wait (1 s at most: the stalls last 3 s) until the server saw ``n`` clients hang up."""
    for _ in range(100):
        if server.hangups >= n:
            break
        await asyncio.sleep(0.01)
    assert server.hangups == n


def cut_charge(settings: Settings, cut: AttemptRecord, partial: str) -> Decimal:
    """A cut attempt is charged for its prompt and what it streamed (an estimate)."""
    assert cut.status == "error" and cut.output_tokens == estimate_tokens(partial) > 0
    assert cut.input_tokens >= estimate_tokens(PROMPT.messages[0].content or "")
    cost = settings.model(cut.model).price.cost(Usage(cut.input_tokens, cut.output_tokens))
    assert cut.cost_usd == cost > 0
    return cost


def errors(out: Execution) -> list[str]:
    return [a.error or "" for a in out.attempts]


# -- attempt_s: time to first token ---------------------------------------------------------


@pytest.mark.parametrize("spec", ["stall:3", "stall:3:after=1"])  # no headers / the role only
async def test_no_first_token_within_attempt_s_falls_back_transparently(
    rig: Rig, spec: str
) -> None:
    settings = rig.settings(ATTEMPT)
    ex = rig.executor(settings)
    sunk: list[AttemptRecord] = []
    ex.on_attempt = sunk.append
    rig.alpha.script(spec)
    budget = Budget()
    s = stream(ex, "small", "backup", budget=budget)
    events, error = await consume(s)
    assert error is None and not any(isinstance(e, Restart) for e in events)
    assert text(events) == BETA_REPLY and isinstance(events[-1], StreamEnd)
    out = s.execution
    assert out is not None and out.ok and out.model == "backup"
    assert classes(out) == ["timeout", None] and sunk == list(out.attempts)
    first = out.attempts[0]
    assert first.error == (
        "small: no first token within the attempt timeout of 0.2s (before its first token)"
    )
    assert 0.18 <= first.latency_s < 0.4  # the executor's limit, not alpha's read timeout
    assert first.output_tokens == 0  # charged the prompt it sent, as an estimate
    served = rig.served_cost(settings, rig.answered())
    assert out.cost == budget.spent == served + prompts_charged(out.attempts) > served > 0
    assert budget.held == 0
    await hung_up(rig.alpha)


async def test_single_model_stream_retries_after_a_slow_first_token(rig: Rig) -> None:
    settings = rig.settings(ATTEMPT)
    ex = rig.executor(settings)
    rig.alpha.script("stall:3")
    s = stream(ex, "small", strategy="single")
    events, error = await consume(s)
    assert error is None and text(events) == ALPHA_REPLY
    out = s.execution
    assert out is not None and classes(out) == ["timeout", None]
    assert "no first token within the attempt timeout of 0.2s" in errors(out)[0]
    served = rig.served_cost(settings, rig.answered())
    assert out.cost == served + prompts_charged(out.attempts) > served > 0
    await hung_up(rig.alpha)


# -- attempt_s: a stalled stream ------------------------------------------------------------


async def test_stall_mid_stream_is_reported_and_recorded(rig: Rig) -> None:
    settings = rig.settings(ATTEMPT)
    ex = rig.executor(settings)
    rig.alpha.script("stall:3:after=3")  # role, "alpha: ", "all ", then silence
    budget = Budget()
    s = stream(ex, "small", "backup", budget=budget)
    events, error = await consume(s)
    assert isinstance(error, ProviderTimeout) and text(events) == "alpha: all "
    assert str(error) == (
        "small: the stream stalled: no chunk within the attempt timeout of 0.2s "
        "(after 11 characters)"
    )
    out = s.execution
    assert out is not None and out.error is error and classes(out) == ["timeout"]
    cost = cut_charge(settings, out.attempts[0], "alpha: all ")
    assert out.cost == budget.spent == cost and budget.held == 0
    assert rig.beta.requests == []  # no silent fallback after tokens were shown
    await hung_up(rig.alpha)


async def test_stall_mid_stream_restarts_where_allowed(rig: Rig) -> None:
    settings = rig.settings(ATTEMPT)
    ex = rig.executor(settings)
    rig.alpha.script("stall:3:after=3")
    budget = Budget()
    s = stream(ex, "small", "backup", on_stream_cut="restart", budget=budget)
    events, error = await consume(s)
    assert error is None
    [restart] = [e for e in events if isinstance(e, Restart)]
    assert (restart.failed, restart.next) == ("small", "backup")
    assert "stalled" in restart.error and "attempt timeout of 0.2s" in restart.error
    assert text(events) == "alpha: all " + BETA_REPLY
    out = s.execution
    assert out is not None and out.ok and out.model == "backup"
    assert classes(out) == ["timeout", None]
    cost = cut_charge(settings, out.attempts[0], "alpha: all ")
    served = rig.served_cost(settings, rig.answered())
    assert out.cost == budget.spent == cost + served
    await hung_up(rig.alpha)


async def test_a_slow_but_steady_stream_and_a_slow_reader_are_not_cut(rig: Rig) -> None:
    """attempt_s bounds each silence, not the whole answer, and the caller's own pace
    does not count: 8 frames 0.05 s apart, and a reader dwelling 0.25 s on the first token."""
    settings = rig.settings(ATTEMPT)
    ex = rig.executor(settings)
    rig.alpha.chunk_delay = 0.05
    s = stream(ex, "small", "backup")
    t0 = time.perf_counter()
    events, error = await consume(s, dwell=0.25)
    assert time.perf_counter() - t0 > 0.4  # twice attempt_s
    assert error is None and text(events) == ALPHA_REPLY
    out = s.execution
    assert out is not None and out.ok and classes(out) == [None]
    assert rig.beta.requests == [] and rig.alpha.hangups == 0


# -- total_s --------------------------------------------------------------------------------


async def test_total_timeout_cuts_a_stream_before_its_first_token(rig: Rig) -> None:
    settings = rig.settings({"timeouts": {"total_s": 0.3}})  # sooner than alpha's read timeout
    ex = rig.executor(settings)
    sunk: list[AttemptRecord] = []
    ex.on_attempt = sunk.append
    rig.alpha.script("stall:3")
    budget = Budget()
    s = stream(ex, "small", "backup", budget=budget)
    t0 = time.perf_counter()
    events, error = await consume(s)
    assert time.perf_counter() - t0 < 1.0
    assert events == [] and _timed_out(error)
    assert str(error).endswith("no answer within the total timeout of 0.3s")
    out = s.execution
    assert out is not None and out.error is error and sunk == list(out.attempts)
    assert classes(out) == ["timeout"]
    assert errors(out) == ["small: cut by the total timeout of 0.3s (before its first token)"]
    assert out.cost == budget.spent == prompts_charged(out.attempts) > 0 == budget.held
    assert rig.beta.requests == []
    await hung_up(rig.alpha)


@pytest.mark.parametrize("allow_restart", [False, True])
async def test_total_timeout_cuts_a_stream_mid_answer(rig: Rig, allow_restart: bool) -> None:
    """Tokens were shown: the cut attempt is charged for them, and nothing restarts."""
    settings = rig.settings({"timeouts": {"total_s": 0.3}})
    ex = rig.executor(settings)
    rig.alpha.script("stall:3:after=3")
    budget = Budget()
    s = stream(
        ex, "small", "backup", on_stream_cut="restart" if allow_restart else "fail", budget=budget
    )
    events, error = await consume(s)
    assert _timed_out(error) and text(events) == "alpha: all "
    assert not any(isinstance(e, Restart) for e in events)
    assert str(error) == "the streamed answer did not finish within the total timeout of 0.3s"
    out = s.execution
    assert out is not None and out.error is error and classes(out) == ["timeout"]
    assert errors(out) == ["small: cut by the total timeout of 0.3s (after 11 characters)"]
    cost = cut_charge(settings, out.attempts[0], "alpha: all ")
    assert out.cost == budget.spent == cost and budget.held == 0
    assert rig.beta.requests == []
    await hung_up(rig.alpha)


async def test_total_timeout_bounds_every_attempt_of_a_fallback_chain(rig: Rig) -> None:
    """Three models that never answer: two hit attempt_s (0.2 s each), the total (0.5 s)
    cuts the third; all three are traced and each connection is closed."""
    settings = rig.settings({"timeouts": {"attempt_s": 0.2, "total_s": 0.5}})
    ex = rig.executor(settings)
    sunk: list[AttemptRecord] = []
    ex.on_attempt = sunk.append
    rig.alpha.script("stall:3", "stall:3")
    rig.beta.script("stall:3")
    s = stream(ex, "small", "backup", "big", on_stream_cut="restart")
    t0 = time.perf_counter()
    events, error = await consume(s)
    assert 0.45 < time.perf_counter() - t0 < 1.2
    assert events == [] and _timed_out(error)
    assert "total timeout of 0.5s" in str(error)
    out = s.execution
    assert out is not None and sunk == list(out.attempts)
    assert [a.model for a in out.attempts] == ["small", "backup", "big"]
    assert classes(out) == ["timeout"] * 3
    assert ["attempt timeout of 0.2s" in e for e in errors(out)] == [True, True, False]
    assert "cut by the total timeout of 0.5s" in errors(out)[2]
    assert out.cost == prompts_charged(out.attempts) > 0  # three prompts sent, none answered
    await hung_up(rig.alpha, 2)
    await hung_up(rig.beta)


async def test_total_timeout_cuts_a_backoff_pause(rig: Rig) -> None:
    settings = rig.settings({"timeouts": {"total_s": 0.3}})
    ex = rig.executor(settings)
    rig.alpha.script("429:retry-after=2")
    s = stream(ex, "small", strategy="single")
    t0 = time.perf_counter()
    events, error = await consume(s)
    assert time.perf_counter() - t0 < 1.0  # not the 2 s Retry-After
    assert events == [] and _timed_out(error)
    assert str(error).endswith("no answer within the total timeout of 0.3s")
    out = s.execution
    assert out is not None and classes(out) == ["rate_limited"]
    assert len(rig.alpha.requests) == 1


async def test_without_timeouts_the_chain_fails_as_before(rig: Rig) -> None:
    """No limits configured: only the providers' own timeouts apply."""
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("stall:3")
    rig.beta.script("500")
    s = stream(ex, "small", "backup")
    events, error = await consume(s)
    assert events == [] and isinstance(error, AllAttemptsFailed)
    out = s.execution
    assert out is not None and classes(out) == ["timeout", "server_error"]
    assert "read timeout" in errors(out)[0]


def _timed_out(error: object) -> bool:
    """The decision ended on its total timeout (alone, or last of several failures)."""
    from turnout.errors import AllAttemptsFailed

    if isinstance(error, AllAttemptsFailed):
        error = error.errors[-1]
    return isinstance(error, ProviderTimeout) and "total timeout" in str(error)
