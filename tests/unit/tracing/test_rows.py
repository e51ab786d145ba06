"""Records to rows for a whole batch: the same rows as one by one, with the GIL offered
between chunks."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.tracing import rows


def test_batch_rows_are_the_rows_of_each_record(s: Any) -> None:
    runs = [s.run(run_id=f"r{i}") for i in range(3)]
    steps = [s.step(run_id=f"r{i}") for i in range(3)]
    attempts = [s.attempt(run_id=f"r{i}", attempt=i) for i in range(40)]
    run_rows, step_rows, attempt_rows = rows.batch_rows(runs, steps, attempts)
    assert run_rows == [rows.run_row(r) for r in runs]
    assert step_rows == [rows.step_row(x) for x in steps]
    assert attempt_rows == [rows.attempt_row(a) for a in attempts]
    assert rows.batch_rows([], [], []) == ([], [], [])


def test_a_long_batch_offers_the_gil_every_chunk(s: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(rows.time, "sleep", sleeps.append)
    total = 10 + 10 + 80  # runs, steps and attempts count as one sequence
    rows.batch_rows(
        [s.run(run_id=f"r{i}") for i in range(10)],
        [s.step(run_id=f"r{i}") for i in range(10)],
        [s.attempt(attempt=i) for i in range(80)],
    )
    assert sleeps == [0] * (total // rows.YIELD_EVERY)
    sleeps.clear()
    rows.batch_rows([s.run()], [s.step()], [s.attempt()])
    assert sleeps == []  # a short batch never gives the GIL up
