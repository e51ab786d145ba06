from decimal import Decimal

import pytest

from turnout.bench import BenchCase, run_bench
from turnout.config import Settings
from turnout.policies import build_policy
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.types import ChatRequest, ChatResponse, Usage
from turnout.workflows.loader import workflow_from_dict
from turnout.workflows.runner import Runner


def answer(req: ChatRequest) -> ChatResponse:
    # the cheap model forgets the rollback section
    text = "risks tests" if "haiku" in req.model else "risks tests rollback"
    return ChatResponse(text, Usage(100, 10), req.model)


async def test_bench_compares_policies_on_the_same_cases(settings: Settings) -> None:
    wf = workflow_from_dict(
        {
            "name": "w",
            "inputs": ["task"],
            "steps": [
                {
                    "id": "planner",
                    "prompt": "{{ task }}",
                    "checks": [{"contains_all": ["rollback"]}],
                },
                {"id": "implementer", "prompt": "{{ planner }}", "inputs": ["planner"]},
            ],
        }
    )
    provider = FunctionProvider(answer)
    runner = Runner(
        settings, pool=ModelPool(settings, providers={"hosted": provider, "backup": provider})
    )
    cheap = build_policy("mixed", settings)  # implementer on haiku: passes (no check there)
    strong = build_policy("all_frontier", settings)
    cases = [BenchCase("a", {"task": "x"}), BenchCase("b", {"task": "y"})]
    seen: list[str] = []
    bench = await run_bench(
        runner,
        wf,
        [strong, cheap],
        cases,
        runs=3,
        concurrency=4,
        on_run=lambda r: seen.append(r.policy),
    )
    assert len(seen) == 12
    by = {s.policy: s for s in bench.summaries()}
    assert by["all_frontier"].runs == 6 and by["all_frontier"].successes == 6
    assert by["all_frontier"].calls == 12
    # opus 100*5 + 10*25 = 750 per million per call; haiku 100*1+10*5 = 150
    assert by["all_frontier"].cost_usd == Decimal("0.00075") * 12
    assert by["mixed"].cost_usd == (Decimal("0.00075") + Decimal("0.00015")) * 6
    assert by["mixed"].cost_per_success == by["mixed"].cost_usd / 6
    assert by["mixed"].score == 1.0
    d = by["mixed"].as_dict()
    for key in (
        "runs",
        "successes",
        "calls",
        "total_latency_s",
        "total_tokens",
        "output_tokens",
        "cost_usd",
        "score",
        "cost_per_success_usd",
        "latency_per_success_s",
    ):
        assert key in d
    run_ids = {r.run_id for rs in bench.results.values() for r in rs}
    assert len(run_ids) == 12
    assert {r.tags["case"] for r in bench.results["mixed"]} == {"a", "b"}


def test_summary_without_success_has_no_per_success_figures() -> None:
    from turnout.bench.summary import summarize

    s = summarize("p", [])
    assert s.cost_per_success is None and s.as_dict()["cost_per_success_usd"] is None


async def test_bench_runs_carry_the_given_tags_and_a_switch_sees_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from turnout.cli.common import parse_tags
    from turnout.config import settings_from_dict

    raw = {
        "providers": {"hosted": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {
            "opus": {"provider": "hosted", "id": "opus", "tier": "frontier",
                     "price": {"input": 5, "output": 25}},
            "haiku": {"provider": "hosted", "id": "haiku", "tier": "efficient",
                      "price": {"input": 1, "output": 5}},
        },
        "policies": {"ctx": {"kind": "switch", "on": "context", "cases": {"ci": "opus"},
                             "default": "haiku"}},
    }  # fmt: skip
    s = settings_from_dict(raw)
    wf = workflow_from_dict({"name": "w", "steps": [{"id": "only", "prompt": "hi"}]})
    runner = Runner(s, pool=ModelPool(s, providers={"hosted": FunctionProvider(answer)}))
    monkeypatch.setenv("CI", "true")
    bench = await run_bench(runner, wf, [build_policy("ctx", s)], [BenchCase("a", {})],
                            tags=parse_tags(()))  # fmt: skip
    (run,) = bench.results["ctx"]
    assert {k: run.tags[k] for k in ("context", "case", "repeat")} == {
        "context": "ci",
        "case": "a",
        "repeat": "1",
    }
    assert run.steps[0].model == "opus"
    local = await run_bench(runner, wf, [build_policy("ctx", s)], [BenchCase("a", {})],
                            tags=parse_tags(["context=local"]))  # fmt: skip
    assert local.results["ctx"][0].steps[0].model == "haiku"
