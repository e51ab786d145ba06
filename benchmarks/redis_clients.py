"""What one Redis command costs the gateway's event loop: redis-py's asyncio client (a
connection from its pool per command) against turnout's pipelined connection
(``turnout.limits.pipelined``), on the real Redis (127.0.0.1:6379, throwaway keys).

For PING and for the gate's own script (``EVALSHA``: key generation, rate limit, budget
hold), one command at a time: the wall-clock p50 and the CPU the calling thread spent
per command (``time.thread_time``: Python and the socket calls). The CPU is what a
request pays on a busy loop; the wall time also holds Redis running the script.

    .venv/bin/python benchmarks/redis_clients.py [--requests 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import uvloop
from redis.asyncio import Redis

from turnout.limits.gate_redis import _GATE
from turnout.limits.lua import Lua
from turnout.limits.pipelined import Pipelined


async def measure(call: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    for _ in range(200):
        await call()
    times = []
    cpu0 = time.thread_time()
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    cpu = (time.thread_time() - cpu0) / n
    return statistics.median(times) * 1e6, cpu * 1e6


async def main(n: int, rounds: int) -> None:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    pipelined = Pipelined.of(client)
    assert pipelined is not None
    gate = Lua(_GATE)
    await client.script_load(gate.source)
    base = f"turnout-bench:{uuid.uuid4().hex}"
    keys = [f"{base}:gen", *(f"{base}:{{k}}:{s}" for s in ("r", "t", "s", "b", "h"))]

    def args() -> list[object]:
        return ["", 60_000, 10**9, 10**12, 30, uuid.uuid4().hex, 10**18, 1000, 60_000, 10**8]

    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "redis-py PING": client.ping,
        "pipelined PING": lambda: pipelined.execute("PING"),
        "redis-py EVALSHA gate": lambda: gate(client, keys, args()),
        "pipelined EVALSHA gate": lambda: pipelined.evalsha(gate, keys, args()),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    try:
        for _ in range(rounds):
            for name, call in cases.items():
                results[name].append(await measure(call, n))
    finally:
        await client.delete(*keys)
        await client.aclose()
        await pipelined.aclose()
    print(f"{n} commands one at a time, medians of {rounds} rounds")
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"  {name:<24} p50 {wall:6.1f} us   CPU {cpu:6.1f} us per command")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    uvloop.run(main(a.requests, a.rounds))
