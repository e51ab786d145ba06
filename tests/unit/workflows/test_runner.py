import asyncio
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from turnout.config import Settings
from turnout.errors import ConfigError, ServerError
from turnout.execution.retry import RetryPolicy
from turnout.policies import build_policy
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord, TraceRecord
from turnout.types import ChatRequest, ChatResponse, Usage
from turnout.workflows.loader import workflow_from_dict
from turnout.workflows.runner import Runner

WF: dict[str, Any] = {
    "name": "csv-export",
    "inputs": ["task"],
    "steps": [
        {
            "id": "planner",
            "prompt": "Plan: {{ task }}",
            "checks": [{"contains_all": ["risks", "tests"]}],
        },
        {"id": "implementer", "inputs": ["planner"], "prompt": "Implement:\n{{ planner }}"},
        {
            "id": "reviewer",
            "inputs": ["planner", "implementer"],
            "prompt": "Review {{ implementer }} vs {{ planner }}",
        },
        {"id": "count", "kind": "code", "inputs": ["reviewer"], "run": "helpers:count_words"},
    ],
}


def reply(req: ChatRequest) -> ChatResponse:
    text = f"[{req.model}] risks and tests for: " + (req.messages[-1].content or "")[:40]
    return ChatResponse(text, Usage(1000, 100, 200), req.model, "stop")


@pytest.fixture
def wf(tmp_path: Path) -> Any:
    (tmp_path / "helpers.py").write_text(
        "def count_words(inputs):\n    return {'words': len(inputs['reviewer'].split())}\n"
    )
    return workflow_from_dict(WF, path=tmp_path / "wf.yaml")


def make_runner(
    settings: Settings, fn: Any = reply, sink: Any = None
) -> tuple[Runner, FunctionProvider]:
    provider = FunctionProvider(fn)
    pool = ModelPool(settings, providers={"hosted": provider, "backup": provider})
    return Runner(settings, pool=pool, sink=sink, retry=RetryPolicy(base_delay_s=0.001)), provider


async def test_run_routes_each_step_and_traces_everything(settings: Settings, wf: Any) -> None:
    records: list[TraceRecord] = []
    runner, provider = make_runner(settings, sink=records.append)
    result = await runner.run(wf, {"task": "CSV export"}, policy=build_policy("mixed", settings))
    assert result.ok, result.error
    models = {s.step_id: s.model for s in result.steps}
    assert models == {"planner": "opus", "implementer": "haiku", "reviewer": "opus", "count": None}
    assert [r.model for r in provider.calls] == [
        "claude-opus-4-8",
        "claude-haiku-4-5",
        "claude-opus-4-8",
    ]
    # cost: opus 800*5 + 200*0.5 + 100*25 per million; haiku 800*1 + 200*0.1 + 100*5
    opus = Decimal("0.0066")
    haiku = Decimal("0.00132")
    assert result.cost == opus * 2 + haiku
    assert result.calls == 3
    assert result.steps[0].score == 1.0
    assert result.steps[3].value["words"] > 3
    kinds = [type(r).__name__ for r in records]
    assert kinds[0] == "RunRecord" and kinds[-1] == "RunRecord"
    assert kinds.count("AttemptRecord") == 3 and kinds.count("StepRecord") == 4
    final = records[-1]
    assert (
        isinstance(final, RunRecord)
        and final.status == "succeeded"
        and final.cost_usd == result.cost
    )


async def test_context_passes_only_through_declared_inputs(settings: Settings, wf: Any) -> None:
    runner, provider = make_runner(settings)
    await runner.run(wf, {"task": "T"}, policy=build_policy("all_frontier", settings))
    implementer_prompt = provider.calls[1].messages[-1].content or ""
    assert implementer_prompt.startswith("Implement:\n[claude-opus-4-8] risks")


async def test_independent_steps_run_concurrently(settings: Settings, tmp_path: Path) -> None:
    wf = workflow_from_dict(
        {
            "name": "fan",
            "steps": [
                {"id": "a", "prompt": "a"},
                {"id": "b", "prompt": "b"},
                {"id": "c", "prompt": "{{ a }}{{ b }}", "inputs": ["a", "b"]},
            ],
        }
    )
    in_flight = 0
    peak = 0

    async def slow(req: ChatRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return "ok"

    runner, _ = make_runner(settings, slow)
    result = await runner.run(wf, {}, policy=build_policy("all_frontier", settings))
    assert result.ok and peak == 2


async def test_failed_check_still_runs_downstream_but_fails_the_run(
    settings: Settings, wf: Any
) -> None:
    runner, _ = make_runner(settings, lambda req: "nothing useful")
    result = await runner.run(wf, {"task": "T"}, policy=build_policy("all_frontier", settings))
    assert result.status == "failed"
    assert [s.status for s in result.steps] == ["failed", "succeeded", "succeeded", "succeeded"]
    assert result.steps[0].score == 0.0
    assert "step 'planner'" in (result.error or "")


async def test_provider_failure_skips_dependents_and_records_attempts(
    settings: Settings, wf: Any
) -> None:
    records: list[TraceRecord] = []

    def boom(req: ChatRequest) -> str:
        raise ServerError("503 overloaded", status=503)

    runner, provider = make_runner(settings, boom, sink=records.append)
    result = await runner.run(wf, {"task": "T"}, policy=build_policy("all_frontier", settings))
    assert result.status == "failed"
    assert [s.status for s in result.steps] == ["failed", "skipped", "skipped", "skipped"]
    assert len(provider.calls) == 3  # bounded retries on one model
    attempts = [r for r in records if isinstance(r, AttemptRecord)]
    assert [a.status for a in attempts] == ["error"] * 3
    assert all(a.error_class == "server_error" and a.cost_usd == 0 for a in attempts)
    steps = [r for r in records if isinstance(r, StepRecord)]
    assert steps[0].calls == 3 and "all 3 attempt(s) failed" in (steps[0].error or "")


async def test_code_step_exception_is_recorded_not_raised(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "bad.py").write_text("def explode(inputs):\n    raise KeyError('customer')\n")
    wf = workflow_from_dict(
        {"name": "w", "steps": [{"id": "x", "kind": "code", "run": "bad:explode"}]},
        path=tmp_path / "w.yaml",
    )
    runner, _ = make_runner(settings)
    result = await runner.run(wf, {}, policy=build_policy(None, settings))
    assert result.status == "failed"
    assert "bad:explode raised KeyError" in (result.steps[0].error or "")


async def test_missing_and_unknown_inputs_fail_before_any_record(
    settings: Settings, wf: Any
) -> None:
    records: list[TraceRecord] = []
    runner, provider = make_runner(settings, sink=records.append)
    with pytest.raises(ConfigError, match="missing workflow input"):
        await runner.run(wf, {}, policy=build_policy(None, settings))
    with pytest.raises(ConfigError, match="unknown input"):
        await runner.run(wf, {"task": "x", "tsak": "y"}, policy=build_policy(None, settings))
    assert records == [] and provider.calls == []


async def test_json_output_is_parsed_for_downstream_steps(settings: Settings) -> None:
    wf = workflow_from_dict(
        {
            "name": "w",
            "steps": [
                {"id": "extract", "prompt": "x", "output": "json"},
                {"id": "use", "prompt": "order {{ extract.order }}", "inputs": ["extract"]},
            ],
        }
    )
    answers = iter(['Here you go:\n```json\n{"order": "A-17"}\n```', "fine"])
    runner, provider = make_runner(settings, lambda req: next(answers))
    result = await runner.run(wf, {}, policy=build_policy("all_frontier", settings))
    assert result.steps[0].value == {"order": "A-17"}
    assert provider.calls[1].messages[-1].content == "order A-17"


async def test_unparseable_json_output_fails_the_step(settings: Settings) -> None:
    wf = workflow_from_dict(
        {"name": "w", "steps": [{"id": "extract", "prompt": "x", "output": "json"}]}
    )
    runner, _ = make_runner(settings, lambda req: "no json here")
    result = await runner.run(wf, {}, policy=build_policy("all_frontier", settings))
    assert result.steps[0].status == "failed"
    assert result.steps[0].checks[0].name == "output is JSON"


async def test_workflow_policy_uses_step_model_tier_and_default(settings: Settings) -> None:
    wf = workflow_from_dict(
        {
            "name": "w",
            "default_model": "sonnet",
            "steps": [
                {"id": "a", "prompt": "a", "model": "opus"},
                {"id": "b", "prompt": "b", "tier": "efficient"},
                {"id": "c", "prompt": "c"},
            ],
        }
    )
    runner, _ = make_runner(settings)
    result = await runner.run(wf, {}, policy=build_policy(None, settings))
    assert [s.model for s in result.steps] == ["opus", "nano", "sonnet"]
    assert "cheapest in efficient" in (
        result.steps[1].decision.reason if result.steps[1].decision else ""
    )


async def test_override_is_recorded_with_who_and_why(settings: Settings) -> None:
    wf = workflow_from_dict(
        {
            "name": "w",
            "steps": [
                {
                    "id": "a",
                    "prompt": "a",
                    "override": {"model": "haiku", "by": "ana", "why": "cost"},
                },
            ],
        }
    )
    runner, _ = make_runner(settings)
    result = await runner.run(wf, {}, policy=build_policy("all_frontier", settings))
    step = result.steps[0]
    assert step.model == "haiku"
    assert step.decision is not None and step.decision.reason == "override by ana: cost -> haiku"


async def test_a_cancelled_run_is_recorded_interrupted_and_charged(
    settings: Settings, wf: Any
) -> None:
    """Ctrl-C / SIGTERM cancel the run: its final record says so, with every call it made."""
    records: list[TraceRecord] = []
    started = asyncio.Event()

    async def slow_after_planner(req: ChatRequest) -> ChatResponse:
        if "Implement" in (req.messages[-1].content or ""):
            started.set()
            await asyncio.sleep(30)
        return reply(req)

    runner, _ = make_runner(settings, fn=slow_after_planner, sink=records.append)
    task = asyncio.create_task(
        runner.run(wf, {"task": "CSV export"}, policy=build_policy("mixed", settings))
    )
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runs = [r for r in records if isinstance(r, RunRecord)]
    assert [r.status for r in runs] == ["running", "interrupted"]
    assert runs[0].writer and runs[0].writer.startswith(f"{os.getpid()}@")
    attempts = [r for r in records if isinstance(r, AttemptRecord)]
    assert [(a.step_id, a.status) for a in attempts] == [
        ("planner", "ok"), ("implementer", "error")  # the call in flight, cancelled
    ]  # fmt: skip
    final = runs[-1]
    # the call in flight is charged its prompt (it was sent), as an estimate
    assert attempts[1].usage_estimated and attempts[1].cost_usd > 0
    assert final.calls == 2 and final.cost_usd == attempts[0].cost_usd + attempts[1].cost_usd
    assert final.error == "interrupted" and final.ended_at is not None


async def test_an_unexpected_error_leaves_no_run_running(settings: Settings, wf: Any) -> None:
    records: list[TraceRecord] = []
    runner, _ = make_runner(settings, sink=records.append)

    class Broken:
        name = "broken"

        def decide(self, *args: Any) -> Any:
            raise RuntimeError("policy bug")

    with pytest.raises(RuntimeError, match="policy bug"):
        await runner.run(wf, {"task": "x"}, policy=Broken())  # type: ignore[arg-type]
    runs = [r for r in records if isinstance(r, RunRecord)]
    assert [r.status for r in runs] == ["running", "failed"]
    assert runs[-1].error == "RuntimeError: policy bug"
