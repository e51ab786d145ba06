"""Executor fault scenarios against fake OpenAI-compatible servers on real sockets.

Two :class:`~turnout.testing.FakeOpenAI` servers are two providers (``alpha``
serves ``small`` and ``big``, ``beta`` serves ``backup``); ``ghost`` points at a
closed port. The executor is built from the ``executor:`` section of the
settings (:func:`~turnout.execution.setup.build_executor`) and calls the real
:class:`~turnout.providers.openai_compat.OpenAICompatProvider` over HTTP.

Every scenario checks the outcome, that each failed attempt is recorded with
its error class, and that no cost is counted twice or lost: the sum of the
attempt costs is the execution's (step's, run's) cost and is exactly the priced
usage that the fake servers reported for the calls they answered.

Streams, breakers (in process and shared through Redis), cascades and
ensembles are in ``test_executor_faults_more.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.fault_rig import (
    ALPHA_REPLY,
    BETA_REPLY,
    Rig,
    classes,
    decision,
    prompts_charged,
    run,
)
from turnout.config.settings import Settings
from turnout.errors import (
    AllAttemptsFailed,
    ContentFiltered,
    ProviderTimeout,
)
from turnout.execution.breaker import BreakerBoard
from turnout.execution.executor import Execution
from turnout.policies.registry import build_policy
from turnout.testing import RecordedRequest
from turnout.tracing.sqlite import SQLiteStore
from turnout.tracing.writer import TraceWriter
from turnout.types import Usage
from turnout.workflows.loader import workflow_from_dict
from turnout.workflows.runner import Runner


def assert_costs(rig: Rig, settings: Settings, out: Execution, answered: Iterable[RecordedRequest]
                 ) -> None:  # fmt: skip
    """Attempt costs add up to the execution's cost, which is what the servers charged
    plus the prompts of calls that timed out (the provider had them: estimated)."""
    expected = rig.served_cost(settings, answered) + prompts_charged(out.attempts)
    assert sum((a.cost_usd for a in out.attempts), Decimal(0)) == out.cost == expected
    for a in out.attempts:
        if a.status == "error" and a.error_class != "timeout":
            assert a.cost_usd == 0 and a.input_tokens == a.output_tokens == 0, a
        elif a.status == "error":
            assert a.usage_estimated and a.output_tokens == 0 < a.cost_usd, a
        else:
            price = settings.model(a.model).price
            assert a.cost_usd == price.cost(Usage(a.input_tokens, a.output_tokens)) > 0


# -- rate limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "wait"),
    [("429", None), ("429:retry-after=1", 1.0), ("429:retry-after-ms=250", 0.25)],
)
async def test_rate_limited_then_recovers_waiting_retry_after(
    rig: Rig, spec: str, wait: float | None
) -> None:
    settings = rig.settings({"retries": {"max_retry_after_s": 5}})
    ex = rig.executor(settings)
    rig.alpha.script(spec)
    t0 = time.perf_counter()
    out = await run(ex, decision("small", strategy="single"))
    elapsed = time.perf_counter() - t0
    assert out.ok and out.model == "small" and out.response is not None
    assert out.response.text == ALPHA_REPLY
    assert classes(out) == ["rate_limited", None]
    assert "HTTP 429" in str(out.attempts[0].error)
    first, second = out.attempts
    gap = second.started_at - (first.started_at + first.latency_s)
    if wait is None:  # exponential backoff from base_delay_s = 0.01
        assert gap < 0.2 and elapsed < 0.8
    else:
        assert wait - 0.02 <= gap < wait + 0.5, gap
        assert wait <= elapsed < wait + 0.8
    assert len(rig.alpha.requests) == 2
    assert_costs(rig, settings, out, rig.answered())


@pytest.mark.parametrize(
    ("spec", "wait"),
    [("503:retry-after=1", 1.0), ("529:retry-after-ms=600", 0.6), ("502:retry-after=1", 1.0),
     ("500:retry-after=1", 1.0), ("504:retry-after=1", 1.0)],
)  # fmt: skip
async def test_a_server_error_with_retry_after_waits_that_long(
    rig: Rig, spec: str, wait: float
) -> None:
    settings = rig.settings({"retries": {"max_retry_after_s": 5}})
    ex = rig.executor(settings)
    rig.alpha.script(spec)
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and classes(out) == ["server_error", None]
    first, second = out.attempts
    gap = second.started_at - (first.started_at + first.latency_s)
    assert wait - 0.02 <= gap < wait + 0.5, gap  # not the 0.01 s backoff
    assert_costs(rig, settings, out, rig.answered())


@pytest.mark.parametrize("spec", ["429:retry-after=30", "503:retry-after=30"])
async def test_retry_after_longer_than_the_cap_is_not_waited_for(rig: Rig, spec: str) -> None:
    """A model that asked for 30 s when the cap is 0.2 s is not asked again early, into a
    limit still on: single fails at once with the provider's wait; fallback moves on."""
    settings = rig.settings({"retries": {"max_retry_after_s": 0.2}})
    ex = rig.executor(settings)
    rig.alpha.script(spec, spec)
    t0 = time.perf_counter()
    out = await run(ex, decision("small", strategy="single"))
    assert time.perf_counter() - t0 < 0.5
    assert not out.ok and len(out.attempts) == 1 and len(rig.alpha.requests) == 1
    assert out.error is not None and getattr(out.error, "retry_after", None) == 30.0
    out = await run(ex, decision("small", "backup"))
    assert out.ok and out.model == "backup" and len(out.attempts) == 2
    assert time.perf_counter() - t0 < 1.0
    assert_costs(rig, settings, out, rig.answered())


# -- server errors --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_then_recovery(rig: Rig, status: int) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script(str(status), str(status))
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and out.model == "small"
    assert classes(out) == ["server_error", "server_error", None]
    assert [a.attempt for a in out.attempts] == [1, 2, 3]
    assert all(f"HTTP {status}" in str(a.error) for a in out.attempts[:2])
    assert len(rig.alpha.requests) == 3 and rig.beta.requests == []
    assert_costs(rig, settings, out, rig.answered())


async def test_server_error_on_every_retry_fails_listing_each(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("503", "502", "500")
    out = await run(ex, decision("small", strategy="single"))
    assert not out.ok and isinstance(out.error, AllAttemptsFailed)
    assert classes(out) == ["server_error"] * 3
    assert [e.status for e in out.error.errors] == [503, 502, 500]
    assert out.cost == 0 and rig.answered() == []


# -- connections and timeouts ---------------------------------------------------------------


async def test_connection_refused_falls_back_to_second_provider(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    out = await run(ex, decision("ghost", "backup"))
    assert out.ok and out.model == "backup" and out.response is not None
    assert out.response.text == BETA_REPLY
    assert classes(out) == ["connection", None]
    assert "cannot connect" in str(out.attempts[0].error)
    assert out.note == "fallback: ghost -> backup"
    assert len(rig.beta.requests) == 1
    assert_costs(rig, settings, out, rig.answered())


async def test_read_timeout_then_retry(rig: Rig) -> None:
    settings = rig.settings()  # alpha's read timeout is 0.4 s
    ex = rig.executor(settings)
    rig.alpha.script("stall:3")
    t0 = time.perf_counter()
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and classes(out) == ["timeout", None]
    assert "read timeout" in str(out.attempts[0].error)
    assert 0.38 <= out.attempts[0].latency_s < 1.0
    assert time.perf_counter() - t0 < 1.5
    assert_costs(rig, settings, out, rig.answered())


async def test_stall_past_the_attempt_timeout_falls_back(rig: Rig) -> None:
    settings = rig.settings({"timeouts": {"attempt_s": 0.2}})
    ex = rig.executor(settings)
    rig.alpha.script("stall:3")
    out = await run(ex, decision("small", "backup"))
    assert out.ok and out.model == "backup"
    assert classes(out) == ["timeout", None]
    first = out.attempts[0]
    assert "attempt timeout of 0.2s" in str(first.error)
    assert str(first.error).startswith("small: ")  # the error names its model
    assert first.latency_s >= 0.18  # and the message says it was the executor's timeout
    assert_costs(rig, settings, out, rig.answered())


async def test_total_timeout_records_the_attempt_it_cut(rig: Rig) -> None:
    settings = rig.settings({"timeouts": {"total_s": 0.25}})
    ex = rig.executor(settings)
    rig.alpha.script("stall:3")
    t0 = time.perf_counter()
    out = await run(ex, decision("small", "backup"))
    assert time.perf_counter() - t0 < 1.0
    assert not out.ok and isinstance(out.error, ProviderTimeout)
    assert "total timeout of 0.25s" in str(out.error)
    assert classes(out) == ["timeout"]  # the call that was cut is in the record
    assert out.attempts[0].model == "small"
    assert out.attempts[0].cost_usd == prompts_charged(out.attempts) > 0  # the prompt it had
    assert rig.beta.requests == []


# -- malformed answers ----------------------------------------------------------------------


async def test_malformed_json_then_recovery(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("malformed_json")
    out = await run(ex, decision("small", strategy="single"))
    assert out.ok and classes(out) == ["malformed_response", None]
    assert "malformed answer" in str(out.attempts[0].error)
    assert_costs(rig, settings, out, rig.answered())


async def test_malformed_json_falls_back_across_providers(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("malformed_json")
    out = await run(ex, decision("small", "backup"))
    assert out.ok and out.model == "backup" and classes(out) == ["malformed_response", None]
    assert_costs(rig, settings, out, rig.answered())


# -- context length and content filters -----------------------------------------------------


async def test_context_length_moves_to_the_larger_window_in_the_chain(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("context_length")
    out = await run(ex, decision("small", "backup", "big"))
    # backup's window (1000) is no larger than small's: skipped for big (200000)
    assert out.ok and out.model == "big"
    assert classes(out) == ["context_length", None]
    assert [r.model for r in rig.alpha.requests] == ["alpha-small", "alpha-big"]
    assert rig.beta.requests == []
    assert out.note == "fallback: small -> big"
    assert_costs(rig, settings, out, rig.answered())


async def test_context_length_picks_a_larger_window_from_the_pool(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("context_length")
    out = await run(ex, decision("small", "backup"))
    assert out.ok and out.model == "big"  # not in the chain: the pool's larger window
    assert classes(out) == ["context_length", None]
    assert rig.beta.requests == []
    assert_costs(rig, settings, out, rig.answered())


async def test_a_larger_window_is_not_taken_outside_the_allowed_models(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("context_length")
    out = await run(ex, decision("small", "backup", allowed=frozenset({"small", "backup"})))
    assert not out.ok and classes(out) == ["context_length"]  # big is not the key's
    assert [r.model for r in rig.alpha.requests] == ["alpha-small"]


async def test_context_length_with_no_larger_window_fails_at_once(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("context_length")
    out = await run(ex, decision("big", "small"))
    assert not out.ok and classes(out) == ["context_length"]
    assert out.error is not None and "maximum context length" in str(out.error)
    assert len(rig.alpha.requests) == 1 and out.cost == 0


@pytest.mark.parametrize("spec", ["content_filter_error", "content_policy"])
async def test_content_filter_moves_to_on_content_filter(rig: Rig, spec: str) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script(spec)
    out = await run(ex, decision("small", "big", on_content_filter="backup"))
    assert out.ok and out.model == "backup"
    assert classes(out) == ["content_filter", None]
    assert [r.model for r in rig.alpha.requests] == ["alpha-small"]  # big was not asked
    assert out.note == "fallback: small -> backup"
    assert_costs(rig, settings, out, rig.answered())


@pytest.mark.parametrize("strategy", ["single", "fallback"])
async def test_content_filter_without_alternative_fails_without_retrying(
    rig: Rig, strategy: str
) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("content_filter_error")
    models = ("small",) if strategy == "single" else ("small", "backup")
    out = await run(ex, decision(*models, strategy=strategy))
    assert not out.ok and isinstance(out.error, ContentFiltered)
    assert classes(out) == ["content_filter"]
    assert len(rig.alpha.requests) == 1 and rig.beta.requests == []
    assert out.cost == 0


async def test_content_filtered_answer_refuses_and_falls_over(rig: Rig) -> None:
    """A 200 answer cut short with finish_reason content_filter is a refusal too."""
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("content_filter")
    out = await run(ex, decision("small", "big", on_content_filter="backup"))
    assert out.ok and out.model == "backup" and classes(out) == ["content_filter", None]
    assert "content filter" in str(out.attempts[0].error)


async def test_content_filtered_answer_is_charged(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("content_filter")
    out = await run(ex, decision("small", strategy="single"))
    assert classes(out) == ["content_filter"]
    assert out.cost == rig.served_cost(settings, rig.alpha.requests) > 0


# -- flapping and total outage --------------------------------------------------------------


async def test_flapping_primary(rig: Rig) -> None:
    breaker = {"enabled": True, "min_requests": 4, "failure_rate": 0.75, "cooldown_s": 0.3}
    settings = rig.settings({"breaker": breaker})
    ex = rig.executor(settings)
    rig.alpha.script(*["503", "ok"] * 3)
    outs = [await run(ex, decision("small", "backup")) for _ in range(6)]
    assert all(o.ok for o in outs)
    assert [o.model for o in outs] == ["backup", "small"] * 3
    assert [len(o.attempts) for o in outs] == [2, 1] * 3
    assert [classes(o) for o in outs] == [["server_error", None], [None]] * 3
    assert len(rig.alpha.requests) == 6 and len(rig.beta.requests) == 3
    assert isinstance(ex.breakers, BreakerBoard)
    assert await ex.breakers.state("small") == "closed"  # 50% < 75%
    total = sum((o.cost for o in outs), Decimal(0))
    assert total == rig.served_cost(settings, rig.answered())
    for o in outs:
        assert sum((a.cost_usd for a in o.attempts), Decimal(0)) == o.cost


async def test_flapping_primary_single_model_retries(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("500", "ok", "503", "502", "ok")
    first = await run(ex, decision("small", strategy="single"))
    second = await run(ex, decision("small", strategy="single"))
    assert first.ok and second.ok
    assert classes(first) == ["server_error", None]
    assert classes(second) == ["server_error", "server_error", None]
    assert first.cost + second.cost == rig.served_cost(settings, rig.answered())


async def test_every_provider_down_gives_one_clear_error(rig: Rig) -> None:
    settings = rig.settings()
    ex = rig.executor(settings)
    rig.alpha.script("500")
    rig.beta.script("429")
    out = await run(ex, decision("ghost", "small", "backup"))
    assert not out.ok and isinstance(out.error, AllAttemptsFailed)
    assert classes(out) == ["connection", "server_error", "rate_limited"]
    message = str(out.error)
    assert "\n" not in message
    assert "all 3 attempt(s) failed" in message
    # each names the pool model, and the provider's id for it in brackets
    assert "[1] connection: ghost (ghost-1): cannot connect" in message
    assert "[2] server_error: small (alpha-small): HTTP 500" in message
    assert "[3] rate_limited: backup (beta-main): HTTP 429" in message
    assert "SECRET" not in message
    assert out.note == "fallback: ghost -> small -> backup all failed"
    assert out.cost == 0 and rig.answered() == []


# -- through the runner, into a SQLite trace store ------------------------------------------

WORKFLOW = {
    "name": "incident",
    "inputs": ["report"],
    "steps": [
        {"id": "summary", "prompt": "Summarise: {{ report }}"},
        {"id": "title", "inputs": ["summary"], "prompt": "A title for: {{ summary }}"},
    ],
}
POLICIES = {"resilient": {"kind": "fallback", "models": ["ghost", "small", "backup"]}}


async def run_workflow(rig: Rig, settings: Settings, tmp_path: Path) -> tuple[Any, Any]:
    ex = rig.executor(settings)
    store = SQLiteStore(tmp_path / "traces.db")
    try:
        with TraceWriter(store) as writer:
            runner = Runner(settings, sink=writer.submit, executor=ex)
            result = await runner.run(
                workflow_from_dict(WORKFLOW),
                {"report": "disk full on db-1"},
                policy=build_policy("resilient", settings),
            )
        trace = store.get_run(result.run_id)
    finally:
        store.close()
    assert trace is not None
    return result, trace


async def test_runner_records_fallback_attempts_and_costs(rig: Rig, tmp_path: Path) -> None:
    settings = rig.settings(policies=POLICIES)
    rig.alpha.script("503")  # summary: ghost refused, small 503, backup answers; title: small
    result, trace = await run_workflow(rig, settings, tmp_path)
    assert result.ok and trace.run.status == "succeeded"
    by_step = {s.step_id: s for s in trace.steps}
    attempts = {sid: [a for a in trace.attempts if a.step_id == sid] for sid in by_step}
    assert [(a.model, a.error_class) for a in attempts["summary"]] == [
        ("ghost", "connection"), ("small", "server_error"), ("backup", None)
    ]  # fmt: skip
    assert [(a.model, a.error_class) for a in attempts["title"]] == [
        ("ghost", "connection"), ("small", None)
    ]  # fmt: skip
    assert by_step["summary"].model == "backup" and by_step["title"].model == "small"
    reason = by_step["summary"].reason or ""
    assert "fallback: ghost -> small -> backup" in reason
    assert reason.count("fallback:") == 1  # the chain once, not repeated by the execution
    assert reason.endswith("; answered by backup after ghost, small failed")
    assert (by_step["title"].reason or "").endswith("; answered by small after ghost failed")
    expected = rig.served_cost(settings, rig.answered())
    assert len(rig.answered()) == 2
    for sid, step in by_step.items():
        assert step.cost_usd == sum((a.cost_usd for a in attempts[sid]), Decimal(0))
        assert step.calls == len(attempts[sid])
    assert trace.run.cost_usd == sum((s.cost_usd for s in trace.steps), Decimal(0))
    assert trace.run.cost_usd == result.cost == expected > 0
    assert trace.run.calls == 5


async def test_runner_records_a_total_outage(rig: Rig, tmp_path: Path) -> None:
    rig.alpha.script("502")
    rig.beta.script("stall:5")
    settings = rig.settings({"timeouts": {"attempt_s": 0.2}}, policies=POLICIES)
    result, trace = await run_workflow(rig, settings, tmp_path)
    assert not result.ok and trace.run.status == "failed"
    steps = {s.step_id: s for s in trace.steps}
    assert steps["summary"].status == "failed"
    assert steps["summary"].error_class == "all_attempts_failed"
    assert steps["title"].status == "skipped"
    error = steps["summary"].error or ""
    assert "[1] connection: ghost (ghost-1)" in error
    assert "[2] server_error: small (alpha-small): HTTP 502" in error
    assert "[3] timeout: backup: no answer within the attempt timeout of 0.2s" in error
    assert [(a.model, a.error_class) for a in trace.attempts] == [
        ("ghost", "connection"), ("small", "server_error"), ("backup", "timeout")
    ]  # fmt: skip
    assert trace.run.error is not None and "all 3 attempt(s) failed" in trace.run.error
    # only backup had the prompt (ghost never connected, small answered 502): its is charged
    charged = prompts_charged(trace.attempts)
    assert trace.run.cost_usd == steps["summary"].cost_usd == charged > 0
    assert [a.cost_usd > 0 for a in trace.attempts] == [False, False, True]
