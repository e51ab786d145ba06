"""`turnout serve --workers N`'s supervisor, with stand-in workers: a worker that dies is
replaced, its exit is never lost, and a stop reaches every worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SUPERVISE = """
import os, signal, sys, threading
from turnout.gateway import workers
workers._POLL_S = 0.2
worker = {worker!r}
workers._worker_argv = lambda: [sys.executable, "-c", worker]
threading.Timer({stop_after}, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
sys.exit(workers.run_workers(2))
"""


def supervise(tmp_path: Path, worker: str, stop_after: float) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "supervise.py"
    script.write_text(SUPERVISE.format(worker=textwrap.dedent(worker), stop_after=stop_after))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_a_crash_reaped_by_the_stop_still_sets_the_exit_status(tmp_path: Path) -> None:
    worker = """
    import os, signal, sys, time
    if os.environ["TURNOUT_WORKER"] == "0":
        sys.exit(3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(30)
    """
    out = supervise(tmp_path, worker, stop_after=0.15)  # before the first look at them
    assert out.returncode == 3, out.stderr


def test_a_dead_worker_is_replaced_and_the_stop_reaches_the_new_one(tmp_path: Path) -> None:
    worker = """
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mark = os.path.join({tmp!r}, "died-" + os.environ["TURNOUT_WORKER"])
    if os.environ["TURNOUT_WORKER"] == "0" and not os.path.exists(mark):
        open(mark, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(30)
    """.replace("{tmp!r}", repr(str(tmp_path)))
    out = supervise(tmp_path, worker, stop_after=2.0)
    assert out.returncode == 0, out.stderr
    assert "worker 0" in out.stderr and "exited with -9; starting another" in out.stderr
