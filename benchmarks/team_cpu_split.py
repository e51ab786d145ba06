"""Where the CPU goes when `turnout serve --workers N` with keys is loaded on this
machine: the gateway's processes, Redis, the nginx upstream and wrk, in cores used and
in µs per request, during one wrk run at concurrency 16 (the setup of
``team_gateway.py --native``: a key with rpm, tpm and a budget in the real Redis).

It says how far a second worker can scale here: with every core busy, two cores hold at
most ``2 / (CPU per request, all processes)`` requests a second.

    .venv/bin/python benchmarks/team_cpu_split.py [--workers 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from gateway_overhead import cpu_seconds
from native_rig import NginxUpstream, free_port, wrk_output
from team_gateway import BODY, bench_env, bench_key, config, drop_prefix, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cpu-split-"))
    prefix = f"turnout-bench:{uuid.uuid4().hex}"
    env = bench_env()
    with NginxUpstream() as nginx:
        store = tmp / "traces.db"
        secret = bench_key(store)
        cfg = config(tmp, "keys", nginx.url, "keys", prefix)
        port = free_port()
        serve = subprocess.Popen(
            [str(Path(sys.executable).parent / "turnout"), "serve", "-c", str(cfg),
             "--port", str(port), "--store", str(store), "--workers", str(args.workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}", serve)
            time.sleep(1)
            redis = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True,
                                   text=True).stdout.split()  # fmt: skip
            assert nginx.proc is not None
            pids = {"gateway": serve.pid, "redis": int(redis[0]), "nginx": nginx.proc.pid}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            t0, load0 = time.time(), os.times()
            out = wrk_output(
                f"http://127.0.0.1:{port}/v1/chat/completions", BODY,
                {"content-type": "application/json", "authorization": f"Bearer {secret}"},
                args.seconds, 16,
            )  # fmt: skip
            wall, load1 = time.time() - t0, os.times()
            used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            used["wrk"] = (load1.children_user - load0.children_user) + (
                load1.children_system - load0.children_system
            )
        finally:
            serve.terminate()
            serve.wait(timeout=30)
            drop_prefix(prefix)
            shutil.rmtree(tmp, ignore_errors=True)
    n = int(out.split(" requests in")[0].split()[-1])
    total = sum(used.values())
    print(f"--workers {args.workers}: {n / wall:,.0f} req/s at c=16 with keys")
    print("  cores used: " + ", ".join(f"{k} {v / wall:.2f}" for k, v in used.items())
          + f" (total {total / wall:.2f} of {os.cpu_count()})")  # fmt: skip
    print("  CPU per request: " + ", ".join(f"{k} {v / n * 1e6:.0f} µs" for k, v in used.items()))
    print(f"  ceiling with every core busy: {os.cpu_count() / (total / n):,.0f} req/s")


if __name__ == "__main__":
    main()
