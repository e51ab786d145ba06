"""Which server stack should `turnout serve` run on? Measure, don't guess.

A minimal pass-through (read the POSTed JSON, forward it to a mock upstream with one
shared aiohttp client session, return the upstream's answer) on three stacks, one
worker each, in one run:

* ``aiohttp``   aiohttp.web on uvloop;
* ``starlette`` Starlette on uvicorn (uvloop + httptools);
* ``granian``   a bare RSGI app on granian (uvloop).

The mock upstream is a bare aiohttp.web server (uvloop) in its own process that
answers every POST with a fixed chat.completion body. For each stack the script
measures, against the upstream directly in the same round:

* concurrency 1: latency p50 / p99, and the added latency (stack minus direct);
* concurrency 16: requests/s over a fixed time window.

    .venv/bin/python benchmarks/gateway_stack.py [--requests 2000] [--seconds 5]
        [--rounds 3] [--stacks aiohttp,starlette,granian] [--json out.json]

Needs ``pip install starlette uvicorn httptools granian uvloop`` for the other stacks
(a stack that is not installed is skipped and said so).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REQUEST = json.dumps(
    {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Does this message mention a refund? Answer yes or no."},
        ],
        "max_tokens": 16,
    }
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "No."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
    }
).encode()
JSON = "application/json"
NEEDS = {"aiohttp": ("aiohttp",), "starlette": ("starlette", "uvicorn"), "granian": ("granian",)}


# -- servers (each runs in its own process) ----------------------------------------------


def serve_upstream(port: int) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type=JSON)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    _use_uvloop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_aiohttp(port: int, upstream: str) -> None:
    from aiohttp import web

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession()

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        async with session.post(upstream, data=body, headers={"content-type": JSON}) as r:
            data = await r.read()
        return web.Response(body=data, status=r.status, content_type=JSON)

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/chat/completions", forward)
    _use_uvloop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def starlette_app() -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    upstream = os.environ["GATEWAY_STACK_UPSTREAM"]
    state: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        state["session"] = aiohttp.ClientSession()
        yield
        await state["session"].close()

    async def forward(request: Request) -> Response:
        body = await request.body()
        async with state["session"].post(upstream, data=body, headers={"content-type": JSON}) as r:
            data = await r.read()
        return Response(data, status_code=r.status, media_type=JSON)

    return Starlette(
        routes=[Route("/v1/chat/completions", forward, methods=["POST"])], lifespan=lifespan
    )


class RSGIApp:
    """A bare RSGI app: granian's own interface, no framework."""

    def __init__(self) -> None:
        self.upstream = os.environ.get("GATEWAY_STACK_UPSTREAM", "")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Any, protocol: Any) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        body = await protocol()
        async with self.session.post(self.upstream, data=body, headers={"content-type": JSON}) as r:
            data = await r.read()
        protocol.response_bytes(r.status, [("content-type", JSON)], data)


rsgi_app = RSGIApp()


def _use_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(stack: str, port: int, upstream: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "GATEWAY_STACK_UPSTREAM": upstream}
    me = str(Path(__file__).resolve())
    if stack == "starlette":
        cmd = [sys.executable, "-m", "uvicorn", "gateway_stack:starlette_app", "--factory"]
        cmd += ["--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level"]
        cmd += ["warning"]
        cmd += ["--http", "httptools"] if importlib.util.find_spec("httptools") else []
    elif stack == "granian":
        cmd = [sys.executable, "-m", "granian", "--interface", "rsgi", "--port", str(port)]
        cmd += ["--workers", "1", "--loop", "uvloop", "--log-level", "warning"]
        cmd += ["gateway_stack:rsgi_app"]
    else:
        cmd = [sys.executable, me, "--serve", stack, "--port", str(port), "--upstream", upstream]
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=subprocess.DEVNULL)
    _wait_listening(port, proc)
    return proc


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server on port {port} did not start")


# -- load ---------------------------------------------------------------------------------


async def latencies(url: str, session: aiohttp.ClientSession, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with session.post(url, data=REQUEST, headers={"content-type": JSON}) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append(time.perf_counter() - t0)
    return out


async def throughput(url: str, session: aiohttp.ClientSession, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.post(url, data=REQUEST, headers={"content-type": JSON}) as r:
                await r.read()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    return done / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(
    stacks: list[str], n: int, seconds: float, rounds: int
) -> dict[str, dict[str, float]]:
    """Every stack, ``rounds`` times in turn (drift on a shared machine hits them all);
    the median of each figure over the rounds."""
    up_port = free_port()
    upstream_proc = start("upstream", up_port)
    direct = f"http://127.0.0.1:{up_port}/v1/chat/completions"
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in ["direct", *stacks]}
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for stack in stacks:
            port = free_port()
            procs[stack] = (
                start(stack, port, direct),
                f"http://127.0.0.1:{port}/v1/chat/completions",
            )
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            for url in [direct, *(u for _, u in procs.values())]:
                await latencies(url, session, 200)  # warm up
            for _ in range(rounds):
                rows["direct"].append(await _one(direct, session, n, seconds, None))
                for stack, (_, url) in procs.items():
                    base = statistics.median(await latencies(direct, session, n // 4))
                    rows[stack].append(await _one(url, session, n, seconds, base))
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait()
        upstream_proc.terminate()
        upstream_proc.wait()
    return {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in rows.items()
    }


async def _one(
    url: str, session: aiohttp.ClientSession, n: int, seconds: float, base: float | None
) -> dict[str, float]:
    lat = await latencies(url, session, n)
    row = {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
    if base is not None:
        row["direct_p50_ms"] = base * 1000
        row["added_p50_ms"] = row["p50_ms"] - base * 1000
    row["rps_c16"] = await throughput(url, session, seconds)
    return row


def available(stack: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in NEEDS[stack])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stacks", default="aiohttp,starlette,granian")
    parser.add_argument("--json")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_upstream(args.port) if args.serve == "upstream" else serve_aiohttp(
            args.port, args.upstream
        )
        return
    stacks = []
    for stack in args.stacks.split(","):
        if available(stack):
            stacks.append(stack)
        else:
            print(f"skipped {stack}: not installed ({', '.join(NEEDS[stack])})")
    _use_uvloop()
    results = asyncio.run(measure(stacks, args.requests, args.seconds, args.rounds))
    print(f"{'stack':<10} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'req/s c16':>10}")
    for name, row in results.items():
        added = f"{row['added_p50_ms']:10.3f}" if "added_p50_ms" in row else f"{'-':>10}"
        print(
            f"{name:<10} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {added} {row['rps_c16']:10.0f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
