"""What two cores of this machine give for CPU-bound work, before any gateway: one Python
process counting in a loop alone, then two at once, alternated ``--rounds`` times.

On a VM whose two vCPUs share their host's resources, two busy processes each run
slower than one alone, so ``--workers 2`` cannot give 2x one worker even with nothing
else running: the ratio printed here is the ceiling the machine itself sets, and the
team gateway's figure (``team_gateway.py``: two workers against one) has Redis, nginx
and wrk on the same two cores besides.

    python benchmarks/two_cores.py [--rounds 4] [--loops 20000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = """
import time
t = time.perf_counter()
s = 0
for i in range({loops}):
    s += i
print(time.perf_counter() - t)
"""


def timed(loops: int, together: int) -> list[float]:
    """Seconds each of ``together`` processes took to count to ``loops``, started at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CODE.format(loops=loops)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(together)
    ]
    return [float(p.communicate()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--loops", type=int, default=20_000_000)
    args = parser.parse_args()
    alone: list[float] = []
    pair: list[float] = []
    for _ in range(args.rounds):
        alone += timed(args.loops, 1)
        pair += timed(args.loops, 2)
    one, two = statistics.median(alone), statistics.median(pair)
    print(f"one process alone: {one:.3f} s (median of {len(alone)})")
    print(f"two at once:       {two:.3f} s each (median of {len(pair)}), {two / one:.2f}x slower")
    print(f"two cores give {2 * one / two:.2f}x one core's work")


if __name__ == "__main__":
    main()
