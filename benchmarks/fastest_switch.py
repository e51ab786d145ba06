"""``kind: fastest`` following a model that slows down and recovers, on real sockets.

Two fake OpenAI servers (``turnout.testing.FakeOpenAI``), one per model:
``steady`` always answers in 60 ms, ``quick`` in 20 ms, except in the middle phase,
when it slows to 150 ms; then it recovers. Requests go one after another through the
real executor (``build_executor``) under

    kind: fastest, models: [steady, quick], metric: ttft, explore: 0.1, stale_s: 1

and the script prints, per phase, the share of requests each model got and where
the policy switched. Cold start is list order (steady); exploration finds quick;
when quick slows, its estimate rises past steady's within a few calls; when it
recovers, it is stale after a second without traffic, so a tenth of requests probe
it again until its estimate falls back below steady's.

    .venv/bin/python benchmarks/fastest_switch.py [--per-phase 150] [--alpha 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

from turnout.config import settings_from_dict
from turnout.execution.setup import build_executor
from turnout.policies import RequestContext, build_policy
from turnout.testing.fake_openai import FakeOpenAI
from turnout.types import ChatRequest, Message

PHASES = (("normal", 0.02), ("quick slows down", 0.15), ("quick recovers", 0.02))


def config(quick_url: str, steady_url: str, alpha: float) -> dict[str, Any]:
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
                "kind": "fastest", "models": ["steady", "quick"], "metric": "ttft",
                "explore": 0.1, "stale_s": 1.0, "min_samples": 3,
            },
        },
        "executor": {"speed": {"alpha": alpha}, "breaker": {"enabled": False}},
    }  # fmt: skip


async def run(per_phase: int, alpha: float) -> list[tuple[str, list[str]]]:
    async with FakeOpenAI(latency=0.02) as quick, FakeOpenAI(latency=0.06) as steady:
        settings = settings_from_dict(config(quick.base_url, steady.base_url, alpha))
        policy = build_policy("snappy", settings)
        executor, resources = build_executor(settings)
        request = ChatRequest((Message.user("hi"),), max_tokens=16)
        out: list[tuple[str, list[str]]] = []
        n = 0
        try:
            for phase, latency in PHASES:
                quick.latency = latency
                chosen: list[str] = []
                for _ in range(per_phase):
                    n += 1
                    ctx = RequestContext(step_id="s", tags={"run": f"r{n}"})
                    decision = policy.decide(ctx, await executor.health())
                    done = await executor.execute(decision, request, run_id=f"r{n}", step_id="s")
                    assert done.ok, done.error
                    chosen.append(decision.model)
                out.append((phase, chosen))
        finally:
            await executor.pool.aclose()
            await resources.aclose()
        return out


def tail_share(chosen: list[str], model: str, tail: float = 0.5) -> float:
    """The share of ``model`` over the last ``tail`` of a phase (after it has settled)."""
    last = chosen[int(len(chosen) * (1 - tail)) :]
    return sum(1 for m in last if m == model) / len(last)


def switch_after(chosen: list[str], model: str, run: int = 5) -> int | None:
    """Requests into the phase until ``model`` was chosen ``run`` times in a row."""
    streak = 0
    for i, m in enumerate(chosen, 1):
        streak = streak + 1 if m == model else 0
        if streak == run:
            return i - run + 1
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-phase", type=int, default=150)
    ap.add_argument("--alpha", type=float, default=0.3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    phases = asyncio.run(run(args.per_phase, args.alpha))
    expected = {"normal": "quick", "quick slows down": "steady", "quick recovers": "quick"}
    for phase, chosen in phases:
        counts = Counter(chosen)
        want = expected[phase]
        print(
            f"{phase:<18} quick {counts['quick']:>4}  steady {counts['steady']:>4}   "
            f"settled on {want}: {tail_share(chosen, want):.0%} of the second half; "
            f"5 in a row on {want} from request {switch_after(chosen, want)}"
        )
    print(f"{sum(len(c) for _, c in phases)} requests in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
