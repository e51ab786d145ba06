"""`turnout serve` as a process: ready fast, SIGTERM drains in-flight requests and flushes
traces, bad input exits 2 with one line."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from support.gateway_rig import FULL, KEY, KEY_ENV, reply
from turnout.testing import FakeOpenAI

TURNOUT = str(Path(sys.executable).parent / "turnout")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, base_url: str) -> None:
    path.write_text(
        f"""
providers:
  up: {{kind: openai, base_url: "{base_url}", api_key_env: {KEY_ENV}}}
models:
  small: {{provider: up, id: small-1, tier: efficient, price: {{input: 1, output: 2}}}}
policies:
  cheap: {{kind: static, model: small}}
gateway: {{default_policy: cheap, shutdown_timeout_s: 10}}
"""
    )


def wait_listening(port: int, proc: subprocess.Popen[str]) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        assert proc.poll() is None, "turnout serve exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.01)
    raise AssertionError("turnout serve did not start")


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    with FakeOpenAI.start_in_thread(reply=reply, latency=1.0) as up:
        config = tmp_path / "turnout.yaml"
        write_config(config, up.base_url)
        port = free_port()
        store = tmp_path / "traces.db"
        env = {**os.environ, KEY_ENV: KEY}
        cmd = [TURNOUT, "serve", "-c", str(config), "--port", str(port), "--store", str(store)]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        try:
            wait_listening(port, proc)
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
            )
            answers: list[str | None] = []
            worker = threading.Thread(
                target=lambda: answers.append(
                    client.chat.completions.create(
                        model="auto", messages=[{"role": "user", "content": "hi"}]
                    )
                    .choices[0]
                    .message.content
                )
            )
            worker.start()
            time.sleep(0.4)  # the request is in flight (the upstream takes 1 s)
            proc.send_signal(signal.SIGTERM)
            worker.join(10)
            client.close()
            assert answers == [FULL]
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert f"traces and keys in {store}" in err  # where keys are read from, said
        assert f"listening on http://127.0.0.1:{port}/v1" in err
        with sqlite3.connect(store) as conn:
            assert conn.execute("select workflow, status from runs").fetchall() == [
                ("gateway", "succeeded")
            ]


def _sigterm_under_traffic(proc: subprocess.Popen[str], port: int) -> tuple[float, float]:
    """SIGTERM while eight clients (httpx, as the openai SDK) send requests one after
    another on their keep-alive connections: how long the process took to exit, and the
    longest any request waited."""
    import httpx

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    stop = threading.Event()
    waits: list[float] = []

    def client() -> None:
        with httpx.Client(timeout=20) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    c.post(url, json=body)
                except httpx.HTTPError:
                    waits.append(time.monotonic() - t0)
                    return
                waits.append(time.monotonic() - t0)

    clients = [threading.Thread(target=client) for _ in range(8)]
    for t in clients:
        t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(15)
    exited = time.monotonic() - t0
    stop.set()
    for t in clients:
        t.join(20)
    return exited, max(waits)


def test_sigterm_under_keep_alive_traffic_stops_at_once_and_hangs_no_client(
    tmp_path: Path,
) -> None:
    """A request that reaches a keep-alive connection as the stop begins is answered, or
    its connection closed, within a second or so, never held for the 10 s shutdown
    timeout; the process exits as soon as the requests under way are done. Several
    rounds: the race is a matter of timing (before, 6 rounds of 8 waited the 10 s)."""
    with FakeOpenAI.start_in_thread(reply=reply) as up:
        config = tmp_path / "turnout.yaml"
        write_config(config, up.base_url)
        env = {**os.environ, KEY_ENV: KEY}
        for _ in range(4):
            port = free_port()
            cmd = [TURNOUT, "serve", "-c", str(config), "--port", str(port), "--store",
                   str(tmp_path / "traces.db")]  # fmt: skip
            proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, text=True)
            try:
                wait_listening(port, proc)
                exited, longest = _sigterm_under_traffic(proc, port)
                assert proc.returncode == 0
                assert exited < 4, f"exited {exited:.1f} s after SIGTERM"
                assert longest < 4, f"a request waited {longest:.1f} s"
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()


def test_ready_in_under_a_second(tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    write_config(config, "http://127.0.0.1:9/v1")
    port = free_port()
    cmd = [
        TURNOUT,
        "serve",
        "-c",
        str(config),
        "--port",
        str(port),
        "--store",
        str(tmp_path / "t.db"),
    ]
    proc = subprocess.Popen(
        cmd, env={**os.environ, KEY_ENV: KEY}, stderr=subprocess.PIPE, text=True
    )
    try:
        took = wait_listening(port, proc)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    # the bar is 1 s on an idle core (mostly imports: aiohttp, pydantic); a shared,
    # loaded box gets slack here, benchmarks/gateway_overhead.py reports the figure
    assert took < 10.0, took


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-c", "missing.yaml"], "missing.yaml"),
        (["--port", "70000"], "70000"),
        (["--port", "BUSY"], "cannot listen"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str], words: str) -> None:
    with socket.socket() as busy:
        if args == ["--port", "BUSY"]:  # a port another process listens on
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            args = ["--port", str(busy.getsockname()[1]), "--store", str(tmp_path / "t.db")]
        out = subprocess.run(
            [TURNOUT, "serve", *args], cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert words in out.stderr.strip().splitlines()[-1]  # one line says what is wrong


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(tmp_path: Path) -> None:
    with FakeOpenAI.start_in_thread(reply=reply) as up:
        config = tmp_path / "turnout.yaml"
        write_config(config, up.base_url)
        port = free_port()
        cmd = [TURNOUT, "serve", "-c", str(config), "--port", str(port), "--workers", "2",
               "--store", str(tmp_path / "traces.db")]  # fmt: skip
        proc = subprocess.Popen(cmd, env={**os.environ, KEY_ENV: KEY}, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=3)
        try:
            wait_listening(port, proc)
            deadline = time.monotonic() + 20
            while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            before = children(proc.pid)
            assert len(before) == 2
            os.kill(min(before), signal.SIGKILL)
            chat = client.chat.completions.create
            hi = [{"role": "user", "content": "hi"}]
            assert chat(model="auto", messages=hi).choices[0].message.content == FULL  # type: ignore[arg-type]
            while time.monotonic() < deadline:
                now = children(proc.pid)
                if len(now) == 2 and now != before:
                    break
                time.sleep(0.05)
            assert len(now) == 2 and min(before) not in now  # replaced
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            client.close()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert f"(pid {min(before)}) exited with -9; starting another" in err


def test_workers_that_cannot_start_are_not_restarted_for_ever(tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    write_config(config, "http://127.0.0.1:9/v1")
    cmd = [TURNOUT, "serve", "-c", str(config), "--port", str(free_port()), "--workers", "2",
           "--store", "/proc/no-such-dir/traces.db"]  # fmt: skip
    out = subprocess.run(cmd, env={**os.environ, KEY_ENV: KEY}, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0
    assert "quick deaths in a row: stopping every worker" in out.stderr


def test_an_unset_provider_key_stops_serve_before_it_listens(tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    write_config(config, "http://127.0.0.1:9/v1")
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    out = subprocess.run([TURNOUT, "serve", "-c", str(config), "--port", str(free_port())],
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert f"environment variable {KEY_ENV} is not set" in last and "small" in last


def test_workers_have_one_banner_with_their_count(tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    write_config(config, "http://127.0.0.1:9/v1")
    port = free_port()
    env = {**os.environ, KEY_ENV: KEY}
    cmd = [TURNOUT, "serve", "-c", str(config), "--port", str(port), "--workers", "2",
           "--store", str(tmp_path / "traces.db")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        deadline = time.monotonic() + 20
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # both workers up and past their start-up
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    banners = [line for line in err.splitlines() if "listening on" in line]
    assert len(banners) == 1 and ", 2 workers;" in banners[0], err


@pytest.mark.parametrize(("admin", "warned"), [("hunter2", True), ("x" * 16, False)])
def test_a_short_admin_key_is_warned_of_without_showing_it(
    tmp_path: Path, admin: str, warned: bool
) -> None:
    config = tmp_path / "turnout.yaml"
    write_config(config, "http://127.0.0.1:9/v1")
    port = free_port()
    env = {**os.environ, KEY_ENV: KEY, "TURNOUT_ADMIN_KEY": admin}
    cmd = [TURNOUT, "serve", "-c", str(config), "--port", str(port),
           "--store", str(tmp_path / "t.db")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == warned and admin not in err, err
    if warned:
        assert "TURNOUT_ADMIN_KEY is shorter than 16 characters" in warnings[0]
