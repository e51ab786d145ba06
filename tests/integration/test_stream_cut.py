"""``on_stream_cut``: a stream that breaks after tokens reached the caller, by a cut
connection, a stall or an error event, is continued (the caller reads one whole
answer), restarted (a Restart event, then the whole answer again), or failed (the
error, never a clean end), on real sockets. Both attempts are traced and charged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from support.fault_rig import PROMPT, Rig, decision
from turnout.errors import BudgetExceeded, TurnoutError
from turnout.execution.executor import ExecutionStream
from turnout.execution.stream_cut import CONTINUE_PROMPT, Restart
from turnout.types import StreamEnd, TextDelta
from turnout.wire.requests import content_text

ANSWER = "The quick brown fox jumps over the lazy dog near the river bank."


def storyteller(body: Mapping[str, Any]) -> str:
    """The answer, or, asked to continue, the rest of it after what it already said."""
    messages = body["messages"]
    if content_text(messages[-1].get("content")) == CONTINUE_PROMPT:
        partial = content_text(messages[-2].get("content"))
        assert ANSWER.startswith(partial), partial
        return ANSWER[len(partial) :]
    return ANSWER


FAULTS = {
    "cut": "cut:after=3",
    "stall": "stall:2:after=3",
    "error event": "error_in_200:after=3",
}


async def read(s: ExecutionStream) -> tuple[list[Any], TurnoutError | None]:
    events: list[Any] = []
    try:
        async for event in s:
            events.append(event)
    except TurnoutError as exc:
        return events, exc
    return events, None


def text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.fixture
def storyteller_rig(rig: Rig) -> Rig:
    rig.alpha.reply = storyteller
    rig.beta.reply = storyteller
    return rig


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("strategy", ["single", "fallback"])
async def test_continue_gives_the_caller_one_whole_answer(
    storyteller_rig: Rig, fault: str, strategy: str
) -> None:
    rig = storyteller_rig
    ex = rig.executor(rig.settings({"retries": {"jitter": 0}}))
    rig.alpha.script(FAULTS[fault])
    d = (
        decision("small", strategy="single")
        if strategy == "single"
        else decision("small", "backup")
    )
    s = ex.stream(d, PROMPT, run_id="run-1", step_id="step-1", on_stream_cut="continue")
    events, error = await read(s)
    assert error is None
    assert text(events) == ANSWER  # one uninterrupted answer
    assert isinstance(events[-1], StreamEnd) and not any(isinstance(e, Restart) for e in events)
    out = s.execution
    assert out is not None and out.ok and out.response is not None
    assert out.response.text == ANSWER
    second = (rig.alpha.requests + rig.beta.requests)[1]
    sent = [m["role"] for m in second.body["messages"]]
    assert sent[-2:] == ["assistant", "user"]  # the continuation ends on a user turn
    assert [a.status for a in out.attempts] == ["error", "ok"]
    assert out.attempts[0].cost_usd > 0 and out.attempts[1].cost_usd > 0  # both charged
    assert out.cost == sum(a.cost_usd for a in out.attempts)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_restart_says_so_then_streams_the_whole_answer(
    storyteller_rig: Rig, fault: str
) -> None:
    rig = storyteller_rig
    ex = rig.executor(rig.settings())
    rig.alpha.script(FAULTS[fault])
    s = ex.stream(decision("small", "backup"), PROMPT, run_id="run-1", step_id="step-1",
                  on_stream_cut="restart")  # fmt: skip
    events, error = await read(s)
    assert error is None
    [i] = [n for n, e in enumerate(events) if isinstance(e, Restart)]
    assert ANSWER.startswith(text(events[:i])) and text(events[:i])
    assert text(events[i:]) == ANSWER
    assert s.execution is not None and s.execution.response is not None
    assert s.execution.response.text == ANSWER and s.execution.model == "backup"
    [asked] = rig.beta.requests
    assert [m["role"] for m in asked.body["messages"]] == ["user"]  # from the beginning


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fail_ends_with_the_error_never_a_clean_end(storyteller_rig: Rig, fault: str) -> None:
    rig = storyteller_rig
    ex = rig.executor(rig.settings())
    rig.alpha.script(FAULTS[fault])
    s = ex.stream(decision("small", "backup"), PROMPT, run_id="run-1", step_id="step-1",
                  on_stream_cut="fail")  # fmt: skip
    events, error = await read(s)
    assert error is not None
    received = text(events)
    assert received and ANSWER.startswith(received) and received != ANSWER
    assert not any(isinstance(e, StreamEnd) for e in events)
    assert rig.beta.requests == []
    assert s.execution is not None and not s.execution.ok
    [a] = s.execution.attempts
    assert a.status == "error" and a.cost_usd > 0 and a.usage_estimated


async def test_a_rejected_continuation_moves_on_and_is_never_hidden(storyteller_rig: Rig) -> None:
    rig = storyteller_rig
    ex = rig.executor(rig.settings())
    rig.alpha.script("cut:after=3")
    rig.beta.script("400")  # beta refuses the continuation
    d = decision("small", "backup", "big")
    s = ex.stream(d, PROMPT, run_id="run-1", step_id="step-1", on_stream_cut="continue")
    events, error = await read(s)
    assert error is None and text(events) == ANSWER
    out = s.execution
    assert out is not None and out.model == "big"
    assert [(a.model, a.error_class) for a in out.attempts] == [
        ("small", "connection"), ("backup", "bad_request"), ("big", None)
    ]  # fmt: skip


@pytest.mark.parametrize("rule", ["continue", "restart"])
@pytest.mark.parametrize("may", [True, False])
async def test_going_on_after_a_cut_asks_whether_the_request_may_pay(
    storyteller_rig: Rig, rule: str, may: bool
) -> None:
    """``on_cut_spend`` hears what the cut part cost, the next model and the request it
    will be sent; refused, the stream ends with a budget error and nothing more is
    called."""
    rig = storyteller_rig
    ex = rig.executor(rig.settings({"retries": {"jitter": 0}}))
    rig.alpha.script(FAULTS["cut"])
    asked: list[tuple[Any, str, Any]] = []

    async def spend(spent: Any, model: str, following: Any) -> bool:
        asked.append((spent, model, following))
        return may

    s = ex.stream(
        decision("small", "backup"), PROMPT, run_id="run-1", step_id="step-1",
        on_stream_cut=rule, on_cut_spend=spend,  # type: ignore[arg-type]
    )  # fmt: skip
    events, error = await read(s)
    out = s.execution
    assert out is not None and len(asked) == 1
    spent, model, following = asked[0]
    assert spent == out.attempts[0].cost_usd > 0 and model == "backup"
    last = content_text(following.messages[-1].content)
    assert (last == CONTINUE_PROMPT) == (rule == "continue")
    if may:
        assert error is None and len(out.attempts) == 2
    else:
        assert isinstance(error, BudgetExceeded) and "budget" in str(error)
        assert len(out.attempts) == 1 and len(rig.alpha.requests + rig.beta.requests) == 1
        assert not any(isinstance(e, StreamEnd) for e in events)  # never a clean end
