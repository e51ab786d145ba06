"""The outcomes format: JSONL lines, validation naming the line, export from traces."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.errors import ConfigError
from turnout.learn.outcomes import export_outcomes, read_outcomes, write_outcomes
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.tracing.sqlite import SQLiteStore
from turnout.types import CheckResult


def _write(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_read_prompts_messages_scores_and_context(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "o.jsonl",
        {"id": "q1", "prompt": "2+2?", "model": "smol", "passed": True, "cost_usd": 0.001},
        "",
        {"id": "q1", "messages": [{"role": "system", "content": "be brief"},
                                  {"role": "user", "content": "2+2?"}],
         "model": "qwen", "passed": 0.5, "step": "plan", "workflow": "w",
         "annotation": {"domain": "docs"}, "tags": {"context": "ci"}},
    )  # fmt: skip
    a, b = read_outcomes(f)
    assert (a.text, a.model, a.passed, a.cost_usd) == ("2+2?", "smol", 1.0, 0.001)
    assert b.text == "2+2?" and b.passed == 0.5 and b.step == "plan"
    assert dict(b.annotation) == {"domain": "docs"} and dict(b.tags) == {"context": "ci"}
    assert a.key == b.key == "q1"
    out = tmp_path / "copy.jsonl"
    assert write_outcomes([a, b], out) == 2
    assert read_outcomes(out) == [a, b]


def test_without_an_id_the_text_step_and_workflow_make_the_prompt_key(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "o.jsonl",
        {"prompt": "hi", "model": "a", "passed": False},
        {"prompt": "hi", "model": "b", "passed": True},
        {"prompt": "hi", "model": "b", "passed": True, "step": "other"},
    )
    a, b, c = read_outcomes(f)
    assert a.key == b.key != c.key


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: Expecting property name"),
        ({"model": "a", "passed": True}, "line 2: needs prompt (a string) or messages"),
        ({"prompt": "x", "passed": True}, "line 2: needs model"),
        ({"prompt": "x", "model": "a", "passed": 2}, "passed must be true/false or a score"),
        ({"prompt": "x", "model": "a", "passed": "yes"}, "passed must be"),
        ({"prompt": "x", "model": "a", "passed": True, "modle": 1}, "unknown field 'modle'"),
        ({"prompt": "x", "model": "a", "passed": True, "tags": {"k": 1}}, "tags must be"),
        ({"prompt": "x", "model": "a", "passed": True, "annotation": {"team": "x"}},
         "annotation has unknown key 'team'"),
        ({"messages": [{"role": "robot", "content": "x"}], "model": "a", "passed": True},
         "unknown message role 'robot'"),
        ({"prompt": "x", "model": "a", "passed": True, "cost_usd": "1"}, "cost_usd must be"),
        ("[1, 2]", "expected a JSON object"),
    ],
)  # fmt: skip
def test_a_bad_line_is_one_error_naming_the_file_and_line(
    tmp_path: Path, line: object, message: str
) -> None:
    f = _write(tmp_path / "o.jsonl", {"prompt": "ok", "model": "a", "passed": True}, line)
    with pytest.raises(ConfigError) as info:
        read_outcomes(f)
    text = str(info.value)
    assert text.startswith(f"{f}: line 2: ") and message in text and "\n" not in text


def test_an_empty_or_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no outcomes"):
        read_outcomes(_write(tmp_path / "e.jsonl", ""))
    with pytest.raises(ConfigError, match="cannot read outcomes"):
        read_outcomes(tmp_path / "missing.jsonl")


def _attempt(run: str, step: str, n: int, model: str, status: str, cost: str) -> AttemptRecord:
    return AttemptRecord(
        run, step, n, model, "p", None, "cascade", "r", 1.0 + n, 0.1, status,  # type: ignore[arg-type]
        cost_usd=Decimal(cost),
    )  # fmt: skip


def test_export_every_attempt_of_a_checked_step(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    prompt = ({"role": "user", "content": "Write the plan"},)
    run = RunRecord("r1", "wf", "cascade", "succeeded", 1.0, 2.0, tags={"context": "ci"},
                    bench_id="b1")  # fmt: skip
    steps = [
        # a cascade: smol's answer rejected, qwen's accepted and its checks passed
        StepRecord("r1", "plan", "llm", "succeeded", 1.0, 0.5, model="qwen",
                   checks=(CheckResult("has_steps", True), CheckResult("style", False, required=False)),
                   annotation={"domain": "docs"}, prompt=prompt),
        # checks failed
        StepRecord("r1", "verify", "llm", "failed", 1.5, 0.5, model="smol",
                   checks=(CheckResult("has_tests", False),), prompt=prompt),
        # not checked: not an outcome
        StepRecord("r1", "notes", "llm", "succeeded", 1.6, 0.1, model="smol", prompt=prompt),
    ]  # fmt: skip
    attempts = [
        _attempt("r1", "plan", 1, "smol", "rejected", "0.001"),
        _attempt("r1", "plan", 2, "qwen", "ok", "0.01"),
        _attempt("r1", "verify", 1, "smol", "error", "0"),  # a provider error: no verdict
        _attempt("r1", "verify", 2, "smol", "ok", "0.002"),
        _attempt("r1", "notes", 1, "smol", "ok", "0.001"),
    ]
    store.write_batch([run], steps, attempts)
    got = list(export_outcomes(store, bench_id="b1"))
    assert [(o.id, o.model, o.passed) for o in got] == [
        ("r1:plan", "smol", 0.0),
        ("r1:plan", "qwen", 1.0),
        ("r1:verify", "smol", 0.0),
    ]
    first = got[0]
    assert first.text == "Write the plan" and first.step == "plan" and first.workflow == "wf"
    assert dict(first.annotation) == {"domain": "docs"} and dict(first.tags) == {"context": "ci"}
    assert got[1].cost_usd == pytest.approx(0.01)
    assert list(export_outcomes(store, bench_id="other")) == []
    assert len(list(export_outcomes(store, since=0.0, workflow="wf"))) == 3
    assert list(export_outcomes(store, since=10.0)) == []
    out = tmp_path / "o.jsonl"
    write_outcomes(got, out)
    assert [o.key for o in read_outcomes(out)] == ["r1:plan", "r1:plan", "r1:verify"]
    store.close()
