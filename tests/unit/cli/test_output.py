"""The run summary and the bench per-step table: what they say about each step."""

from __future__ import annotations

import io
from decimal import Decimal

from rich.console import Console

from turnout.bench.analysis import StepStats
from turnout.cli.bench_output import _models_cell
from turnout.cli.output import run_table, step_line
from turnout.types import CheckResult
from turnout.workflows.results import RunResult, StepResult


def _text(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_a_skipped_llm_step_shows_as_skipped_not_code() -> None:
    failed = StepResult("planner", "llm", "failed", 0.0, 1.0, model="opus", tier="frontier",
                        error="refused")  # fmt: skip
    skipped = StepResult("implementer", "llm", "skipped", 0.0, 0.0, error="skipped: ...")
    code = StepResult("words", "code", "skipped", 0.0, 0.0)
    ran_code = StepResult("count", "code", "succeeded", 0.0, 0.0)
    run = RunResult("r1", "wf", "p", "failed", 0.0, 1.0, (failed, skipped, code, ran_code))
    rows = {line.split("│")[1].strip(): line for line in _text(run_table(run)).splitlines()
            if line.startswith("│")}  # fmt: skip
    assert rows["implementer"].split("│")[2].strip() == "skipped"
    assert rows["words"].split("│")[2].strip() == "skipped"
    assert rows["count"].split("│")[2].strip() == "code"
    assert "skipped" in _text(step_line(skipped)) and "llm" not in _text(step_line(skipped))
    never = StepStats("mixed", "implementer", None, (), 0, 0, None, None, Decimal(0), 0.0, 0.0,
                      0.0, kind="llm")  # fmt: skip
    assert _models_cell(never) == "skipped"
    assert _models_cell(StepStats("m", "words", None, (), 1, 1, 1.0, None, Decimal(0), 0.0,
                                  0.0, 0.0, kind="code")) == "code"  # fmt: skip


def test_failed_checks_say_what_they_looked_for_and_what_was_missing() -> None:
    checks = (
        CheckResult("contains_any[risk,pitfall]", False, "none found of: risk, pitfall"),
        CheckResult("contains_any[test]", True, "found: test"),
    )
    step = StepResult("planner", "llm", "failed", 0.0, 1.0, model="qwen", tier="frontier",
                      checks=checks)  # fmt: skip
    line = _text(step_line(step))
    assert "1/2 ✗ contains_any[risk,pitfall] (none found of: risk, pitfall)" in line
