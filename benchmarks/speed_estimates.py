"""What keeping the speed estimates costs per attempt (issue 13: under 5 us).

Times the one call the attempt runner makes after a successful attempt,
``SpeedBoard.observe`` (a lock, a dictionary look-up, a few float operations), in
batches of 1000 calls over 8 models, streamed and unstreamed samples mixed; and
``snapshot()`` (what ``Executor.health()`` adds to every decision) right after a
change (rebuilt) and unchanged (reused). With ``--redis`` the Redis-shared board is
timed too (recording queues the sample; the flush runs in the background, on a
real Redis at 127.0.0.1:6379 under a throw-away key prefix).

    .venv/bin/python benchmarks/speed_estimates.py [--batches 300] [--redis]

Prints the median and p99 per call, over batches (per-call times are batch time /
batch size, so the p99 is of batch means). A control row of fixed work of about the
same size shows how much of the p99 is the machine's own noise (other processes
sharing the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import uuid
from collections.abc import Callable

from turnout.execution.speed import SpeedBoard

MODELS = [f"model-{i}" for i in range(8)]
BATCH = 1000


def _per_call(fn: Callable[[int], None], batches: int) -> list[float]:
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        fn(BATCH)
        out.append((time.perf_counter() - t0) / BATCH * 1e6)
    return out


def _observe_loop(board: SpeedBoard) -> Callable[[int], None]:
    def run(n: int) -> None:
        observe = board.observe
        for i in range(n):
            m = MODELS[i & 7]
            if i & 1:
                observe(m, 0.8, 0.2, 120, 1.0e9 + i)
            else:
                observe(m, 0.8, None, 120, 1.0e9 + i)

    return run


def _control(n: int) -> None:
    """The machine's own noise: a dictionary look-up and a few float operations per call."""
    d = {m: [0.5, 0.01] for m in MODELS}
    for i in range(n):
        cell = d[MODELS[i & 7]]
        cell[0] += 0.2 * (0.8 - cell[0])
        cell[1] += 0.2 * (0.01 - cell[1])


def _report(name: str, us: list[float]) -> None:
    us = sorted(us)
    p99 = us[min(len(us) - 1, int(0.99 * len(us)))]
    print(f"{name:<40} median {statistics.median(us):6.2f} us   p99 {p99:6.2f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--redis", action="store_true")
    args = ap.parse_args()
    gc.disable()
    board = SpeedBoard()
    _per_call(_observe_loop(board), 20)  # warm up
    _report("observe (in memory)", _per_call(_observe_loop(board), args.batches))
    _report("control: fixed work of similar size", _per_call(_control, args.batches))

    def changed(n: int) -> None:
        for i in range(n):
            board.observe("model-0", 0.5, None, 3, 1.0e9 + i)
            board.snapshot()

    def unchanged(n: int) -> None:
        for _ in range(n):
            board.snapshot()

    _report("observe + snapshot (rebuilt, 8 models)", _per_call(changed, args.batches // 3))
    _report("snapshot (unchanged)", _per_call(unchanged, args.batches))
    if args.redis:
        asyncio.run(_redis(args.batches))


async def _redis(batches: int) -> None:
    from redis.asyncio import Redis

    from turnout.execution.speed_redis import RedisSpeedBoard

    client = Redis(host="127.0.0.1", port=6379, socket_timeout=1.0)
    prefix = f"turnout-bench:{uuid.uuid4().hex}:speed"
    board = RedisSpeedBoard(client, prefix=prefix, flush_s=0.05)
    run = _observe_loop(board)
    us: list[float] = []
    for _ in range(batches):
        t0 = time.perf_counter()
        run(BATCH)
        us.append((time.perf_counter() - t0) / BATCH * 1e6)
        await asyncio.sleep(0)  # let a due flush run, as an event loop would between calls
    await board.aclose()
    _report("observe (redis-shared, flush 50 ms)", us)
    await client.delete(prefix)
    await client.aclose()


if __name__ == "__main__":
    main()
