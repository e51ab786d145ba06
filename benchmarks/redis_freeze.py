"""What a gateway request waits while Redis is frozen: a `turnout serve` with virtual
keys and ``executor.state: redis`` on a redis-server of this script's own (its own
port; the machine's Redis is left alone), under steady traffic, with that Redis stopped
by SIGSTOP for a while (it keeps its connections open and answers nothing, as a frozen
server or a blackholed network does) and then continued.

Printed per second of traffic: requests, statuses, p50 and the slowest wait.

    .venv/bin/python benchmarks/redis_freeze.py [--rate 40] [--seconds 12]
        [--freeze-at 3] [--freeze-for 6] [--redis-timeout 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from turnout.keys import KeyStore
from turnout.testing import FakeOpenAI
from turnout.tracing.sqlite import SQLiteStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: object, what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=40, help="requests a second")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--freeze-at", type=float, default=3)
    parser.add_argument("--freeze-for", type=float, default=6)
    parser.add_argument("--redis-timeout", type=float, default=0.5)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="redis-freeze-"))
    redis_port, port = free_port(), free_port()
    redis = subprocess.Popen(
        [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    serve: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", redis_port), 0.2), "redis")
        with FakeOpenAI.start_in_thread(reply="ok") as upstream:
            config = tmp / "turnout.yaml"
            config.write_text(
                "providers:\n"
                f"  up: {{kind: openai, base_url: '{upstream.base_url}', api_key_env: UP_KEY}}\n"
                "models:\n  small: {provider: up, id: small-1, tier: efficient,"
                " price: {input: 1, output: 2}}\n"
                "policies:\n  cheap: {kind: static, model: small}\n"
                f"executor: {{state: redis, redis_url: 'redis://127.0.0.1:{redis_port}/0',"
                f" redis_timeout_s: {args.redis_timeout}}}\n"
                "gateway: {auth: keys, default_policy: cheap}\n"
            )
            store = tmp / "traces.db"
            with SQLiteStore(store) as st:
                secret, _ = KeyStore(st).create("bench", rpm=1_000_000)
            turnout = shutil.which("turnout", path=str(Path(sys.executable).parent)) or "turnout"
            serve = subprocess.Popen(
                [turnout, "serve", "-c", str(config), "--port", str(port), "--store", str(store)],
                env={**os.environ, "UP_KEY": "sk-up"}, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: urllib.request.urlopen(f"{url}/health/ready", timeout=1), "serve")
            results = asyncio.run(traffic(url, secret, redis.pid, args))
    finally:
        os.kill(redis.pid, signal.SIGCONT)
        for proc in (serve, redis):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Redis frozen from {args.freeze_at:g} s to {args.freeze_at + args.freeze_for:g} s; "
          f"{args.rate:g} requests a second; redis_timeout_s {args.redis_timeout:g}")  # fmt: skip
    for second in range(int(args.seconds)):
        xs = [r for r in results if second <= r[0] < second + 1]
        if not xs:
            continue
        waits = sorted(r[2] for r in xs)
        statuses = ",".join(str(s) for s in sorted({r[1] for r in xs}))
        p50, slowest = 1000 * statistics.median(waits), 1000 * waits[-1]
        print(f"  t={second:2d} s  {len(xs):3d} requests  status {statuses}  "
              f"p50 {p50:7.1f} ms  max {slowest:7.1f} ms")  # fmt: skip


async def traffic(
    url: str, secret: str, redis_pid: int, args: argparse.Namespace
) -> list[tuple[float, int, float]]:
    body = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {secret}"}
    out: list[tuple[float, int, float]] = []
    async with aiohttp.ClientSession() as session:
        t0 = time.monotonic()

        async def one() -> None:
            started = time.monotonic()
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers=headers) as r:  # fmt: skip
                await r.read()
                out.append((started - t0, r.status, time.monotonic() - started))

        tasks = []
        frozen = thawed = False
        while (now := time.monotonic() - t0) < args.seconds:
            if now >= args.freeze_at and not frozen:
                os.kill(redis_pid, signal.SIGSTOP)
                frozen = True
            if now >= args.freeze_at + args.freeze_for and not thawed:
                os.kill(redis_pid, signal.SIGCONT)
                thawed = True
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*tasks)
    return out


if __name__ == "__main__":
    main()
