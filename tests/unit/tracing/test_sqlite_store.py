"""SQLiteStore: every field round-trips, costs stay exact, runs and steps upsert."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from turnout.errors import StoreError
from turnout.tracing import SQLiteStore, cost_to_pico, pico_to_cost


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    st = SQLiteStore(tmp_path / "nested" / "dir" / "traces.db")
    yield st
    st.close()


def test_opening_creates_the_directory_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "traces.db"
    with SQLiteStore(path):
        assert path.exists()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_every_field_round_trips(store: SQLiteStore, s: Any) -> None:
    run, step = s.run(), s.step()
    code_step = s.step(
        step_id="lookup",
        kind="code",
        model=None,
        tier=None,
        policy=None,
        reason=None,
        ttft_s=None,
        score=None,
        checks=(),
        output=None,
        cost_usd=Decimal(0),
        started_at=s.T0 + 1,
    )
    attempts = (
        s.attempt(attempt=1),
        s.attempt(attempt=2, status="ok", error_class=None, error=None),
    )
    store.write_batch([run], [step, code_step], attempts)

    trace = store.get_run(run.run_id)
    assert trace is not None
    assert trace.run == run
    assert trace.steps == (step, code_step)
    assert trace.attempts == attempts
    assert dict(trace.run.inputs) == {
        "ticket": "Where is my refund?",
        "n": 3,
        "nested": {"a": [1, 2]},
    }
    assert trace.steps[0].checks[1].required is False


def test_optional_fields_round_trip_as_none(store: SQLiteStore, s: Any) -> None:
    run = s.run(
        ended_at=None,
        inputs={},
        tags={},
        bench_id=None,
        variant=None,
        score=None,
        status="failed",
        error="step 'x' failed",
    )
    attempt = s.attempt(tier=None, ttft_s=None)
    store.write_batch([run], [], [attempt])
    trace = store.get_run(run.run_id)
    assert trace is not None
    assert trace.run == run
    assert trace.attempts == (attempt,)


@pytest.mark.parametrize(
    "cost",
    ["0", "0.84", "0.03", "0.000000000001", "0.00000001875", "1234567.123456789012", "1E-7"],
)
def test_costs_are_exact(store: SQLiteStore, cost: str, s: Any) -> None:
    value = Decimal(cost)
    store.write_batch([s.run(cost_usd=value)], [], [s.attempt(cost_usd=value)])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run.cost_usd == value
    assert trace.attempts[0].cost_usd == value
    assert pico_to_cost(cost_to_pico(value)) == value


def test_costs_sum_exactly_in_sql(store: SQLiteStore, s: Any) -> None:
    # A float would drift: 0.1 + 0.2 != 0.3, and a million tiny costs drift far more.
    costs = [Decimal("0.1"), Decimal("0.2"), Decimal("0.00000001875")] * 1000
    store.write_batch([], [], [s.attempt(attempt=i, cost_usd=c) for i, c in enumerate(costs)])
    with sqlite3.connect(store.display) as conn:
        (total,) = conn.execute("SELECT sum(cost_picousd) FROM attempts").fetchone()
    assert pico_to_cost(total) == sum(costs) == Decimal("300.00001875")


def test_costs_beyond_a_picodollar_round_half_even() -> None:
    assert cost_to_pico(Decimal("0.0000000000005")) == 0
    assert cost_to_pico(Decimal("0.0000000000015")) == 2
    assert str(pico_to_cost(840_000_000_000)) == "0.84"
    assert str(pico_to_cost(10**13)) == "10"


def test_a_run_is_upserted_and_its_final_status_wins(store: SQLiteStore, s: Any) -> None:
    running = s.run(status="running", ended_at=None, calls=0, cost_usd=Decimal(0), score=None)
    store.write_batch([running], [], [])
    assert store.list_runs()[0].status == "running"
    final = s.run()
    store.write_batch([final], [], [])
    assert store.list_runs() == [final]
    # In one batch, the later record wins too.
    store.write_batch([replace(final, status="failed"), final], [], [])
    assert store.list_runs() == [final]


def test_steps_upsert_and_attempts_append(store: SQLiteStore, s: Any) -> None:
    store.write_batch([s.run()], [s.step(status="failed", output=None)], [s.attempt()])
    store.write_batch([], [s.step()], [s.attempt()])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.steps == (s.step(),)
    assert len(trace.attempts) == 2


def test_a_failed_batch_writes_nothing(store: SQLiteStore, s: Any) -> None:
    bad = s.attempt(input_tokens=2**70)  # does not fit a 64-bit integer
    with pytest.raises(StoreError, match="write failed"):
        store.write_batch([s.run()], [s.step()], [s.attempt(), bad])
    assert store.get_run("run-0001") is None


def test_odd_text_is_stored_not_refused(store: SQLiteStore, s: Any) -> None:
    step = s.step(output="nul\x00byte", error="lone \ud800 surrogate", reason="ok ✓")
    store.write_batch([s.run()], [step], [])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.steps[0].output == "nul\ufffdbyte"
    assert trace.steps[0].error is not None
    assert "\ud800" not in trace.steps[0].error
    assert trace.steps[0].reason == "ok ✓"


def test_non_json_inputs_are_stored_as_text(store: SQLiteStore, s: Any) -> None:
    store.write_batch([s.run(inputs={"path": Path("/tmp/x"), "cost": Decimal("0.5")})], [], [])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert dict(trace.run.inputs) == {"path": "/tmp/x", "cost": "0.5"}


def test_get_run_accepts_a_unique_prefix(store: SQLiteStore, s: Any) -> None:
    store.write_batch([s.run("abc123"), s.run("abd456"), s.run("abd789")], [], [])
    trace = store.get_run("abc")
    assert trace is not None
    assert trace.run.run_id == "abc123"
    assert store.get_run("abd456") is not None
    assert store.get_run("zzz") is None
    assert store.get_run("") is None
    with pytest.raises(StoreError, match=r"prefix 'abd' is ambiguous: it matches abd456, abd789"):
        store.get_run("abd")


def test_an_exact_id_wins_over_longer_ids_it_prefixes(store: SQLiteStore, s: Any) -> None:
    store.write_batch([s.run("ab"), s.run("abc")], [], [])
    trace = store.get_run("ab")
    assert trace is not None
    assert trace.run.run_id == "ab"


def test_prefix_match_is_case_sensitive(store: SQLiteStore, s: Any) -> None:
    store.write_batch([s.run("ABC")], [], [])
    assert store.get_run("ab") is None


def test_list_runs_filters_and_orders(store: SQLiteStore, s: Any) -> None:
    runs = [
        s.run(
            f"r{i}",
            started_at=s.T0 + i,
            workflow="a" if i % 2 else "b",
            bench_id="bench-x" if i < 3 else None,
        )
        for i in range(6)
    ]
    store.write_batch(runs, [], [])
    assert [r.run_id for r in store.list_runs()] == ["r5", "r4", "r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["r5", "r4"]
    assert [r.run_id for r in store.list_runs(workflow="a")] == ["r5", "r3", "r1"]
    assert [r.run_id for r in store.list_runs(bench_id="bench-x")] == ["r2", "r1", "r0"]
    assert [r.run_id for r in store.list_runs(since=s.T0 + 4)] == ["r5", "r4"]
    assert store.list_runs(workflow="a", bench_id="bench-x", limit=1)[0].run_id == "r1"


def test_steps_and_attempts_come_back_in_time_order(store: SQLiteStore, s: Any) -> None:
    steps = [s.step(step_id=n, started_at=s.T0 + t) for n, t in (("late", 5), ("early", 1))]
    attempts = [s.attempt(attempt=a, started_at=s.T0 + t) for a, t in ((2, 3), (1, 2), (3, 3))]
    store.write_batch([s.run()], steps, attempts)
    trace = store.get_run("run-0001")
    assert trace is not None
    assert [x.step_id for x in trace.steps] == ["early", "late"]
    assert [x.attempt for x in trace.attempts] == [1, 2, 3]


def test_reads_from_one_thread_while_another_writes(store: SQLiteStore, s: Any) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(50):
                store.write_batch([s.run(f"w{i}")], [], [s.attempt(f"w{i}")] * 20)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        store.list_runs(limit=5)
        store.get_run("w1")
    writer.join()
    assert errors == []
    assert len(store.list_runs(limit=100)) == 50


def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path, s: Any) -> None:
    path = tmp_path / "t.db"
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        one.write_batch([s.run()], [], [])
        assert two.get_run("run-0001") is not None


def test_in_memory_store(tmp_path: Path, s: Any) -> None:
    with SQLiteStore(":memory:") as store:
        store.write_batch([s.run()], [], [])
        assert store.list_runs()[0].run_id == "run-0001"


def test_a_closed_store_says_so(tmp_path: Path, s: Any) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="is closed"):
        store.write_batch([s.run()], [], [])
    with pytest.raises(StoreError, match="is closed"):
        store.list_runs()


def test_an_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open trace store"):
        SQLiteStore(blocker / "traces.db")


def test_batches_written_at_once_keep_every_value_exact(store: SQLiteStore, s: Any) -> None:
    """Several rows of a table go in as one JSON array (``json_each``); an integer JSON
    cannot carry exactly (past 2**53) sends the batch row by row. Odd text is cleaned
    as when written row by row."""
    odd = [s.step(step_id="a", output="nul\x00byte", error="lone \ud800", latency_s=0.1 + 0.2),
           s.step(step_id="b", output="ok ✓", latency_s=1e-300, started_at=s.T0 + 1)]  # fmt: skip
    big = Decimal(2**60) / 10**12  # 2**60 pico-dollars: past 2**53
    attempts = [s.attempt(attempt=i, cost_usd=c, latency_s=i / 3)
                for i, c in enumerate([Decimal("0.1"), big, Decimal("1E-12")])]  # fmt: skip
    runs = [s.run(), s.run(run_id="run-0002", tags={"key": "team-a", "ünï": "✓"})]
    store.write_batch(runs, odd, attempts)
    store.write_batch([], [], attempts[:1] + attempts[2:])  # at once: no big integer here
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run == runs[0] and store.get_run("run-0002").run == runs[1]  # type: ignore[union-attr]
    assert trace.steps[1] == odd[1] and trace.steps[1].latency_s == 1e-300
    assert trace.steps[0].latency_s == 0.1 + 0.2 and trace.steps[0].output == "nul\ufffdbyte"
    assert trace.steps[0].error is not None and "\ud800" not in trace.steps[0].error
    by_attempt = sorted(trace.attempts, key=lambda a: a.attempt)
    assert by_attempt == [attempts[0], attempts[0], attempts[1], attempts[2], attempts[2]]


def test_infinite_floats_in_a_batch_are_stored_as_row_by_row(store: SQLiteStore, s: Any) -> None:
    inf = float("inf")
    attempts = [s.attempt(attempt=0, latency_s=inf, ttft_s=-inf), s.attempt(attempt=1)]
    store.write_batch([s.run()], [], attempts)
    trace = store.get_run("run-0001")
    assert trace is not None
    assert (trace.attempts[0].latency_s, trace.attempts[0].ttft_s) == (inf, -inf)


def test_values_that_read_like_json_nulls_are_stored_exactly(store: SQLiteStore, s: Any) -> None:
    steps = [
        s.step(output="[null", prompt=({"role": "assistant", "content": ",null"},)),
        s.step(step_id="reply", output=None),
    ]
    store.write_batch([s.run()], steps, [])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert {st.step_id: st for st in trace.steps}["classify"].output == "[null"
    assert {st.step_id: st for st in trace.steps}["reply"].output is None


def test_text_with_a_nul_in_a_batch_is_stored_whole(store: SQLiteStore, s: Any) -> None:
    runs = [s.run(run_id="r1", bench_id="b\x00x"), s.run(run_id="r2")]
    store.write_batch(runs, [], [s.attempt(run_id="r1", model="m\x00x"), s.attempt(attempt=2)])
    trace = store.get_run("r1")
    assert trace is not None
    assert trace.run.bench_id == "b\x00x" and trace.attempts[0].model == "m\x00x"
