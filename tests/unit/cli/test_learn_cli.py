"""``turnout learn`` / ``learn export`` / ``learn eval`` / ``learn score`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.planted import needs_minilm
from turnout.cli.main import main
from turnout.learn.datasets import planted_outcomes
from turnout.tracing import RunRecord, SQLiteStore, StepRecord
from turnout.tracing.records import AttemptRecord
from turnout.types import CheckResult


def _jsonl(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@needs_minilm
def test_learn_eval_score_on_two_models_and_prompts_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # outcomes of exactly two models, no step / workflow / tags: what public data looks like
    train = _jsonl(tmp_path / "train.jsonl", planted_outcomes(120, seed=1, animals=0.8,
                                                                models=("mixtral", "gpt4")))  # fmt: skip
    test = _jsonl(tmp_path / "test.jsonl", planted_outcomes(80, seed=2, animals=0.8,
                                                              models=("mixtral", "gpt4")))  # fmt: skip
    router = tmp_path / "r.json"
    assert main(["learn", "--outcomes", str(train), "--out", str(router), "--cv", "3",
                 "--target", "quality=0.95"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "mixtral, gpt4 from 240 outcomes (120 prompts)" in out and "APGR" in out
    html = tmp_path / "curve.html"
    assert main(["learn", "eval", "--router", str(router), "--outcomes", str(test),
                 "--html", str(html)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "80 prompts answered by both mixtral (cheap) and gpt4 (strong)" in out
    assert "APGR 0.8" in out or "APGR 0.9" in out
    assert "CPT(50%)" in out and "cost per passed answer $" in out
    assert "<svg" in html.read_text() and "random router" in html.read_text()
    assert main(["learn", "eval", "--router", str(router), "--outcomes", str(test),
                 "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["apgr"] >= 0.8 and set(report["pass_rate"]) == {"mixtral", "gpt4", "oracle"}
    prompts = _jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "Tell me three facts about the otter."},
        {"id": "b", "messages": [{"role": "user", "content": "Describe the city of Lima in two sentences."}]},
    ])  # fmt: skip
    assert main(["learn", "score", "--router", str(router), "--prompts", str(prompts),
                 "--json", "--threshold", "0.2"]) == 0  # fmt: skip
    a, b = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert a["id"] == "a" and a["model"] == "mixtral" and set(a["p_pass"]) == {"mixtral", "gpt4"}
    assert b["model"] == "gpt4"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["learn", "--out", "r.json"], "give one of --outcomes FILE, --bench ID or --since DATE"),
        (["learn", "--outcomes", "o.jsonl"], "learn needs --out ROUTER"),
        (["learn", "--outcomes", "bad.jsonl", "--out", "r.json"], "bad.jsonl: line 1: needs model"),
        (["learn", "--outcomes", "o.jsonl", "--out", "r.json", "--target", "speed=1"],
         "--target 'speed=1': expected quality=0.95 or strong_share=0.3"),
        (["learn", "eval", "--router", "o.jsonl", "--outcomes", "o.jsonl"],
         "not a turnout router file"),
        (["learn", "export", "-o", "x.jsonl"], "export needs one of --bench ID or --since DATE"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "o.jsonl", [{"prompt": "x", "model": "a", "passed": True}])
    _jsonl(tmp_path / "bad.jsonl", [{"prompt": "x", "passed": True}])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "r.json").exists()


def test_export_from_the_trace_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "traces.db"
    with SQLiteStore(db) as store:
        store.write_batch(
            [RunRecord("r1", "wf", "p", "succeeded", 100.0, bench_id="b1")],
            [StepRecord("r1", "plan", "llm", "succeeded", 100.0, 1.0, model="qwen",
                        checks=(CheckResult("ok", True),),
                        prompt=({"role": "user", "content": "plan it"},))],
            [AttemptRecord("r1", "plan", 1, "qwen", "local", None, "p", "r", 100.0, 1.0, "ok")],
        )  # fmt: skip
    out = tmp_path / "o.jsonl"
    assert main(["learn", "export", "--bench", "b1", "--store", str(db), "-o", str(out)]) == 0
    assert "1 outcomes" in capsys.readouterr().out
    line = json.loads(out.read_text())
    assert line == {"id": "r1:plan", "messages": [{"role": "user", "content": "plan it"}],
                    "model": "qwen", "passed": True, "step": "plan", "workflow": "wf",
                    "cost_usd": 0.0}  # fmt: skip
    assert main(["learn", "export", "--bench", "zz", "--store", str(db), "-o", str(out)]) == 2
    assert "nothing to learn from" in capsys.readouterr().err
