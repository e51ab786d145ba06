"""Which async HTTP client should the OpenAI provider use? Measure, don't guess.

Starts the fake OpenAI server in a separate process (loopback only), then sends
non-streaming chat completions through turnout's own pool (``turnout http1``, what the
provider uses), ``aiohttp.ClientSession`` (with only a connect timeout, and with its
read and total timeouts) and ``httpx.AsyncClient`` at several concurrencies, each run
bounded by a request count and a time limit. Reports requests/s, per-call latency (mean,
p50, p99) and the client process's CPU time per request (what limits one gateway core).

    .venv/bin/python benchmarks/http_clients.py [--requests 3000] [--max-seconds 5]
        [--concurrency 1,16,64] [--json out.json] [--httpx-best-case]

See also encode/httpx#3215 (httpx.AsyncClient slower than aiohttp under concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import httpx
from yarl import URL

from turnout.providers import http1

BODY = json.dumps(
    {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Does this message mention a refund? Answer yes or no."},
        ],
        "max_tokens": 16,
    }
).encode()
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}

Call = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Result:
    client: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float


def start_server() -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m turnout.testing.fake_openai --port 0``; return it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout.testing.fake_openai", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


async def run_load(call: Call, concurrency: int, count: int, max_seconds: float) -> Result:
    latencies: list[float] = []
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()
    n = len(latencies)
    return Result(
        client="",
        concurrency=concurrency,
        requests=n,
        seconds=round(elapsed, 3),
        rps=round(n / elapsed, 1),
        mean_ms=round(statistics.fmean(latencies) * 1000, 3),
        p50_ms=round(latencies[n // 2] * 1000, 3),
        p99_ms=round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3),
        cpu_us_per_req=round(cpu / n * 1e6, 1),
    )


async def bench_aiohttp(url: str, concurrency: int, count: int, max_seconds: float) -> Result:
    """As the provider calls: aiohttp keeps only the connect timeout (read and total are
    one timer per call of the provider's own)."""
    return await _aiohttp(url, concurrency, count, max_seconds, aiohttp_timeouts=False)


async def bench_aiohttp_timeouts(
    url: str, concurrency: int, count: int, max_seconds: float
) -> Result:
    """With aiohttp's own read and total timeouts, as the provider called before."""
    return await _aiohttp(url, concurrency, count, max_seconds, aiohttp_timeouts=True)


async def _aiohttp(
    url: str, concurrency: int, count: int, max_seconds: float, *, aiohttp_timeouts: bool
) -> Result:
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1))
    timeout = (
        aiohttp.ClientTimeout(total=300, sock_connect=5, sock_read=60)
        if aiohttp_timeouts
        else aiohttp.ClientTimeout(total=None, sock_connect=5)
    )
    async with aiohttp.ClientSession(
        connector=connector, headers=HEADERS, timeout=timeout
    ) as session:

        async def call() -> None:
            async with session.post(url, data=BODY) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                json.loads(data)

        await run_load(call, concurrency, min(200, count), max_seconds)  # warm the pool
        result = await run_load(call, concurrency, count, max_seconds)
    name = "aiohttp+timeouts" if aiohttp_timeouts else f"aiohttp {aiohttp.__version__}"
    return Result(**{**asdict(result), "client": name})


async def bench_httpx(url: str, concurrency: int, count: int, max_seconds: float) -> Result:
    limits = httpx.Limits(max_connections=max(concurrency, 1), max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, headers=HEADERS, timeout=30) as client:

        async def call() -> None:
            resp = await client.post(url, content=BODY)
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            json.loads(resp.content)

        await run_load(call, concurrency, min(200, count), max_seconds)
        result = await run_load(call, concurrency, count, max_seconds)
    return Result(**{**asdict(result), "client": f"httpx {httpx.__version__}"})


async def bench_http1(url: str, concurrency: int, count: int, max_seconds: float) -> Result:
    """turnout's own pool (:mod:`turnout.providers.http1`), as the OpenAI provider calls."""
    target = URL(url)
    host, port = target.raw_host or "127.0.0.1", target.port or 80
    head = http1.request_head(target.raw_path, host, port, 80, HEADERS)
    pool = http1.Pool("http", host, port, limit=max(concurrency, 1))

    async def call() -> None:
        async with await pool.request(head, BODY) as resp:
            data = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            json.loads(data)

    try:
        await run_load(call, concurrency, min(200, count), max_seconds)
        result = await run_load(call, concurrency, count, max_seconds)
    finally:
        await pool.aclose()
    return Result(**{**asdict(result), "client": "turnout http1"})


def table(results: list[Result]) -> str:
    head = f"{'client':<18}{'conc':>5}{'reqs':>7}{'req/s':>9}{'mean ms':>9}"
    head += f"{'p50 ms':>9}{'p99 ms':>9}{'cpu us/req':>11}"
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.client:<18}{r.concurrency:>5}{r.requests:>7}{r.rps:>9.0f}{r.mean_ms:>9.3f}"
            f"{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}{r.cpu_us_per_req:>11.0f}"
        )
    return "\n".join(rows)


async def main_async(args: argparse.Namespace, base_url: str) -> list[Result]:
    url = base_url + "/chat/completions"
    results: list[Result] = []
    for concurrency in args.concurrency:
        for bench in (bench_http1, bench_aiohttp, bench_aiohttp_timeouts, bench_httpx):
            results.append(await bench(url, concurrency, args.requests, args.max_seconds))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per client and concurrency")
    parser.add_argument("--max-seconds", type=float, default=5.0, help="per client and concurrency")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--httpx-best-case",
        action="store_true",
        help="cache httpcore's failed `import sniffio` (it retries the import on every call "
        "when sniffio is not installed, which costs httpx about a third of its CPU time)",
    )
    args = parser.parse_args()
    if args.httpx_best_case and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    proc, base_url = start_server()
    try:
        results = asyncio.run(main_async(args, base_url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print()
    print(table(results))
    if args.json:
        out: dict[str, Any] = {"base_url": base_url, "results": [asdict(r) for r in results]}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
