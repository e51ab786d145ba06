"""What does `turnout serve` add to a call? Measured side by side in one run.

Four ways to reach the same mock upstream (the fake OpenAI server in its own
process, answering at once):

* ``direct``       the upstream itself (the limit);
* ``passthrough``  a minimal aiohttp.web + uvloop pass-through (the Python ceiling):
                   forward the body, copy the answer back (streams chunk by chunk);
* ``turnout``      ``turnout serve`` with a static policy, tracing on (SQLite);
* ``litellm``      LiteLLM's proxy (``litellm --config``), when ``--litellm BIN``
                   points at an installed ``litellm`` (its own venv).

Each server is one process, one worker. Figures, medians over ``--rounds``:

* concurrency 1: JSON latency p50 / p99 and the added p50 / p99 over direct;
  a 32-chunk stream's total time and time to first byte (TTFB), added over direct;
* concurrency 16: JSON requests/s and streams/s;
* peak RSS of each server process (VmHWM) after the load, and its CPU time per request
  answered (JSON and streams together): the figure a loaded, shared machine bends least;
* for turnout: trace rows (runs) against requests sent.

With ``--native`` the upstream is nginx (static answers) and the concurrency-16 load
is wrk, so that the throughput figures measure the servers and not the Python fake
upstream and client, which take most of a core between them at these rates (see
``native_rig.py``; needs ``nginx`` and ``wrk``).

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 1000] [--seconds 5]
        [--rounds 3] [--litellm /tmp/litellm-venv/bin/litellm] [--native] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from native_rig import NginxUpstream, free_port, wrk_rate
from native_rig import available as native_available

WORDS = " ".join(f"w{i}" for i in range(32))  # the fake server streams one chunk a word
MESSAGES = [{"role": "user", "content": "Does this message mention a refund? Answer yes or no."}]
JSON_BODY = json.dumps({"model": "bench", "messages": MESSAGES, "max_tokens": 16}).encode()
STREAM_BODY = json.dumps(
    {
        "model": "bench-stream",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
).encode()
MASTER_KEY = "sk-bench-0123456789abcdef0123456789abcdef"  # LiteLLM refuses to start without one
HEADERS = {"content-type": "application/json", "authorization": f"Bearer {MASTER_KEY}"}
SENT: dict[str, int] = {}  # answered requests per URL (turnout's must all be traced)


# -- the minimal pass-through (run in its own process with --serve-passthrough) -----------


def serve_passthrough(port: int, upstream: str) -> None:
    """Forward ``POST {path}`` to the upstream's ``{path}`` (``upstream``: scheme and host)."""
    import uvloop
    from aiohttp import web

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession()

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        async with session.post(upstream + request.path, data=body, headers=HEADERS) as r:
            if r.content_type != "text/event-stream":
                return web.Response(
                    body=await r.read(), status=r.status, content_type=r.content_type
                )
            out = web.StreamResponse(status=r.status)
            out.content_type = "text/event-stream"
            await out.prepare(request)
            async for piece in r.content.iter_any():
                await out.write(piece)
            await out.write_eof()
            return out

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/chat/completions", forward)
    app.router.add_post("/stream/v1/chat/completions", forward)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- processes -----------------------------------------------------------------------------


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, limit: float = 60) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"{name} did not start in {limit:.0f} s")


def peak_rss_mb(pid: int) -> float:
    """VmHWM of the process and its children (LiteLLM's proxy may fork)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its children so far."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    kids = [int(k) for k in found]
    return kids + [g for k in kids for g in _children(k)]


class Servers:
    def __init__(self, litellm: str | None, skip: set[str], native: bool) -> None:
        self.skip = skip
        self.native = native
        self.tmp = Path(tempfile.mkdtemp(prefix="gw-overhead-"))
        self.litellm = litellm
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}
        """JSON: POST {url}/chat/completions."""
        self.stream_urls: dict[str, str] = {}
        """Streams: POST {url} (a model of its own upstream at /stream/v1 when native)."""
        self.startup_s: dict[str, float] = {}
        self.nginx: NginxUpstream | None = None

    def start(self) -> None:
        if self.native:
            self.nginx = NginxUpstream().__enter__()
            root = f"http://127.0.0.1:{self.nginx.port}"
            self.urls["direct"] = self.nginx.url
            self.stream_urls["direct"] = self.nginx.stream_url + "/chat/completions"
            self.startup_s["direct"] = 0.0
            stream_base = self.nginx.stream_url
        else:
            port = free_port()
            fake = [sys.executable, "-m", "turnout.testing.fake_openai", "--port", str(port)]
            self._spawn("direct", [*fake, "--reply", WORDS], port)
            root = f"http://127.0.0.1:{port}"
            stream_base = root + "/v1"
        upstream = root + "/v1"
        port = free_port()
        me = [sys.executable, __file__, "--serve-passthrough", str(port), "--upstream", root]
        self._spawn("passthrough", me, port)
        if "passthrough" in self.urls and self.native:
            self.stream_urls["passthrough"] = f"http://127.0.0.1:{port}/stream/v1/chat/completions"
        config = self.tmp / "turnout.yaml"
        config.write_text(
            "providers:\n"
            f"  mock: {{kind: openai, base_url: '{upstream}', api_key_env: TURNOUT_BENCH_KEY}}\n"
            f"  mock_stream: {{kind: openai, base_url: '{stream_base}',"
            " api_key_env: TURNOUT_BENCH_KEY}\n"
            "models:\n"
            "  bench: {provider: mock, id: bench-model, tier: efficient,"
            " price: {input: 0.15, output: 0.6}}\n"
            "  bench-stream: {provider: mock_stream, id: bench-model, tier: efficient,"
            " price: {input: 0.15, output: 0.6}}\n"
            "policies:\n  fast: {kind: static, model: bench}\n"
            "executor: {cache: {exact: {enabled: false}}}\n"
            "gateway: {default_policy: fast}\n"
        )
        port = free_port()
        turnout = shutil.which("turnout", path=str(Path(sys.executable).parent)) or "turnout"
        cmd = [turnout, "serve", "-c", str(config), "--port", str(port)]
        self._spawn("turnout", [*cmd, "--store", str(self.tmp / "traces.db")], port)
        if self.litellm:
            lite = self.tmp / "litellm.yaml"
            lite.write_text(
                "model_list:\n  - model_name: bench\n    litellm_params:\n"
                f"      model: openai/bench-model\n      api_base: {upstream}\n"
                "      api_key: sk-bench\n"
                "  - model_name: bench-stream\n    litellm_params:\n"
                f"      model: openai/bench-model\n      api_base: {stream_base}\n"
                "      api_key: sk-bench\n"
                "litellm_settings: {drop_params: true, telemetry: false}\n"
                f"general_settings: {{master_key: {MASTER_KEY}}}\n"
            )
            port = free_port()
            cmd = [self.litellm, "--config", str(lite), "--port", str(port), "--num_workers", "1"]
            self._spawn("litellm", cmd, port, limit=180)

    def _spawn(self, name: str, cmd: list[str], port: int, limit: float = 60) -> None:
        if name in self.skip:
            return
        env = {**os.environ, "TURNOUT_BENCH_KEY": "sk-bench-0123456789"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs[name] = proc
        self.startup_s[name] = wait_port(port, proc, name, limit)
        self.urls[name] = f"http://127.0.0.1:{port}/v1"
        self.stream_urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.nginx is not None:
            self.nginx.__exit__(None, None, None)

    def trace_runs(self) -> int:
        db = self.tmp / "traces.db"
        with sqlite3.connect(db) as conn:
            return int(conn.execute("select count(*) from runs").fetchone()[0])


# -- load ----------------------------------------------------------------------------------


async def one_json(session: aiohttp.ClientSession, name: str, url: str) -> float:
    t0 = time.perf_counter()
    async with session.post(url, data=JSON_BODY, headers=HEADERS) as r:
        await r.read()
        if r.status != 200:
            raise SystemExit(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
    SENT[name] = SENT.get(name, 0) + 1
    return time.perf_counter() - t0


async def one_stream(session: aiohttp.ClientSession, name: str, url: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    ttfb = 0.0
    async with session.post(url, data=STREAM_BODY, headers=HEADERS) as r:
        if r.status != 200:
            raise SystemExit(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
        async for _ in r.content.iter_any():
            if not ttfb:
                ttfb = time.perf_counter() - t0
    SENT[name] = SENT.get(name, 0) + 1
    return time.perf_counter() - t0, ttfb


async def rate(
    session: aiohttp.ClientSession, name: str, url: str, stream: bool, seconds: float,
    native: bool,
) -> float:  # fmt: skip
    if native:
        per_s, answered = await asyncio.to_thread(
            wrk_rate, url, STREAM_BODY if stream else JSON_BODY, HEADERS, seconds
        )
        SENT[name] = SENT.get(name, 0) + answered
        return per_s
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await (one_stream(session, name, url) if stream else one_json(session, name, url))
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    return done / (time.perf_counter() - t0)


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def round_of(
    session: aiohttp.ClientSession, servers: Servers, n: int, seconds: float
) -> dict[str, dict[str, float]]:
    """One round: every target at concurrency 1 (interleaved call by call, so drift hits
    them all alike; LiteLLM in a loop of its own after the others, since its 15 ms of
    Python a request, interleaved, leaves every other target's next call a cold cache
    and slows them all, the direct baseline too), then each at concurrency 16."""
    urls, streams = servers.urls, servers.stream_urls
    lat: dict[str, list[float]] = {k: [] for k in urls}
    st: dict[str, list[float]] = {k: [] for k in urls}
    tt: dict[str, list[float]] = {k: [] for k in urls}
    groups = [[k for k in urls if k != "litellm"], [k for k in urls if k == "litellm"]]
    for group in filter(None, groups):
        for _ in range(n):
            for name in group:
                lat[name].append(await one_json(session, name, urls[name] + "/chat/completions"))
        for _ in range(max(1, n // 4)):
            for name in group:
                total, ttfb = await one_stream(session, name, streams[name])
                st[name].append(total)
                tt[name].append(ttfb)
    out: dict[str, dict[str, float]] = {}
    for name, url in urls.items():
        json_url = url + "/chat/completions"
        rps = await rate(session, name, json_url, False, seconds, servers.native)
        sps = await rate(session, name, streams[name], True, seconds, servers.native)
        out[name] = {
            "json_p50_ms": ms(lat[name], 0.5),
            "json_p99_ms": ms(lat[name], 0.99),
            "stream_p50_ms": ms(st[name], 0.5),
            "ttfb_p50_ms": ms(tt[name], 0.5),
            "json_rps_c16": rps,
            "streams_per_s_c16": sps,
        }
    return out


async def measure(servers: Servers, n: int, seconds: float, rounds: int) -> dict[str, Any]:
    urls = dict(servers.urls)
    connector = aiohttp.TCPConnector(limit=64)
    results: list[dict[str, dict[str, float]]] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        for name, url in urls.items():  # warm up
            for _ in range(50):
                await one_json(session, name, url + "/chat/completions")
        for _ in range(rounds):
            results.append(await round_of(session, servers, n, seconds))
    merged: dict[str, Any] = {}
    for name in urls:
        keys = results[0][name]
        merged[name] = {k: statistics.median(r[name][k] for r in results) for k in keys}
    base = merged["direct"]
    for name, row in merged.items():
        row["added_json_p50_ms"] = row["json_p50_ms"] - base["json_p50_ms"]
        row["added_json_p99_ms"] = row["json_p99_ms"] - base["json_p99_ms"]
        row["added_stream_p50_ms"] = row["stream_p50_ms"] - base["stream_p50_ms"]
        row["added_ttfb_p50_ms"] = row["ttfb_p50_ms"] - base["ttfb_p50_ms"]
        proc = servers.procs.get(name)
        served = SENT.get(name, 0)
        if name == "direct":  # the upstream also answers every forwarded request
            served = sum(SENT.values())
        row["peak_rss_mb"] = peak_rss_mb(proc.pid) if proc else 0.0
        cpu = cpu_seconds(proc.pid) if proc else 0.0
        row["cpu_ms_per_request"] = cpu * 1000 / max(1, served)
        row["startup_s"] = servers.startup_s[name]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--litellm", help="path of an installed `litellm` command")
    parser.add_argument("--json")
    parser.add_argument("--serve-passthrough", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--skip", default="", help="comma-separated targets to leave out")
    parser.add_argument("--native", action="store_true", help="nginx upstream, wrk load")
    args = parser.parse_args()
    if args.serve_passthrough:
        serve_passthrough(args.serve_passthrough, args.upstream)
        return
    if args.native and not native_available():
        raise SystemExit("--native needs nginx and wrk on the PATH")
    servers = Servers(args.litellm, set(filter(None, args.skip.split(","))), args.native)
    try:
        servers.start()
        results = asyncio.run(measure(servers, args.requests, args.seconds, args.rounds))
    finally:
        servers.stop()
    if "turnout" in results:
        results["turnout"]["trace_runs"] = servers.trace_runs()
        results["turnout"]["requests_sent"] = SENT.get("turnout", 0)
    shutil.rmtree(servers.tmp, ignore_errors=True)
    cols = ["json_p50_ms", "added_json_p50_ms", "added_json_p99_ms", "added_stream_p50_ms"]
    cols += ["added_ttfb_p50_ms", "json_rps_c16", "streams_per_s_c16", "peak_rss_mb"]
    cols += ["cpu_ms_per_request"]
    print(f"{'target':<12}" + "".join(f"{c:>20}" for c in cols))
    for name, row in results.items():
        print(f"{name:<12}" + "".join(f"{row[c]:20.3f}" for c in cols))
    if "turnout" in results:
        row = results["turnout"]
        print(f"turnout: {row['requests_sent']} requests answered, {row['trace_runs']} runs traced")
        if args.native:  # wrk counts only answers; at its deadline it hangs up on the rest
            print("  (wrk abandons up to 16 requests in flight at the end of each of its runs:"
                  " those are traced as runs too, as cancelled)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
