"""PostgresStore against the real server on 127.0.0.1:5432.

Each test gets its own database (random name) and drops it afterwards. Set
``TURNOUT_TEST_POSTGRES_DSN`` to an admin DSN to use another server; the tests
are skipped, saying why, only when no server answers.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from support import pg
from turnout.errors import StoreError
from turnout.tracing import (
    MIGRATIONS,
    AttemptRecord,
    PostgresStore,
    RunRecord,
    StepRecord,
    TraceWriter,
    open_store,
    pico_to_cost,
)
from turnout.types import CheckResult

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.postgres

T0 = 1_750_000_000.123456


@pytest.fixture(scope="module")
def admin_dsn() -> str:
    return pg.admin_dsn()


@pytest.fixture
def dsn() -> Iterator[str]:
    with pg.throwaway_database() as url:
        yield url


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresStore]:
    st = PostgresStore(dsn)
    yield st
    st.close()


def _run(run_id: str = "run-0001", **changes: Any) -> RunRecord:
    record = RunRecord(
        run_id=run_id,
        workflow="support-ticket",
        policy="cascade",
        status="succeeded",
        started_at=T0,
        ended_at=T0 + 2.5,
        inputs={"ticket": "Where is my refund?", "n": 3, "nested": {"a": [1, 2]}},
        tags={"team": "support"},
        bench_id="bench-1",
        variant="B",
        calls=3,
        latency_s=2.5,
        input_tokens=1200,
        output_tokens=340,
        cached_input_tokens=512,
        cost_usd=Decimal("0.000123456789"),
        score=0.875,
    )
    return replace(record, **changes)


def _step(run_id: str = "run-0001", step_id: str = "classify", **changes: Any) -> StepRecord:
    record = StepRecord(
        run_id=run_id,
        step_id=step_id,
        kind="llm",
        status="succeeded",
        started_at=T0 + 0.01,
        latency_s=0.75,
        model="qwen-small",
        tier="efficient",
        policy="cascade",
        reason="annotation [scope: single-file] -> efficient",
        ttft_s=0.125,
        input_tokens=400,
        output_tokens=20,
        cached_input_tokens=100,
        cost_usd=Decimal("0.00001875"),
        calls=2,
        score=1.0,
        checks=(
            CheckResult("contains_any", True, "found 'refund'"),
            CheckResult("max_length", False, "300 > 200", required=False),
        ),
        output="refund",
    )
    return replace(record, **changes)


def _attempt(run_id: str = "run-0001", attempt: int = 1, **changes: Any) -> AttemptRecord:
    record = AttemptRecord(
        run_id=run_id,
        step_id="classify",
        attempt=attempt,
        model="qwen-small",
        provider="local",
        tier="efficient",
        policy="cascade",
        reason="cheapest first",
        started_at=T0 + 0.01 * attempt,
        latency_s=0.3,
        status="error",
        ttft_s=0.05,
        input_tokens=200,
        output_tokens=10,
        cached_input_tokens=50,
        cost_usd=Decimal("0.000000001875"),
        error_class="rate_limited",
        error="429 Too Many Requests",
    )
    return replace(record, **changes)


def _scalar(dsn: str, sql: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_migrations_are_recorded_once(dsn: str) -> None:
    with PostgresStore(dsn) as store:
        first = store.migrations()
    assert [name for name, _ in first] == [m.name for m in MIGRATIONS]
    with PostgresStore(dsn) as store:
        assert store.migrations() == first
    assert _scalar(dsn, "SELECT count(*) FROM _migrations") == len(MIGRATIONS)
    indexes = _scalar(
        dsn, "SELECT string_agg(indexname, ',') FROM pg_indexes WHERE tablename = 'attempts'"
    )
    assert {"attempts_run_id", "attempts_started_at", "attempts_report"} <= set(indexes.split(","))


def test_stores_opening_a_new_database_at_once_migrate_it_once(dsn: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait()
            PostgresStore(dsn).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _scalar(dsn, "SELECT count(*) FROM _migrations") == len(MIGRATIONS)


def test_every_field_round_trips(store: PostgresStore) -> None:
    run, step = _run(), _step()
    code_step = StepRecord(
        run_id="run-0001",
        step_id="lookup",
        kind="code",
        status="succeeded",
        started_at=T0 + 1,
        latency_s=0.001,
    )
    attempts = (_attempt(attempt=1), _attempt(attempt=2, status="ok", error_class=None, error=None))
    store.write_batch([run], [step, code_step], attempts)
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run == run
    assert trace.steps == (step, code_step)
    assert trace.attempts == attempts


@pytest.mark.parametrize("cost", ["0", "0.84", "0.000000000001", "0.00000001875", "1234567.1"])
def test_costs_are_exact(store: PostgresStore, cost: str) -> None:
    store.write_batch([_run(cost_usd=Decimal(cost))], [], [_attempt(cost_usd=Decimal(cost))])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run.cost_usd == Decimal(cost)
    assert trace.attempts[0].cost_usd == Decimal(cost)


def test_costs_sum_exactly_in_sql(store: PostgresStore, dsn: str) -> None:
    costs = [Decimal("0.1"), Decimal("0.2"), Decimal("0.00000001875")] * 1000
    store.write_batch([], [], [_attempt(attempt=i, cost_usd=c) for i, c in enumerate(costs)])
    total = _scalar(dsn, "SELECT sum(cost_picousd) FROM attempts")
    assert pico_to_cost(int(total)) == sum(costs) == Decimal("300.00001875")


def test_a_run_is_upserted_and_its_final_status_wins(store: PostgresStore) -> None:
    store.write_batch([_run(status="running", ended_at=None, score=None)], [], [])
    assert store.list_runs()[0].status == "running"
    store.write_batch([_run()], [_step(status="failed")], [])
    store.write_batch([replace(_run(), status="failed"), _run()], [_step()], [_attempt()])
    store.write_batch([], [], [_attempt(attempt=2)])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run == _run()
    assert trace.steps == (_step(),)
    assert len(trace.attempts) == 2


def test_a_batch_of_many_rows_goes_as_json_and_round_trips_exactly(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from turnout.tracing import rows

    payloads: list[str | None] = []
    json_rows = rows.json_rows
    monkeypatch.setattr(rows, "json_rows", lambda r: payloads.append(json_rows(r)) or payloads[-1])
    rng = random.Random(7)
    texts = ["plain", "ünïcødé ✓ 🚀", 'quote " and \\ backslash', "null", "{}", "", "1e400"]
    runs, steps, attempts = [], [], []
    for i in range(40):
        run_id, text = f"run-{i:04d}", texts[i % len(texts)]
        runs.append(
            _run(
                run_id,
                started_at=T0 + rng.random() * 1e5,
                score=rng.random() or None,
                error=text,
                cost_usd=Decimal(rng.randrange(10**15)).scaleb(-12),
            )
        )
        steps.append(
            _step(
                run_id,
                ttft_s=None if i % 3 else rng.random(),
                output=text,
                latency_s=rng.expovariate(3),
                annotation={"scope": text},
            )
        )
        attempts.append(
            _attempt(
                run_id,
                attempt=i,
                latency_s=rng.random() / 7,
                reason=text,
                input_tokens=2**40 + i,
                saved_usd=Decimal("0.5"),
            )
        )
    store.write_batch(runs, steps, attempts)
    extremes = [_run(f"x-{i}", score=x) for i, x in enumerate((5e-324, 1.7976931348623157e308,
                                                             -0.1, 1 / 3, 2.0**-60))]  # fmt: skip
    store.write_batch(extremes, [], [])
    assert len(payloads) == 4 and None not in payloads  # one statement a table
    assert [store.get_run(r.run_id).run for r in extremes] == extremes  # type: ignore[union-attr]
    for run, step, attempt in zip(runs, steps, attempts, strict=True):
        trace = store.get_run(run.run_id)
        assert trace is not None
        assert (trace.run, trace.steps, trace.attempts) == (run, (step,), (attempt,))


@pytest.mark.parametrize("rows_in_batch", [1, 2])  # row by row / one JSON statement
def test_odd_numbers_are_stored_the_same_both_ways(
    store: PostgresStore, rows_in_batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.tracing import postgres

    payloads: list[str | None] = []
    payload = postgres._payload
    monkeypatch.setattr(postgres, "_payload", lambda r: payloads.append(payload(r)) or payloads[-1])
    odd = _attempt(attempt=1, input_tokens=3.7, output_tokens=2.0)  # type: ignore[arg-type]
    store.write_batch([], [], [odd] + [_attempt(attempt=2)] * (rows_in_batch - 1))
    assert (payloads[-1] is not None) == (rows_in_batch == 2)
    signed = [_attempt(attempt=3, latency_s=-0.0)] * rows_in_batch
    store.write_batch([_run(score=-0.0)], [], signed)
    assert payloads[-1] is None  # jsonb has no -0.0: row by row
    trace = store.get_run("run-0001")
    assert trace is not None and trace.run.score is not None
    assert math.copysign(1, trace.run.score) == -1
    by_attempt = {a.attempt: a for a in trace.attempts}
    assert (by_attempt[1].input_tokens, by_attempt[1].output_tokens) == (4, 2)  # as bound
    assert math.copysign(1, by_attempt[3].latency_s) == -1


def test_a_step_and_a_run_twice_in_one_batch_keep_the_last(store: PostgresStore) -> None:
    running = _run(status="running", ended_at=None, score=None)
    store.write_batch(
        [running, _run("run-0002"), _run()], [_step(status="running"), _step(), _step("run-0002")],
        [_attempt(), _attempt(attempt=2)],
    )  # fmt: skip
    trace = store.get_run("run-0001")
    assert trace is not None
    assert (trace.run, trace.steps, len(trace.attempts)) == (_run(), (_step(),), 2)


def test_floats_and_integers_json_cannot_carry_are_stored_from_a_batch(
    store: PostgresStore,
) -> None:
    nan, inf = float("nan"), float("inf")
    runs = [_run(score=nan), _run("run-0002")]
    attempts = [_attempt(latency_s=inf, ttft_s=-inf), _attempt(attempt=2, input_tokens=2**53 + 1)]
    store.write_batch(runs, [], attempts)
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run.score is not None and trace.run.score != trace.run.score  # NaN
    assert (trace.attempts[0].latency_s, trace.attempts[0].ttft_s) == (inf, -inf)
    assert trace.attempts[1].input_tokens == 2**53 + 1


def test_a_failed_batch_writes_nothing(store: PostgresStore) -> None:
    with pytest.raises(StoreError, match="write failed") as info:
        store.write_batch([_run()], [], [_attempt(), _attempt(input_tokens=2**70)])
    assert "\n" not in str(info.value)
    assert store.get_run("run-0001") is None
    store.write_batch([_run()], [], [])  # the connection is still usable
    assert store.get_run("run-0001") is not None


def test_odd_text_is_stored_not_refused(store: PostgresStore) -> None:
    store.write_batch([_run(inputs={"x": "a\x00b"})], [_step(output="nul\x00byte")], [])
    trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.steps[0].output == "nul\ufffdbyte"
    assert dict(trace.run.inputs) == {"x": "a\x00b"}  # JSON escapes it


def test_prefix_lookup_and_ambiguity(store: PostgresStore) -> None:
    store.write_batch([_run("abc123"), _run("abd456"), _run("abd789"), _run("ab")], [], [])
    trace = store.get_run("abc")
    assert trace is not None
    assert trace.run.run_id == "abc123"
    exact = store.get_run("ab")
    assert exact is not None
    assert exact.run.run_id == "ab"
    assert store.get_run("zzz") is None
    assert store.get_run("ABC") is None
    with pytest.raises(StoreError, match=r"prefix 'abd' is ambiguous: it matches abd456, abd789"):
        store.get_run("abd")


def test_list_runs_filters_and_orders(store: PostgresStore) -> None:
    runs = [
        _run(
            f"r{i}",
            started_at=T0 + i,
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
    assert [r.run_id for r in store.list_runs(since=T0 + 4)] == ["r5", "r4"]


def test_the_writer_batches_into_postgres(dsn: str) -> None:
    with closing(open_store(dsn)) as store:
        with TraceWriter(store, max_batch=100) as writer:
            writer.submit(_run(status="running", ended_at=None))
            for i in range(1000):
                writer.submit(_attempt(attempt=i))
            writer.submit(_step())
            writer.submit(_run())
        trace = store.get_run("run-0001")
    assert trace is not None
    assert trace.run.status == "succeeded"
    assert len(trace.attempts) == 1000


def test_a_connection_cut_by_the_server_is_replaced(store: PostgresStore, admin_dsn: str) -> None:
    store.write_batch([_run()], [], [])
    pid = store._conn.info.backend_pid
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    store.write_batch([_run("run-0002")], [], [])
    assert store._conn.info.backend_pid != pid
    assert store.get_run("run-0002") is not None


def test_reads_from_one_thread_while_another_writes(store: PostgresStore) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(30):
                store.write_batch([_run(f"w{i}")], [], [_attempt(f"w{i}")] * 10)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        store.list_runs(limit=5)
        store.get_run("w1")
    writer.join()
    assert errors == []
    assert len(store.list_runs(limit=100)) == 30


def test_an_unknown_database_is_a_one_line_error_without_the_password(admin_dsn: str) -> None:
    base = admin_dsn.rsplit("/", 1)[0]
    user_host = base.split("://", 1)[1]
    with_password = user_host.replace("@", ":hunter2-secret@")
    dsn = f"postgresql://{with_password}/no_such_db_{uuid.uuid4().hex[:6]}"
    with pytest.raises(StoreError) as info:
        PostgresStore(dsn)
    message = str(info.value)
    assert message.startswith("cannot connect to trace store postgresql://")
    assert "does not exist" in message
    assert "hunter2-secret" not in message
    assert ":***@" in message
    assert "\n" not in message


def test_a_running_run_of_a_dead_writer_reads_back_abandoned(store: PostgresStore) -> None:
    import socket
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{int(proc.stdout)}@{socket.gethostname()}"
    store.write_batch([_run("run-dead", status="running", ended_at=None, writer=dead)], [], [])
    trace = store.get_run("run-dead")
    assert trace is not None and trace.run.status == "abandoned" and trace.run.writer == dead
    assert [r.status for r in store.list_runs()] == ["abandoned"]
