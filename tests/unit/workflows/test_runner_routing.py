"""Routing through ``Runner.run``: cascades on a step's checks, sticky A/B variants on
the run, workflow budgets, and human overrides in the trace.

Pool (tests/unit/conftest.py): opus (frontier), sonnet (standard), haiku and
nano (efficient), answered in process by one function provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from turnout.config import Settings, settings_from_dict
from turnout.errors import ConfigError
from turnout.execution.budget import estimate_cost
from turnout.execution.retry import RetryPolicy
from turnout.policies import PoolHealth, build_policy
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord, TraceRecord
from turnout.types import ChatRequest, ChatResponse, Message, Usage
from turnout.workflows.loader import workflow_from_dict
from turnout.workflows.overrides import apply_overrides, parse_overrides
from turnout.workflows.results import RunResult
from turnout.workflows.runner import Runner
from turnout.workflows.spec import Workflow

USAGE = Usage(1000, 100)

POLICIES: dict[str, Any] = {
    "cheap_first": {"kind": "cascade", "models": ["nano", "opus"]},
    "split": {"kind": "ab", "key": "user", "variants": {"haiku": 0.5, "opus": 0.5}},
    "split_policies": {"kind": "ab", "variants": {"cheap_first": 0.5, "all_frontier": 0.5}},
}


@pytest.fixture
def routed(pool_dict: dict[str, Any]) -> Settings:
    pool_dict["policies"].update(POLICIES)
    return settings_from_dict(pool_dict)


class Traced:
    """A runner on one in-process provider; ``answers`` maps a pool model to its reply."""

    def __init__(
        self, settings: Settings, answers: dict[str, str | Callable[[ChatRequest], Any]]
    ) -> None:
        self.settings = settings
        self.names = {m.id: m.name for m in settings.models.values()}
        self.answers = answers
        self.called: list[str] = []
        self.records: list[TraceRecord] = []
        provider = FunctionProvider(self.respond)
        pool = ModelPool(settings, providers={"hosted": provider, "backup": provider})
        self.runner = Runner(
            settings, pool=pool, sink=self.records.append, retry=RetryPolicy(base_delay_s=0)
        )

    def respond(self, request: ChatRequest) -> Any:
        name = self.names[request.model]
        self.called.append(name)
        answer = self.answers.get(name, "fine")
        if callable(answer):  # its own usage (or the provider's estimate for plain text)
            return answer(request)
        return ChatResponse(answer, USAGE, request.model, "stop")

    async def run(self, wf: Workflow, policy: str, **kwargs: Any) -> RunResult:
        return await self.runner.run(wf, {}, policy=build_policy(policy, self.settings), **kwargs)

    def of(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)]


def cost(settings: Settings, *names: str) -> Decimal:
    return sum((settings.model(n).price.cost(USAGE) for n in names), Decimal(0))


# -- cascade ------------------------------------------------------------------------------

TRIAGE = {
    "name": "triage",
    "steps": [
        {
            "id": "answer",
            "prompt": "Customer: I was charged twice. What do we do?",
            "checks": [{"contains_all": ["refund"]}],
        },
        {"id": "tone", "inputs": ["answer"], "prompt": "Make it kinder: {{ answer }}"},
    ],
}


async def test_cascade_escalates_on_the_steps_checks(routed: Settings) -> None:
    t = Traced(routed, {"nano": "That is a billing matter.", "opus": "We will refund you today."})
    result = await t.run(workflow_from_dict(TRIAGE), "cheap_first")
    assert result.ok, result.error
    answer, tone = result.steps
    assert (answer.model, answer.tier) == ("opus", "frontier")
    assert answer.text == "We will refund you today."
    assert [(a.model, a.status) for a in answer.attempts] == [("nano", "rejected"), ("opus", "ok")]
    assert answer.cost == cost(routed, "nano", "opus")
    assert answer.decision is not None
    reason = answer.decision.reason
    assert reason.startswith("cascade: nano -> opus (escalate when an answer fails its checks); ")
    assert "; cascade: nano rejected (failed " in reason
    assert reason.endswith(") -> opus accepted")
    # the second step has no checks: its cheap answer is accepted at once
    assert tone.model == "nano" and tone.decision is not None
    assert tone.decision.reason.endswith("; cascade: nano accepted")
    assert t.called == ["nano", "opus", "nano"]

    # the trace says the same: the reason on the step, every rung as an attempt
    (step_record, _) = t.of(StepRecord)
    assert step_record.reason == reason and step_record.calls == 2
    assert step_record.cost_usd == answer.cost
    attempts = t.of(AttemptRecord)
    assert [(a.step_id, a.model, a.status) for a in attempts] == [
        ("answer", "nano", "rejected"),
        ("answer", "opus", "ok"),
        ("tone", "nano", "ok"),
    ]
    assert attempts[0].error is not None and attempts[0].error.startswith("failed ")
    run = t.of(RunRecord)[-1]
    assert run.cost_usd == result.cost == cost(routed, "nano", "opus", "nano")
    assert run.calls == 3


async def test_cascade_with_every_rung_rejected_fails_the_step_and_says_why(
    routed: Settings,
) -> None:
    t = Traced(routed, {"nano": "billing", "opus": "Please contact billing."})
    result = await t.run(workflow_from_dict(TRIAGE), "cheap_first")
    answer = result.steps[0]
    assert answer.status == "failed" and answer.model == "opus"
    assert answer.decision is not None
    assert answer.decision.reason.endswith("; kept the last answer")
    assert [a.status for a in answer.attempts] == ["rejected", "ok"]
    assert [c.passed for c in answer.checks] == [False]
    # a step that only failed its checks still feeds the next one
    assert result.steps[1].status == "succeeded"
    assert result.status == "failed" and "step 'answer'" in (result.error or "")


# -- ab -----------------------------------------------------------------------------------

TWO_STEPS = {
    "name": "draft",
    "steps": [
        {"id": "plan", "prompt": "Plan a reply."},
        {"id": "write", "inputs": ["plan"], "prompt": "Write it: {{ plan }}"},
    ],
}


async def test_ab_variant_is_recorded_on_the_run_and_sticks_to_the_user(
    routed: Settings,
) -> None:
    t = Traced(routed, {})
    wf = workflow_from_dict(TWO_STEPS)
    first = await t.run(wf, "split", tags={"user": "ana"})
    assert first.variant in ("haiku", "opus")
    # every step of the run is on the variant, and says so
    assert [s.model for s in first.steps] == [first.variant] * 2
    for s in first.steps:
        assert s.decision is not None and s.decision.variant == first.variant
        assert s.decision.reason == f"ab: user=ana -> variant {first.variant}"
    record = t.of(RunRecord)[-1]
    assert record.variant == first.variant and record.tags["user"] == "ana"
    assert record.policy == "split"
    # the same user, later runs (fresh run ids): the same variant
    for _ in range(5):
        again = await t.run(wf, "split", tags={"user": "ana"})
        assert again.run_id != first.run_id
        assert again.variant == first.variant
        assert t.of(RunRecord)[-1].variant == first.variant


async def test_ab_users_spread_over_the_variants(routed: Settings) -> None:
    t = Traced(routed, {})
    wf = workflow_from_dict(TWO_STEPS)
    variants = [(await t.run(wf, "split", tags={"user": f"u{i}"})).variant for i in range(40)]
    assert set(variants) == {"haiku", "opus"}


async def test_ab_without_a_user_is_assigned_by_the_run(routed: Settings) -> None:
    t = Traced(routed, {})
    result = await t.run(workflow_from_dict(TWO_STEPS), "split", run_id="run-fixed-1")
    assert result.variant in ("haiku", "opus")
    decision = result.steps[0].decision
    assert decision is not None
    assert decision.reason == f"ab: no user tag, by run -> variant {result.variant}"
    assert [s.model for s in result.steps] == [result.variant] * 2
    again = await t.run(workflow_from_dict(TWO_STEPS), "split", run_id="run-fixed-1")
    assert again.variant == result.variant


async def test_ab_variant_naming_a_policy(routed: Settings) -> None:
    t = Traced(routed, {"nano": "fine", "opus": "fine"})
    wf = workflow_from_dict(TWO_STEPS)
    seen: dict[str, RunResult] = {}
    for i in range(24):
        r = await t.run(wf, "split_policies", tags={"user": f"u{i}"})
        assert r.variant is not None
        seen.setdefault(r.variant, r)
    assert set(seen) == {"cheap_first", "all_frontier"}
    cascade = seen["cheap_first"].steps[0]
    assert cascade.model == "nano" and cascade.decision is not None
    assert cascade.decision.policy == "split_policies"
    assert " -> variant cheap_first -> cascade: nano -> opus" in cascade.decision.reason
    static = seen["all_frontier"].steps[0]
    assert static.model == "opus" and static.decision is not None
    assert static.decision.reason.endswith(" -> variant all_frontier -> static: every step -> opus")


# -- budgets ------------------------------------------------------------------------------


def chain(budget: dict[str, float], steps: int = 3) -> Workflow:
    return workflow_from_dict(
        {
            "name": "chain",
            "budget": budget,
            "steps": [
                {
                    "id": f"s{i}",
                    "prompt": "Go on." if i == 0 else f"Go on: {{{{ s{i - 1} }}}}",
                    "inputs": [] if i == 0 else [f"s{i - 1}"],
                    "max_tokens": 100,
                }
                for i in range(steps)
            ],
        }
    )


def done(request: ChatRequest) -> str:
    """A short answer whose usage the function provider estimates from the text, as a
    real model's would be: never more than the budget's estimate for the call."""
    return "done"


async def test_workflow_run_budget_stops_the_run_before_overspending(routed: Settings) -> None:
    first = ChatRequest((Message.user("Go on."),), max_tokens=100)
    cap = estimate_cost(routed.model("opus").price, first)  # room for one call, not two
    wf = chain({"run_usd": float(cap)})
    assert wf.budget is not None and wf.budget.run_usd == cap
    t = Traced(routed, {"opus": done})
    result = await t.run(wf, "all_frontier")
    assert [s.status for s in result.steps] == ["succeeded", "failed", "skipped"]
    refused = result.steps[1]
    assert refused.error_class == "budget"
    assert refused.error is not None
    assert refused.error.startswith("step 's1': estimated $")
    assert f"would pass the run cap of ${cap} (spent $" in refused.error
    assert refused.attempts == () and refused.cost == 0
    assert t.called == ["opus"]
    assert 0 < result.cost <= cap
    assert result.status == "failed" and "run cap" in (result.error or "")
    (_, s1, _) = t.of(StepRecord)
    assert s1.error_class == "budget" and s1.calls == 0
    assert t.of(RunRecord)[-1].cost_usd == result.cost


async def test_workflow_step_budget_names_the_step_cap(routed: Settings) -> None:
    t = Traced(routed, {"opus": "done"})
    result = await t.run(chain({"step_usd": 0.0001}, steps=1), "all_frontier")
    step = result.steps[0]
    assert step.error_class == "budget"
    assert "would pass the step cap of $0.0001" in (step.error or "")
    assert t.called == []


async def test_workflow_budget_is_fresh_for_every_run(routed: Settings) -> None:
    cap = estimate_cost(
        routed.model("opus").price, ChatRequest((Message.user("Go on."),), max_tokens=100)
    )
    t = Traced(routed, {"opus": done})
    wf = chain({"run_usd": float(cap)}, steps=1)
    for _ in range(3):
        assert (await t.run(wf, "all_frontier")).ok
    assert t.called == ["opus"] * 3


async def test_a_budget_given_to_run_replaces_the_workflows(routed: Settings) -> None:
    from turnout.execution.budget import Budget

    t = Traced(routed, {"opus": "done"})
    budget = Budget(run_usd=Decimal("0.000001"))
    result = await t.run(chain({"run_usd": 10.0}, steps=1), "all_frontier", budget=budget)
    assert result.steps[0].error_class == "budget" and t.called == []


async def test_parallel_steps_cannot_jointly_pass_the_run_cap(routed: Settings) -> None:
    async def slow(request: ChatRequest) -> ChatResponse:
        await asyncio.sleep(0.02)
        return ChatResponse("done", USAGE, request.model, "stop")

    est = estimate_cost(
        routed.model("opus").price,
        ChatRequest((Message.user("Branch."),), max_tokens=100),
    )
    wf = workflow_from_dict(
        {
            "name": "fan",
            "budget": {"run_usd": float(est * Decimal("1.5"))},
            "steps": [
                {"id": "a", "prompt": "Branch.", "max_tokens": 100},
                {"id": "b", "prompt": "Branch.", "max_tokens": 100},
            ],
        }
    )
    t = Traced(routed, {"opus": slow})
    result = await t.run(wf, "all_frontier")
    assert sorted(s.status for s in result.steps) == ["failed", "succeeded"]
    assert t.called == ["opus"]
    assert [s.error_class for s in result.steps if not s.ok] == ["budget"]


# -- overrides ----------------------------------------------------------------------------


async def test_override_supersedes_the_policy_and_is_recorded(routed: Settings) -> None:
    wf = workflow_from_dict(
        {
            "name": "w",
            "steps": [
                {
                    "id": "plan",
                    "prompt": "Plan.",
                    "checks": [{"contains_all": ["refund"]}],
                    "override": {"model": "sonnet", "by": "ana", "why": "needs judgment"},
                },
                {"id": "write", "inputs": ["plan"], "prompt": "Write: {{ plan }}"},
            ],
        }
    )
    t = Traced(routed, {"sonnet": "refund plan", "nano": "fine"})
    result = await t.run(wf, "cheap_first")
    plan, write = result.steps
    # the override is one model, not the cascade
    assert plan.model == "sonnet" and [a.model for a in plan.attempts] == ["sonnet"]
    assert plan.decision is not None and plan.decision.strategy == "single"
    assert plan.decision.reason == "override by ana: needs judgment -> sonnet"
    assert plan.decision.policy == "cheap_first"
    assert (plan.override_by, plan.override_why) == ("ana", "needs judgment")
    assert write.model == "nano" and (write.override_by, write.override_why) == (None, None)
    plan_record, write_record = t.of(StepRecord)
    assert plan_record.override_by == "ana" and plan_record.override_why == "needs judgment"
    assert plan_record.reason == "override by ana: needs judgment -> sonnet"
    assert plan_record.model == "sonnet" and plan_record.policy == "cheap_first"
    assert write_record.override_by is None and write_record.override_why is None
    (attempt, _) = t.of(AttemptRecord)
    assert attempt.reason == plan_record.reason


async def test_cli_overrides_are_recorded_the_same_way(routed: Settings) -> None:
    wf = apply_overrides(
        workflow_from_dict(TWO_STEPS),
        parse_overrides(["write=haiku"], by="bo", why="a draft is enough"),
    )
    t = Traced(routed, {})
    result = await t.run(wf, "all_frontier")
    assert [s.model for s in result.steps] == ["opus", "haiku"]
    records = t.of(StepRecord)
    assert [(r.override_by, r.override_why) for r in records] == [
        (None, None),
        ("bo", "a draft is enough"),
    ]


def test_latency_sensitive_step_gets_the_fastest_model_of_its_tier(settings: Settings) -> None:
    from turnout.policies.speed import SpeedEstimate, SpeedSnapshot
    from turnout.workflows.loader import workflow_from_dict
    from turnout.workflows.step_exec import decide as decide_step

    wf = workflow_from_dict({
        "name": "w",
        "steps": [
            {"id": "quick", "prompt": "hi", "tier": "efficient", "latency": "sensitive"},
            {"id": "plain", "prompt": "hi", "tier": "efficient"},
        ],
    })  # fmt: skip
    quick, plain = wf.steps
    assert (quick.latency, plain.latency) == ("sensitive", "normal")
    speeds = SpeedSnapshot(
        {"haiku": SpeedEstimate(0.1, None, 9, 1.0), "nano": SpeedEstimate(0.4, None, 9, 1.0)}, 2.0
    )
    health = PoolHealth(speeds=speeds)
    policy = build_policy(None, settings)
    assert decide_step(quick, wf, policy, (), {}, health).model == "haiku"  # fastest
    assert decide_step(plain, wf, policy, (), {}, health).model == "nano"  # cheapest


def test_unknown_latency_value_is_one_line() -> None:
    from turnout.errors import WorkflowError
    from turnout.workflows.loader import workflow_from_dict

    with pytest.raises((WorkflowError, ConfigError), match="latency"):
        workflow_from_dict({"name": "w", "steps": [{"id": "s", "prompt": "hi", "latency": "fast"}]})
