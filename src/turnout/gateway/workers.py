"""``turnout serve --workers N``: N gateway processes sharing one port.

The parent starts N copies of the same ``turnout serve`` command (each with
``--workers 1 --reuse-port``; the kernel spreads connections over them with
SO_REUSEPORT), numbered by ``TURNOUT_WORKER`` (each worker's trace spill file is its
own), and sharing a ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary one unless it is
set) so ``GET /metrics`` on any worker reports them all. SIGTERM / SIGINT are passed on
to every worker, each of which drains its requests and flushes its traces; the parent
exits when they have. A worker that dies is reported and the others go on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from types import FrameType

from turnout.gateway.app import WORKER_ENV
from turnout.observability.metrics import MULTIPROC_ENV, mark_process_dead


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


def run_workers(count: int) -> int:
    """Run ``count`` workers until they stop; the exit status of the first that failed."""
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    temporary = None
    if not metrics_dir:
        temporary = tempfile.TemporaryDirectory(prefix="turnout-metrics-")
        metrics_dir = temporary.name
    else:
        for name in os.listdir(metrics_dir):  # values of an earlier run would be summed in
            if name.endswith(".db"):
                os.unlink(os.path.join(metrics_dir, name))
    argv = _worker_argv()
    procs: list[subprocess.Popen[bytes]] = []
    for index in range(count):
        env = {**os.environ, WORKER_ENV: str(index), MULTIPROC_ENV: metrics_dir}
        procs.append(subprocess.Popen(argv, env=env))

    def forward(signum: int, frame: FrameType | None) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for proc in procs:
            code = proc.wait()
            os.environ[MULTIPROC_ENV] = metrics_dir
            mark_process_dead(proc.pid)
            if code not in (0, -signal.SIGTERM, -signal.SIGINT) and status == 0:
                status = code if code > 0 else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if temporary is not None:
            temporary.cleanup()
    return status
