"""The executor's strategies and hooks, against in-process function providers.

Cascade (escalation on failed checks and answer quality), ensemble (vote, first
passing, judge), budget caps before spending, the exact cache, circuit breakers
with a fake clock, a policy's system prompt and temperature, and timeouts.

Pool (tests/unit/conftest.py): opus (frontier), sonnet (standard), haiku and
nano (efficient). Every scripted answer uses 1,000 input and 100 output tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.errors import (
    AllAttemptsFailed,
    AuthenticationError,
    BudgetExceeded,
    CircuitOpen,
    ProviderError,
    ProviderTimeout,
    ServerError,
    error_class_of,
)
from turnout.execution.breaker import BreakerBoard, BreakerConfig, MemoryBreakerStore
from turnout.execution.budget import Budget, estimate_cost
from turnout.execution.cache import ExactCache, MemoryBackend
from turnout.execution.executor import Acceptor, Execution, Executor, apply_decision
from turnout.execution.retry import RetryPolicy
from turnout.execution.timeouts import Timeouts
from turnout.policies import PoolHealth, build_policy
from turnout.policies.base import RequestContext
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.types import (
    ChatRequest,
    ChatResponse,
    Decision,
    EnsembleSpec,
    Message,
    QualitySpec,
    Usage,
)
from turnout.workflows.loader import workflow_from_dict
from turnout.workflows.step_exec import acceptor

USAGE = Usage(1000, 100)
Answer = str | ProviderError | Callable[[ChatRequest], Any]


class Models:
    """One in-process provider for the whole pool; each pool model answers from its
    own script (the last entry repeats). Records which pool models were called."""

    def __init__(self, settings: Settings, **scripts: Answer | list[Answer]) -> None:
        self.names = {m.id: m.name for m in settings.models.values()}
        self.scripts = {k: list(v) if isinstance(v, list) else [v] for k, v in scripts.items()}
        self.called: list[str] = []
        self.provider = FunctionProvider(self.respond)

    def respond(self, request: ChatRequest) -> Any:
        name = self.names[request.model]
        self.called.append(name)
        script = self.scripts[name]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, ProviderError):
            raise answer
        if isinstance(answer, str):
            return ChatResponse(answer, USAGE, request.model, "stop")
        return answer

    @property
    def requests(self) -> list[ChatRequest]:
        return self.provider.calls


def make(
    settings: Settings,
    models: Models,
    *,
    attempts: int = 2,
    **kwargs: Any,
) -> Executor:
    pool = ModelPool(settings, providers={"hosted": models.provider, "backup": models.provider})

    async def no_sleep(s: float) -> None:
        return None

    return Executor(pool, retry=RetryPolicy(max_attempts=attempts), sleep=no_sleep, **kwargs)


def cost(settings: Settings, *names: str) -> Decimal:
    return sum((settings.model(n).price.cost(USAGE) for n in names), Decimal(0))


async def run(
    ex: Executor,
    decision: Decision,
    request: ChatRequest | str = "Which team handles this ticket?",
    *,
    accept: Acceptor | None = None,
    budget: Budget | None = None,
    step_id: str = "s",
) -> Execution:
    if isinstance(request, str):
        request = ChatRequest((Message.user(request),))
    return await ex.execute(
        decision, request, run_id="r", step_id=step_id, accept=accept, budget=budget
    )


DEFAULT_QUALITY = QualitySpec()


def cascade(*models: str, quality: QualitySpec | None = DEFAULT_QUALITY) -> Decision:
    return Decision(models, "cascade", "cheap_first", strategy="cascade", quality=quality)


def step_acceptor(checks: list[Any], output: str = "text") -> Acceptor:
    """The acceptor a runner builds from a step's ``checks:``."""
    wf = workflow_from_dict(
        {"name": "w", "steps": [{"id": "s", "prompt": "p", "checks": checks, "output": output}]}
    )
    return acceptor(wf.steps[0])


def trail(out: Execution) -> list[tuple[str, str]]:
    return [(a.model, a.status) for a in out.attempts]


# -- cascade ------------------------------------------------------------------------------


async def test_cascade_escalates_when_the_cheap_answer_fails_the_steps_checks(
    settings: Settings,
) -> None:
    models = Models(
        settings,
        nano="This is about your invoice.",
        haiku="Refund approved: billing will process it.",
        opus="never asked",
    )
    ex = make(settings, models)
    accept = step_acceptor([{"contains_all": ["refund"]}])
    out = await run(ex, cascade("nano", "haiku", "opus"), accept=accept)
    assert out.ok and out.model == "haiku"
    assert out.response is not None and out.response.text.startswith("Refund approved")
    assert trail(out) == [("nano", "rejected"), ("haiku", "ok")]
    rejected = out.attempts[0]
    assert rejected.error_class == "rejected"
    assert rejected.error is not None and rejected.error.startswith("failed ")
    # the rejected rung was paid for: its cost is still counted, once
    assert rejected.cost_usd == cost(settings, "nano") > 0
    assert out.cost == cost(settings, "nano", "haiku")
    assert models.called == ["nano", "haiku"]
    assert out.note is not None
    assert out.note.startswith("cascade: nano rejected (failed ")
    assert out.note.endswith(") -> haiku accepted")
    assert out.error is None


async def test_cascade_accepts_the_first_rung_when_it_passes(settings: Settings) -> None:
    models = Models(settings, nano="A refund is on its way.", opus="never asked")
    ex = make(settings, models)
    out = await run(
        ex, cascade("nano", "opus"), accept=step_acceptor([{"contains_any": ["refund"]}])
    )
    assert out.model == "nano" and trail(out) == [("nano", "ok")]
    assert out.note == "cascade: nano accepted"
    assert out.cost == cost(settings, "nano")


async def test_cascade_json_output_that_does_not_parse_escalates(settings: Settings) -> None:
    models = Models(settings, nano="category: billing", opus='{"category": "billing"}')
    ex = make(settings, models)
    out = await run(ex, cascade("nano", "opus"), accept=step_acceptor([], output="json"))
    assert out.model == "opus"
    assert out.attempts[0].error == "failed output is JSON"


@pytest.mark.parametrize(
    ("quality", "prompt", "cheap", "why"),
    [
        (
            QualitySpec(min_chars=30),
            "Summarise the ticket.",
            "Billing.",
            "answer shorter than 30 characters (8)",
        ),
        (
            QualitySpec(),
            "Summarise the ticket.",
            "I'm not sure what this ticket is about, sorry.",
            'answer refuses or does not know ("I\'m not sure")',
        ),
        (
            QualitySpec(),
            "Summarise the ticket.",
            "As an AI I cannot read attachments.",
            "answer refuses or does not know ('As an AI')",
        ),
        (
            QualitySpec(refusal_phrases=("no idea",)),
            "Summarise the ticket.",
            "No idea, honestly.",
            "answer refuses or does not know ('No idea')",
        ),
        (
            QualitySpec(),
            "Write a Python function that adds two numbers.",
            "Just use the plus operator on both numbers.",
            "code was asked for but the answer has no code block",
        ),
        (
            QualitySpec(),
            "Refactor this:\n```py\nx=1\n```",
            "Rename x to something meaningful.",
            "code was asked for but the answer has no code block",
        ),
        (
            QualitySpec(),
            "Can you write some code that parses a CSV file?",
            "Use the csv module and a DictReader.",
            "code was asked for but the answer has no code block",
        ),
        (
            QualitySpec(),
            "Give me a SQL query for last week's refunds.",
            "Select from refunds where the date is in the last week.",
            "code was asked for but the answer has no code block",
        ),
        (
            QualitySpec(),
            "How would I do this in C++?",
            "With a std::vector and a loop.",
            "code was asked for but the answer has no code block",
        ),
    ],
)
async def test_cascade_quality_checks_escalate(
    settings: Settings, quality: QualitySpec, prompt: str, cheap: str, why: str
) -> None:
    good = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nThat covers the ask."
    models = Models(settings, haiku=cheap, sonnet=good)
    ex = make(settings, models)
    out = await run(ex, cascade("haiku", "sonnet", quality=quality), prompt)
    assert out.model == "sonnet"
    assert trail(out) == [("haiku", "rejected"), ("sonnet", "ok")]
    assert out.attempts[0].error == why
    assert out.note == f"cascade: haiku rejected ({why}) -> sonnet accepted"


@pytest.mark.parametrize(
    ("quality", "prompt", "cheap"),
    [
        (QualitySpec(), "Summarise the ticket.", "Billing."),  # no min_chars by default
        (QualitySpec(min_chars=8), "Summarise the ticket.", "Billing."),
        (QualitySpec(refusal_phrases=()), "Summarise.", "I don't know, maybe billing."),
        (QualitySpec(), "Write a Python function.", "```python\ndef f(): pass\n```"),
        (QualitySpec(), "Write a Python function.", "Sure:\n\n    def f():\n        pass"),
        (QualitySpec(code_block_when_asked=False), "Write a Python function.", "Use sum()."),
        # "write" alone is not a request for code
        (QualitySpec(), "Write a friendly reply to the customer.", "Sorry for the trouble!"),
        (QualitySpec(), "Write: refund the duplicate charge", "Refund it today."),
        (QualitySpec(), "Classify this ticket: I was charged twice.", "billing"),
        (QualitySpec(), "Summarise the class discussion.", "They agreed on Friday."),
        # a refusal phrase late in a long answer is not a refusal
        (QualitySpec(), "Summarise the ticket.", "x" * 700 + " I don't know"),
    ],
)
async def test_cascade_quality_checks_accept_good_enough_answers(
    settings: Settings, quality: QualitySpec, prompt: str, cheap: str
) -> None:
    models = Models(settings, haiku=cheap, sonnet="never asked")
    ex = make(settings, models)
    out = await run(ex, cascade("haiku", "sonnet", quality=quality), prompt)
    assert out.model == "haiku" and models.called == ["haiku"]


async def test_cascade_escalates_past_a_failing_provider(settings: Settings) -> None:
    models = Models(
        settings, nano=ServerError("503 overloaded", status=503), haiku="A refund, via billing."
    )
    ex = make(settings, models, attempts=2)
    out = await run(ex, cascade("nano", "haiku"))
    assert out.ok and out.model == "haiku"
    assert trail(out) == [("nano", "error"), ("haiku", "ok")]  # one attempt a rung
    assert out.note == "cascade: nano failed (server_error) -> haiku accepted"
    assert out.cost == cost(settings, "haiku")


async def test_cascade_escalates_past_a_non_retryable_failure_without_retrying(
    settings: Settings,
) -> None:
    models = Models(settings, nano=AuthenticationError("401 bad key"), haiku="Billing it is.")
    ex = make(settings, models, attempts=3)
    out = await run(ex, cascade("nano", "haiku"))
    assert trail(out) == [("nano", "error"), ("haiku", "ok")]
    assert out.note == "cascade: nano failed (auth) -> haiku accepted"


async def test_cascade_keeps_the_last_answer_when_every_rung_is_rejected(
    settings: Settings,
) -> None:
    models = Models(settings, nano="no", haiku="nope", opus="still no")
    ex = make(settings, models)
    accept = step_acceptor([{"contains_all": ["refund"]}])
    out = await run(ex, cascade("nano", "haiku", "opus"), accept=accept)
    assert out.ok and out.model == "opus"
    assert out.response is not None and out.response.text == "still no"
    # the kept answer is not "rejected": it is the answer the step got
    assert trail(out) == [("nano", "rejected"), ("haiku", "rejected"), ("opus", "ok")]
    assert out.cost == cost(settings, "nano", "haiku", "opus")
    assert out.note is not None
    assert out.note.startswith("cascade: nano rejected (failed ")
    assert " -> opus rejected (failed " in out.note
    assert out.note.endswith("; kept the last answer")


async def test_cascade_keeps_a_rejected_answer_when_the_next_rung_fails(
    settings: Settings,
) -> None:
    models = Models(settings, nano="I don't know.", opus=ServerError("503", status=503))
    ex = make(settings, models, attempts=1)
    out = await run(ex, cascade("nano", "opus"))
    assert out.ok and out.model == "nano"
    assert trail(out) == [("nano", "ok"), ("opus", "error")]
    assert out.note == (
        'cascade: nano rejected (answer refuses or does not know ("I don\'t know")) '
        "-> opus failed (server_error); kept the last answer"
    )


async def test_cascade_with_every_rung_failing_reports_each_error(settings: Settings) -> None:
    models = Models(
        settings, nano=ServerError("502", status=502), opus=AuthenticationError("401 bad key")
    )
    ex = make(settings, models, attempts=1)
    out = await run(ex, cascade("nano", "opus"))
    assert not out.ok and isinstance(out.error, AllAttemptsFailed)
    assert [e.error_class for e in out.error.errors] == ["server_error", "auth"]
    assert out.note == "cascade: nano failed (server_error) -> opus failed (auth)"


async def test_cascade_without_quality_spec_uses_only_the_steps_checks(
    settings: Settings,
) -> None:
    models = Models(settings, nano="I don't know.", opus="never asked")
    ex = make(settings, models)
    out = await run(ex, cascade("nano", "opus", quality=None))
    assert out.model == "nano"


# -- ensemble -----------------------------------------------------------------------------


def ensemble(*models: str, mode: Any = "auto", judge: str | None = None) -> Decision:
    return Decision(
        models, "ensemble", "vote", strategy="ensemble", ensemble=EnsembleSpec(mode, judge)
    )


async def test_ensemble_vote_normalizes_answers(settings: Settings) -> None:
    models = Models(settings, nano="Billing.", haiku="billing", sonnet="Bug")
    ex = make(settings, models)
    out = await run(ex, ensemble("nano", "haiku", "sonnet", mode="vote"))
    assert out.ok and out.model in ("nano", "haiku")
    assert out.note is not None and out.note.startswith("ensemble vote: 2/3 for 'billing' -> ")
    assert sorted(models.called) == ["haiku", "nano", "sonnet"]
    assert out.cost == cost(settings, "nano", "haiku", "sonnet")
    assert [a.attempt for a in out.attempts] == [1, 2, 3]
    assert {a.model for a in out.attempts} == {"nano", "haiku", "sonnet"}


async def test_an_ensembles_errors_keep_the_numbers_of_their_attempts(
    settings: Settings,
) -> None:
    """Each member's attempts are renumbered into the decision's; their errors with them."""
    models = Models(
        settings,
        nano=AuthenticationError("no key", status=401),
        haiku=[ServerError("boom", status=500), ServerError("boom", status=503)],
    )
    out = await run(make(settings, models), ensemble("nano", "haiku"))
    assert isinstance(out.error, AllAttemptsFailed)
    numbers = {a.attempt: (a.model, a.error_class) for a in out.attempts}
    assert sorted(numbers) == [1, 2, 3]
    for e in out.error.errors:
        assert e.attempt is not None and numbers[e.attempt][1] == e.error_class
    assert sorted((numbers[e.attempt][0], e.status) for e in out.error.errors if e.attempt) == [
        ("haiku", 500), ("haiku", 503), ("nano", 401),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "winner", "text"),
    [
        ({"nano": "billing", "sonnet": "bug"}, "sonnet", "bug"),
        ({"sonnet": "bug", "nano": "billing"}, "sonnet", "bug"),  # order does not matter
        ({"nano": "billing", "haiku": "Bug!", "opus": "  BUG \n"}, "opus", "  BUG \n"),
        ({"nano": "billing", "haiku": "bug", "opus": "refund"}, "opus", "refund"),
    ],
)
async def test_ensemble_vote_ties_go_to_the_higher_tier(
    settings: Settings, answers: dict[str, str], winner: str, text: str
) -> None:
    models = Models(settings, **answers)
    ex = make(settings, models)
    out = await run(ex, ensemble(*answers, mode="vote"))
    assert out.model == winner
    assert out.response is not None and out.response.text == text


async def test_ensemble_auto_votes_on_short_answers(settings: Settings) -> None:
    models = Models(settings, nano="bug", haiku="Billing", sonnet="billing.")
    out = await run(make(settings, models), ensemble("nano", "haiku", "sonnet"))
    assert out.note is not None and out.note.startswith("ensemble vote: 2/3 for 'billing'")


async def test_ensemble_auto_takes_the_first_passing_long_answer(settings: Settings) -> None:
    long = "The customer was charged twice for the same order last week"
    models = Models(
        settings, nano=long + ", it seems.", haiku=long + "; refund it.", sonnet=long + "."
    )
    accept = step_acceptor([{"contains_all": ["refund"]}])
    out = await run(make(settings, models), ensemble("nano", "haiku", "sonnet"), accept=accept)
    assert out.model == "haiku"
    assert out.note == "ensemble: first passing answer from haiku"
    assert out.cost == cost(settings, "nano", "haiku", "sonnet")


async def test_ensemble_first_passing_keeps_the_highest_tier_when_none_passes(
    settings: Settings,
) -> None:
    models = Models(settings, nano="a", sonnet="b", haiku="c")
    accept = step_acceptor([{"contains_all": ["refund"]}])
    out = await run(
        make(settings, models), ensemble("nano", "sonnet", "haiku", mode="first_passing"),
        accept=accept,
    )  # fmt: skip
    assert out.model == "sonnet"
    assert out.note == "ensemble: no answer passed; kept sonnet (highest tier)"


async def test_ensemble_member_failure_is_traced_and_the_rest_vote(settings: Settings) -> None:
    models = Models(
        settings, nano="billing", haiku=AuthenticationError("401 bad key"), sonnet="Billing"
    )
    out = await run(make(settings, models), ensemble("nano", "haiku", "sonnet", mode="vote"))
    assert out.ok and out.note is not None and "2/2 for 'billing'" in out.note
    assert sorted(trail(out)) == [("haiku", "error"), ("nano", "ok"), ("sonnet", "ok")]
    assert out.cost == cost(settings, "nano", "sonnet")


async def test_ensemble_with_every_member_failing(settings: Settings) -> None:
    models = Models(settings, nano=AuthenticationError("401"), haiku=AuthenticationError("401"))
    out = await run(make(settings, models), ensemble("nano", "haiku"))
    assert not out.ok and isinstance(out.error, AllAttemptsFailed)
    assert len(out.error.errors) == 2
    assert out.note == "ensemble: every model failed"


async def test_ensemble_members_run_concurrently(settings: Settings) -> None:
    async def slow(req: ChatRequest) -> str:
        await asyncio.sleep(0.2)
        return "billing"

    models = Models(settings, nano=slow, haiku=slow, sonnet=slow)
    t0 = time.perf_counter()
    out = await run(make(settings, models), ensemble("nano", "haiku", "sonnet"))
    assert out.ok and time.perf_counter() - t0 < 0.5  # one after another: 0.6 s


@pytest.mark.parametrize(
    ("verdict", "winner"),
    [
        ("2", "haiku"),
        ("3", "sonnet"),
        ("Answer 2.", "haiku"),
        ("Answer 3: it names the refund.", "sonnet"),
        ("**1**", "nano"),
    ],
)
async def test_ensemble_judge_picks_by_number(
    settings: Settings, verdict: str, winner: str
) -> None:
    text = {
        "nano": "It is billing, I think, because of the charge",
        "haiku": "Billing: the customer was charged twice",
        "sonnet": "Billing. Refund the duplicate charge and apologise",
    }
    models = Models(settings, **text, opus=verdict)
    ex = make(settings, models)
    out = await run(ex, ensemble("nano", "haiku", "sonnet", mode="judge", judge="opus"))
    assert out.model == winner
    assert out.response is not None and out.response.text == text[winner]
    assert out.note == f"ensemble judge opus chose {winner}"
    # the judge saw the question and every answer, numbered in order
    judge_prompt = models.requests[-1].messages[-1].content or ""
    assert judge_prompt.startswith("Question:\nWhich team handles this ticket?")
    for i, name in enumerate(("nano", "haiku", "sonnet"), start=1):
        assert f"Answer {i}:\n{text[name]}" in judge_prompt
    assert models.called[-1] == "opus"
    # the total is every member plus the judge
    assert [a.model for a in out.attempts][-1] == "opus"
    assert len(out.attempts) == 4
    assert out.cost == cost(settings, "nano", "haiku", "sonnet", "opus")


@pytest.mark.parametrize(
    "judge",
    [AuthenticationError("401 bad key"), "I cannot decide.", "7", "0"],
)
async def test_ensemble_judge_failure_falls_back_to_first_passing(
    settings: Settings, judge: Answer
) -> None:
    models = Models(
        settings,
        nano="It is billing, I think, because of the charge",
        haiku="Billing, refund the duplicate charge right away",
        opus=judge,
    )
    accept = step_acceptor([{"contains_all": ["refund"]}])
    out = await run(
        make(settings, models, attempts=1),
        ensemble("nano", "haiku", mode="judge", judge="opus"),
        accept=accept,
    )
    assert out.ok and out.model == "haiku"
    assert out.note == "ensemble: first passing answer from haiku"
    judge_attempt = out.attempts[-1]
    assert judge_attempt.model == "opus"
    assert judge_attempt.status == ("error" if isinstance(judge, ProviderError) else "ok")
    expected = ("nano", "haiku") if isinstance(judge, ProviderError) else ("nano", "haiku", "opus")
    assert out.cost == cost(settings, *expected)


# -- budget -------------------------------------------------------------------------------

REQ = ChatRequest((Message.user("Which team handles this ticket?"),), max_tokens=100)


def estimate(settings: Settings, model: str) -> Decimal:
    return estimate_cost(settings.model(model).price, replace_model(REQ, settings, model))


def replace_model(request: ChatRequest, settings: Settings, model: str) -> ChatRequest:
    from dataclasses import replace

    return replace(request, model=settings.model(model).id)


@pytest.mark.parametrize("scope", ["run", "step"])
async def test_budget_refuses_before_calling(settings: Settings, scope: str) -> None:
    models = Models(settings, opus="never called")
    ex = make(settings, models)
    cap = estimate(settings, "opus") / 2
    budget = Budget(run_usd=cap) if scope == "run" else Budget(step_usd=cap)
    out = await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget)
    assert models.called == [] and models.requests == []
    assert not out.ok and isinstance(out.error, BudgetExceeded)
    assert out.error.scope == scope
    assert error_class_of(out.error) == "budget"
    assert f"would pass the {scope} cap of ${cap}" in str(out.error)
    assert str(out.error).startswith("step 's': estimated $")
    assert out.attempts == () and budget.spent == 0


async def test_budget_is_charged_after_each_call(settings: Settings) -> None:
    models = Models(settings, haiku="billing", opus="billing")
    ex = make(settings, models)
    budget = Budget(run_usd=Decimal(1), step_usd=Decimal(1))
    first = await run(ex, Decision(("haiku",), "r", "p"), REQ, budget=budget, step_id="a")
    assert budget.spent == first.cost == cost(settings, "haiku")
    second = await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget, step_id="b")
    assert budget.spent == cost(settings, "haiku", "opus")
    assert budget.by_step == {"a": first.cost, "b": second.cost}


async def test_run_cap_stops_the_call_that_would_pass_it(settings: Settings) -> None:
    models = Models(settings, opus="billing")
    ex = make(settings, models)
    # room for the first call (estimate and actual), not for a second one
    cap = cost(settings, "opus") + estimate(settings, "opus") - Decimal("0.000001")
    budget = Budget(run_usd=cap)
    ok = await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget, step_id="a")
    refused = await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget, step_id="b")
    assert ok.ok and isinstance(refused.error, BudgetExceeded)
    assert refused.error.scope == "run"
    assert models.called == ["opus"]
    assert budget.spent == cost(settings, "opus") <= cap


async def test_step_cap_is_per_step(settings: Settings) -> None:
    models = Models(settings, opus="billing")
    ex = make(settings, models)
    cap = cost(settings, "opus") + estimate(settings, "opus") - Decimal("0.000001")
    budget = Budget(step_usd=cap)
    d = Decision(("opus",), "r", "p")
    assert (await run(ex, d, REQ, budget=budget, step_id="a")).ok
    again = await run(ex, d, REQ, budget=budget, step_id="a")
    assert isinstance(again.error, BudgetExceeded) and again.error.scope == "step"
    assert (await run(ex, d, REQ, budget=budget, step_id="b")).ok
    assert models.called == ["opus", "opus"]


async def test_budget_stops_a_fallback_chain_instead_of_falling_back(settings: Settings) -> None:
    models = Models(settings, nano=ServerError("503"), opus="never called")
    ex = make(settings, models)
    cap = estimate(settings, "nano") * 2  # nano fits; opus's estimate does not
    budget = Budget(run_usd=cap)
    d = Decision(("nano", "opus"), "r", "p", strategy="fallback")
    out = await run(ex, d, REQ, budget=budget)
    assert isinstance(out.error, BudgetExceeded)
    assert models.called == ["nano"]
    assert trail(out) == [("nano", "error")]


async def test_budget_stops_a_cascade_and_says_so(settings: Settings) -> None:
    models = Models(settings, nano="I don't know.", opus="never called")
    ex = make(settings, models)
    budget = Budget(run_usd=estimate(settings, "nano") * 2)
    out = await run(ex, cascade("nano", "opus"), REQ, budget=budget)
    assert models.called == ["nano"]
    # the cheap answer is all there is; the note says why nothing better was asked
    assert out.model == "nano"
    assert out.note is not None
    assert "opus not called (budget)" in out.note
    assert out.note.endswith("; kept the last answer")


async def test_budget_holds_concurrent_calls_to_the_cap(settings: Settings) -> None:
    """Ensemble members start together: each must count the others' estimates."""

    async def slow(req: ChatRequest) -> str:
        await asyncio.sleep(0.02)
        return "billing"

    models = Models(settings, nano=slow, haiku=slow, sonnet=slow)
    ex = make(settings, models)
    room = estimate(settings, "nano") + estimate(settings, "haiku")
    budget = Budget(run_usd=room + Decimal("0.0000001"))
    out = await run(ex, ensemble("nano", "haiku", "sonnet", mode="vote"), REQ, budget=budget)
    assert out.ok
    assert sorted(models.called) == ["haiku", "nano"]
    assert budget.spent == out.cost <= room
    assert budget.held == 0 and isinstance(out.attempts, tuple)


async def test_a_failed_call_releases_its_hold(settings: Settings) -> None:
    models = Models(settings, opus=[ServerError("503"), "billing"])
    ex = make(settings, models, attempts=2)
    budget = Budget(run_usd=estimate(settings, "opus") * Decimal("1.5"))
    out = await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget)
    assert out.ok and trail(out) == [("opus", "error"), ("opus", "ok")]
    assert budget.spent == cost(settings, "opus") and budget.held == 0


async def test_a_call_cut_by_the_total_timeout_releases_its_hold(settings: Settings) -> None:
    models = Models(settings, opus=sleeper(5), nano="billing")
    ex = make(settings, models, timeouts=Timeouts(total_s=0.05))
    budget = Budget(run_usd=estimate(settings, "opus") * Decimal("1.5"))
    out = await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget)
    assert isinstance(out.error, ProviderTimeout)
    assert budget.held == 0 and budget.held_by_step == {"s": 0}
    # nothing is left held: the next call has the whole cap
    models.scripts["opus"] = ["billing"]
    assert (await run(ex, Decision(("opus",), "r", "p"), REQ, budget=budget)).ok


# -- cache --------------------------------------------------------------------------------


def cached_executor(settings: Settings, models: Models, **kwargs: Any) -> Executor:
    return make(settings, models, caches=(ExactCache(MemoryBackend(), 3600.0),), **kwargs)


async def test_exact_cache_hit_is_an_attempt_with_cost_zero(settings: Settings) -> None:
    models = Models(settings, opus="billing")
    ex = cached_executor(settings, models)
    request = ChatRequest((Message.user("Classify: charged twice"),), temperature=0)
    d = Decision(("opus",), "r", "p")
    first = await run(ex, d, request)
    second = await run(ex, d, request)
    assert models.called == ["opus"]
    assert first.attempts[0].cache is None and first.cost == cost(settings, "opus") > 0
    hit = second.attempts[0]
    assert (hit.status, hit.cache, hit.cost_usd) == ("ok", "exact", Decimal(0))
    assert hit.saved_usd == first.cost
    assert (hit.input_tokens, hit.output_tokens) == (1000, 100)
    assert second.cost == 0
    assert second.response is not None and second.response.text == "billing"


@pytest.mark.parametrize("temperature", [0.7, 1.0, None])
async def test_sampled_requests_are_not_cached(
    settings: Settings, temperature: float | None
) -> None:
    models = Models(settings, opus="billing")
    ex = cached_executor(settings, models)
    request = ChatRequest((Message.user("Classify: charged twice"),), temperature=temperature)
    for _ in range(3):
        out = await run(ex, Decision(("opus",), "r", "p"), request)
        assert out.attempts[0].cache is None
    assert models.called == ["opus"] * 3


async def test_cache_key_includes_the_model_and_the_prompt(settings: Settings) -> None:
    models = Models(settings, opus="billing", sonnet="billing")
    ex = cached_executor(settings, models)
    ask = ChatRequest((Message.user("Classify: charged twice"),), temperature=0)
    other = ChatRequest((Message.user("Classify: app crashes"),), temperature=0)
    await run(ex, Decision(("opus",), "r", "p"), ask)
    await run(ex, Decision(("sonnet",), "r", "p"), ask)
    await run(ex, Decision(("opus",), "r", "p"), other)
    await run(ex, Decision(("opus",), "r", "p"), ask)
    assert models.called == ["opus", "sonnet", "opus"]


async def test_a_policy_temperature_of_zero_makes_a_request_cacheable(settings: Settings) -> None:
    models = Models(settings, opus="billing")
    ex = cached_executor(settings, models)
    d = Decision(("opus",), "r", "p", temperature=0.0)
    await run(ex, d)
    out = await run(ex, d)
    assert out.attempts[0].cache == "exact" and models.called == ["opus"]


async def test_cache_hit_needs_no_budget(settings: Settings) -> None:
    models = Models(settings, opus="billing")
    ex = cached_executor(settings, models)
    request = ChatRequest((Message.user("Classify"),), temperature=0, max_tokens=100)
    d = Decision(("opus",), "r", "p")
    await run(ex, d, request)
    out = await run(ex, d, request, budget=Budget(run_usd=Decimal("0.0000001")))
    assert out.ok and out.attempts[0].cache == "exact"


async def test_failed_calls_are_not_cached(settings: Settings) -> None:
    models = Models(settings, opus=[ServerError("503"), "billing"])
    ex = cached_executor(settings, models, attempts=1)
    request = ChatRequest((Message.user("Classify"),), temperature=0)
    d = Decision(("opus",), "r", "p")
    assert not (await run(ex, d, request)).ok
    assert (await run(ex, d, request)).attempts[0].cache is None
    assert (await run(ex, d, request)).attempts[0].cache == "exact"


# -- circuit breakers ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def board(clock: FakeClock) -> BreakerBoard:
    config = BreakerConfig(window_s=30, min_requests=2, failure_rate=0.5, cooldown_s=30)
    return BreakerBoard(config, MemoryBreakerStore(clock))


async def test_breaker_opens_and_the_model_is_skipped(
    settings: Settings, pool_dict: dict[str, Any], board: BreakerBoard, clock: FakeClock
) -> None:
    models = Models(settings, opus=ServerError("503 overloaded", status=503), nano="billing")
    ex = make(settings, models, attempts=3, breakers=board)
    single = Decision(("opus",), "r", "p")

    out = await run(ex, single)
    # two failures open the breaker; the third try is refused without a call
    assert trail(out) == [("opus", "error"), ("opus", "error")]
    assert isinstance(out.error, AllAttemptsFailed)
    assert [type(e) for e in out.error.errors] == [ServerError, ServerError, CircuitOpen]
    assert models.called == ["opus", "opus"]
    assert await board.state("opus") == "open"
    assert await ex.health() == PoolHealth(frozenset({"opus"}))

    # while open: skipped, the error says why, and no attempt is recorded
    out = await run(ex, single)
    assert out.attempts == () and isinstance(out.error, CircuitOpen)
    assert out.error.model == "opus" and error_class_of(out.error) == "circuit_open"
    assert models.called == ["opus", "opus"]

    # a fallback chain skips it and answers from the next model
    chain = Decision(("opus", "nano"), "r", "p", strategy="fallback")
    out = await run(ex, chain)
    assert out.model == "nano" and trail(out) == [("nano", "ok")]
    assert out.note == "fallback: opus -> nano"

    # a policy given the pool's health puts it last
    pool_dict["policies"]["r"] = {"kind": "fallback", "models": ["opus", "nano"]}
    policy = build_policy("r", settings_from_dict(pool_dict))
    d = policy.decide(RequestContext(), await ex.health())
    assert d.models == ("nano", "opus") and "opus breaker open" in d.reason

    # after the cooldown one probe goes through; its success closes the breaker
    clock.t += 30
    assert await ex.health() == PoolHealth()
    models.scripts["opus"] = ["billing"]
    out = await run(ex, single)
    assert out.ok and trail(out) == [("opus", "ok")]
    assert await board.state("opus") == "closed"


async def test_a_failed_probe_reopens_the_breaker(
    settings: Settings, board: BreakerBoard, clock: FakeClock
) -> None:
    models = Models(settings, opus=ServerError("503", status=503))
    ex = make(settings, models, attempts=1, breakers=board)
    single = Decision(("opus",), "r", "p")
    await run(ex, single)
    await run(ex, single)
    assert await board.state("opus") == "open"
    clock.t += 30
    out = await run(ex, single)  # the probe
    assert trail(out) == [("opus", "error")]
    assert await board.state("opus") == "open"
    assert await ex.health() == PoolHealth(frozenset({"opus"}))
    assert len(models.called) == 3


async def test_non_retryable_failures_do_not_trip_the_breaker(
    settings: Settings, board: BreakerBoard
) -> None:
    models = Models(settings, opus=AuthenticationError("401 bad key"))
    ex = make(settings, models, breakers=board)
    for _ in range(5):
        await run(ex, Decision(("opus",), "r", "p"))
    assert await board.state("opus") == "closed" and len(models.called) == 5


# -- task_type decisions ------------------------------------------------------------------


def test_apply_decision_prepends_the_system_prompt_and_sets_temperature() -> None:
    request = ChatRequest((Message.system("Be brief."), Message.user("Extract the order id")))
    d = Decision(("haiku",), "r", "p", system_prompt="Answer with JSON only.", temperature=0.0)
    out = apply_decision(d, request)
    assert [m.role for m in out.messages] == ["system", "system", "user"]
    assert out.messages[0].content == "Answer with JSON only."
    assert out.messages[1:] == request.messages
    assert out.temperature == 0.0
    # a temperature the step set itself wins over the policy's
    assert apply_decision(d, ChatRequest(request.messages, temperature=0.5)).temperature == 0.5
    # nothing to apply: the same request
    assert apply_decision(Decision(("haiku",), "r", "p"), request) is request


async def test_task_type_decision_reaches_the_provider(
    settings: Settings, pool_dict: dict[str, Any]
) -> None:
    pool_dict["policies"]["tt"] = {
        "kind": "task_type",
        "types": {
            "extraction": {"model": "haiku", "system": "Answer with JSON only.", "temperature": 0},
            "creative": {"model": "sonnet", "temperature": 0.9},
        },
    }
    s = settings_from_dict(pool_dict)
    policy = build_policy("tt", s)
    models = Models(s, haiku='{"order": "A-17"}', sonnet="A poem.")
    ex = make(s, models)

    ask = "Extract the invoice number and total from this text: INV-7, $90"
    d = policy.decide(RequestContext(messages=(Message.user(ask),)))
    assert (d.model, d.system_prompt, d.temperature) == ("haiku", "Answer with JSON only.", 0)
    await run(ex, d, ask)
    sent = models.requests[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "Answer with JSON only."),
        ("user", ask),
    ]
    assert sent.temperature == 0 and sent.model == "claude-haiku-4-5"

    poem = "Write a short poem about the ocean at dawn."
    d = policy.decide(RequestContext(messages=(Message.user(poem),)))
    await run(ex, d, poem)
    sent = models.requests[-1]
    assert d.model == "sonnet" and sent.temperature == 0.9
    assert [m.role for m in sent.messages] == ["user"]


# -- timeouts -----------------------------------------------------------------------------


def sleeper(seconds: float, text: str = "late") -> Callable[[ChatRequest], Any]:
    async def answer(req: ChatRequest) -> str:
        await asyncio.sleep(seconds)
        return text

    return answer


async def test_attempt_timeout_is_a_provider_timeout(settings: Settings) -> None:
    models = Models(settings, opus=sleeper(5))
    ex = make(settings, models, attempts=1, timeouts=Timeouts(attempt_s=0.05))
    t0 = time.perf_counter()
    out = await run(ex, Decision(("opus",), "r", "p"))
    assert time.perf_counter() - t0 < 1
    assert isinstance(out.error, ProviderTimeout) and out.error.model == "opus"
    assert "attempt timeout of 0.05s" in str(out.error)
    (a,) = out.attempts
    assert (a.status, a.error_class) == ("error", "timeout")
    # the provider had the prompt when the wait ran out: it is charged, as an estimate
    assert a.cost_usd > 0 and a.usage_estimated and a.output_tokens == 0
    assert 0.04 < a.latency_s < 1


async def test_attempt_timeout_is_retried_and_falls_back(settings: Settings) -> None:
    models = Models(settings, opus=[sleeper(5), "fast"], nano=sleeper(5))
    ex = make(settings, models, attempts=2, timeouts=Timeouts(attempt_s=0.05))
    out = await run(ex, Decision(("opus",), "r", "p"))
    assert out.ok and trail(out) == [("opus", "error"), ("opus", "ok")]
    models.scripts["opus"] = [sleeper(5)]
    chain = Decision(("opus", "nano", "haiku"), "r", "p", strategy="fallback")
    models.scripts["haiku"] = ["from haiku"]
    out = await run(ex, chain)
    assert out.model == "haiku"
    assert [a.error_class for a in out.attempts] == ["timeout", "timeout", None]


async def test_total_timeout_bounds_the_whole_decision(settings: Settings) -> None:
    models = Models(settings, opus=ServerError("503"), nano=sleeper(5))
    ex = make(settings, models, attempts=1, timeouts=Timeouts(total_s=0.1))
    chain = Decision(("opus", "nano"), "r", "p", strategy="fallback")
    t0 = time.perf_counter()
    out = await run(ex, chain)
    assert time.perf_counter() - t0 < 1
    assert not out.ok and isinstance(out.error, AllAttemptsFailed)
    assert [e.error_class for e in out.error.errors] == ["server_error", "timeout"]
    assert "total timeout of 0.1s" in str(out.error)
    # the call the total timeout cut short is still in the trace
    assert trail(out) == [("opus", "error"), ("nano", "error")]
    assert out.attempts[-1].error_class == "timeout"


async def test_total_timeout_alone(settings: Settings) -> None:
    models = Models(settings, opus=sleeper(5))
    ex = make(settings, models, timeouts=Timeouts(attempt_s=1, total_s=0.05))
    out = await run(ex, Decision(("opus",), "r", "p"))
    assert isinstance(out.error, ProviderTimeout)
    assert str(out.error) == "no answer within the total timeout of 0.05s"
    assert len(out.attempts) == 1


async def test_a_providers_own_timeout_error_is_a_provider_timeout(settings: Settings) -> None:
    def raw(req: ChatRequest) -> str:
        raise TimeoutError("read timed out")

    models = Models(settings, opus=raw, nano="billing")
    ex = make(settings, models, attempts=1)  # no attempt timeout configured
    out = await run(ex, Decision(("opus", "nano"), "r", "p", strategy="fallback"))
    assert out.ok and out.model == "nano"
    assert out.attempts[0].error_class == "timeout"
    assert out.attempts[0].error == "opus: timed out (read timed out)"
