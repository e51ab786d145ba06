"""``turnout bench`` end to end: the analysis in its table and JSON, and resuming
an interrupted bench. Real HTTP to the fake server, a real SQLite trace store."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from turnout.cli.main import main

POLICY_KEYS = (
    # the foundation's keys
    "runs", "successes", "calls", "total_latency_s", "total_tokens", "output_tokens",
    "cost_usd", "score", "cost_per_success_usd", "latency_per_success_s",
    # and this issue's
    "success_rate", "success_ci", "cost_per_success_ci", "latency_per_success_ci",
    "latency_p50_s", "latency_p95_s", "wall_s", "steps",
)  # fmt: skip
STEP_KEYS = (
    "model", "models", "cost_usd", "spend_share", "latency_share", "pass_rate", "pass_ci", "n",
)  # fmt: skip
COMPARISON_KEYS = (
    "policy", "baseline", "cost_saving", "cost_saving_ci", "cost_significant", "success_diff",
    "success_diff_ci", "success_significant", "verdict",
)  # fmt: skip


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def bench(project: Any, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code, out, err = cli(
        capsys,
        "bench",
        "workflow.yaml",
        "-c",
        "turnout.yaml",
        "--policies",
        "all_frontier,mixed",
        "--store",
        str(project.store),
        *extra,
    )
    return code, out + err


def test_bench_json_has_the_analysis(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = bench(project, capsys, "--runs", "6", "--concurrency", "4",
                       "--input", "task=CSV export", "--json", "out/bench.json")  # fmt: skip
    assert code == 0, text
    data = json.loads((project.root / "out/bench.json").read_text())
    assert data["bench_id"].startswith("b")
    assert data["baseline"] == "all_frontier" and data["level"] == 0.95
    assert set(data["policies"]) == {"all_frontier", "mixed"}
    for name, p in data["policies"].items():
        for key in POLICY_KEYS:
            assert key in p, (name, key)
        assert p["runs"] == 6 and p["successes"] == 6 and p["success_rate"] == 1.0
        low, high = p["success_ci"]
        assert 0.5 < low < 1.0 and high == 1.0
        assert isinstance(p["cost_usd"], float)
        lo, hi = p["cost_per_success_ci"]
        assert lo <= p["cost_per_success_usd"] <= hi
        assert p["latency_p50_s"] <= p["latency_p95_s"]
        assert list(p["steps"]) == ["planner", "implementer", "words"]
        for step in p["steps"].values():
            for key in STEP_KEYS:
                assert key in step, key
        assert sum(s["spend_share"] for s in p["steps"].values()) == pytest.approx(1.0)
    mixed = data["policies"]["mixed"]["steps"]
    assert mixed["implementer"]["model"] == "haiku" and mixed["planner"]["model"] == "opus"
    assert mixed["words"]["model"] is None and mixed["words"]["cost_usd"] == 0
    assert mixed["planner"]["pass_rate"] == 1.0 and mixed["planner"]["n"] == 6
    (c,) = data["comparisons"]
    for key in COMPARISON_KEYS:
        assert key in c, key
    assert (c["policy"], c["baseline"]) == ("mixed", "all_frontier")
    # the fake server answers the same tokens every time: haiku on the implementer is cheaper
    assert c["cost_saving"] > 0 and c["cost_significant"]
    assert not c["success_significant"] and c["success_diff"] == 0
    assert c["verdict"].startswith("mixed: ")
    assert "cheaper per successful run than all_frontier (95% CI" in c["verdict"]
    assert c["verdict"].endswith("success 1.00 vs 1.00, not a significant difference at n=6")
    # the same for people
    for words in ("Cost per successful run", "Success rate", "Run latency p95",
                  "Share of spend", "Pass rate", c["verdict"], "mixed: per step"):  # fmt: skip
        assert words in text, words


def test_bench_level_and_baseline(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = bench(project, capsys, "--runs", "5", "--input", "task=x", "--level", "0.9",
                       "--baseline", "mixed", "--json", "-")  # fmt: skip
    assert code == 0, text
    data = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert data["level"] == 0.9 and data["baseline"] == "mixed"
    (c,) = data["comparisons"]
    assert (
        c["policy"] == "all_frontier"
        and "dearer per successful run than mixed (90% CI" in (c["verdict"])
    )
    code, text = bench(project, capsys, "--level", "95", "--input", "task=x")
    assert code != 0 and "--level" in text


def _delete_runs(db: str, run_ids: list[str]) -> None:
    marks = ",".join("?" * len(run_ids))
    with sqlite3.connect(db) as conn:
        for table in ("attempts", "steps", "runs"):
            conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", run_ids)
    conn.close()


def test_resume_runs_only_what_is_missing(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = bench(project, capsys, "--runs", "3", "--input", "task=CSV export",
                       "--json", "first.json")  # fmt: skip
    assert code == 0, text
    first = json.loads((project.root / "first.json").read_text())
    bench_id = first["bench_id"]
    assert len(project.server.requests) == 3 * 2 * 2  # 3 runs x 2 policies x 2 LLM steps

    # an interruption: two runs never finished (one lost, one left 'running')
    db = str(project.store)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT run_id, policy, tags FROM runs WHERE bench_id = ? ORDER BY run_id",
            (bench_id,),
        ).fetchall()
        conn.execute("UPDATE benches SET status = 'interrupted' WHERE bench_id = ?", (bench_id,))
    conn.close()
    assert len(rows) == 6
    by_job = {(p, json.loads(t)["repeat"]): r for r, p, t in rows}
    _delete_runs(db, [by_job[("mixed", "3")]])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?",
                     (by_job[("all_frontier", "2")],))  # fmt: skip
    conn.close()

    before = len(project.server.requests)
    code, out, err = cli(capsys, "bench", "--resume", bench_id[:8], "--store", db,
                         "--json", "final.json")  # fmt: skip
    assert code == 0, out + err
    assert "2 to go" in out + err
    assert len(project.server.requests) - before == 2 * 2  # two runs, two LLM calls each
    final = json.loads((project.root / "final.json").read_text())
    assert final["bench_id"] == bench_id and final["status"] == "finished"
    for p in final["policies"].values():
        assert p["runs"] == 3 and p["successes"] == 3
        assert p["steps"]["planner"]["n"] == 3
    assert final["comparisons"][0]["verdict"].endswith("at n=3")
    with sqlite3.connect(db) as conn:
        (finished,) = conn.execute(
            "SELECT count(*) FROM runs WHERE bench_id = ? AND status = 'succeeded'", (bench_id,)
        ).fetchone()
    conn.close()
    assert finished == 6

    # resuming a finished bench runs nothing and reports the same runs
    before = len(project.server.requests)
    code, out, err = cli(capsys, "bench", "--resume", bench_id, "--store", db, "--json", "-")
    assert code == 0, err
    assert len(project.server.requests) == before
    again = json.loads(out)
    assert {k: v["runs"] for k, v in again["policies"].items()} == {
        "all_frontier": 3,
        "mixed": 3,
    }
