"""`turnout report weekly` over 1,000,000 recorded attempts, in SQLite and in PostgreSQL.

    .venv/bin/python benchmarks/weekly_report.py                     # 1,000,000 attempts, both
    .venv/bin/python benchmarks/weekly_report.py --attempts 200000 --no-postgres

The target: under 5 s for the report, in each database.

What is seeded (all inside the last seven days, so the default period holds it all,
the worst case): runs of one of three workflows, each of **5 LLM steps and 1 code
step**; an LLM step makes **1.25 calls on average** (three steps in four answer
first time, the fourth needs a second call: a retry, a cascade's escalation or an
ensemble member). So 1,000,000 attempts come with 800,000 LLM steps, 160,000 code
steps and 160,000 runs. Four models over three tiers; 1 call in 20 fails; 3 in 100
are cache hits (cost 0, with what they saved); runs come four to a session and one
run in ten has no session; one LLM step in a hundred is flagged (half each way).
LLM steps carry a short prompt and output, as recorded ones do.

Rows go in as the stores write them (the same columns and SQL as
:mod:`turnout.tracing.rows`), but in bulk: ``executemany`` in transactions of
100,000 rows for SQLite, ``COPY`` for PostgreSQL. Then the store is opened as a
user would open it (SQLite refreshes its planner statistics on open; PostgreSQL's
autovacuum is stood in for by an explicit ``VACUUM ANALYZE``) and the report is
timed: the library call :func:`turnout.reports.weekly.weekly_report` (best of 3),
and once the CLI in a fresh process. The temporary SQLite file and PostgreSQL
database are removed afterwards. Last, ``turnout whatif`` is timed over 10,000 LLM
steps (no target: "a few seconds").
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turnout.reports.weekly import weekly_report
from turnout.tracing import PostgresStore, SQLiteStore, TraceStore
from turnout.tracing.rows import (
    ATTEMPT_COLUMNS,
    INSERT_ATTEMPT,
    RUN_COLUMNS,
    STEP_COLUMNS,
    UPSERT_RUN,
    UPSERT_STEP,
)

ADMIN_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)
TARGET_S = 5.0
CHUNK = 100_000
WEEK = 7 * 86400.0
WORKFLOWS = (
    ("csv-export", ("planner", "implementer", "reviewer", "verifier", "summary")),
    ("support-ticket", ("classify", "extract", "lookup", "draft", "review")),
    ("code-review", ("scope", "diff", "risks", "tests", "verdict")),
)
# (model, provider, tier, input $/M, output $/M) as pico-dollars per token
MODELS = (
    ("haiku", "hosted", "efficient", 1_000_000, 5_000_000),
    ("nano", "backup", "efficient", 100_000, 400_000),
    ("sonnet", "hosted", "standard", 3_000_000, 15_000_000),
    ("opus", "hosted", "frontier", 5_000_000, 25_000_000),
)
LLM_STEPS_PER_RUN = 5
PROMPT = json.dumps([{"role": "user", "content": "Plan this change: add a CSV export. " * 3}])
OUTPUT = "risks: none found; tests: added; rollback: revert the commit."


def plan(attempts: int) -> int:
    """How many runs give ``attempts`` attempts (6.25 a run; the last run may give fewer)."""
    return -(-attempts * 4 // (LLM_STEPS_PER_RUN * 5))


def generate(
    attempts: int, now: float
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Chunks of (run rows, step rows, attempt rows), in start-time order."""
    n_runs = plan(attempts)
    start = now - WEEK + 60
    spacing = (WEEK - 120) / max(n_runs, 1)
    made = 0
    llm_index = 0
    runs: list[tuple[Any, ...]] = []
    steps: list[tuple[Any, ...]] = []
    atts: list[tuple[Any, ...]] = []
    for i in range(n_runs):
        t = start + i * spacing
        workflow, step_ids = WORKFLOWS[i % len(WORKFLOWS)]
        run_id = f"{i:08x}{uuid.UUID(int=i).hex[8:]}"
        session = None if i % 10 == 9 else f"session-{i // 4}"
        run_cost = 0
        run_calls = 0
        for k, step_id in enumerate(step_ids):
            if made >= attempts:
                break
            model, provider, tier, pin, pout = MODELS[(i + k) % len(MODELS)]
            n_calls = 2 if llm_index % 4 == 3 else 1
            n_calls = min(n_calls, attempts - made)
            st = t + k * 1.5
            step_cost = 0
            step_tokens = [0, 0, 0]
            for a in range(n_calls):
                inp, out, cached = 400 + (i % 7) * 50, 60 + (k * 13 + i) % 90, (i % 3) * 64
                failed = (made % 20) == 7
                hit = not failed and (made % 100) in (11, 42, 77)
                cost = 0 if hit else (inp - cached) * pin + cached * pin // 10 + out * pout
                if failed:
                    out, cost = 0, (inp - cached) * pin
                atts.append((
                    run_id, step_id, a + 1, model, provider, tier, "rules", "annotation rule",
                    st + a * 0.5, 0.4 + (made % 13) * 0.05, "error" if failed else "ok", 0.08,
                    inp, out, cached, cost, "rate_limited" if failed else None,
                    "429 Too Many Requests" if failed else None, "exact" if hit else None,
                    (inp * pin + out * pout) if hit else 0,
                ))  # fmt: skip
                step_cost += cost
                step_tokens = [step_tokens[0] + inp, step_tokens[1] + out, step_tokens[2] + cached]
                made += 1
            steps.append((
                run_id, step_id, "llm", "succeeded", st, 0.9, model, tier, "rules",
                "annotation rule", 0.08, *step_tokens, step_cost, n_calls, 1.0, "[]", OUTPUT, None,
                None, None, None, '{"scope": "single-file"}', PROMPT,
            ))  # fmt: skip
            llm_index += 1
            run_cost += step_cost
            run_calls += n_calls
        steps.append((
            run_id, "words", "code", "succeeded", t + 8, 0.001, None, None, None, None, None,
            0, 0, 0, 0, 0, None, "[]", "12", None, None, None, None, None, None,
        ))  # fmt: skip
        status = "failed" if i % 25 == 24 else "succeeded"
        runs.append((
            run_id, workflow, "rules", status, t, t + 9, "{}", "{}", None, None, run_calls, 9.0,
            0, 0, 0, run_cost, 1.0, None, session,
        ))  # fmt: skip
        if len(atts) >= CHUNK:
            yield runs, steps, atts
            runs, steps, atts = [], [], []
    if runs:
        yield runs, steps, atts


def flag_rows(store_runs: int, now: float) -> list[tuple[Any, ...]]:
    """One LLM step in a hundred flagged: the first step of every 20th run, alternating."""
    out = []
    for i in range(0, store_runs, 20):
        run_id = f"{i:08x}{uuid.UUID(int=i).hex[8:]}"
        step_id = WORKFLOWS[i % len(WORKFLOWS)][1][0]
        verdict = "could_be_cheaper" if (i // 20) % 2 == 0 else "needed_frontier"
        out.append((run_id, step_id, verdict, "ana", "seeded", now - 30))
    return out


FLAG_COLUMNS = ("run_id", "step_id", "verdict", "flagged_by", "why", "created_at")


def seed_sqlite(path: Path, attempts: int, now: float) -> int:
    SQLiteStore(path).close()  # create and migrate as turnout does
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    n = 0
    for runs, steps, atts in generate(attempts, now):
        conn.execute("BEGIN")
        conn.executemany(UPSERT_RUN, runs)
        conn.executemany(UPSERT_STEP, steps)
        conn.executemany(INSERT_ATTEMPT, atts)
        conn.execute("COMMIT")
        n += len(atts)
    conn.executemany(
        f"INSERT INTO flags ({', '.join(FLAG_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
        flag_rows(plan(attempts), now),
    )
    conn.close()
    return n


def seed_postgres(dsn: str, attempts: int, now: float) -> int:
    import psycopg

    PostgresStore(dsn).close()
    n = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for runs, steps, atts in generate(attempts, now):
            with conn.transaction(), conn.cursor() as cur:
                for table, cols, rows in (
                    ("runs", RUN_COLUMNS, runs),
                    ("steps", STEP_COLUMNS, steps),
                    ("attempts", ATTEMPT_COLUMNS, atts),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            n += len(atts)
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY flags ({', '.join(FLAG_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in flag_rows(plan(attempts), now):
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE")
    return n


def time_library(store: TraceStore, repeats: int = 3) -> tuple[float, dict[str, Any]]:
    best = float("inf")
    report = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = weekly_report(store)
        best = min(best, time.perf_counter() - t0)
    assert report is not None
    return best, report.as_json()


def cli_command(store_url: str) -> list[str]:
    """``turnout report weekly`` as a user runs it: a fresh process."""
    return [
        sys.executable,
        "-m",
        "turnout.cli.main",
        "report",
        "weekly",
        "--store",
        store_url,
        "--json",
    ]


def time_cli(store_url: str) -> tuple[float, dict[str, Any]]:
    cmd = cli_command(store_url)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the CLI failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, json.loads(done.stdout)


def show(name: str, seeded: int, seed_s: float, lib_s: float, cli_s: float, out: Any) -> None:
    ok = lambda s: "ok" if s < TARGET_S else "OVER TARGET"  # noqa: E731
    print(f"{name}: {seeded:,} attempts seeded in {seed_s:.1f} s")
    print(f"  library weekly_report(store): {lib_s:.2f} s  ({ok(lib_s)}, best of 3)")
    print(f"  CLI `turnout report weekly --store ... --json`: {cli_s:.2f} s  ({ok(cli_s)}, "
          "fresh process, imports included)")  # fmt: skip
    e = out["efficiency"]
    print(
        f"  report: ${out['total_cost_usd']:,.2f} over {out['calls']:,} calls, "
        f"{out['runs']:,} runs, {out['sessions']:,} sessions, {e['llm_steps']:,} LLM steps, "
        f"efficiency {e['ratio']:.3f}, {out['cache']['hits']:,} cache hits"
    )


def bench_sqlite(attempts: int) -> None:
    with tempfile.TemporaryDirectory(prefix="turnout-weekly-") as tmp:
        path = Path(tmp) / "traces.db"
        now = time.time()
        t0 = time.perf_counter()
        seeded = seed_sqlite(path, attempts, now)
        seed_s = time.perf_counter() - t0
        with SQLiteStore(path) as store:
            lib_s, out = time_library(store)
        cli_s, cli_out = time_cli(str(path))
        assert cli_out["calls"] == out["calls"] == seeded, (cli_out["calls"], seeded)
        mb = os.path.getsize(path) / 1e6
        show(f"SQLite ({mb:,.0f} MB file)", seeded, seed_s, lib_s, cli_s, out)


def _admin_dsn() -> str | None:
    import psycopg

    for dsn in filter(None, (os.environ.get("TURNOUT_TEST_POSTGRES_DSN", ""), *ADMIN_DSNS)):
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                return dsn
        except psycopg.Error:
            continue
    return None


def bench_postgres(attempts: int) -> None:
    import psycopg

    admin = _admin_dsn()
    if admin is None:
        print("PostgreSQL: skipped (no server answers on 127.0.0.1:5432)")
        return
    name = f"turnout_weekly_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        now = time.time()
        t0 = time.perf_counter()
        seeded = seed_postgres(dsn, attempts, now)
        seed_s = time.perf_counter() - t0
        with PostgresStore(dsn) as store:
            lib_s, out = time_library(store)
        cli_s, cli_out = time_cli(dsn)
        assert cli_out["calls"] == out["calls"] == seeded, (cli_out["calls"], seeded)
        show("PostgreSQL", seeded, seed_s, lib_s, cli_s, out)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_whatif(llm_steps: int) -> None:
    """``turnout whatif`` (no time target; "a few seconds for 10,000 steps") in SQLite."""
    from turnout.config import settings_from_dict
    from turnout.reports.whatif import whatif

    base = "http://127.0.0.1:9/v1"
    config = {
        "providers": {"hosted": {"kind": "openai", "base_url": base},
                      "backup": {"kind": "openai", "base_url": base}},
        "models": {m: {"provider": p, "id": m, "tier": t,
                       "price": {"input": i / 1e6, "output": o / 1e6}}
                   for m, p, t, i, o in MODELS},
        "policies": {"rules": {"kind": "rules", "default": "standard",
                               "rules": [{"when": {"scope": "single-file"}, "tier": "efficient"}]}},
    }  # fmt: skip
    settings = settings_from_dict(config)
    with tempfile.TemporaryDirectory(prefix="turnout-whatif-") as tmp:
        path = Path(tmp) / "traces.db"
        seed_sqlite(path, llm_steps * 5 // 4, time.time())
        with SQLiteStore(path) as store:
            t0 = time.perf_counter()
            r = whatif(store, settings, "rules")
            elapsed = time.perf_counter() - t0
    print(
        f"whatif --policy rules over {r.steps:,} LLM steps (SQLite): {elapsed:.2f} s; "
        f"actual ${r.actual:,.2f} -> projected ${r.projected:,.2f} (estimate)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--whatif-steps", type=int, default=10_000, help="Also time `turnout whatif` (0: skip)."
    )
    args = parser.parse_args()
    runs = plan(args.attempts)
    print(
        f"seeding {args.attempts:,} attempts: {runs:,} runs x ({LLM_STEPS_PER_RUN} LLM steps "
        "+ 1 code step), 1.25 calls per LLM step"
    )
    if not args.no_sqlite:
        bench_sqlite(args.attempts)
    if not args.no_postgres:
        bench_postgres(args.attempts)
    if args.whatif_steps:
        bench_whatif(args.whatif_steps)


if __name__ == "__main__":
    main()
