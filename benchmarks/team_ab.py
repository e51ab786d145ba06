"""Two or more versions of the gateway with keys, side by side in one run: the set-up of
``team_gateway.py --native`` (nginx upstream, wrk, the real Redis, a key with rpm, tpm
and a budget), one ``turnout serve`` per version, and wrk's rounds alternated between
them (the order rotated each round), so the machine's drift falls on all of them alike.

A version is ``NAME=SRC``: the ``src`` folder it runs from (``PYTHONPATH``), e.g. a
``git worktree`` of an older commit; ``NAME=`` runs this checkout. Prints each version's
requests/s at concurrency 16 and wrk's p50 at concurrency 1, medians and every round.

    .venv/bin/python benchmarks/team_ab.py old=/tmp/old/src new= [--workers 1]
        [--rounds 5] [--seconds 4] [--only rate|latency]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from native_rig import NginxUpstream, free_port, wrk_latency, wrk_rate
from native_rig import available as native_available
from team_gateway import BODY, bench_env, bench_key, config, drop_prefix, stop, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("versions", nargs="+", help="NAME=SRC (SRC empty: this checkout)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--only", choices=("rate", "latency"))
    args = parser.parse_args()
    versions: dict[str, str] = {}
    for spec in args.versions:
        name, sep, src = spec.partition("=")
        if not sep or not name or name in versions:
            raise SystemExit(f"version {spec!r}: expected a new NAME=SRC")
        if src and not Path(src, "turnout").is_dir():
            raise SystemExit(f"version {name}: {src}/turnout is not a folder")
        versions[name] = src
    if not native_available():
        raise SystemExit("needs nginx and wrk on the PATH")
    tmp = Path(tempfile.mkdtemp(prefix="team-ab-"))
    prefix = f"turnout-bench:{uuid.uuid4().hex}"
    turnout = str(Path(sys.executable).parent / "turnout")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with NginxUpstream() as nginx:
            store = tmp / "traces.db"
            secret = bench_key(store)
            headers = {"content-type": "application/json", "authorization": f"Bearer {secret}"}
            urls: dict[str, str] = {}
            for i, (name, src) in enumerate(versions.items()):
                cfg = config(tmp, f"v{i}", nginx.url, "keys", prefix)
                own = tmp / f"traces-{i}.db"
                shutil.copy(store, own)
                env = bench_env()
                if src:
                    env["PYTHONPATH"] = src
                port = free_port()
                procs.append(subprocess.Popen(
                    [turnout, "serve", "-c", str(cfg), "--port", str(port), "--store",
                     str(own), "--workers", str(args.workers)],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
                wait_ready(f"http://127.0.0.1:{port}", procs[-1])
                urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
            for url in urls.values():  # warm: connections, caches, the key
                wrk_rate(url, BODY, headers, 2)
            rate: dict[str, list[float]] = {n: [] for n in urls}
            p50: dict[str, list[float]] = {n: [] for n in urls}
            names = list(urls)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    if args.only != "latency":
                        rate[name].append(wrk_rate(urls[name], BODY, headers, args.seconds)[0])
                    if args.only != "rate":
                        p50[name].append(wrk_latency(urls[name], BODY, headers, args.seconds))
    finally:
        stop(procs)
        drop_prefix(prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"--workers {args.workers}, {args.rounds} rounds alternated, {args.seconds:.0f} s each")
    for name in names:
        line = f"  {name:<10}"
        if rate[name]:
            line += f" {statistics.median(rate[name]):7,.0f} req/s at c=16 ("
            line += ", ".join(f"{x:,.0f}" for x in rate[name]) + ")"
        if p50[name]:
            line += f"  p50 {statistics.median(p50[name]):.3f} ms at c=1 ("
            line += ", ".join(f"{x:.3f}" for x in p50[name]) + ")"
        print(line)


if __name__ == "__main__":
    main()
