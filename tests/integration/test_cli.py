"""The CLI end to end: real HTTP to the fake server, a real SQLite trace store."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from turnout.cli.main import main
from turnout.testing.faults import Fault
from turnout.tracing import open_store

API_KEY = "sk-test-SECRET-0123456789"  # the same value conftest.py puts in FAKE_API_KEY


def run_cli(capsys: pytest.CaptureFixture[str], project: Any, *args: str) -> tuple[int, str, str]:
    """``turnout run workflow.yaml -c turnout.yaml ARGS --store <project store>``."""
    return cli(
        capsys, "run", "workflow.yaml", "-c", "turnout.yaml", *args, "--store", str(project.store)
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_has_the_documented_keys(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, project, "--policy", "mixed", "--input", "task=CSV export", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "succeeded"
    assert {"run_id", "status", "steps", "totals"} <= data.keys()
    planner, implementer, words = data["steps"]
    for step in data["steps"]:
        for key in (
            "id",
            "model",
            "tier",
            "status",
            "latency_s",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "score",
            "checks",
            "attempts",
        ):
            assert key in step
    assert (planner["model"], planner["tier"]) == ("opus", "frontier")
    assert implementer["model"] == "haiku" and implementer["attempts"][0]["status"] == "ok"
    assert words["model"] is None and words["output"] == 6
    assert planner["score"] == 1.0 and planner["cost_usd"] > 0
    sent = project.server.server.requests
    assert sent[0].authorization == f"Bearer {API_KEY}"
    assert '{"risks": []}' in sent[0].body["messages"][-1]["content"]
    trace = open_store(str(project.store)).get_run(data["run_id"])
    assert trace is not None and trace.run.status == "succeeded" and len(trace.attempts) == 2


def test_run_prints_each_step(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, project, "--policy", "all_frontier", "-i", "task=x")
    assert code == 0
    assert "planner" in out and "opus" in out and "static: every step -> opus" in out


def test_failed_run_is_recorded_with_its_attempts(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project.server.server.script(*[Fault.error(503)] * 3)
    code, out, _ = run_cli(capsys, project, "--policy", "all_frontier", "-i", "task=x", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "failed"
    assert [a["status"] for a in data["steps"][0]["attempts"]] == ["error"] * 3
    assert data["steps"][1]["status"] == "skipped"
    trace = open_store(str(project.store)).get_run(data["run_id"])
    assert trace is not None and trace.run.status == "failed"
    assert [a.error_class for a in trace.attempts] == ["server_error"] * 3


def test_bench_with_cases_writes_json(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project.write("cases.jsonl", '{"task": "a"}\n{"task": "b"}\n{"id": "c", "task": "c"}\n')
    code, out, _ = cli(
        capsys,
        "bench",
        "workflow.yaml",
        "-c",
        "turnout.yaml",
        "--policies",
        "all_frontier,mixed",
        "--runs",
        "2",
        "--concurrency",
        "4",
        "--cases",
        "cases.jsonl",
        "--json",
        "out/bench.json",
        "--store",
        str(project.store),
    )
    assert code == 0
    for column in ("Route", "Calls", "Cost per successful run", "Latency per successful run"):
        assert column.split()[0] in out
    data = json.loads((project.root / "out/bench.json").read_text())
    assert set(data["policies"]) == {"all_frontier", "mixed"}
    p = data["policies"]["mixed"]
    assert p["runs"] == 6 and p["successes"] == 6 and p["calls"] == 12
    for key in (
        "runs",
        "successes",
        "calls",
        "total_latency_s",
        "total_tokens",
        "output_tokens",
        "cost_usd",
        "score",
        "cost_per_success_usd",
        "latency_per_success_s",
    ):
        assert key in p
    assert data["policies"]["all_frontier"]["cost_usd"] > p["cost_usd"]
    runs = open_store(str(project.store)).list_runs(limit=100, bench_id=data["bench_id"])
    assert len(runs) == 12


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["--policy", "nope"], {}, "unknown policy 'nope'"),
        (
            ["--policy", "mixed"],
            {"turnout.yaml": "providers: {a: {kind: openai\n"},
            "turnout.yaml: line",
        ),
        (
            ["--policy", "mixed"],
            {"workflow.yaml": "name: w\nsteps:\n  - id: a\n    prompt: '{{ tsk }}'\n"},
            "step 'a': prompt uses {{ tsk }}",
        ),
        (
            ["--policy", "mixed"],
            {
                "workflow.yaml": "name: w\nsteps:\n  - {id: a, prompt: x, inputs: [b]}\n  - {id: b, prompt: y, inputs: [a]}\n"
            },
            "cycle",
        ),
        (
            ["--policy", "mixed"],
            {"workflow.yaml": "name: w\nsteps:\n  - {id: a, prompt: x, inputs: [zz]}\n"},
            "input 'zz' is not a step",
        ),
        (
            ["--policy", "mixed"],
            {"workflow.yaml": "name: w\nsteps:\n  - {id: a, prompt: x, model: gpt-9}\n"},
            "step 'a': model: unknown model 'gpt-9'",
        ),
        ([], {}, "missing workflow input(s) task"),
    ],
)
def test_bad_input_is_one_clear_line(
    project: Any,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    files: dict[str, str],
    message: str,
) -> None:
    for name, text in files.items():
        project.write(name, text)
    extra = ["-i", "task=x"] if args else []
    code, _out, err = run_cli(capsys, project, *args, *extra)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not project.store.exists()  # nothing half-written


def test_unreachable_provider_fails_the_run_clearly(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, project, "--policy", "broken", "-i", "task=x")
    assert code == 1
    assert "connection" in out.lower() and "Traceback" not in out + err


def test_401_names_the_problem_and_never_the_key(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project.server.server.script(Fault.error(401))
    code, out, err = run_cli(capsys, project, "--policy", "all_frontier", "-i", "task=x", "--json")
    assert code == 1
    data = json.loads(out)
    attempts = data["steps"][0]["attempts"]
    assert len(attempts) == 1 and attempts[0]["status"] == "error"
    assert "401" in attempts[0]["error"]
    assert API_KEY not in out + err
    assert API_KEY not in project.store.read_bytes().decode("utf-8", "replace")


def test_traces_list_and_show(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, project, "--policy", "mixed", "-i", "task=x", "--json")
    run_id = json.loads(out)["run_id"]
    code, out, _ = cli(capsys, "traces", "list", "--store", str(project.store))
    assert code == 0 and run_id[:8] in out
    code, out, _ = cli(capsys, "traces", "show", run_id, "--store", str(project.store))
    assert code == 0 and "planner" in out and "haiku" in out
    code, out, err = cli(capsys, "traces", "show", "ffffffffffff", "--store", str(project.store))
    assert code != 0 and "Traceback" not in err


def test_the_installed_command_runs_as_a_user_would(project: Any) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "turnout.cli.main",
            "run",
            "workflow.yaml",
            "-c",
            "turnout.yaml",
            "--policy",
            "mixed",
            "-i",
            "task=x",
            "--json",
            "--store",
            str(project.store),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.root,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "succeeded"


def test_override_is_recorded_and_listed_by_audit(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(
        capsys,
        "run",
        "workflow.yaml",
        "-c",
        "turnout.yaml",
        "--policy",
        "all_frontier",
        "-i",
        "task=x",
        "--json",
        "--store",
        str(project.store),
        "--override",
        "implementer=haiku",
        "--by",
        "ana",
        "--why",
        "mechanical step",
    )
    assert code == 0
    steps = {s["id"]: s for s in json.loads(out)["steps"]}
    assert steps["implementer"]["model"] == "haiku"
    assert steps["implementer"]["reason"].startswith("override by ana: mechanical step")
    assert steps["planner"]["model"] == "opus"
    code, out, _ = cli(capsys, "audit", "--store", str(project.store), "--json")
    assert code == 0
    (item,) = json.loads(out)
    assert (item["step_id"], item["model"], item["by"], item["why"]) == (
        "implementer",
        "haiku",
        "ana",
        "mechanical step",
    )
    code, out, _ = cli(capsys, "audit", "--store", str(project.store), "--by", "bob", "--json")
    assert json.loads(out) == []


def test_override_needs_who_and_why(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, project, "-i", "task=x", "--override", "implementer=haiku")
    assert code == 2 and "--override needs --by NAME and --why TEXT" in err
    code, _, err = run_cli(
        capsys, project, "-i", "task=x", "--override", "nope=haiku", "--by", "a", "--why", "b"
    )
    assert code == 2 and "no step 'nope'" in err


def test_run_budget_refuses_before_spending(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        project,
        "--policy",
        "all_frontier",
        "-i",
        "task=x",
        "--json",
        "--max-cost",
        "0.000001",
    )
    assert code == 1
    planner = json.loads(out)["steps"][0]
    assert planner["attempts"] == [] and "run cap" in planner["error"]
    assert project.server.server.requests == []


def test_turnout_store_env_var_names_the_store(
    project: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNOUT_STORE", str(project.store))
    code, out, _ = cli(
        capsys, "run", "workflow.yaml", "-c", "turnout.yaml", "-i", "task=x", "--json"
    )
    assert code == 0
    run_id = json.loads(out)["run_id"]
    code, out, _ = cli(capsys, "traces", "show", run_id, "--json")
    assert code == 0 and run_id in out
    assert not (project.root / ".turnout").exists()
