"""Real `turnout serve` processes for the team tests: a config on the fake upstream with
`auth: keys`, shared state in Redis under the test's own prefix, traces (and keys) in a
throwaway PostgreSQL database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ADMIN_KEY = "admin-test-key-0123456789abcdef"
API_KEY_ENV = "TEAM_TEST_UPSTREAM_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path,
    upstream: str,
    *,
    redis_url: str | None,
    prefix: str,
    redis_timeout_s: float | None = None,
) -> Path:
    state = (
        f"  state: redis\n  redis_url: {redis_url}\n  redis_prefix: {prefix}\n" if redis_url else ""
    )
    if redis_url and redis_timeout_s is not None:
        state += f"  redis_timeout_s: {redis_timeout_s}\n"
    path.write_text(
        f"""
providers:
  up: {{kind: openai, base_url: "{upstream}", api_key_env: {API_KEY_ENV}}}
models:
  small: {{provider: up, id: small-1, tier: efficient, price: {{input: 1.0, output: 2.0}}}}
  large: {{provider: up, id: large-1, tier: frontier, price: {{input: 1.0, output: 2.0}}}}
policies:
  cheap: {{kind: static, model: small}}
  strong: {{kind: static, model: large}}
executor:
  retries: {{max_attempts: 1}}
{state}gateway:
  auth: keys
  default_policy: cheap
"""
    )
    return path


class Serve:
    """One `turnout serve` process; its log is kept for the key-leak checks."""

    def __init__(self, config: Path, store: str, log: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.log = log
        env = {**os.environ, API_KEY_ENV: "sk-upstream-test", "TURNOUT_ADMIN_KEY": ADMIN_KEY}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with log.open("wb") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "turnout.cli.main", "serve", "-c", str(config),
                 "--port", str(self.port), "--store", store, "--workers", str(workers)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=config.parent,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnout serve exited: {log.read_text()}")
            time.sleep(0.05)
            try:
                with urllib.request.urlopen(f"{self.url}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"turnout serve did not get ready: {log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def serving(*servers: Serve) -> Iterator[tuple[Serve, ...]]:
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()
