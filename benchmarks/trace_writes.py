"""How fast TraceWriter gets attempts into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/trace_writes.py                  # 50,000 attempts, both stores
    .venv/bin/python benchmarks/trace_writes.py --attempts 20000 --no-postgres
    .venv/bin/python benchmarks/trace_writes.py --report-rows 1000000   # + a weekly-report query
    .venv/bin/python benchmarks/trace_writes.py --busy --no-postgres   # beside a busy event loop

Records are built before the clock starts. The clock runs from the first
``submit`` to the return of ``flush``: what a busy gateway sees as sustained
throughput. Each run of the workflow is its ``running`` row, 5 steps of 2
attempts, the 5 step rows and the final run row (so 10 attempts = 17 records).
The target is at least 5,000 attempts/s.

``--busy`` runs an event loop beside the writer, as a loaded gateway does: another thread
turning over socket round trips and a little Python between them, never idle (uvloop,
as in the gateway, when installed). The
writer then shares the GIL with it, and the figure shows what that costs the writer
(and the loop's round trips per second, what the writer costs it).

``--report-rows N`` also loads N attempts spread over 7 days (straight through
``write_batch``) and times a weekly-report query: one week grouped by model,
tier and step (count, exact cost sum, tokens, mean latency, errors). Planner
statistics are fresh first, as in a live store (SQLite: refreshed when a store
is opened; PostgreSQL: autovacuum, here an explicit ANALYZE).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from turnout.tracing import (
    AttemptRecord,
    PostgresStore,
    RunRecord,
    SQLiteStore,
    StepRecord,
    TraceRecord,
    TraceStore,
    TraceWriter,
)

ADMIN_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)
MODELS = (("qwen-small", "efficient"), ("qwen-large", "frontier"), ("gpt-4.1-mini", "standard"))
STEPS = ("classify", "extract", "plan", "draft", "review")
WEEK = 7 * 24 * 3600.0

WEEKLY_QUERY = """
SELECT model, tier, step_id, count(*), sum(cost_picousd), sum(input_tokens),
       sum(output_tokens), avg(latency_s), sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END)
FROM attempts WHERE started_at >= ? AND started_at < ?
GROUP BY model, tier, step_id ORDER BY model, tier, step_id
"""


def workload(attempts: int, t0: float) -> list[TraceRecord]:
    """Runs of 5 steps x 2 attempts, in the order a runner would submit them."""
    records: list[TraceRecord] = []
    for r in range(max(1, attempts // 10)):
        run_id = uuid.uuid4().hex
        started = t0 + r * 0.01
        records.append(RunRecord(run_id, "support-ticket", "cascade", "running", started))
        for s, step_id in enumerate(STEPS):
            for a in (1, 2):
                model, tier = MODELS[(s + a) % len(MODELS)]
                records.append(
                    AttemptRecord(
                        run_id=run_id,
                        step_id=step_id,
                        attempt=a,
                        model=model,
                        provider="local",
                        tier=tier,
                        policy="cascade",
                        reason="cheapest first" if a == 1 else "escalated: check failed",
                        started_at=started + s * 0.001,
                        latency_s=0.25,
                        status="error" if a == 1 and s == 2 else "ok",
                        ttft_s=0.05,
                        input_tokens=800,
                        output_tokens=120,
                        cached_input_tokens=256,
                        cost_usd=Decimal("0.00001875") * a,
                        error_class="rate_limited" if a == 1 and s == 2 else None,
                    )
                )
        for s, step_id in enumerate(STEPS):
            records.append(
                StepRecord(
                    run_id=run_id,
                    step_id=step_id,
                    kind="llm",
                    status="succeeded",
                    started_at=started + s * 0.001,
                    latency_s=0.5,
                    model=MODELS[s % len(MODELS)][0],
                    tier=MODELS[s % len(MODELS)][1],
                    policy="cascade",
                    reason="escalated: check failed",
                    input_tokens=1600,
                    output_tokens=240,
                    cost_usd=Decimal("0.00005625"),
                    calls=2,
                    output="ok",
                )
            )
        records.append(
            RunRecord(
                run_id,
                "support-ticket",
                "cascade",
                "succeeded",
                started,
                started + 2.5,
                calls=10,
                latency_s=2.5,
                cost_usd=Decimal("0.00028125"),
            )
        )
    return records


@contextmanager
def busy_loop(enabled: bool) -> Iterator[list[int]]:
    """A thread running an event loop that is never idle (socket round trips with a
    little Python between them); yields its running count of round trips."""
    import asyncio
    import socket
    import threading

    count = [0]
    if not enabled:
        yield count
        return
    stop = threading.Event()

    async def spin() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        while not stop.is_set():
            sum(range(200))  # the Python of a request, between its syscalls
            await loop.sock_sendall(a, b"x")
            await loop.sock_recv(b, 1)
            count[0] += 1
        a.close()
        b.close()

    def run() -> None:
        try:
            import uvloop  # the gateway's loop: it keeps the GIL between its callbacks

            uvloop.run(spin())
        except ImportError:
            asyncio.run(spin())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join()


def bench_writer(name: str, store: TraceStore, attempts: int, busy: bool = False) -> dict[str, Any]:
    records = workload(attempts, time.time())
    n_attempts = sum(isinstance(r, AttemptRecord) for r in records)
    writer = TraceWriter(store)
    with busy_loop(busy) as turns:
        started = time.perf_counter()
        for record in records:
            writer.submit(record)
        submitted = time.perf_counter()
        writer.flush()
        elapsed = time.perf_counter() - started
        turned = turns[0]
    writer.close()
    result = {
        "store": name,
        "attempts": n_attempts,
        "records": len(records),
        "seconds": round(elapsed, 3),
        "attempts_per_s": round(n_attempts / elapsed),
        "records_per_s": round(len(records) / elapsed),
        "submit_us": round((submitted - started) / len(records) * 1e6, 2),
    }
    print(
        f"{name:10} {n_attempts:>9,} attempts ({len(records):,} records) in {elapsed:6.2f} s: "
        f"{result['attempts_per_s']:>8,} attempts/s, {result['records_per_s']:>8,} records/s; "
        f"submit {result['submit_us']} us/record"
        + (f"; beside it the loop turned {turned / elapsed:,.0f} round trips/s" if busy else ""),
        flush=True,
    )
    return result


def load_week(store: TraceStore, rows: int, t0: float, chunk: int = 20_000) -> None:
    step = WEEK / rows
    for start in range(0, rows, chunk):
        batch = [
            AttemptRecord(
                run_id=f"run-{i // 10}",
                step_id=STEPS[i % len(STEPS)],
                attempt=1,
                model=MODELS[i % len(MODELS)][0],
                provider="local",
                tier=MODELS[i % len(MODELS)][1],
                policy="cascade",
                reason="r",
                started_at=t0 + i * step,
                latency_s=0.2,
                status="error" if i % 17 == 0 else "ok",
                input_tokens=500,
                output_tokens=80,
                cost_usd=Decimal("0.00001875"),
            )
            for i in range(start, min(rows, start + chunk))
        ]
        store.write_batch([], [], batch)


def time_query(name: str, run: Callable[[], list[Any]]) -> float:
    started = time.perf_counter()
    rows = run()
    elapsed = time.perf_counter() - started
    print(f"{name:10} weekly report query: {len(rows)} groups in {elapsed:.3f} s", flush=True)
    return elapsed


def admin_dsn(explicit: str | None) -> str | None:
    import psycopg

    for dsn in filter(None, (explicit, *ADMIN_DSNS)):
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                return dsn
        except psycopg.Error:
            continue
    return None


@contextmanager
def scratch_database(admin: str) -> Iterator[str]:
    import psycopg

    name = f"turnout_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=50_000)
    parser.add_argument("--postgres", metavar="ADMIN_DSN", help="admin DSN to create a scratch db")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--report-rows", type=int, default=0, metavar="N")
    parser.add_argument("--busy", action="store_true", help="beside a never-idle event loop")
    args = parser.parse_args(argv)
    t0 = time.time() - WEEK

    with tempfile.TemporaryDirectory() as tmp:
        with SQLiteStore(Path(tmp) / "traces.db") as store:
            bench_writer("sqlite", store, args.attempts, args.busy)
        if args.report_rows:
            with SQLiteStore(Path(tmp) / "week.db") as store:
                load_week(store, args.report_rows, t0)
            SQLiteStore(Path(tmp) / "week.db").close()  # as a report would: stats refreshed
            conn = sqlite3.connect(Path(tmp) / "week.db")
            time_query("sqlite", lambda: conn.execute(WEEKLY_QUERY, (t0, t0 + WEEK)).fetchall())
            conn.close()

    if args.no_postgres:
        return 0
    admin = admin_dsn(args.postgres)
    if admin is None:
        print("postgres   skipped: no server on 127.0.0.1:5432", file=sys.stderr)
        return 0
    with scratch_database(admin) as dsn, PostgresStore(dsn) as pg:
        bench_writer("postgresql", pg, args.attempts, args.busy)
    if args.report_rows:
        import psycopg

        with scratch_database(admin) as dsn:
            with PostgresStore(dsn) as pg:
                load_week(pg, args.report_rows, t0)
            with psycopg.connect(dsn, autocommit=True) as pg_conn:
                pg_conn.execute("ANALYZE attempts")  # autovacuum's job in a live database
                query = WEEKLY_QUERY.replace("?", "%s")
                time_query("postgresql", lambda: pg_conn.execute(query, (t0, t0 + WEEK)).fetchall())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
