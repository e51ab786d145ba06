"""The Python CPU a virtual key costs a request in the gateway's process: the key looked
up in its cache, the admission through the Redis gate (keys, arguments, the decision and
its headers) and the settle queued and batched after the answer, with the budget gauge.
Redis's replies are canned (no network, no Redis), so the figure is the event loop's own
work and repeats closely from run to run; benchmarks/key_guard.py measures the same path
against the real Redis, and benchmarks/team_gateway.py end to end.

Per request: the calling thread's CPU (``time.thread_time``) over ``--requests``
admissions and settles, the median of ``--rounds``.

    .venv/bin/python benchmarks/key_cpu.py [--requests 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis

from turnout.keys import KeyStore, Period
from turnout.keys.cache import CachedKeys
from turnout.keys.guard import KeyGuard
from turnout.limits.budget import PaidCall
from turnout.limits.gate_redis import RedisGate
from turnout.limits.lua import Call, Lua
from turnout.observability.metrics import Metrics
from turnout.pricing.cost import Price
from turnout.tracing.sqlite import SQLiteStore
from turnout.types import ChatRequest, Message

REQ = ChatRequest(messages=(Message("user", "Refund? yes or no."),), max_tokens=16)
PLANS = [(PaidCall("bench", Price.of(Decimal("0.15"), Decimal("0.6"))),)]
# the gate script's reply: generation, the rate decision (admitted), the budget hold
GATE_REPLY = [0, [1, 5, 100, 0, 0, 59000, 59000], [1, b"1000000", b"2000"]]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "t.db") as store:
        secret, _ = KeyStore(store).create(
            "bench", rpm=10_000_000, tpm=10_000_000_000, budget_usd=Decimal(1_000_000),
            period=Period.DAY,
        )  # fmt: skip
        client = Redis(port=1, socket_timeout=0.5)  # as the gateway opens it; never connected
        gate = RedisGate(client, prefix="turnout-bench:canned", timeout_s=0.5)
        pipelined = gate._pipelined
        assert pipelined is not None, "hiredis is needed (the redis extra)"

        async def evalsha(script: Lua, keys: Sequence[str], args: Sequence[Any]) -> Any:
            return GATE_REPLY

        async def evalsha_many(script: Lua, calls: Sequence[Call]) -> list[Any]:
            return [b"1000000" for _ in calls]

        def send_now(*args: Any, at_once: bool = True) -> asyncio.Future[Any]:
            # the gate sent at once (or with the loop's turn), answered
            future = asyncio.get_running_loop().create_future()
            future.set_result(GATE_REPLY)
            return future

        pipelined.evalsha = evalsha  # type: ignore[method-assign]
        pipelined.evalsha_many = evalsha_many  # type: ignore[method-assign]
        pipelined.send_now = send_now  # type: ignore[method-assign]
        guard = KeyGuard(CachedKeys(KeyStore(store)), gate, metrics=Metrics())
        auth = f"Bearer {secret}"

        async def requests(n: int) -> None:
            for i in range(n):
                admission = await guard.admit(auth, REQ, policy="fast", models=(), plans=PLANS)
                guard.finish_soon(admission, Decimal("0.00001"))
                if i % 16 == 0:
                    await asyncio.sleep(0)  # the loop turns: settle batches go out
            await asyncio.sleep(0.01)

        await requests(2000)  # warm: the key cached, the code paths taken
        per_request = []
        for _ in range(args.rounds):
            cpu = time.thread_time()
            await requests(args.requests)
            per_request.append((time.thread_time() - cpu) / args.requests * 1e6)
        print(
            f"Python CPU per request (admit + settle, Redis replies canned): "
            f"{statistics.median(per_request):.1f} µs (median of {args.rounds}, "
            f"min {min(per_request):.1f})"
        )
        await gate.aclose()
        await client.aclose()


if __name__ == "__main__":
    uvloop.run(main())
