"""What does OpenAICompatProvider.complete() add over the bare HTTP call it makes?

Starts the fake OpenAI server in a separate process (loopback only) and, at
concurrency 1, alternates blocks of calls made two ways:

* bare: ``json.dumps`` a body, a POST through the provider's own connection pool
  (:mod:`turnout.providers.http1`), ``read``, ``json.loads``;
* provider: ``OpenAICompatProvider.complete(ChatRequest)`` (wire building, the
  same HTTP call, parsing into a ChatResponse, error checks).

Alternating blocks cancels most of the drift of a shared machine. Reports median
and mean per-call latency, CPU time per call and the difference (target: under
0.5 ms added per call). Also times the provider's pure-CPU work (build + parse)
without any network, the floor of the overhead.

    .venv/bin/python benchmarks/provider_overhead.py [--rounds 10] [--block 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from yarl import URL

from http_clients import start_server
from turnout.config.settings import Timeouts
from turnout.providers import http1
from turnout.providers.openai_compat import OpenAICompatProvider
from turnout.types import ChatRequest, Message
from turnout.wire import jsonio
from turnout.wire import requests as wire_requests
from turnout.wire import responses as wire

KEY_ENV = "TURNOUT_BENCH_KEY"
REQUEST = ChatRequest(
    messages=(
        Message.system("You are terse."),
        Message.user("Does this message mention a refund? Answer yes or no."),
    ),
    model="bench-model",
    max_tokens=16,
)


async def timed_block(call: Callable[[], Awaitable[object]], n: int) -> tuple[list[float], float]:
    latencies = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)
    return latencies, time.process_time() - cpu0


async def measure(base_url: str, rounds: int, block: int) -> dict[str, dict[str, float]]:
    os.environ[KEY_ENV] = "sk-bench-0123456789"
    url = base_url + "/chat/completions"
    headers = {"Authorization": f"Bearer {os.environ[KEY_ENV]}", "Content-Type": "application/json"}
    body = {
        "model": "bench-model",
        "messages": [{"role": m.role, "content": m.content} for m in REQUEST.messages],
        "max_tokens": 16,
    }
    provider = OpenAICompatProvider(
        name="bench", base_url=base_url, api_key_env=KEY_ENV, timeouts=Timeouts(5, 30, 60)
    )
    target = URL(url)
    host, port = target.raw_host or "127.0.0.1", target.port or 80
    head = http1.request_head(target.raw_path, host, port, 80, headers)
    pool = http1.Pool("http", host, port, limit=100)
    try:

        async def bare() -> object:
            async with await pool.request(head, json.dumps(body).encode()) as r:
                raw = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
                return json.loads(raw)

        async def via_provider() -> object:
            return await provider.complete(REQUEST)

        samples: dict[str, list[float]] = {"bare": [], "provider": []}
        cpu: dict[str, float] = {"bare": 0.0, "provider": 0.0}
        await timed_block(bare, 100)  # warm both pools
        await timed_block(via_provider, 100)
        for i in range(rounds):
            order = [("bare", bare), ("provider", via_provider)]
            for name, call in order if i % 2 == 0 else order[::-1]:
                lat, c = await timed_block(call, block)
                samples[name].extend(lat)
                cpu[name] += c
    finally:
        await pool.aclose()
    await provider.aclose()
    out = {}
    for name, lat in samples.items():
        out[name] = {
            "calls": len(lat),
            "median_ms": statistics.median(lat) * 1000,
            "mean_ms": statistics.fmean(lat) * 1000,
            "cpu_ms_per_call": cpu[name] / len(lat) * 1000,
        }
    return out


def cpu_only(n: int = 20000) -> float:
    """Milliseconds per call of the provider's own work: build + encode + parse."""
    answer = {
        "id": "chatcmpl-1",
        "model": "bench-model",
        "choices": [{"message": {"role": "assistant", "content": "No."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 2},
    }
    raw = json.dumps(answer).encode()
    t0 = time.perf_counter()
    for _ in range(n):
        jsonio.encode(wire_requests.request_body(REQUEST, model="bench-model", stream=False))
        data = jsonio.load_json(raw)
        wire.parse_completion(data, model="bench-model", latency_s=0.0, prompt_tokens=1)
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=200, help="calls per block")
    args = parser.parse_args()
    proc, base_url = start_server()
    try:
        results = asyncio.run(measure(base_url, args.rounds, args.block))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{'':10}{'calls':>7}{'median ms':>11}{'mean ms':>9}{'cpu ms/call':>13}")
    for name, r in results.items():
        print(
            f"{name:10}{r['calls']:>7.0f}{r['median_ms']:>11.3f}{r['mean_ms']:>9.3f}"
            f"{r['cpu_ms_per_call']:>13.3f}"
        )
    b, p = results["bare"], results["provider"]
    print(
        f"added per call: median {p['median_ms'] - b['median_ms']:+.3f} ms, "
        f"mean {p['mean_ms'] - b['mean_ms']:+.3f} ms, "
        f"cpu {p['cpu_ms_per_call'] - b['cpu_ms_per_call']:+.3f} ms (target < 0.5 ms)"
    )
    print(f"provider build+encode+parse without network: {cpu_only():.4f} ms per call")


if __name__ == "__main__":
    main()
