"""What a new user trips on (issue 9), end to end: real HTTP to the fake server, a real
SQLite store, the `turnout` entry point (and a real subprocess for signals)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

import pytest

from turnout.cli.main import main
from turnout.testing.faults import Fault


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run(project: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return cli(capsys, "run", "workflow.yaml", "-c", "turnout.yaml", "-i", "task=x",
               "--store", str(project.store), *args)  # fmt: skip


def bench(project: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return cli(capsys, "bench", "workflow.yaml", "-c", "turnout.yaml", "-i", "task=x",
               "--policies", "all_frontier,mixed", "--store", str(project.store), *args)  # fmt: skip


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# -- 3. unwritable outputs: one line, before spending -----------------------------------


def test_bench_json_path_is_checked_before_any_call(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write("a-file", "")
    code, _, err = bench(project, capsys, "--json", "a-file/sub/out.json")
    assert code == 2
    assert "--json a-file/sub/out.json: cannot write there" in one_error_line(err)
    assert project.server.server.requests == [] and not project.store.exists()


def test_report_html_and_png_dir_unwritable_are_one_line(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = bench(project, capsys, "--json", "b.json")
    assert code == 0
    bench_id = json.loads((project.root / "b.json").read_text())["bench_id"]
    project.write("a-file", "")
    store = ("--store", str(project.store))
    code, _, err = cli(capsys, "report", "bench", bench_id, "--html", "a-file/r.html", *store)
    assert code == 2 and "--html a-file/r.html: cannot write there" in one_error_line(err)
    code, _, err = cli(capsys, "report", "bench", bench_id, "--html", "r.html",
                       "--png-dir", "a-file/png", *store)  # fmt: skip
    assert code == 2 and "--png-dir a-file/png: cannot write there" in one_error_line(err)
    assert not (project.root / "r.html").exists()  # refused before writing anything


# -- 5. an unset API key is found before the first call ---------------------------------


def test_unset_api_key_fails_before_the_first_call(
    project: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_API_KEY")
    code, _, err = bench(project, capsys, "--runs", "3")
    assert code == 2
    line = one_error_line(err)
    assert "environment variable FAKE_API_KEY is not set" in line and "opus" in line
    assert project.server.server.requests == [] and not project.store.exists()
    code, _, err = run(project, capsys, "--policy", "mixed")
    assert code == 2 and "FAKE_API_KEY" in one_error_line(err)


# -- 8. money is checked; errors name their step once -----------------------------------


@pytest.mark.parametrize("amount", ["-1", "nan", "inf", "-inf", "lots"])
def test_max_cost_must_be_a_finite_amount(
    project: Any, capsys: pytest.CaptureFixture[str], amount: str
) -> None:
    code, _, err = run(project, capsys, "--policy", "mixed", "--max-cost", amount)
    assert code == 2
    assert "--max-cost" in one_error_line(err) and "not an amount of USD" in err
    assert project.server.server.requests == []


def test_errors_name_the_step_once(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(project, capsys, "--policy", "all_frontier", "--max-cost", "0", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["error"].count("step 'planner'") == 1 and "run cap of $0" in data["error"]
    project.server.server.script(*[Fault.error(503)] * 3)
    code, out, _ = run(project, capsys, "--policy", "all_frontier", "--json")
    data = json.loads(out)
    assert data["error"].startswith("step 'planner': all 3 attempt(s) failed")
    assert "step 'planner': step 'planner'" not in out


# -- 9 / 10 / 12: what the run summary says ---------------------------------------------


def test_run_summary_names_missing_words_and_skipped_steps(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project.server.server.script(Fault.error(400))  # planner refused: the rest is skipped
    code, out, _ = run(project, capsys, "--policy", "all_frontier")
    assert code == 1
    table = out[out.index("run ") :]
    implementer = next(line for line in table.splitlines() if "implementer" in line)
    assert "skipped" in implementer and "code" not in implementer

    code, _, _ = run(project, capsys, "--policy", "all_frontier")  # reply lacks nothing
    assert code == 0
    project.server.server.reply = "risks only"
    code, out, _ = run(project, capsys, "--policy", "all_frontier")
    assert code == 1
    assert "contains_all[risks,tests,rollback] (missing 2 of 3: tests, rollback)" in out


def test_tag_errors_say_tag(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(project, capsys, "--tag", "broken")
    assert code == 2 and "--tag 'broken': expected KEY=VALUE" in one_error_line(err)


def test_one_error_style_for_usage_and_lookups(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "traces", "show", "nope", "--store", str(project.store))
    assert code == 2 and one_error_line(err).startswith("error: no run 'nope'")
    code, _, err = cli(capsys, "run", "workflow.yaml", "--runs", "3")
    assert code == 2 and "No such option '--runs'" in one_error_line(err)


# -- 4. interrupted runs: SIGTERM, then --resume ----------------------------------------


def _statuses(db: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status FROM runs ORDER BY started_at").fetchall()
    conn.close()
    return [r[0] for r in rows]


def test_sigterm_records_runs_interrupted_and_resume_finishes(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project.server.server.latency = 30.0  # every call hangs: the bench is mid-flight
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnout.cli.main", "bench", "workflow.yaml", "-c", "turnout.yaml",
         "-i", "task=x", "--policies", "all_frontier,mixed", "--runs", "2", "--concurrency", "4",
         "--store", str(project.store)],
        cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    db = str(project.store)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(project.server.server.requests) >= 4:
            break
        time.sleep(0.1)
    assert len(project.server.server.requests) >= 4
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "Resume with: turnout bench --resume" in output
    assert _statuses(db) == ["interrupted"] * 4
    with sqlite3.connect(db) as conn:
        (bench_id,) = conn.execute("SELECT bench_id FROM benches").fetchone()
        (calls,) = conn.execute("SELECT SUM(calls) FROM runs").fetchone()
    conn.close()
    assert calls == 4  # each run's call in flight is kept (cancelled) and counted

    project.server.server.latency = 0.0
    code, out, err = cli(capsys, "bench", "--resume", bench_id, "--store", db, "--json", "r.json")
    assert code == 0, out + err
    assert "4 to go" in out + err
    final = json.loads((project.root / "r.json").read_text())
    assert all(p["runs"] == 2 and p["successes"] == 2 for p in final["policies"].values())
    code, out, _ = cli(capsys, "report", "weekly", "--store", db, "--since", "1d")
    assert code == 0 and "4 succeeded, 4 interrupted" in out and "running" not in out
