"""Bench progress counts steps as they finish and says what is in flight."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from turnout.cli.bench_progress import BenchProgress
from turnout.workflows.results import RunResult, StepResult


def _step(step_id: str) -> StepResult:
    return StepResult(step_id, "llm", "succeeded", 0.0, 1.0)


def _run(policy: str) -> RunResult:
    return RunResult(
        "r1", "wf", policy, "succeeded", 0.0, 2.0, (), tags={"case": "c", "repeat": "1"}
    )


async def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    assert not console.is_terminal
    tracker = BenchProgress(console, {"mixed": (1, 0), "rules": (1, 0)}, 4, every_s=0.02)
    async with tracker.ticking():
        tracker.step_started("mixed", "c#1", "planner", "qwen")
        tracker.step_finished("mixed", "c#1", _step("planner"))
        tracker.step_started("mixed", "c#1", "implementer", "smol")
        await asyncio.sleep(0.1)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3  # a line every few seconds (here 0.02 s), and one at the end
    assert "mixed 1/4 steps, 0/1 runs (implementer on smol); rules 0/4 steps, 0/1 runs" in lines[0]


async def test_bars_move_per_step_in_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=150)
    tracker = BenchProgress(console, {"mixed": (1, 0)}, 4)
    async with tracker.ticking():
        assert tracker.progress is not None
        (task,) = tracker.progress.tasks
        tracker.step_started("mixed", "c#1", "planner", "qwen")
        assert task.fields["now"] == "planner on qwen"
        tracker.step_finished("mixed", "c#1", _step("planner"))
        assert (task.completed, task.total) == (1, 4)
        tracker.run_finished(_run("mixed"))
        assert task.completed == 4 and task.fields["runs"] == "1/1"
