"""Prometheus metrics, read back with the Prometheus text parser; several processes'
values aggregated in multiprocess mode (real worker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.observability.metrics import Metrics
from turnout.tracing.records import AttemptRecord

parser = pytest.importorskip("prometheus_client.parser")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def attempt(**changes: object) -> AttemptRecord:
    base = AttemptRecord("r", "chat", 1, "haiku", "hosted", "efficient", "rules", "why", 1.0,
                         0.2, "ok", ttft_s=0.05, input_tokens=100, output_tokens=20,
                         cost_usd=Decimal("0.00015"))  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_exposition_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    m = Metrics()
    m.observe_request(policy="rules", model="haiku", key="team-a", error_class=None,
                      latency_s=0.25, upstream_s=0.2499)  # fmt: skip
    m.observe_request(policy="rules", model=None, key="team-a", error_class="budget_exceeded",
                      latency_s=0.001)  # fmt: skip
    m.observe_attempt(attempt(), "team-a")
    m.observe_attempt(
        attempt(
            model="opus",
            status="error",
            error_class="server_error",
            input_tokens=0,
            output_tokens=0,
            cost_usd=Decimal(0),
        ),
        "team-a",
    )
    m.observe_attempt(attempt(cache="exact", cost_usd=Decimal(0), saved_usd=Decimal("0.01")),
                      "team-a")  # fmt: skip
    m.set_breaker("opus", "open")
    m.set_budget_remaining("team-a", Decimal("49.5"))
    m.count_degraded("rate limits")
    m.count_spill(3, 0)
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    got = samples(body.decode())
    ok = (
        "turnout_requests_total",
        (("key", "team-a"), ("model", "haiku"), ("policy", "rules"), ("status", "ok")),
    )
    assert got[ok] == 1
    err = (
        "turnout_errors_total",
        (
            ("error_class", "budget_exceeded"),
            ("key", "team-a"),
            ("model", "-"),
            ("policy", "rules"),
        ),
    )
    assert got[err] == 1
    assert (
        got[("turnout_tokens_total", (("key", "team-a"), ("model", "haiku"), ("type", "input")))]
        == 100  # the call's; a cache hit's answer spent no provider tokens
    )
    assert got[
        ("turnout_cost_usd_total", (("key", "team-a"), ("model", "haiku")))
    ] == pytest.approx(0.00015)
    assert got[("turnout_cache_hits_total", (("kind", "exact"),))] == 1
    assert got[("turnout_attempts_total", (("model", "haiku"), ("status", "ok")))] == 1
    assert got[("turnout_attempts_total", (("model", "opus"), ("status", "server_error")))] == 1
    assert ("turnout_attempts_total", (("model", "haiku"), ("status", "exact"))) not in got
    assert got[("turnout_cache_saved_usd_total", (("kind", "exact"),))] == pytest.approx(0.01)
    assert got[("turnout_breaker_state", (("model", "opus"),))] == 2
    assert got[("turnout_budget_remaining_usd", (("key", "team-a"),))] == 49.5
    assert got[("turnout_added_seconds_bucket", (("le", "0.0001"), ("policy", "rules")))] == 1
    assert got[("turnout_ttft_seconds_count", (("model", "haiku"),))] == 1
    assert got[("turnout_redis_degraded_total", (("what", "rate limits"),))] == 1
    assert got[("turnout_traces_spilled_total", ())] == 3
    assert "tk-" not in body.decode()


WORKER = """
import sys
from turnout.observability.metrics import Metrics
m = Metrics()
for _ in range(int(sys.argv[1])):
    m.observe_request(policy="rules", model="haiku", key="team-a", error_class=None, latency_s=0.1)
m.set_budget_remaining("team-a", float(sys.argv[2]))
"""


def test_workers_aggregate(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n, remaining in ((3, "10"), (4, "9")):
        subprocess.run([sys.executable, "-c", WORKER, str(n), remaining], env=env, check=True)
    reader = "from turnout.observability.metrics import Metrics; import sys; sys.stdout.write(Metrics().render()[0].decode())"
    text = subprocess.run([sys.executable, "-c", reader], env=env, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    got = samples(text)
    key = (
        "turnout_requests_total",
        (("key", "team-a"), ("model", "haiku"), ("policy", "rules"), ("status", "ok")),
    )
    assert got[key] == 7
    assert got[("turnout_request_seconds_count", (("policy", "rules"),))] == 7
    assert got[("turnout_budget_remaining_usd", (("key", "team-a"),))] == 9  # the most recent


def test_one_gateway_process_starts_its_shared_metrics_from_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.cli.serve import _fresh_metrics
    from turnout.gateway.app import WORKER_ENV

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f"counter_{gone}.db").write_bytes(b"x")
    (tmp_path / f"counter_{os.getppid()}.db").write_bytes(b"x")  # a live process's: kept
    (tmp_path / "notes.txt").write_text("kept")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv(WORKER_ENV, "1")  # a worker: its parent cleared the directory
    _fresh_metrics()
    assert (tmp_path / f"counter_{gone}.db").exists()
    monkeypatch.delenv(WORKER_ENV)
    _fresh_metrics()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{os.getppid()}.db", "notes.txt"]
