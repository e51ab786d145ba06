"""``turnout serve --workers N``: N gateway processes sharing one port.

The parent starts N copies of the same ``turnout serve`` command (each with
``--workers 1 --reuse-port``; the kernel spreads connections over them with
SO_REUSEPORT), numbered by ``TURNOUT_WORKER`` (each worker's trace spill file is its
own), and sharing a ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary one unless it is
set) so ``GET /metrics`` on any worker reports them all. SIGTERM / SIGINT are passed on
to every worker, each of which drains its requests and flushes its traces; the parent
exits when they have. A worker that dies meanwhile is reported and replaced at once (its
port is shared, so the others answer meanwhile); one that keeps dying right after it
starts stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from turnout.gateway.app import WORKER_ENV, WORKERS_ENV
from turnout.observability.metrics import MULTIPROC_ENV, mark_process_dead, start_afresh


def _worker_argv() -> list[str]:
    """This command line, as one worker: ``--workers N`` replaced by ``--workers 1``."""
    args = sys.argv[1:]
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = i + 1 < len(args)
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [sys.executable, "-m", "turnout.cli.main", *out, "--workers", "1", "--reuse-port"]


RESTART_WINDOW_S = 10.0
"""A worker that dies within this long of starting counts towards a crash loop."""
MAX_QUICK_DEATHS = 5
"""Quick deaths in a row after which the workers are stopped (a worker that cannot
start: a port taken, a store refused), rather than replaced for ever."""
_POLL_S = 0.2


def _say(message: str) -> None:
    print(f"turnout serve: {message}", file=sys.stderr, flush=True)


def run_workers(count: int) -> int:
    """Run ``count`` workers until they are told to stop; a worker that dies meanwhile is
    reported and replaced (up to :data:`MAX_QUICK_DEATHS` quick deaths in a row, then
    every worker is stopped). The exit status: 0 after a clean stop, else the first
    failure's."""
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    temporary = None
    if not metrics_dir:
        temporary = tempfile.TemporaryDirectory(prefix="turnout-metrics-")
        metrics_dir = temporary.name
    else:
        start_afresh(metrics_dir)
    argv = _worker_argv()

    def start(index: int) -> tuple[subprocess.Popen[bytes], float]:
        env = {**os.environ, WORKER_ENV: str(index), WORKERS_ENV: str(count),
               MULTIPROC_ENV: metrics_dir}  # fmt: skip
        return subprocess.Popen(argv, env=env), time.monotonic()

    workers = [start(index) for index in range(count)]
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    status, quick_deaths = 0, 0
    handled: set[int] = set()  # pids whose exit was dealt with (forward() may reap one)
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        while any(proc.pid not in handled for proc, _ in workers):
            time.sleep(_POLL_S)
            for index, (proc, started) in enumerate(workers):
                code = None if proc.pid in handled else proc.poll()
                if code is None:
                    continue
                handled.add(proc.pid)
                mark_process_dead(proc.pid)
                clean = code in (0, -signal.SIGTERM, -signal.SIGINT)
                if stopping:
                    if not clean and status == 0:
                        status = code if code > 0 else 1
                    continue
                quick = time.monotonic() - started < RESTART_WINDOW_S
                quick_deaths = quick_deaths + 1 if quick else 0
                if quick_deaths >= MAX_QUICK_DEATHS:
                    _say(
                        f"worker {index} (pid {proc.pid}) exited with {code}, the last of "
                        f"{quick_deaths} quick deaths in a row: stopping every worker"
                    )
                    status = code if code > 0 else 1
                    forward(signal.SIGTERM, None)
                    continue
                _say(f"worker {index} (pid {proc.pid}) exited with {code}; starting another")
                workers[index] = start(index)
                if stopping:  # told to stop while it was starting: it stops too
                    workers[index][0].send_signal(signal.SIGTERM)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if temporary is not None:
            temporary.cleanup()
    return status
