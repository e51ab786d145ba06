"""Executor overhead per attempt, model time excluded.

Calls ``Executor.execute`` many times with a single-model decision against an
in-process function provider that returns a prebuilt answer at once, so what
is measured is the executor's own work: applying the decision, the attempt
runner (cache look-up and store, breaker, budget, limiter), cost arithmetic and
the attempt record. Two executors:

* ``default``: ``Executor(pool)`` (retries, no breaker, no cache);
* ``configured``: ``build_executor(settings)`` with the circuit breaker and the
  in-process exact cache enabled. Every prompt is different and deterministic
  (temperature 0), so each execution is a cache miss that is looked up *and*
  stored: the worst case for the cache.

With ``--budget`` every execution also carries a run budget (estimate, hold,
release, charge). Each executor is measured in both modes, through the one
pipeline: ``execute`` (the finished answer) and ``stream`` (the same answer as a
stream of one delta). Then the streaming overhead per chunk: a 256-chunk answer
read through ``Executor.stream`` against the same chunks read from the provider
directly, per chunk.

    .venv/bin/python benchmarks/executor_overhead.py [--n 20000] [--budget]

Targets: under 0.5 ms per attempt in both modes; under 20 µs per streamed chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from decimal import Decimal
from typing import Any

from turnout.config import Settings, settings_from_dict
from turnout.execution.budget import Budget
from turnout.execution.executor import Executor
from turnout.execution.setup import build_executor
from turnout.providers import FunctionProvider
from turnout.providers.pool import ModelPool
from turnout.types import (
    ChatRequest,
    ChatResponse,
    Decision,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

CONFIG: dict[str, Any] = {
    "providers": {"hosted": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "small": {
            "provider": "hosted",
            "id": "small-1",
            "tier": "efficient",
            "price": {"input": 0.15, "output": 0.6},
        },
    },
    "executor": {
        "breaker": {"enabled": True},
        "cache": {"exact": {"enabled": True, "ttl_s": 3600, "max_entries": 10_000}},
    },
}
ANSWER = ChatResponse("billing", Usage(412, 3), "small-1", "stop")
DECISION = Decision(("small",), "static: every step -> small", "bench")


def answer(request: ChatRequest) -> ChatResponse:
    return ANSWER


def executors(settings: Settings) -> dict[str, Executor]:
    provider = FunctionProvider(answer)
    default = Executor(ModelPool(settings, providers={"hosted": provider}))
    configured, _ = build_executor(
        settings, pool=ModelPool(settings, providers={"hosted": provider})
    )
    assert configured.breakers is not None and len(configured.cache.caches) == 1
    return {"default": default, "configured (breaker + exact cache)": configured}


def requests(n: int) -> list[ChatRequest]:
    system = Message.system("You triage support tickets. Answer with one label.")
    return [
        ChatRequest(
            (system, Message.user(f"Ticket #{i}: I was charged twice for order {i * 7}.")),
            max_tokens=16,
            temperature=0,
        )
        for i in range(n)
    ]


async def once(executor: Executor, r: ChatRequest, budget: Budget | None, streamed: bool) -> Any:
    if not streamed:
        return await executor.execute(DECISION, r, run_id="bench", step_id="s", budget=budget)
    s = executor.stream(DECISION, r, run_id="bench", step_id="s", budget=budget)
    async for _ in s:
        pass
    return s.execution


async def bench(
    executor: Executor,
    warm: list[ChatRequest],
    timed: list[ChatRequest],
    budget: bool,
    streamed: bool,
) -> list[float]:
    provider = executor.pool.provider_for("small")
    assert isinstance(provider, FunctionProvider)
    for r in warm:
        await once(executor, r, None, streamed)
    samples: list[float] = []
    gc.collect()
    for i, r in enumerate(timed):
        b = Budget(run_usd=Decimal(1)) if budget else None
        t0 = time.perf_counter()
        out = await once(executor, r, b, streamed)
        samples.append(time.perf_counter() - t0)
        if i % 1000 == 0:
            assert out.ok and len(out.attempts) == 1, out.error
            assert out.attempts[0].cache is None  # a miss: the model was "called"
            provider.calls.clear()
    return samples


def report(label: str, samples: list[float]) -> str:
    samples = sorted(samples)
    ms = 1e3
    p50 = statistics.median(samples) * ms
    p99 = samples[max(0, int(len(samples) * 0.99) - 1)] * ms
    mean = statistics.fmean(samples) * ms
    return f"{label:<56} mean {mean:.4f} ms  p50 {p50:.4f} ms  p99 {p99:.4f} ms  (target < 0.5 ms)"


CHUNKS = 256


def chunks(request: ChatRequest) -> list[StreamEvent]:
    return [*(TextDelta("tok ") for _ in range(CHUNKS)), StreamEnd("stop", Usage(40, CHUNKS), "m")]


async def per_chunk(settings: Settings, rounds: int) -> tuple[float, float]:
    """Median seconds per chunk: read through the executor, and from the provider."""
    provider = FunctionProvider(stream_fn=chunks)
    executor = Executor(ModelPool(settings, providers={"hosted": provider}))
    request = ChatRequest((Message.user("Write a long answer."),), max_tokens=CHUNKS)
    through: list[float] = []
    direct: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        async for _event in executor.stream(DECISION, request, run_id="b", step_id="s"):
            pass
        through.append((time.perf_counter() - t0) / CHUNKS)
        t0 = time.perf_counter()
        async for _event in provider.stream(request):
            pass
        direct.append((time.perf_counter() - t0) / CHUNKS)
        provider.calls.clear()
    return statistics.median(through), statistics.median(direct)


async def main_async(n: int, budget: bool) -> None:
    settings = settings_from_dict(CONFIG)
    batch = requests(n + 500)
    warm, timed = batch[:500], batch[500:]
    print(f"executor overhead per attempt ({n} executions, one attempt each):")
    for streamed in (False, True):
        for label, executor in executors(settings).items():
            samples = await bench(executor, warm, timed, budget, streamed)
            mode = "stream" if streamed else "execute"
            print(report(f"{mode}: {label}" + (" + budget" if budget else ""), samples))
    through, direct = await per_chunk(settings, 400)
    print(
        f"streaming overhead per chunk ({CHUNKS}-chunk answers, median of 400): "
        f"{(through - direct) * 1e6:.2f} µs  ({through * 1e6:.2f} µs through the executor, "
        f"{direct * 1e6:.2f} µs from the provider; target < 20 µs)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="timed executions per executor")
    ap.add_argument("--budget", action="store_true", help="give every execution a run budget")
    args = ap.parse_args()
    asyncio.run(main_async(args.n, args.budget))


if __name__ == "__main__":
    main()
