"""A native upstream and a native load generator, for throughput figures that measure
the gateway and not the harness.

On a 2-core machine the Python fake upstream (~0.2 ms of CPU a request) and an aiohttp
client (~0.3 ms) take most of a core between them at 2,000 req/s: a second gateway
worker then has no core to run on, and the figure measures the harness. With
``--native`` the benchmarks answer from nginx (a static ``chat.completion`` at
``/v1``, a static 32-chunk stream at ``/stream/v1``; tens of thousands of req/s on
one core) and load with wrk (C, one thread): nearly all the CPU left goes to the
gateway.

Needs ``nginx`` and ``wrk`` on the PATH (Debian: ``apt-get install nginx-light wrk``).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

WORDS = [f"w{i}" for i in range(32)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _completion() -> str:
    return json.dumps({
        "id": "chatcmpl-native", "object": "chat.completion", "created": 1,
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(WORDS)},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 32, "total_tokens": 44},
    }, separators=(",", ":"))  # fmt: skip


def _stream() -> str:
    def chunk(delta: dict[str, object] | None, finish: str | None = None, **extra: object) -> str:
        body: dict[str, object] = {
            "id": "chatcmpl-native", "object": "chat.completion.chunk", "created": 1,
            "model": "bench-model",
            "choices": [] if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }  # fmt: skip
        return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"

    out = chunk({"role": "assistant", "content": ""})
    out += "".join(chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(WORDS))
    out += chunk({}, "stop")
    out += chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 32, "total_tokens": 44})
    return out + "data: [DONE]\n\n"


def available() -> bool:
    return shutil.which("nginx") is not None and shutil.which("wrk") is not None


class NginxUpstream:
    """nginx answering ``POST /v1/chat/completions`` (JSON) and
    ``POST /stream/v1/chat/completions`` (SSE), statically, one worker process."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="native-upstream-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def stream_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream/v1"

    def __enter__(self) -> NginxUpstream:
        self.dir.chmod(0o755)  # nginx's workers may run as another user
        (self.dir / "stream.sse").write_text(_stream())
        conf = self.dir / "nginx.conf"
        conf.write_text(
            "worker_processes 1;\ndaemon off;\n"
            f"pid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n  access_log off;\n"
            f"  client_body_temp_path {self.dir}/body;\n"
            "  keepalive_requests 100000000;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n"
            "    location = /v1/chat/completions {\n"
            "      default_type application/json;\n"
            f"      return 200 '{_completion()}';\n    }}\n"
            "    location = /stream/v1/chat/completions {\n"  # POST to a file: via a 405
            "      error_page 405 =200 /stream.sse;\n      return 405;\n    }\n"
            "    location = /stream.sse {\n"
            f"      internal;\n      root {self.dir};\n"
            "      default_type text/event-stream;\n    }\n"
            "  }\n}\n"
        )
        self.proc = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"nginx did not start on port {self.port} (its config: {conf})")

    def __exit__(
        self,
        et: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk_output(url: str, body: bytes, headers: dict[str, str], seconds: float,
               connections: int, *extra: str) -> str:  # fmt: skip
    """wrk's report of one thread and ``connections`` POSTing ``body``; every answer must
    be a 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n')
        script.write(f"wrk.body = {json.dumps(body.decode())}\n")
        for name, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", *extra,
             "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        Path(script.name).unlink(missing_ok=True)
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"{url}: wrk saw failures:\n{out}")
    return out


def wrk_latency(url: str, body: bytes, headers: dict[str, str], seconds: float) -> float:
    """p50 latency in ms of one connection POSTing ``body`` back to back for ``seconds``
    (wrk: no Python client between the requests)."""
    out = wrk_output(url, body, headers, seconds, 1, "--latency")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    if p50 is None:
        raise SystemExit(f"{url}: no latency in wrk's output:\n{out}")
    return float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]


def wrk_rate(
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    *,
    connections: int = 16,
) -> tuple[float, int]:
    """Requests/s and requests answered, from wrk (one thread, ``connections`` kept
    alive) POSTing ``body``; every answer must be a 2xx."""
    out = wrk_output(url, body, headers, seconds, connections)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise SystemExit(f"{url}: no rate in wrk's output:\n{out}")
    return float(rate.group(1)), int(count.group(1))
