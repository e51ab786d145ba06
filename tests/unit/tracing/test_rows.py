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


def test_a_batch_goes_as_json_unless_a_value_would_not_survive_it() -> None:
    plain = [("r1", None, 1.5, '{"role":"assistant","content":null}'), ("r2", 2, None, "x")]
    assert rows.json_rows(plain) is not None  # a JSON text's null is not a value's
    for odd in (float("nan"), float("inf"), -float("inf")):
        assert rows.json_rows([("r1", None, odd, "x"), ("r2", 2, None, "x")]) is None
    assert rows.json_rows([("r1", None, 1.0, "[null, 2]")]) is None  # safe: one by one
    assert rows.json_rows([("r1", 2**63, 1.0, "x")]) is None  # past 64 bits
    assert rows.json_rows([("r1", 2**53 + 1, 1.0, "x")]) is None  # past a double's integers
    assert rows.json_rows([("r1\x00", 1, 1.0, "x")]) is None  # a NUL
    assert rows.json_rows([("r1", 1, 1.0, "x\ud800")]) is None  # not UTF-8


def test_last_per_key_keeps_what_upserting_one_by_one_leaves() -> None:
    table = [("r1", "a", 1), ("r2", "a", 2), ("r1", "a", 3), ("r1", "b", 4)]
    assert rows.last_per_key(table, 1) == [("r1", "b", 4), ("r2", "a", 2)]
    assert rows.last_per_key(table, 2) == [("r1", "a", 3), ("r2", "a", 2), ("r1", "b", 4)]
    distinct = [("r1", 1), ("r2", 2)]
    assert rows.last_per_key(distinct, 1) is distinct


@pytest.mark.parametrize(
    "casts",
    [
        None,
        {
            "runs": ["text"] * len(rows.RUN_COLUMNS),
            "steps": ["text"] * len(rows.STEP_COLUMNS),
            "attempts": ["text"] * len(rows.ATTEMPT_COLUMNS),
        },
    ],
)
def test_json_inserts_name_every_column_once(casts: Any) -> None:
    for sql, columns in zip(rows.json_inserts(casts), rows.TABLE_COLUMNS.values(), strict=True):
        assert f"({', '.join(columns)})" in sql
        assert sql.count("->>") == len(columns)
        assert ("jsonb_array_elements" in sql) == (casts is not None)
