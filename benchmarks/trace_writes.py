"""How fast TraceWriter gets attempts into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/trace_writes.py                  # 50,000 attempts, both stores
    .venv/bin/python benchmarks/trace_writes.py --attempts 20000 --no-postgres
    .venv/bin/python benchmarks/trace_writes.py --report-rows 1000000   # + a weekly-report query
    .venv/bin/python benchmarks/trace_writes.py --busy --no-postgres   # beside a busy event loop
    .venv/bin/python benchmarks/trace_writes.py --gateway --no-postgres  # CPU per gateway request
    .venv/bin/python benchmarks/trace_writes.py --beside-loop   # the writer's batch length

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

``--gateway`` measures instead the store's own CPU (thread time: converting records to
rows and SQLite's work; for PostgreSQL the client's and the server's backend's, with
each table's rows as one JSON statement and, alternating, as ``executemany``) per
gateway request: a one-step run, its step and its attempt, written
``--batch`` requests at a time (15: 1,500 req/s in the writer's 10 ms batches) into a store
already holding 50,000 such requests. SQLite is measured with this schema and, alternating
in the same run, with the indexes before ``m010_partial_indexes`` (full indexes on
``bench_id``, ``session``, ``override_by`` and ``key_name``, which such a request leaves
NULL but the key name); medians of ``--rounds``.

``--beside-loop`` runs a TraceWriter (SQLite) beside a never-idle uvloop (as ``--busy``) that
submits ``--rate`` gateway requests a second for ``--seconds``, once per writer batch length
of ``--delays``, alternating, ``--rounds`` times. It prints, per batch length (medians):
the writer thread's CPU per request, the loop's round trips a second (what the writer
leaves the request path), and the loop's stalls at p99.9 and p99.99 (how long the writer
held the GIL against it).

``--report-rows N`` also loads N attempts spread over 7 days (straight through
``write_batch``) and times a weekly-report query: one week grouped by model,
tier and step (count, exact cost sum, tokens, mean latency, errors). Planner
statistics are fresh first, as in a live store (SQLite: refreshed when a store
is opened; PostgreSQL: autovacuum, here an explicit ANALYZE).
"""

from __future__ import annotations

import argparse
import os
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


def gateway_requests(count: int, t0: float, first: int = 0) -> list[list[TraceRecord]]:
    """What ``turnout serve`` records for each of ``count`` requests (no key name)."""
    out: list[list[TraceRecord]] = []
    for i in range(first, first + count):
        run_id, t = f"{i:020x}", t0 + i * 0.001
        reason, cost = "static: every step -> small", Decimal("0.000021")
        out.append([
            RunRecord(run_id, "gateway", "fast", "succeeded", t, t + 0.04, tags={"run": run_id},
                      calls=1, latency_s=0.04, input_tokens=12, output_tokens=32, cost_usd=cost),
            StepRecord(run_id, "chat", "llm", "succeeded", t, 0.04, model="small",
                       tier="efficient", policy="fast", reason=reason, input_tokens=12,
                       output_tokens=32, cost_usd=cost, calls=1,
                       output=" ".join(f"w{j}" for j in range(32)),
                       prompt=({"role": "user", "content": "Refund? yes or no."},)),
            AttemptRecord(run_id, "chat", 1, "small", "openai", "efficient", "fast", reason, t,
                          0.04, "ok", input_tokens=12, output_tokens=32, cost_usd=cost),
        ])  # fmt: skip
    return out


FULL_INDEXES = """
DROP INDEX runs_bench_id_started_at; DROP INDEX steps_override_by;
DROP INDEX runs_key_name_started_at;
CREATE INDEX runs_bench_id_started_at ON runs (bench_id, started_at);
CREATE INDEX steps_override_by ON steps (override_by);
CREATE INDEX runs_key_name_started_at ON runs (key_name, started_at);
CREATE INDEX runs_session ON runs (session);
"""


def write_gateway(store: TraceStore, requests: list[list[TraceRecord]], batch: int) -> float:
    """Thread CPU seconds to write ``requests`` ``batch`` at a time."""
    started = time.thread_time()
    for i in range(0, len(requests), batch):
        chunk = [r for request in requests[i : i + batch] for r in request]
        store.write_batch(
            [r for r in chunk if isinstance(r, RunRecord)],
            [r for r in chunk if isinstance(r, StepRecord)],
            [r for r in chunk if isinstance(r, AttemptRecord)],
        )
    return time.thread_time() - started


def bench_gateway(tmp: Path, count: int, batch: int, rounds: int, prefill: int = 50_000) -> None:
    import statistics

    schemas = {"this schema": "", "before m010": FULL_INDEXES}
    cpu: dict[str, list[float]] = {name: [] for name in schemas}
    t0 = time.time()
    for r in range(rounds):
        for name, script in schemas.items():
            path = tmp / f"gateway-{r}-{len(cpu[name])}-{script != ''}.db"
            with SQLiteStore(path) as store:
                if script:
                    store._conn.executescript(script)
                write_gateway(store, gateway_requests(prefill, t0 - 3600), 500)
                timed = gateway_requests(count, t0, prefill)
                cpu[name].append(write_gateway(store, timed, batch) / count * 1e6)
    for name, values in cpu.items():
        print(
            f"sqlite     {name:12} {statistics.median(values):6.1f} us of CPU per gateway request "
            f"(rounds: {', '.join(f'{v:.0f}' for v in values)}; {batch} requests a batch)",
            flush=True,
        )


def bench_gateway_postgres(admin: str, count: int, batch: int, rounds: int) -> None:
    """PostgreSQL's CPU per gateway request, the client's (the writer thread: rows and
    psycopg) and the server's (the connection's backend process, same machine), with a
    batch's rows as one JSON statement a table and, alternating, as ``executemany`` (as
    before: ``rows.json_rows`` made to answer None)."""
    import statistics
    from unittest import mock

    from turnout.tracing import rows

    def backend_cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    ways = {"one JSON statement": None, "executemany": lambda table_rows: None}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    t0, first = time.time(), 50_000
    with scratch_database(admin) as dsn, PostgresStore(dsn) as store:
        row = store.query("SELECT pg_backend_pid()")[0]
        write_gateway(store, gateway_requests(first, t0 - 3600), 500)
        for _ in range(rounds):
            for name, patch in ways.items():
                timed = gateway_requests(count, t0, first)
                first += count
                before = backend_cpu(int(row[0]))
                if patch is None:
                    client = write_gateway(store, timed, batch)
                else:
                    with mock.patch.object(rows, "json_rows", patch):
                        client = write_gateway(store, timed, batch)
                server = backend_cpu(int(row[0])) - before
                cpu[name].append((client / count * 1e6, server / count * 1e6))
    for name, values in cpu.items():
        client_us = statistics.median(v[0] for v in values)
        server_us = statistics.median(v[1] for v in values)
        print(
            f"postgresql {name:18} client {client_us:5.1f} + server {server_us:5.1f} us of CPU "
            f"per gateway request (rounds: {', '.join(f'{a:.0f}+{b:.0f}' for a, b in values)};"
            f" {batch} requests a batch)",
            flush=True,
        )


def thread_cpu(native_id: int) -> float:
    """CPU seconds of one thread of this process so far (Linux)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def beside_loop(tmp: Path, delay: float, rate: int, seconds: float) -> dict[str, float]:
    """One run: a writer with batches of ``delay`` beside a loop submitting ``rate`` req/s."""
    import asyncio
    import socket

    requests = gateway_requests(int(rate * seconds) + rate, time.time())
    stalls: list[float] = []
    out: dict[str, float] = {}
    with SQLiteStore(tmp / f"beside-{uuid.uuid4().hex}.db") as store:
        writer = TraceWriter(store, max_delay_s=delay)
        tid = writer._thread.native_id
        assert tid is not None

        async def spin() -> None:
            loop = asyncio.get_running_loop()
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            t0, cpu0, submitted = time.perf_counter(), thread_cpu(tid), 0
            while (now := time.perf_counter()) - t0 < seconds:
                sum(range(200))  # the Python of a request, between its syscalls
                await loop.sock_sendall(a, b"x")
                await loop.sock_recv(b, 1)
                while submitted < (now - t0) * rate:
                    for record in requests[submitted]:
                        writer.submit(record)
                    submitted += 1
                stalls.append(time.perf_counter() - now)
            wall = time.perf_counter() - t0
            out.update(cpu_us=(thread_cpu(tid) - cpu0) / submitted * 1e6, turns=len(stalls) / wall)
            a.close()
            b.close()

        try:
            import uvloop

            uvloop.run(spin())
        except ImportError:
            asyncio.run(spin())
        writer.close()
    stalls.sort()
    out["p999_us"] = stalls[int(len(stalls) * 0.999)] * 1e6
    out["p9999_us"] = stalls[int(len(stalls) * 0.9999)] * 1e6
    return out


def bench_beside_loop(
    tmp: Path, delays: list[float], rate: int, seconds: float, rounds: int
) -> None:
    import statistics

    runs: dict[float, list[dict[str, float]]] = {d: [] for d in delays}
    for _ in range(rounds):
        for delay in delays:
            runs[delay].append(beside_loop(tmp, delay, rate, seconds))
    print(f"sqlite writer beside a busy uvloop, {rate:,} gateway requests/s, medians of {rounds}:")
    for delay, results in runs.items():

        def med(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] for r in results)

        print(
            f"  batches of {delay * 1000:5.0f} ms: writer {med('cpu_us'):5.0f} us CPU/request; "
            f"loop {med('turns'):8,.0f} round trips/s, stalls p99.9 {med('p999_us'):5.0f} us, "
            f"p99.99 {med('p9999_us'):5.0f} us",
            flush=True,
        )


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
    parser.add_argument("--gateway", action="store_true", help="CPU per gateway request")
    parser.add_argument("--requests", type=int, default=15_000, help="with --gateway")
    parser.add_argument("--batch", type=int, default=15, help="with --gateway")
    parser.add_argument("--rounds", type=int, default=5, help="with --gateway, --beside-loop")
    parser.add_argument("--beside-loop", action="store_true", help="writer batch lengths")
    parser.add_argument("--delays", default="0.01,0.1", help="with --beside-loop: seconds")
    parser.add_argument("--rate", type=int, default=1500, help="with --beside-loop: req/s")
    parser.add_argument("--seconds", type=float, default=6.0, help="with --beside-loop")
    args = parser.parse_args(argv)
    t0 = time.time() - WEEK
    if args.beside_loop:
        delays = [float(d) for d in args.delays.split(",")]
        with tempfile.TemporaryDirectory() as tmp:
            bench_beside_loop(Path(tmp), delays, args.rate, args.seconds, args.rounds)
        return 0
    if args.gateway:
        with tempfile.TemporaryDirectory() as tmp:
            bench_gateway(Path(tmp), args.requests, args.batch, args.rounds)
        admin = None if args.no_postgres else admin_dsn(args.postgres)
        if admin is not None:
            bench_gateway_postgres(admin, args.requests // 5, args.batch, args.rounds)
        elif not args.no_postgres:
            print("postgres   skipped: no server on 127.0.0.1:5432", file=sys.stderr)
        return 0

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
