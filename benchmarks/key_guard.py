"""What a virtual key costs a request: authentication (cached), the rate limit and the
budget hold before the call (one Redis round trip), and settling the hold after it
(queued, and sent in batches off the request path, as the gateway does), with the
state in memory (one process) and in the real Redis (127.0.0.1:6379, a throwaway
prefix); with Redis, also the Redis server's own CPU per request (``INFO cpu``; run it
on an otherwise idle Redis).

Measured in-process, without HTTP, so the figures are the gate's own: the gateway's
end-to-end overhead is measured by benchmarks/team_gateway.py (phase 2). A key with
rpm, tpm and a budget (all three paths taken) is admitted and settled ``--requests``
times, one at a time (latency) and at ``--concurrency`` (throughput).

    .venv/bin/python benchmarks/key_guard.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from turnout.keys import KeyStore, Period
from turnout.keys.cache import CachedKeys, LocalKeyEvents
from turnout.keys.guard import KeyGuard
from turnout.limits import MemoryBudgets, MemoryRateLimiter
from turnout.limits.budget import PaidCall
from turnout.limits.gate import LocalGate
from turnout.pricing.cost import Price
from turnout.tracing.sqlite import SQLiteStore
from turnout.types import ChatRequest, Message

if TYPE_CHECKING:
    from redis.asyncio import Redis

REQ = ChatRequest(messages=(Message("user", "Summarise the ticket in one line."),), max_tokens=64)
PRICE = Price.of("0.25", "1.25")


async def measure(
    guard: KeyGuard, secret: str, n: int, concurrency: int
) -> tuple[float, float, float]:
    """p50 of the admission (on the request path), p50 of admission + queueing the settle
    (sent to the shared state in batches, off the request path), and requests/s at
    ``concurrency``."""
    auth = f"Bearer {secret}"
    admits: list[float] = []

    async def one() -> float:
        t0 = time.perf_counter()
        admission = await guard.admit(
            auth, REQ, policy="rules", models=("m",), plans=[(PaidCall("m", PRICE),)]
        )
        admits.append(time.perf_counter() - t0)
        guard.finish_soon(admission, Decimal("0.00001"))  # as the gateway does: batched
        return time.perf_counter() - t0

    for _ in range(50):
        await one()
    admits.clear()
    latencies = [await one() for _ in range(n)]
    admit_p50 = statistics.median(admits) * 1000
    t0 = time.perf_counter()
    per_worker = n // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = per_worker * concurrency / (time.perf_counter() - t0)
    return admit_p50, statistics.median(latencies) * 1000, rate


async def redis_cpu(client: Redis) -> float:
    """The Redis server's CPU seconds so far (user + system, every thread)."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "t.db") as store:
        keys = KeyStore(store)
        secret, _ = keys.create("bench", budget_usd=Decimal("1000000"), period=Period.DAY,
                                rpm=10_000_000, tpm=10_000_000_000)  # fmt: skip
        local = LocalGate(LocalKeyEvents(), MemoryRateLimiter(), MemoryBudgets())
        memory = KeyGuard(CachedKeys(keys), local)
        admit, p50, rate = await measure(memory, secret, args.requests, args.concurrency)
        print(f"in memory : admit p50 {admit:.3f} ms, admit + settle p50 {p50:.3f} ms, "
              f"{rate:,.0f} req/s at c={args.concurrency}")  # fmt: skip
        try:
            from redis.asyncio import Redis

            from turnout.limits.gate_redis import RedisGate
        except ImportError:
            print("redis-py is not installed: no Redis figures")
            return
        client = Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1)
        prefix = f"turnout-bench:{uuid.uuid4().hex}"
        gate = RedisGate(client, prefix=prefix)
        await gate.prepare()
        shared = KeyGuard(CachedKeys(keys), gate)
        try:
            cpu0 = await redis_cpu(client)
            admit, p50, rate = await measure(shared, secret, args.requests, args.concurrency)
            await gate.budgets.aclose()  # the last settle batch, counted too
            redis_us = (await redis_cpu(client) - cpu0) / (50 + 2 * args.requests) * 1e6
            t0 = time.perf_counter()
            for _ in range(500):
                await client.ping()
            ping = (time.perf_counter() - t0) / 500 * 1000
            print(f"Redis     : admit p50 {admit:.3f} ms, admit + settle p50 {p50:.3f} ms, "
                  f"{rate:,.0f} req/s at c={args.concurrency} (one PING round trip here: "
                  f"{ping:.3f} ms)")  # fmt: skip
            print(f"  Redis CPU per request (admit + settle, INFO cpu): {redis_us:.0f} µs")
            print(f"  requests decided locally (Redis away): {gate.degrader.degraded}")
        finally:
            await gate.aclose()
            keys_ = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys_:
                await client.delete(*keys_)
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
