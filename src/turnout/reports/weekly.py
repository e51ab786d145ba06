"""The weekly report: what a period of traces cost, where it went, and how well it was routed.

Everything is aggregated in the database (``SUM`` / ``COUNT`` / ``GROUP BY``, through
:meth:`~turnout.tracing.store.TraceStore.query`, one SQL text for SQLite and
PostgreSQL); Python only adds up the handful of group rows. Each query is served by
an index (see :mod:`turnout.tracing.migrations`); over a million attempts the whole
report takes 1.5-2 s in SQLite and in PostgreSQL on a busy 2-core machine
(``benchmarks/weekly_report.py``):

* **attempts** (every model call, the unit that costs money): total spend, calls,
  tokens, and spend by tier and by model, grouped ``model, tier`` in the order of
  the covering ``attempts_report`` index (no table reads, no sort);
* **cache hits**: the partial index ``attempts_cache_hits`` (m005) holds only
  attempts answered from the cache, so counting them never reads the others;
* **runs** started in the period: how many, how many succeeded, their spend, and
  the sessions they belong to (``runs.session``; a run without a session counts as
  a session of its own);
* **steps**: LLM steps started in the period, grouped by step id in the order of
  the covering ``steps_report`` index (m005), and put under their run's workflow
  (see :func:`_by_step`): spend by workflow and step, and the number of LLM steps
  behind the efficiency ratio;
* **flags** on those steps: the after-the-fact judgments of ``turnout flag``, read
  from the (few) flags outwards (``CROSS JOIN`` fixes that order in SQLite).

**Routing efficiency** = 1 - flagged LLM steps / LLM steps in the period, where a
flagged step is one that someone marked ``could_be_cheaper`` (over-routed: money
spent for nothing) or ``needed_frontier`` (under-routed: quality at risk). A step
counts once, by its latest flag, however many times it was flagged; the step's
own start time puts it in the period, whenever the flag was added. Steps nobody
flagged count as well routed, so the ratio is an upper bound that is only as
good as the reviewing behind it: the report shows the counts it is made of.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from turnout.tracing.liveness import seen_status
from turnout.tracing.rows import pico_to_cost
from turnout.tracing.store import TraceStore

if TYPE_CHECKING:
    from rich.console import Console

    from turnout.reports.ab import ABTest

WEEK_S = 7 * 86400
NO_TIER = "(none)"
UNKNOWN_WORKFLOW = "(no run record)"
EFFICIENCY_RULE = (
    "routing efficiency = 1 - flagged LLM steps / LLM steps in the period; flagged = marked "
    "could_be_cheaper or needed_frontier (latest flag per step); unflagged steps count as well "
    "routed"
)

_PERIOD = "started_at >= ? AND started_at < ?"
_ATTEMPTS_SQL = (
    "SELECT model, tier, COUNT(*), SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), "
    "SUM(cost_picousd), SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens) "
    f"FROM attempts WHERE {_PERIOD} GROUP BY model, tier"
)
_CACHE_SQL = (
    f"SELECT COUNT(*), SUM(saved_picousd) FROM attempts WHERE cache IS NOT NULL AND {_PERIOD}"
)
_RUNS_SQL = (
    "SELECT COUNT(*), SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END), "
    "SUM(cost_picousd), COUNT(DISTINCT session), SUM(CASE WHEN session IS NULL THEN 1 ELSE 0 END) "
    f"FROM runs WHERE {_PERIOD}"
)
_RUN_STATUS_SQL = (
    "SELECT status, CASE WHEN status = 'running' THEN writer END, COUNT(*) "
    f"FROM runs WHERE {_PERIOD} GROUP BY status, CASE WHEN status = 'running' THEN writer END"
)
_KEYS_SQL = (
    "SELECT key_name, SUM(calls), SUM(cost_picousd), SUM(input_tokens), SUM(output_tokens) "
    f"FROM runs WHERE key_name IS NOT NULL AND {_PERIOD} GROUP BY key_name"
)
_STEP_TOTALS_SQL = (
    "SELECT step_id, COUNT(*), SUM(calls), SUM(cost_picousd), SUM(input_tokens), "
    f"SUM(output_tokens) FROM steps WHERE kind = 'llm' AND {_PERIOD} GROUP BY step_id"
)
_STEP_WORKFLOWS_SQL = (
    "SELECT DISTINCT r.workflow, s.step_id FROM runs r CROSS JOIN steps s "
    "WHERE s.run_id = r.run_id AND r.started_at >= ? AND r.started_at < ?"
)
_SHARED_STEPS_SQL = (
    "SELECT r.workflow, s.step_id, COUNT(*), SUM(s.calls), SUM(s.cost_picousd), "
    "SUM(s.input_tokens), SUM(s.output_tokens) "
    "FROM steps s LEFT JOIN runs r ON r.run_id = s.run_id "
    "WHERE s.kind = 'llm' AND s.started_at >= ? AND s.started_at < ? AND s.step_id IN ({ids}) "
    "GROUP BY r.workflow, s.step_id"
)
RUN_SLACK_S = 86400.0
"""How long before the period a run may have started and still have steps in it."""
_IN_CHUNK = 200
_FLAGS_SQL = (
    "SELECT f.verdict, COUNT(*), SUM(s.cost_picousd) "
    "FROM flags f CROSS JOIN steps s "
    "WHERE s.run_id = f.run_id AND s.step_id = f.step_id "
    "AND s.kind = 'llm' AND s.started_at >= ? AND s.started_at < ? "
    "AND f.id = (SELECT MAX(g.id) FROM flags g "
    "WHERE g.run_id = f.run_id AND g.step_id = f.step_id) "
    "GROUP BY f.verdict"
)


@dataclass(frozen=True, slots=True)
class SpendLine:
    """One line of a spend breakdown (by tier, by model, or by workflow step)."""

    name: str
    calls: int
    """Model calls (attempts, failed ones too)."""
    cost: Decimal
    share: float
    """Share of the period's total spend, 0..1."""
    input_tokens: int
    output_tokens: int
    workflow: str | None = None
    """By step only: the workflow of the step."""
    steps: int | None = None
    """By step only: how many times the step ran."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.workflow is not None:
            out["workflow"] = self.workflow
        if self.steps is not None:
            out["steps"] = self.steps
        out.update(
            calls=self.calls, cost_usd=float(self.cost), share=self.share,
            input_tokens=self.input_tokens, output_tokens=self.output_tokens,
        )  # fmt: skip
        return out


@dataclass(frozen=True, slots=True)
class Efficiency:
    """The routing-efficiency ratio and the counts it is made of (see the module docstring)."""

    llm_steps: int
    could_be_cheaper: int
    needed_frontier: int
    could_be_cheaper_cost: Decimal
    """What the steps flagged ``could_be_cheaper`` cost: the spend a review called waste."""
    needed_frontier_cost: Decimal

    @property
    def flagged(self) -> int:
        return self.could_be_cheaper + self.needed_frontier

    @property
    def ratio(self) -> float | None:
        """1 - flagged / LLM steps; None when the period has no LLM step."""
        return None if self.llm_steps == 0 else 1.0 - self.flagged / self.llm_steps

    def as_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "definition": EFFICIENCY_RULE,
            "llm_steps": self.llm_steps,
            "flagged": self.flagged,
            "could_be_cheaper": self.could_be_cheaper,
            "needed_frontier": self.needed_frontier,
            "could_be_cheaper_cost_usd": float(self.could_be_cheaper_cost),
            "needed_frontier_cost_usd": float(self.needed_frontier_cost),
        }


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    since: float
    until: float
    total_cost: Decimal
    """Every model call started in the period (attempts), failed ones too."""
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    runs: int
    """Runs started in the period."""
    succeeded_runs: int
    runs_cost: Decimal
    """What the runs started in the period cost (their own totals)."""
    sessions: int
    """Distinct sessions of those runs; each run without a session is a session of its own."""
    runs_without_session: int
    by_tier: tuple[SpendLine, ...]
    by_model: tuple[SpendLine, ...]
    by_step: tuple[SpendLine, ...]
    unattributed_cost: Decimal
    """Spend on calls that belong to no LLM step of the period (e.g. gateway requests)."""
    cache_hits: int
    cache_saved: Decimal
    efficiency: Efficiency
    runs_by_status: tuple[tuple[str, int], ...] = ()
    """How many of the period's runs ended each way (``succeeded``, ``failed``,
    ``interrupted``), were ``abandoned`` (their process died) or are still ``running``."""
    ab_tests: tuple[ABTest, ...] = ()
    """The A/B tests with runs in the period, with their one-line verdicts."""
    by_key: tuple[SpendLine, ...] = ()
    """Gateway spend by virtual key (the runs' ``key`` tag), dearest first."""

    @property
    def cost_per_run(self) -> Decimal | None:
        return _mean(self.runs_cost, self.runs)

    @property
    def cost_per_successful_run(self) -> Decimal | None:
        return _mean(self.runs_cost, self.succeeded_runs)

    @property
    def cost_per_session(self) -> Decimal | None:
        return _mean(self.runs_cost, self.sessions)

    def as_json(self) -> dict[str, Any]:
        def usd(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "total_cost_usd": float(self.total_cost),
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "runs": self.runs,
            "succeeded_runs": self.succeeded_runs,
            "runs_by_status": dict(self.runs_by_status),
            "runs_cost_usd": float(self.runs_cost),
            "cost_per_run_usd": usd(self.cost_per_run),
            "cost_per_successful_run_usd": usd(self.cost_per_successful_run),
            "sessions": self.sessions,
            "runs_without_session": self.runs_without_session,
            "cost_per_session_usd": usd(self.cost_per_session),
            "by_tier": [line.as_json() for line in self.by_tier],
            "by_model": [line.as_json() for line in self.by_model],
            "by_step": [line.as_json() for line in self.by_step],
            "unattributed_cost_usd": float(self.unattributed_cost),
            "cache": {"hits": self.cache_hits, "saved_usd": float(self.cache_saved)},
            "efficiency": self.efficiency.as_json(),
            "ab_tests": [t.as_json() for t in self.ab_tests],
            "by_key": [line.as_json() for line in self.by_key],
        }

    def print(self, console: Console) -> None:
        """The report for people: a summary, then spend by tier, model and step."""
        from turnout.reports.weekly_view import print_weekly

        print_weekly(self, console)


def default_period(now: float | None = None) -> tuple[float, float]:
    """The last seven days, ending now."""
    until = time.time() if now is None else now
    return until - WEEK_S, until


def weekly_report(
    store: TraceStore, *, since: float | None = None, until: float | None = None
) -> WeeklyReport:
    """The report over ``[since, until)`` (epoch seconds; default: the last seven days)."""
    start, end = default_period(until)
    since = start if since is None else since
    until = end if until is None else until
    period = (since, until)

    attempts = store.query(_ATTEMPTS_SQL, period)
    total = sum(_int(r[4]) for r in attempts)
    by_tier = _lines(attempts, total, key=lambda r: r[1] or NO_TIER)
    by_model = _lines(attempts, total, key=lambda r: str(r[0]))
    by_key = _lines(
        [(r[0], None, r[1], None, r[2], r[3], r[4]) for r in store.query(_KEYS_SQL, period)],
        total,
        key=lambda r: str(r[0]),
    )

    by_step = _by_step(store, since, until, total)
    step_pico = sum(_pico(line.cost) for line in by_step)

    hits, saved = store.query(_CACHE_SQL, period)[0]
    runs, succeeded, runs_pico, sessions, lone = store.query(_RUNS_SQL, period)[0]
    statuses: dict[str, int] = {}
    for status, writer, count in store.query(_RUN_STATUS_SQL, period):
        seen = seen_status(str(status), writer)
        statuses[seen] = statuses.get(seen, 0) + _int(count)
    flags = {str(r[0]): (_int(r[1]), _int(r[2])) for r in store.query(_FLAGS_SQL, period)}
    cheaper = flags.get("could_be_cheaper", (0, 0))
    frontier = flags.get("needed_frontier", (0, 0))
    from turnout.reports.ab import ab_tests

    tests = tuple(ab_tests(store, since=since, until=until))

    return WeeklyReport(
        since=since,
        until=until,
        total_cost=pico_to_cost(total),
        calls=sum(_int(r[2]) for r in attempts),
        failed_calls=sum(_int(r[3]) for r in attempts),
        input_tokens=sum(_int(r[5]) for r in attempts),
        output_tokens=sum(_int(r[6]) for r in attempts),
        cached_input_tokens=sum(_int(r[7]) for r in attempts),
        runs=_int(runs),
        succeeded_runs=_int(succeeded),
        runs_cost=pico_to_cost(_int(runs_pico)),
        sessions=_int(sessions) + _int(lone),
        runs_without_session=_int(lone),
        by_tier=by_tier,
        by_model=by_model,
        by_step=by_step,
        unattributed_cost=pico_to_cost(total - step_pico),
        cache_hits=_int(hits),
        cache_saved=pico_to_cost(_int(saved)),
        runs_by_status=_status_order(statuses),
        efficiency=Efficiency(
            llm_steps=sum(line.steps or 0 for line in by_step),
            could_be_cheaper=cheaper[0],
            needed_frontier=frontier[0],
            could_be_cheaper_cost=pico_to_cost(cheaper[1]),
            needed_frontier_cost=pico_to_cost(frontier[1]),
        ),
        ab_tests=tests,
        by_key=by_key,
    )


def _by_step(store: TraceStore, since: float, until: float, total: int) -> tuple[SpendLine, ...]:
    """Spend by workflow and step, dearest first.

    Attributing each step to its run's workflow row by row would cost a look-up per
    step (a million of them: seconds in SQLite). Instead: the period's LLM steps
    grouped by step id (one pass in the order of the ``steps_report`` index), and
    which workflows each step id belongs to (runs of the period, with a day of slack
    for runs under way when it began, against the steps' primary key). A step id
    of one workflow takes its totals as they are; a step id shared by several
    workflows, or with no run record, is grouped again with its run's workflow,
    over its own steps only.
    """
    workflows: dict[str, set[str]] = {}
    for workflow, step_id in store.query(_STEP_WORKFLOWS_SQL, (since - RUN_SLACK_S, until)):
        workflows.setdefault(str(step_id), set()).add(str(workflow))
    rows: list[tuple[Any, ...]] = []
    shared: list[str] = []
    for r in store.query(_STEP_TOTALS_SQL, (since, until)):
        owners = workflows.get(str(r[0]), set())
        if len(owners) == 1:
            rows.append((next(iter(owners)), *r))
        else:
            shared.append(str(r[0]))
    for i in range(0, len(shared), _IN_CHUNK):
        ids = shared[i : i + _IN_CHUNK]
        sql = _SHARED_STEPS_SQL.format(ids=", ".join("?" * len(ids)))
        rows.extend(store.query(sql, (since, until, *ids)))
    lines = (
        SpendLine(
            name=str(r[1]),
            workflow=str(r[0] or UNKNOWN_WORKFLOW),
            steps=_int(r[2]),
            calls=_int(r[3]),
            cost=pico_to_cost(_int(r[4])),
            share=_share(_int(r[4]), total),
            input_tokens=_int(r[5]),
            output_tokens=_int(r[6]),
        )
        for r in rows
    )
    return tuple(sorted(lines, key=lambda line: (-line.cost, line.workflow or "", line.name)))


# -- arithmetic --------------------------------------------------------------------------


def _pico(cost: Decimal) -> int:
    return int(cost.scaleb(12))


def _int(value: Any) -> int:
    """A COUNT or SUM as an int (PostgreSQL sums BIGINT into NUMERIC; an empty SUM is NULL)."""
    return 0 if value is None else int(value)


def _share(part: int, total: int) -> float:
    return part / total if total else 0.0


def _mean(cost: Decimal, n: int) -> Decimal | None:
    """``cost / n`` rounded to whole pico-dollars (exact when it divides)."""
    if n == 0:
        return None
    pico = (cost.scaleb(12) / n).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return pico_to_cost(int(pico))


def _lines(
    rows: Sequence[Sequence[Any]], total: int, *, key: Callable[[Sequence[Any]], str]
) -> tuple[SpendLine, ...]:
    """Group rows of ``_ATTEMPTS_SQL`` (a few per model) into spend lines, dearest first."""
    sums: dict[str, list[int]] = {}
    for r in rows:
        acc = sums.setdefault(key(r), [0, 0, 0, 0])
        for i, column in enumerate((2, 4, 5, 6)):
            acc[i] += _int(r[column])
    lines = (
        SpendLine(
            name=name,
            calls=calls,
            cost=pico_to_cost(pico),
            share=_share(pico, total),
            input_tokens=inp,
            output_tokens=out,
        )
        for name, (calls, pico, inp, out) in sums.items()
    )
    return tuple(sorted(lines, key=lambda line: (-line.cost, line.name)))


STATUS_ORDER = ("succeeded", "failed", "interrupted", "abandoned", "running")


def _status_order(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    known = [(s, counts[s]) for s in STATUS_ORDER if counts.get(s)]
    return (*known, *sorted((s, n) for s, n in counts.items() if s not in STATUS_ORDER and n))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
