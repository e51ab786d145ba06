"""A small trace database with known weekly-report figures, for SQLite and PostgreSQL.

The week is 2026-01-05 .. 2026-01-12 (UTC). Inside it:

=========  ============  =======  =========  ===========================================
run        workflow      session  status     LLM steps (model, cost) / calls
=========  ============  =======  =========  ===========================================
r1         csv-export    s1       succeeded  planner (opus .25) 1, implementer (haiku .05) 2
                                             (the first call failed, .01) + code step words
r2         csv-export    s1       succeeded  planner (opus .10), implementer (haiku .05),
                                             review (sonnet .05)
r3         support       (none)   failed     review (sonnet .10)
r4         support       s2       succeeded  classify (nano, a cache hit: 0, saved .02)
(none)     -             -        -          lost (opus .01): a step whose run row is missing
gateway    -             -        -          one call with no step and no tier (nano .005)
=========  ============  =======  =========  ===========================================

Runs cost .30, .20, .10 and 0 (their own totals). Outside the week: a run, its
step and its call a day before (cost 5) and a call a day after (cost 7).

Flags on the week's steps: r1 planner could_be_cheaper then needed_frontier (the
latest counts), r1 implementer could_be_cheaper twice (counts once), r2 planner
could_be_cheaper; outside: the old run's planner, and r1's code step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from turnout.reports.weekly import WeeklyReport
from turnout.tracing import AttemptRecord, RunRecord, StepRecord, TraceStore
from turnout.tracing.meta import FlagRecord, add_flag

SINCE = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
UNTIL = datetime(2026, 1, 12, tzinfo=UTC).timestamp()
T = SINCE + 3600


def _run(run_id: str, workflow: str, at: float, cost: str, **kw: object) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        workflow=workflow,
        policy="rules",
        status=kw.pop("status", "succeeded"),  # type: ignore[arg-type]
        started_at=at,
        ended_at=at + 60,
        cost_usd=D(cost),
        **kw,  # type: ignore[arg-type]
    )


def _step(run_id: str, step_id: str, at: float, model: str | None, tier: str | None, cost: str,
          calls: int = 1, kind: str = "llm") -> StepRecord:  # fmt: skip
    return StepRecord(
        run_id=run_id, step_id=step_id, kind=kind, status="succeeded", started_at=at,
        latency_s=1.0, model=model, tier=tier, policy="rules" if model else None,
        input_tokens=1000 if model else 0, output_tokens=100 if model else 0,
        cost_usd=D(cost), calls=calls,
    )  # fmt: skip


def _call(run_id: str, step_id: str, at: float, model: str, tier: str | None, cost: str,
          attempt: int = 1, **kw: object) -> AttemptRecord:  # fmt: skip
    return AttemptRecord(
        run_id=run_id, step_id=step_id, attempt=attempt, model=model, provider="hosted",
        tier=tier, policy="rules", reason="seeded", started_at=at, latency_s=0.5,
        status=kw.pop("status", "ok"), input_tokens=int(kw.pop("input_tokens", 1000)),  # type: ignore[arg-type]
        output_tokens=100, cost_usd=D(cost), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def seed(store: TraceStore) -> None:
    old, late = SINCE - 86400, UNTIL + 86400
    runs = [
        _run("r1-0001", "csv-export", T, "0.30", tags={"session": "s1"}),
        _run("r2-0002", "csv-export", T + 100, "0.20", tags={"session": "s1"}),
        _run("r3-0003", "support", T + 200, "0.10", status="failed"),
        _run("r4-0004", "support", T + 300, "0", tags={"session": "s2"}),
        _run("r0-old", "csv-export", old, "5", tags={"session": "s1"}),
    ]
    steps = [
        _step("r1-0001", "planner", T + 1, "opus", "frontier", "0.25"),
        _step("r1-0001", "implementer", T + 2, "haiku", "efficient", "0.05", calls=2),
        _step("r1-0001", "words", T + 3, None, None, "0", calls=0, kind="code"),
        _step("r2-0002", "planner", T + 101, "opus", "frontier", "0.10"),
        _step("r2-0002", "implementer", T + 102, "haiku", "efficient", "0.05"),
        _step("r2-0002", "review", T + 103, "sonnet", "standard", "0.05"),
        _step("r3-0003", "review", T + 201, "sonnet", "standard", "0.10"),
        _step("r4-0004", "classify", T + 301, "nano", "efficient", "0"),
        _step("ghost-run", "lost", T + 400, "opus", "frontier", "0.01"),
        _step("r0-old", "planner", old + 1, "opus", "frontier", "5"),
    ]
    attempts = [
        _call("r1-0001", "planner", T + 1, "opus", "frontier", "0.25"),
        _call(
            "r1-0001",
            "implementer",
            T + 2,
            "haiku",
            "efficient",
            "0.01",
            status="error",
            error_class="rate_limited",
            error="429",
        ),
        _call("r1-0001", "implementer", T + 2.5, "haiku", "efficient", "0.04", attempt=2),
        _call("r2-0002", "planner", T + 101, "opus", "frontier", "0.10"),
        _call("r2-0002", "implementer", T + 102, "haiku", "efficient", "0.05"),
        _call("r2-0002", "review", T + 103, "sonnet", "standard", "0.05"),
        _call("r3-0003", "review", T + 201, "sonnet", "standard", "0.10"),
        _call(
            "r4-0004",
            "classify",
            T + 301,
            "nano",
            "efficient",
            "0",
            cache="exact",
            saved_usd=D("0.02"),
        ),
        _call("ghost-run", "lost", T + 400, "opus", "frontier", "0.01"),
        _call("gw-0001", "request", T + 500, "nano", None, "0.005", input_tokens=200),
        _call("r0-old", "planner", old + 1, "opus", "frontier", "5"),
        _call("gw-late", "request", late, "opus", "frontier", "7"),
    ]
    store.write_batch(runs, steps, attempts)
    for run_id, step_id, verdict, by in (
        ("r1-0001", "planner", "could_be_cheaper", "ana"),
        ("r1-0001", "planner", "needed_frontier", "bob"),
        ("r1-0001", "implementer", "could_be_cheaper", "ana"),
        ("r1-0001", "implementer", "could_be_cheaper", "bob"),
        ("r2-0002", "planner", "could_be_cheaper", "ana"),
        ("r0-old", "planner", "could_be_cheaper", "ana"),
        ("r1-0001", "words", "could_be_cheaper", "ana"),
    ):
        add_flag(store, FlagRecord(run_id, step_id, verdict, by, "seeded", created_at=UNTIL + 5))  # type: ignore[arg-type]


EXPECTED_BY_TIER = [
    ("frontier", 3, D("0.36")),
    ("standard", 2, D("0.15")),
    ("efficient", 4, D("0.10")),
    ("(none)", 1, D("0.005")),
]
EXPECTED_BY_MODEL = [("opus", 3, D("0.36")), ("sonnet", 2, D("0.15")), ("haiku", 3, D("0.10")),
                     ("nano", 2, D("0.005"))]  # fmt: skip
EXPECTED_BY_STEP = [
    ("csv-export", "planner", 2, 2, D("0.35")),
    ("csv-export", "implementer", 2, 3, D("0.10")),
    ("support", "review", 1, 1, D("0.10")),
    ("csv-export", "review", 1, 1, D("0.05")),
    ("(no run record)", "lost", 1, 1, D("0.01")),
    ("support", "classify", 1, 1, D("0")),
]


def check_expected(r: WeeklyReport) -> None:
    """Every figure of the seeded week (shared with the PostgreSQL test)."""
    assert r.total_cost == D("0.615")
    assert (r.calls, r.failed_calls) == (10, 1)
    assert (r.input_tokens, r.output_tokens) == (9200, 1000)
    assert (r.runs, r.succeeded_runs, r.runs_cost) == (4, 3, D("0.60"))
    assert (r.sessions, r.runs_without_session) == (3, 1)
    assert r.cost_per_run == D("0.15")
    assert r.cost_per_successful_run == D("0.2")
    assert r.cost_per_session == D("0.2")
    assert [(x.name, x.calls, x.cost) for x in r.by_tier] == EXPECTED_BY_TIER
    assert [(x.name, x.calls, x.cost) for x in r.by_model] == EXPECTED_BY_MODEL
    assert [(x.workflow, x.name, x.steps, x.calls, x.cost) for x in r.by_step] == EXPECTED_BY_STEP
    assert r.by_tier[0].share == pytest.approx(0.36 / 0.615)
    assert r.unattributed_cost == D("0.005")
    assert (r.cache_hits, r.cache_saved) == (1, D("0.02"))
    e = r.efficiency
    assert (e.llm_steps, e.could_be_cheaper, e.needed_frontier) == (8, 2, 1)
    assert (e.could_be_cheaper_cost, e.needed_frontier_cost) == (D("0.15"), D("0.25"))
    assert e.ratio == pytest.approx(1 - 3 / 8)
