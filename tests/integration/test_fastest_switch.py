"""``kind: fastest`` on real sockets: two fake OpenAI servers, one model slowing down
mid-way and recovering; the policy moves to the quicker model and back.
(``benchmarks/fastest_switch.py`` is the longer version with figures.)"""

from __future__ import annotations

from typing import Any

from turnout.config import settings_from_dict
from turnout.execution.setup import build_executor
from turnout.policies import RequestContext, build_policy
from turnout.testing.fake_openai import FakeOpenAI
from turnout.types import ChatRequest, Message

PER_PHASE = 40


def _config(quick_url: str, steady_url: str) -> dict[str, Any]:
    price = {"input": 1.0, "output": 2.0}
    return {
        "providers": {
            "a": {"kind": "openai", "base_url": quick_url},
            "b": {"kind": "openai", "base_url": steady_url},
        },
        "models": {
            "steady": {"provider": "b", "id": "steady-1", "tier": "standard", "price": price},
            "quick": {"provider": "a", "id": "quick-1", "tier": "standard", "price": price},
        },
        "policies": {
            "snappy": {
                "kind": "fastest", "models": ["steady", "quick"], "explore": 0.25,
                "stale_s": 0.25, "min_samples": 2,
            },
        },
        "executor": {"speed": {"alpha": 0.5}, "breaker": {"enabled": False}},
    }  # fmt: skip


def _settled_share(chosen: list[str], model: str) -> float:
    half = chosen[len(chosen) // 2 :]
    return sum(1 for m in half if m == model) / len(half)


async def test_fastest_moves_to_the_quicker_model_and_back() -> None:
    async with FakeOpenAI(latency=0.01) as quick, FakeOpenAI(latency=0.05) as steady:
        settings = settings_from_dict(_config(quick.base_url, steady.base_url))
        policy = build_policy("snappy", settings)
        executor, resources = build_executor(settings)
        request = ChatRequest((Message.user("hi"),), max_tokens=8)
        phases: list[list[str]] = []
        n = 0
        try:
            for latency in (0.01, 0.12, 0.01):
                quick.latency = latency
                chosen = []
                for _ in range(PER_PHASE):
                    n += 1
                    ctx = RequestContext(step_id="s", tags={"run": f"r{n}"})
                    decision = policy.decide(ctx, await executor.health())
                    done = await executor.execute(decision, request, run_id=f"r{n}", step_id="s")
                    assert done.ok
                    chosen.append(decision.model)
                phases.append(chosen)
        finally:
            await executor.pool.aclose()
            await resources.aclose()
    assert phases[0][0] == "steady"  # cold start: list order
    assert _settled_share(phases[0], "quick") >= 0.7, phases[0]
    assert _settled_share(phases[1], "steady") >= 0.7, phases[1]
    assert _settled_share(phases[2], "quick") >= 0.6, phases[2]
    speeds = (await executor.health()).speeds
    assert {"quick", "steady"} <= set(speeds.estimates)
    assert "quick" in decision.reason and "n=" in decision.reason
