"""What virtual keys, rate limits and budgets add to `turnout serve`, and what a second
worker gives. Measured side by side in one run against the fake upstream (its own
process, answering at once), with the real Redis (127.0.0.1:6379, a throwaway prefix)
and a throwaway SQLite trace store:

* ``open``   ``turnout serve`` with ``auth: none`` (loopback), ``executor.state: redis``;
* ``keys``   the same with ``auth: keys`` and a key with rpm, tpm and a budget (every
             request: the key looked up in its cache, one Redis round trip for the
             generation, the rate limit and the budget hold, the hold settled after the
             answer, off the request path);
* ``keys x2`` the same, ``--workers 2``.

With ``--bound``, also the bound the shared state sets: ``memory`` and ``memory x2``, keys
with ``executor.state: memory`` (no Redis at all: each worker its own limits, budgets
and breakers, so not a deployment, only what the keyed figures would be without the
one Redis round trip a request and Redis's CPU on the shared cores), and ``open x2``.

Figures, medians over ``--rounds``: JSON latency p50 at concurrency 1 and the p50 the
keys add; requests/s at concurrency 16; the ratio of two workers to one. Then the same
two figures round by round, each against the same round's open gateway or one worker
(median, low and high: a slow spell of the host moves both sides of a pair), and the
share of CPU time the hypervisor gave to other guests during each round (``steal`` in
``/proc/stat``): on a busy host every figure is slower than the code. With
``--native`` the c=1 latency is also measured by wrk (one connection, ``--seconds``
long): the aiohttp client spends about 0.3 ms of Python between two requests, and the
gateway and Redis go idle meanwhile, so its figure holds their wake-ups too.

With ``--native`` the upstream is nginx and the concurrency-16 load is wrk (see
``native_rig.py``): on two cores the Python fake upstream and client otherwise take
the core a second worker needs.

    .venv/bin/python benchmarks/team_gateway.py [--requests 500] [--seconds 5] [--rounds 3]
        [--native] [--bound]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import aiohttp

from native_rig import NginxUpstream, free_port, wrk_latency, wrk_rate
from native_rig import available as native_available

BODY = json.dumps(
    {"model": "fast", "messages": [{"role": "user", "content": "Refund? yes or no."}],
     "max_tokens": 16}
).encode()  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], limit: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url}: not ready in {limit:.0f} s")


def config(
    tmp: Path, name: str, upstream: str, auth: str, prefix: str, state: str = "redis"
) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        "providers:\n"
        f"  mock: {{kind: openai, base_url: '{upstream}', api_key_env: TURNOUT_BENCH_KEY}}\n"
        "models:\n"
        "  bench: {provider: mock, id: bench-model, tier: efficient,"
        " price: {input: 0.15, output: 0.6}}\n"
        "policies:\n  fast: {kind: static, model: bench}\n"
        f"executor: {{cache: {{exact: {{enabled: false}}}}, state: {state},"
        f" redis_prefix: '{prefix}'}}\n"
        f"gateway: {{default_policy: fast, auth: {auth}}}\n"
    )
    return path


def bench_key(store: Path) -> str:
    """A key named ``bench`` with rpm, tpm and a budget (all three paths taken, none ever
    reached), created in the SQLite store at ``store``; the key itself."""
    from turnout.keys import KeyStore, Period
    from turnout.tracing.sqlite import SQLiteStore

    with SQLiteStore(store) as st:
        secret, _ = KeyStore(st).create(
            "bench", rpm=10_000_000, tpm=10_000_000_000, budget_usd=Decimal(1_000_000),
            period=Period.DAY,
        )  # fmt: skip
    return secret


def bench_env() -> dict[str, str]:
    """The environment a benchmark's ``turnout serve`` runs in: the upstream's API key
    set, and no ``PROMETHEUS_MULTIPROC_DIR`` inherited from the shell."""
    env = {**os.environ, "TURNOUT_BENCH_KEY": "sk-bench-0123456789"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """Terminate the benchmark's processes (each drains and flushes), killing any that
    has not exited within ``timeout`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def drop_prefix(prefix: str) -> None:
    """Delete the run's keys (``prefix:*``) from the machine's Redis."""
    from redis import Redis

    with Redis.from_url("redis://127.0.0.1:6379/0") as client:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)


async def latency(url: str, headers: dict[str, str], n: int) -> float:
    async with aiohttp.ClientSession() as session:
        times = []
        for i in range(n + 50):
            t0 = time.perf_counter()
            async with session.post(url, data=BODY, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise SystemExit(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
            if i >= 50:
                times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def throughput(url: str, headers: dict[str, str], seconds: float) -> float:
    done = 0
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, data=BODY, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--native", action="store_true", help="nginx upstream, wrk load")
    parser.add_argument("--bound", action="store_true", help="also keys in memory, open x2")
    args = parser.parse_args()
    if args.native and not native_available():
        raise SystemExit("--native needs nginx and wrk on the PATH")
    nginx = NginxUpstream().__enter__() if args.native else None
    tmp = Path(tempfile.mkdtemp(prefix="team-gw-"))
    prefix = f"turnout-bench:{uuid.uuid4().hex}"
    env = bench_env()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if nginx is not None:
            upstream = nginx.url
        else:
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "turnout.testing.fake_openai", "--port", str(port),
                 "--reply", "yes"], env=env, stdout=subprocess.DEVNULL,
            ))  # fmt: skip
            upstream = f"http://127.0.0.1:{port}/v1"
            time.sleep(1)
        store = tmp / "traces.db"
        secret = bench_key(store)
        turnout = shutil.which("turnout", path=str(Path(sys.executable).parent)) or "turnout"
        urls: dict[str, str] = {}
        setups = [("open", "none", 1, "redis"), ("keys", "keys", 1, "redis"),
                  ("keys x2", "keys", 2, "redis")]  # fmt: skip
        if args.bound:
            setups += [("memory", "keys", 1, "memory"), ("memory x2", "keys", 2, "memory"),
                       ("open x2", "none", 2, "redis")]  # fmt: skip
        for name, auth, workers, state in setups:
            cfg = config(tmp, name.replace(" ", ""), upstream, auth, prefix, state)
            own = tmp / f"traces-{name.replace(' ', '')}.db"  # a store each: no lock contention
            shutil.copy(store, own)
            p = free_port()
            procs.append(subprocess.Popen(
                [turnout, "serve", "-c", str(cfg), "--port", str(p), "--store", str(own),
                 "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            urls[name] = f"http://127.0.0.1:{p}"
            wait_ready(urls[name], procs[-1])
        headers = {"content-type": "application/json", "authorization": f"Bearer {secret}"}
        lat: dict[str, list[float]] = {n: [] for n in urls}
        wrk_lat: dict[str, list[float]] = {n: [] for n in urls if not n.endswith(" x2")}
        rps: dict[str, list[float]] = {n: [] for n in urls}
        steal: list[float] = []
        for _ in range(args.rounds):
            before = cpu_times()
            for name, base in urls.items():
                url = f"{base}/v1/chat/completions"
                if not name.endswith(" x2"):
                    lat[name].append(asyncio.run(latency(url, headers, args.requests)))
                    if nginx is not None:
                        wrk_lat[name].append(wrk_latency(url, BODY, headers, args.seconds))
                if nginx is not None:
                    rps[name].append(wrk_rate(url, BODY, headers, args.seconds)[0])
                else:
                    rps[name].append(asyncio.run(throughput(url, headers, args.seconds)))
            steal.append(stolen(before, cpu_times()))
        med = {n: statistics.median(v) for n, v in lat.items() if v}
        rate = {n: statistics.median(v) for n, v in rps.items()}
        load = "nginx upstream, wrk" if nginx is not None else "fake upstream, aiohttp client"
        print(
            f"rounds {args.rounds}, {args.requests} requests at c=1, {args.seconds:.0f} s at c=16"
            f" ({load})"
        )
        for name in urls:
            p50 = f"p50 {med[name]:.3f} ms" if name in med else " " * 13
            print(f"  {name:<8} {p50}   {rate[name]:>7,.0f} req/s at c=16")
        added = med["keys"] - med["open"]
        ratio = rate["keys x2"] / rate["keys"]
        print(f"  keys add {added:+.3f} ms p50 (target <= 0.3 ms);"
              f" two workers = {ratio:.2f}x one (target >= 1.6x)")  # fmt: skip
        print(f"  round by round (each against the same round's):"
              f" keys add {_spread(lat, 'keys', 'open', '{:+.3f} ms', minus=True)};"
              f" two workers {_spread(rps, 'keys x2', 'keys', '{:.2f}x')};"
              f" CPU stolen by the host {', '.join(f'{s:.0%}' for s in steal)}")  # fmt: skip
        if nginx is not None:
            wmed = {n: statistics.median(v) for n, v in wrk_lat.items()}
            print(f"  c=1 from wrk (no Python client between requests): open p50"
                  f" {wmed['open']:.3f} ms, keys p50 {wmed['keys']:.3f} ms, keys add"
                  f" {wmed['keys'] - wmed['open']:+.3f} ms")  # fmt: skip
        if args.bound:
            print(f"  bound, keys in memory: add {med['memory'] - med['open']:+.3f} ms p50"
                  f"{_wrk_added(wrk_lat, 'memory')}; two workers ="
                  f" {rate['memory x2'] / rate['memory']:.2f}x one; open two workers ="
                  f" {rate['open x2'] / rate['open']:.2f}x one")  # fmt: skip
    finally:
        stop(procs, timeout=20)
        drop_prefix(prefix)
        shutil.rmtree(tmp, ignore_errors=True)
        if nginx is not None:
            nginx.__exit__(None, None, None)


def cpu_times() -> list[int]:
    """The machine's CPU time so far, in ticks by kind (``/proc/stat``'s first line)."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return []


def stolen(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor gave to others between two readings (a
    noisy host: figures taken meanwhile are slower than the code)."""
    if len(before) < 8 or len(after) < 8:
        return 0.0
    spent = [b - a for a, b in zip(before, after, strict=False)]
    return spent[7] / max(1, sum(spent[:8]))


def _spread(
    values: dict[str, list[float]], name: str, base: str, shape: str, *, minus: bool = False
) -> str:
    """The median, low and high of ``name`` against ``base`` round by round."""
    pairs = zip(values[name], values[base], strict=False)
    each = sorted((a - b) if minus else (a / b) for a, b in pairs)
    if not each:
        return "-"
    low, mid, high = (shape.format(v) for v in (each[0], statistics.median(each), each[-1]))
    return f"{mid} ({low} to {high})"


def _wrk_added(wrk_lat: dict[str, list[float]], name: str) -> str:
    if not wrk_lat.get(name) or not wrk_lat.get("open"):
        return ""
    added = statistics.median(wrk_lat[name]) - statistics.median(wrk_lat["open"])
    return f" (wrk: {added:+.3f} ms)"


if __name__ == "__main__":
    main()
