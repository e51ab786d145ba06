"""Executor fault scenarios, continued: streams, circuit breakers (in process and
shared through the real Redis), cascades and ensembles.

Same set-up as ``test_executor_faults.py``: two fake OpenAI-compatible servers on
real sockets (``alpha`` serves ``small`` and ``big``, ``beta`` serves
``backup``), the real OpenAICompatProvider, an executor built from the
``executor:`` section of the settings. Every scenario checks the outcome, the
recorded attempts and their error classes, and that the cost is exactly the
priced usage of what the servers answered (a cut stream's partial answer is
charged as an estimate).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.fault_rig import (
    ALPHA_REPLY,
    BETA_REPLY,
    PROMPT,
    Event,
    Rig,
    classes,
    consume,
    decision,
    merged,
    prompts_charged,
    run,
    text,
)
from turnout.config.settings import Settings
from turnout.errors import (
    AllAttemptsFailed,
    CircuitOpen,
    ContentFiltered,
    ProviderConnectionError,
)
from turnout.execution.breaker import BreakerBoard
from turnout.execution.budget import Budget
from turnout.execution.executor import Execution, Executor
from turnout.execution.executor import ExecutionStream as StreamExecution
from turnout.execution.stream_cut import Restart
from turnout.policies.base import RequestContext
from turnout.policies.fallback import FallbackPolicy
from turnout.policies.registry import build_policy
from turnout.pricing.tokens import estimate_tokens
from turnout.tracing.records import AttemptRecord
from turnout.tracing.sqlite import SQLiteStore
from turnout.tracing.writer import TraceWriter
from turnout.types import ChatResponse, Decision, QualitySpec, StreamEnd, TextDelta, Usage
from turnout.workflows.loader import workflow_from_dict
from turnout.workflows.runner import Runner

COOLDOWN = 0.5
BREAKER: dict[str, Any] = {
    "retries": {"max_attempts": 1},
    "breaker": {"enabled": True, "window_s": 10, "min_requests": 3, "failure_rate": 0.5,
                "cooldown_s": COOLDOWN, "max_cooldown_s": 1},
}  # fmt: skip


def attempt_sum(out: Execution) -> Decimal:
    return sum((a.cost_usd for a in out.attempts), Decimal(0))


# -- streams --------------------------------------------------------------------------------


def stream(ex: Executor, *models: str, on_stream_cut: Any = "fail", budget: Budget | None = None
           ) -> StreamExecution:  # fmt: skip
    return ex.stream(decision(*models), PROMPT, run_id="run-1", step_id="step-1",
                     on_stream_cut=on_stream_cut, budget=budget)  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "error_class"),
    [
        ("cut:after=1", "connection"),  # the role chunk only, then the connection closes
        ("malformed_sse:after=1", "malformed_response"),
        ("503", "server_error"),
        ("429", "rate_limited"),
        ("stall:3", "timeout"),  # alpha's read timeout is 0.4 s
    ],
)
async def test_stream_failure_before_the_first_token_falls_back_transparently(
    rig: Rig, spec: str, error_class: str
) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script(spec)
    budget = Budget()
    s = stream(ex, "small", "backup", budget=budget)
    events, error = await consume(s)
    assert error is None
    assert not any(isinstance(e, Restart) for e in events)
    assert text(events) == BETA_REPLY and isinstance(events[-1], StreamEnd)
    out = s.execution
    assert out is not None and out.ok and out.model == "backup"
    assert classes(out) == [error_class, None]
    assert out.attempts[0].output_tokens == 0  # a timed-out call is charged its prompt
    assert (
        attempt_sum(out)
        == out.cost
        == budget.spent
        == rig.served_cost(settings, rig.answered()) + prompts_charged(out.attempts)
    )
    assert out.cost > 0


async def test_single_model_stream_retries_before_the_first_token(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("503", "429:retry-after-ms=200")
    s = ex.stream(decision("small", strategy="single"), PROMPT, run_id="run-1", step_id="step-1")
    t0 = time.perf_counter()
    events, error = await consume(s)
    assert error is None and text(events) == ALPHA_REPLY
    assert time.perf_counter() - t0 >= 0.2  # Retry-After honoured
    out = s.execution
    assert out is not None and out.ok
    assert classes(out) == ["server_error", "rate_limited", None]
    assert out.cost == rig.served_cost(settings, rig.answered()) > 0


async def test_single_model_stream_gives_up_after_max_attempts(rig: Rig) -> None:
    ex = rig.executor(rig.settings())
    rig.alpha.script("503", "503", "503", "503")
    s = ex.stream(decision("small", strategy="single"), PROMPT, run_id="run-1", step_id="step-1")
    events, error = await consume(s)
    assert isinstance(error, AllAttemptsFailed) and events == []
    assert s.execution is not None and classes(s.execution) == ["server_error"] * 3


def partial_charge(settings: Settings, out: Execution, partial: str) -> Decimal:
    """The cut attempt's estimated usage, priced: checks it was charged, not lost."""
    cut = out.attempts[0]
    assert cut.status == "error" and cut.output_tokens == estimate_tokens(partial) > 0
    assert cut.input_tokens >= estimate_tokens(PROMPT.messages[0].content or "")
    cost = settings.model(cut.model).price.cost(Usage(cut.input_tokens, cut.output_tokens))
    assert cut.cost_usd == cost > 0
    return cost


async def test_stream_cut_after_the_first_token_is_recorded_and_raised(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("cut:after=3")  # role, "alpha: ", "all ", then the connection closes
    budget = Budget()
    s = stream(ex, "small", "backup", budget=budget)
    events, error = await consume(s)
    assert isinstance(error, ProviderConnectionError)
    assert text(events) == "alpha: all "
    out = s.execution
    assert out is not None and not out.ok and out.error is error
    assert classes(out) == ["connection"]
    cost = partial_charge(settings, out, "alpha: all ")
    assert attempt_sum(out) == out.cost == budget.spent == cost
    assert rig.beta.requests == []  # no silent fallback after tokens were shown


@pytest.mark.parametrize(
    ("spec", "error_class"),
    [
        ("cut:after=3", "connection"),
        ("malformed_sse:after=3", "malformed_response"),
        ("stall:3:after=3", "timeout"),
    ],
)
async def test_stream_broken_after_the_first_token_restarts_on_the_next_model(
    rig: Rig, spec: str, error_class: str
) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script(spec)
    budget = Budget()
    s = stream(ex, "small", "backup", on_stream_cut="restart", budget=budget)
    events, error = await consume(s)
    assert error is None
    restarts = [i for i, e in enumerate(events) if isinstance(e, Restart)]
    assert len(restarts) == 1
    restart = events[restarts[0]]
    assert (restart.failed, restart.next) == ("small", "backup")
    assert text(events[: restarts[0]]) == "alpha: all "
    assert text(events[restarts[0] :]) == BETA_REPLY
    out = s.execution
    assert out is not None and out.ok and out.model == "backup"
    assert classes(out) == [error_class, None]
    cost = partial_charge(settings, out, "alpha: all ")
    served = rig.served_cost(settings, rig.answered())
    assert attempt_sum(out) == out.cost == budget.spent == cost + served


@pytest.mark.parametrize(
    ("spec", "models", "on_filter", "answered_by"),
    [
        ("context_length", ("small", "backup", "big"), None, "big"),  # the larger window
        ("context_length", ("small", "backup"), None, "big"),  # from the pool
        ("content_filter_error", ("small", "big"), "backup", "backup"),
    ],
)
async def test_stream_reroutes_like_the_executor(
    rig: Rig, spec: str, models: tuple[str, ...], on_filter: str | None, answered_by: str
) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script(spec)
    d = Decision(models, "test", "test", strategy="fallback", on_content_filter=on_filter)
    s = ex.stream(d, PROMPT, run_id="run-1", step_id="step-1")
    events, error = await consume(s)
    out = s.execution
    assert error is None and out is not None and out.ok and out.model == answered_by
    assert not any(isinstance(e, Restart) for e in events)
    assert text(events) == (ALPHA_REPLY if answered_by == "big" else BETA_REPLY)
    assert classes(out) == [spec.removesuffix("_error"), None]
    alpha_asked = ["alpha-small", "alpha-big"] if answered_by == "big" else ["alpha-small"]
    assert [r.model for r in rig.alpha.requests] == alpha_asked
    assert len(rig.beta.requests) == (answered_by == "backup")
    assert attempt_sum(out) == out.cost == rig.served_cost(settings, rig.answered())


@pytest.mark.parametrize("allow_restart", [False, True])
async def test_stream_refused_mid_answer(rig: Rig, allow_restart: bool) -> None:
    """A 200 stream stopped by the content filter after its first word: raised, or
    restarted on ``on_content_filter`` (not the next model of the chain)."""
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("content_filter")
    d = Decision(("small", "big"), "t", "t", strategy="fallback", on_content_filter="backup")
    s = ex.stream(
        d,
        PROMPT,
        run_id="run-1",
        step_id="step-1",
        on_stream_cut="restart" if allow_restart else "fail",
    )
    events, error = await consume(s)
    out = s.execution
    assert out is not None and out.attempts[0].error_class == "content_filter"
    partial_charge(settings, out, "alpha:")
    assert [r.model for r in rig.alpha.requests] == ["alpha-small"]
    if not allow_restart:
        assert isinstance(error, ContentFiltered) and out.error is error
        assert text(events) == "alpha:" and rig.beta.requests == []
        assert out.cost == out.attempts[0].cost_usd
        return
    assert error is None and out.model == "backup"
    restart = next(e for e in events if isinstance(e, Restart))
    assert (restart.failed, restart.next) == ("small", "backup")
    assert text(events) == "alpha:" + BETA_REPLY
    served = rig.served_cost(settings, rig.answered())
    assert attempt_sum(out) == out.cost == out.attempts[0].cost_usd + served


async def test_stream_left_early_by_its_caller_is_recorded_and_charged(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    sunk: list[AttemptRecord] = []
    ex.on_attempt = sunk.append
    budget = Budget()
    s = stream(ex, "small", "backup", budget=budget)
    got: list[Event] = []
    async with contextlib.aclosing(aiter(s)) as events:
        async for event in events:
            got.append(event)
            if text(got):
                break  # the caller has seen enough (a gateway client hung up)
    out = s.execution
    assert out is not None and not out.ok and out.error is not None
    assert classes(out) == ["abandoned"]
    cost = partial_charge(settings, out, text(got))
    assert out.cost == budget.spent == cost and sunk == list(out.attempts)
    assert rig.beta.requests == []


async def test_stream_with_every_model_down_raises_one_error(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("500")
    rig.beta.script("cut:after=1")
    s = stream(ex, "small", "backup", on_stream_cut="restart")
    events, error = await consume(s)
    assert isinstance(error, AllAttemptsFailed) and text(events) == ""
    assert "[1] server_error: small (alpha-small)" in str(error)
    assert "[2] connection: backup (beta-main)" in str(error)
    out = s.execution
    assert out is not None and out.error is error
    assert classes(out) == ["server_error", "connection"] and out.cost == 0


# -- circuit breakers -----------------------------------------------------------------------


async def breaker_state(ex: Executor, model: str = "small") -> str:
    assert isinstance(ex.breakers, BreakerBoard)
    return await ex.breakers.state(model)


async def trip(rig: Rig, ex: Executor) -> None:
    """Three failures (min_requests) open small's breaker; two do not."""
    rig.alpha.script("503", "503", "503")
    for n in (1, 2, 3):
        out = await run(ex, decision("small", strategy="single"))
        assert classes(out) == ["server_error"]
        assert await breaker_state(ex) == ("open" if n == 3 else "closed")


async def assert_refused(rig: Rig, ex: Executor) -> None:
    """small is not called: no attempt, and the server's request count does not grow."""
    before = len(rig.alpha.requests)
    out = await run(ex, decision("small", strategy="single"))
    assert isinstance(out.error, CircuitOpen) and out.attempts == () and out.cost == 0
    assert len(rig.alpha.requests) == before


async def test_breaker_opens_stays_open_and_recovers_through_one_probe(rig: Rig) -> None:
    settings = rig.settings(BREAKER)
    ex = rig.executor(settings)
    await trip(rig, ex)
    for _ in range(3):
        await assert_refused(rig, ex)
    assert (await ex.health()).unavailable == {"small"}
    # a fallback policy moves it to the end of its chain; the executor skips it unasked
    chain = FallbackPolicy("resilient", ("small", "backup"), None)
    d = chain.decide(RequestContext(), await ex.health())
    assert d.models == ("backup", "small") and "small breaker open" in d.reason
    out = await run(ex, decision("small", "backup"))
    assert out.ok and out.model == "backup" and classes(out) == [None]
    assert len(rig.alpha.requests) == 3

    await asyncio.sleep(COOLDOWN + 0.05)
    assert await breaker_state(ex) == "half_open"
    rig.alpha.script("stall:0.15")  # the probe is slow, then answers
    a, b = await asyncio.gather(*(run(ex, decision("small", strategy="single")) for _ in "ab"))
    probe, refused = (a, b) if a.ok else (b, a)
    assert probe.ok and classes(probe) == [None]
    assert isinstance(refused.error, CircuitOpen) and refused.attempts == ()
    assert len(rig.alpha.requests) == 4  # a single probe
    assert await breaker_state(ex) == "closed"
    assert (await ex.health()).unavailable == frozenset()
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and len(rig.alpha.requests) == 5

    total = sum((o.cost for o in (probe, out)), Decimal(0)) + rig.served_cost(
        settings, rig.beta.requests
    )
    assert total == rig.served_cost(settings, rig.answered("stall"))


async def test_failed_probe_reopens_with_a_fresh_cooldown(rig: Rig) -> None:
    settings = rig.settings(BREAKER)
    ex = rig.executor(settings)
    await trip(rig, ex)
    await asyncio.sleep(COOLDOWN + 0.05)
    rig.alpha.script("503")
    probe = await run(ex, decision("small", strategy="single"))
    reopened = time.monotonic()
    assert classes(probe) == ["server_error"] and len(rig.alpha.requests) == 4
    assert await breaker_state(ex) == "open"
    # the first cooldown is long over; the fresh one still refuses
    await asyncio.sleep(0.1)
    await assert_refused(rig, ex)
    await asyncio.sleep(max(0.0, reopened + COOLDOWN + 0.05 - time.monotonic()))
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and len(rig.alpha.requests) == 5
    assert await breaker_state(ex) == "closed"
    assert out.cost == rig.served_cost(settings, rig.answered()) > 0


async def test_a_probe_answered_with_a_client_error_does_not_block_the_model(rig: Rig) -> None:
    """A refusal says nothing against the model's health: the probe must not stay in
    flight (refusing every call until probe_timeout_s, 60 s by default)."""
    settings = rig.settings(BREAKER)
    ex = rig.executor(settings)
    await trip(rig, ex)
    await asyncio.sleep(COOLDOWN + 0.05)
    rig.alpha.script("context_length")
    probe = await run(ex, decision("small", strategy="single"))
    assert classes(probe) == ["context_length"]
    assert await breaker_state(ex) == "closed"
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and len(rig.alpha.requests) == 5


async def test_runner_routes_around_an_open_breaker(rig: Rig, tmp_path: Path) -> None:
    policies = {"resilient": {"kind": "fallback", "models": ["small", "backup"]}}
    settings = rig.settings(BREAKER, policies)
    ex = rig.executor(settings)
    workflow = workflow_from_dict(
        {"name": "triage", "steps": [{"id": "answer", "prompt": "Triage the alert."}]}
    )
    policy = build_policy("resilient", settings)
    rig.alpha.script("503", "503", "503")
    store = SQLiteStore(tmp_path / "traces.db")
    try:
        with TraceWriter(store) as writer:
            runner = Runner(settings, sink=writer.submit, executor=ex)
            results = [await runner.run(workflow, {}, policy=policy) for _ in range(5)]
        traces = [store.get_run(r.run_id) for r in results]
    finally:
        store.close()
    assert all(r.ok for r in results)
    trail = [[(a.model, a.error_class) for a in t.attempts] for t in traces if t is not None]
    assert trail == [[("small", "server_error"), ("backup", None)]] * 3 + [[("backup", None)]] * 2
    assert len(rig.alpha.requests) == 3  # not called once its breaker opened
    reasons = [t.steps[0].reason or "" for t in traces if t is not None]
    assert all("breaker open" not in r for r in reasons[:3])
    assert all(
        "fallback: backup -> small (small breaker open, tried last)" in r for r in reasons[3:]
    )
    for t in traces:
        assert t is not None
        attempts_cost = sum((a.cost_usd for a in t.attempts), Decimal(0))
        assert t.run.cost_usd == t.steps[0].cost_usd == attempts_cost > 0
    total = sum((r.cost for r in results), Decimal(0))
    assert total == rig.served_cost(settings, rig.answered()) and len(rig.answered()) == 5


@pytest.fixture
async def redis_prefix(rig: Rig) -> AsyncIterator[str]:
    """A throwaway key prefix in the machine's Redis, its keys deleted after the rig's
    executors are closed (closing, they publish their last breaker and speed state)."""
    redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")
    client = redis_asyncio.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        await client.ping()
    except OSError as exc:
        await client.aclose()
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({exc})")
    except Exception as exc:  # redis.exceptions.ConnectionError
        await client.aclose()
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({exc})")
    prefix = f"turnout-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        await rig.close_executors()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_breaker_state_is_shared_through_redis(rig: Rig, redis_prefix: str) -> None:
    shared = {"state": "redis", "redis_url": "redis://127.0.0.1:6379/0",
              "redis_prefix": redis_prefix}  # fmt: skip
    settings = rig.settings(merged(BREAKER, shared))
    one, two = rig.executor(settings), rig.executor(settings)
    assert one.pool is not two.pool  # two replicas: separate pools and HTTP sessions
    await trip(rig, one)
    await assert_refused(rig, two)  # one's failures opened the breaker for two
    assert (await two.health()).unavailable == {"small"}

    await asyncio.sleep(COOLDOWN + 0.05)
    rig.alpha.script("stall:0.15")
    a, b = await asyncio.gather(
        run(one, decision("small", strategy="single")),
        run(two, decision("small", strategy="single")),
    )
    assert sorted([a.ok, b.ok]) == [False, True]  # one probe between the two replicas
    refused = b if a.ok else a
    assert isinstance(refused.error, CircuitOpen) and refused.attempts == ()
    assert len(rig.alpha.requests) == 4
    assert await breaker_state(two) == "closed"
    out = await run(one, decision("small", strategy="single"))
    assert out.ok and len(rig.alpha.requests) == 5
    probe = a if a.ok else b
    assert probe.cost + out.cost == rig.served_cost(settings, rig.answered("stall"))


# -- cascades and ensembles -----------------------------------------------------------------


async def test_cascade_escalates_past_a_failing_rung(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("500", "502", "503")
    out = await run(ex, decision("small", "backup", strategy="cascade"))
    assert out.ok and out.model == "backup"
    assert classes(out) == ["server_error", None]  # one attempt a rung
    assert out.note == "cascade: small failed (server_error) -> backup accepted"
    assert attempt_sum(out) == out.cost == rig.served_cost(settings, rig.answered())


async def test_cascade_charges_a_rejected_answer(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)

    def accept(response: ChatResponse) -> str | None:
        return "names alpha" if response.text.startswith("alpha") else None

    out = await run(ex, decision("small", "backup", strategy="cascade"), accept=accept)
    assert out.ok and out.model == "backup"
    assert [a.status for a in out.attempts] == ["rejected", "ok"]
    assert classes(out) == ["rejected", None]
    served = rig.served_cost(settings, rig.answered())
    assert len(rig.answered()) == 2
    assert attempt_sum(out) == out.cost == served and out.attempts[0].cost_usd > 0


async def test_ensemble_with_a_member_down(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.beta.script("503", "503", "503")
    out = await run(ex, decision("small", "backup", strategy="ensemble"))
    assert out.ok and out.model == "small"
    assert sorted(classes(out), key=str) == [None] + ["server_error"] * 3
    assert [a.attempt for a in out.attempts] == [1, 2, 3, 4]
    assert attempt_sum(out) == out.cost == rig.served_cost(settings, rig.answered())


async def test_ensemble_cut_by_the_total_timeout_keeps_every_attempt(rig: Rig) -> None:
    settings = rig.settings({"timeouts": {"total_s": 0.3}})
    ex = rig.executor(settings)
    rig.beta.script("stall:5")
    budget = Budget()
    out = await run(ex, decision("small", "backup", strategy="ensemble"), budget=budget)
    # small answered before the deadline: the ensemble answers with it when the deadline cuts backup
    assert out.ok and out.model == "small"
    assert sorted((a.model, a.error_class or "") for a in out.attempts) == [
        ("backup", "timeout"), ("small", "")
    ]  # fmt: skip
    # small answered and was paid for before the cut: the cost is in the record
    served = rig.served_cost(settings, rig.answered()) + prompts_charged(out.attempts)
    assert attempt_sum(out) == out.cost == budget.spent == served > 0


# -- streamed decisions that are judged before they are shown --------------------------------


def judged(ex: Executor, d: Decision, budget: Budget | None = None) -> Any:
    return ex.stream(d, PROMPT, run_id="run-1", step_id="step-1", budget=budget)


async def test_streamed_ensemble_asks_every_member_then_streams_the_chosen_answer(
    rig: Rig,
) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.beta.script("503", "503", "503")
    budget = Budget()
    s = judged(ex, decision("small", "backup", strategy="ensemble"), budget)
    events, error = await consume(s)
    assert error is None
    assert [type(e) for e in events] == [TextDelta, StreamEnd]
    assert text(events) == ALPHA_REPLY
    out = s.execution
    assert out is not None and out.ok and out.model == "small"
    assert len(rig.beta.requests) == 3  # every member was asked, not only the first
    assert sorted(classes(out), key=str) == [None] + ["server_error"] * 3
    assert events[-1].usage == out.response.usage
    assert events[-1].ttft_s == pytest.approx(out.latency_s, abs=0.01)
    assert attempt_sum(out) == out.cost == budget.spent == rig.served_cost(settings, rig.answered())


async def test_streamed_cascade_with_quality_checks_escalates_before_showing_anything(
    rig: Rig,
) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    quality = QualitySpec(refusal_phrases=("alpha:",))  # small's answer fails the checks
    s = judged(ex, decision("small", "backup", strategy="cascade", quality=quality))
    events, error = await consume(s)
    assert error is None and text(events) == BETA_REPLY  # small's answer never reached the caller
    out = s.execution
    assert out is not None and out.model == "backup"
    assert [a.status for a in out.attempts] == ["rejected", "ok"]
    assert attempt_sum(out) == out.cost == rig.served_cost(settings, rig.answered())
    assert out.attempts[0].cost_usd > 0  # the rejected answer is paid for


async def test_streamed_ensemble_with_every_member_down_raises_after_recording(rig: Rig) -> None:
    settings = rig.settings({"retries": {"max_attempts": 1}})
    ex = rig.executor(settings)
    rig.alpha.script("500")
    rig.beta.script("502")
    s = judged(ex, decision("small", "backup", strategy="ensemble"))
    events, error = await consume(s)
    assert events == [] and isinstance(error, AllAttemptsFailed)
    out = s.execution
    assert out is not None and not out.ok and out.error is error
    assert sorted(classes(out), key=str) == ["server_error", "server_error"]


def test_plain_cascades_and_fallbacks_stream_token_by_token(rig: Rig) -> None:
    ex = rig.executor(rig.settings())
    for d in (decision("small", "backup", strategy="cascade"), decision("small", "backup")):
        assert isinstance(judged(ex, d), StreamExecution)
