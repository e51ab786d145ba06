"""A soak of the team gateway: ``turnout serve`` with keys (rate limits and a budget in
the real Redis), tracing to SQLite, at a steady request rate for a while.

Open-loop load (a request every 1/rate s, whatever the answers do), half JSON and half
32-chunk streams, a fresh ``user`` per request through an ``ab`` policy that sends 1%
of requests to a model whose upstream always answers 503 (the injected faults). Every
``--window`` seconds: the server's RSS and the window's p50 / p99. At the end the
server is stopped with SIGTERM (drain, flush) and the trace rows are counted.

Reports: RSS growth from the end of the warm-up (the first window) to the end, p99 per
window, errors by status (only the injected 502s are expected), trace rows = requests.

    .venv/bin/python benchmarks/team_soak.py [--minutes 20] [--rate 200] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from team_gateway import bench_env, drop_prefix, stop

WORDS = " ".join(f"w{i}" for i in range(32))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("not ready")


async def load(
    url: str, key: str, rate: float, seconds: float, window: float, pid: int
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"}
    statuses: Counter[int] = Counter()
    windows: list[dict[str, float]] = []
    current: list[float] = []
    answered = 0
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(stream: bool) -> None:
            nonlocal answered
            body = {"model": "mixed", "user": uuid.uuid4().hex, "max_tokens": 64,
                    "messages": [{"role": "user", "content": "Summarise the ticket."}]}  # fmt: skip
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            t0 = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
                answered += 1
            current.append(time.perf_counter() - t0)

        start = time.perf_counter()
        next_window = start + window
        i = 0
        while (now := time.perf_counter()) < start + seconds:
            due = start + i / rate
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.ensure_future(one(stream=i % 2 == 1))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            if time.perf_counter() >= next_window:
                lat = sorted(current)
                windows.append({
                    "t_s": round(time.perf_counter() - start),
                    "rss_mb": rss_mb(pid),
                    "p50_ms": statistics.median(lat) * 1000 if lat else 0.0,
                    "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else 0.0,
                    "requests": len(lat),
                })  # fmt: skip
                print(json.dumps(windows[-1]), flush=True)
                current.clear()
                next_window += window
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"sent": i, "answered": answered, "statuses": dict(statuses), "windows": windows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="team-soak-"))
    prefix = f"turnout-soak:{uuid.uuid4().hex}"
    env = bench_env()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "turnout.testing.fake_openai", "--port", str(port),
             "--reply", WORDS], env=env, stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        upstream = f"http://127.0.0.1:{port}/v1"
        cfg = tmp / "turnout.yaml"
        cfg.write_text(
            "providers:\n"
            f"  mock: {{kind: openai, base_url: '{upstream}', api_key_env: TURNOUT_BENCH_KEY}}\n"
            "models:\n"
            "  steady: {provider: mock, id: bench-model, tier: efficient,"
            " price: {input: 0.15, output: 0.6}}\n"
            "  flaky: {provider: mock, id: 'fault:503', tier: efficient,"
            " price: {input: 0.15, output: 0.6}}\n"
            "policies:\n"
            "  mixed: {kind: ab, key: user, variants: {steady: 99, flaky: 1}}\n"
            "executor: {retries: {max_attempts: 1}, breaker: {enabled: false},"
            f" cache: {{exact: {{enabled: false}}}}, state: redis, redis_prefix: '{prefix}'}}\n"
            "gateway: {auth: keys, default_policy: mixed}\n"
        )
        store = tmp / "traces.db"
        from turnout.keys import KeyStore, Period
        from turnout.tracing.sqlite import SQLiteStore

        with SQLiteStore(store) as st:
            key, _ = KeyStore(st).create(
                "soak",
                rpm=10_000_000,
                tpm=10_000_000_000,
                budget_usd=Decimal(1_000_000),
                period=Period.DAY,
            )
        p = free_port()
        turnout = shutil.which("turnout", path=str(Path(sys.executable).parent)) or "turnout"
        server = subprocess.Popen(
            [turnout, "serve", "-c", str(cfg), "--port", str(p), "--store", str(store)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(server)
        base = f"http://127.0.0.1:{p}"
        wait_ready(base, server)
        result = asyncio.run(load(f"{base}/v1/chat/completions", key, args.rate,
                                  args.minutes * 60, args.window, server.pid))  # fmt: skip
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        with sqlite3.connect(store) as conn:
            rows = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        w = result["windows"]
        growth = (w[-1]["rss_mb"] / w[0]["rss_mb"] - 1) * 100 if len(w) > 1 else 0.0
        print(json.dumps({k: v for k, v in result.items() if k != "windows"}))
        p99s = ", ".join(f"{x['p99_ms']:.0f}" for x in w)
        print(f"RSS {w[0]['rss_mb']:.1f} MB after warm-up -> {w[-1]['rss_mb']:.1f} MB at the "
              f"end ({growth:+.1f}%); p99 per window: {p99s} ms")  # fmt: skip
        print(f"trace rows {rows} / requests answered {result['answered']}; statuses "
              f"{result['statuses']} (502 = the injected 1%)")  # fmt: skip
    finally:
        stop(procs, timeout=20)
        drop_prefix(prefix)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
