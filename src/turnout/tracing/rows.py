"""Trace records to and from SQL rows (shared by the SQLite and PostgreSQL stores).

* Costs: :class:`~decimal.Decimal` USD <-> ``BIGINT`` pico-dollars (USD x 10^12),
  see :func:`cost_to_pico` and :func:`pico_to_cost`.
* ``inputs``, ``tags`` and ``checks`` are JSON text; values JSON cannot hold are
  stored as their ``str()``.
* Free text (reasons, errors, outputs) has NUL characters and lone surrogates
  replaced, so one odd string never makes a whole batch fail (PostgreSQL
  refuses NUL in text; UTF-8 has no lone surrogates).

The SQL here is written once with ``?`` placeholders; stores adapt it with
:meth:`~turnout.tracing.migrations.Dialect.sql`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from turnout.errors import StoreError
from turnout.tracing.liveness import seen_status
from turnout.tracing.records import AttemptRecord, RunRecord, StepRecord
from turnout.types import CheckResult

PICO_EXPONENT = 12
_ONE = Decimal(1)


def cost_to_pico(cost: Decimal | int) -> int:
    """USD as whole pico-dollars: exact for up to 12 decimals, else rounded half-even."""
    scaled = Decimal(cost).scaleb(PICO_EXPONENT)
    if scaled != scaled.to_integral_value():
        scaled = scaled.quantize(_ONE, rounding=ROUND_HALF_EVEN)
    return int(scaled)


def pico_to_cost(pico: int | None) -> Decimal:
    """Whole pico-dollars back to USD, without trailing zeros (``0.84``, ``1.5E-7``)."""
    if not pico:
        return Decimal(0)
    cost = Decimal(int(pico)).scaleb(-PICO_EXPONENT).normalize()
    exponent = cost.as_tuple().exponent
    return cost.quantize(_ONE) if isinstance(exponent, int) and exponent > 0 else cost


def clean_text(text: str | None) -> str | None:
    """Text any database accepts: NUL and lone surrogates become U+FFFD."""
    if text is None or (text.isascii() and "\x00" not in text):
        return text
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


# One encoder for every call: ``json.dumps`` with options builds a new one each time.
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
_AS_STDLIB = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME  # to str()


def _json(value: Any) -> str:
    try:  # orjson, several times faster: the writer thread holds the GIL while it encodes
        return orjson.dumps(value, default=str, option=_AS_STDLIB).decode("utf-8")
    except orjson.JSONEncodeError:  # lone surrogates, integers past 64 bits, other keys
        return clean_text(_JSON.encode(value)) or "null"


def _checks_json(checks: Sequence[CheckResult]) -> str:
    return _json([c.as_dict() for c in checks]) if checks else "[]"


def _checks(text: str | None) -> tuple[CheckResult, ...]:
    if not text:
        return ()
    return tuple(
        CheckResult(
            name=str(c["name"]),
            passed=bool(c["passed"]),
            detail=str(c.get("detail", "")),
            required=bool(c.get("required", True)),
        )
        for c in json.loads(text)
    )


def _messages(text: str | None) -> tuple[dict[str, str], ...]:
    if not text:
        return ()
    value = json.loads(text)
    return tuple(m for m in value if isinstance(m, dict)) if isinstance(value, list) else ()


def _mapping(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


# -- columns and SQL -------------------------------------------------------------------

RUN_COLUMNS = (
    "run_id", "workflow", "policy", "status", "started_at", "ended_at", "inputs", "tags",
    "bench_id", "variant", "calls", "latency_s", "input_tokens", "output_tokens",
    "cached_input_tokens", "cost_picousd", "score", "error", "session", "writer", "key_name",
)  # fmt: skip
STEP_COLUMNS = (
    "run_id", "step_id", "kind", "status", "started_at", "latency_s", "model", "tier", "policy",
    "reason", "ttft_s", "input_tokens", "output_tokens", "cached_input_tokens", "cost_picousd",
    "calls", "score", "checks", "output", "error_class", "error", "override_by", "override_why",
    "annotation", "prompt",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "run_id", "step_id", "attempt", "model", "provider", "tier", "policy", "reason",
    "started_at", "latency_s", "status", "ttft_s", "input_tokens", "output_tokens",
    "cached_input_tokens", "cost_picousd", "error_class", "error", "cache", "saved_picousd",
    "usage_estimated",
)  # fmt: skip


def column_of(field_name: str) -> str:
    """The column holding a record field (costs are renamed to pico-dollar columns)."""
    return {"cost_usd": "cost_picousd", "saved_usd": "saved_picousd"}.get(field_name, field_name)


def _insert(
    table: str,
    columns: Sequence[str],
    conflict: Sequence[str] = (),
    *,
    json_rows: bool = False,
    casts: Sequence[str] | None = None,
) -> str:
    """The insert (an upsert on ``conflict``) of one row of ``?`` parameters, or with
    ``json_rows`` of every row at once, as one JSON array of rows (:func:`json_rows`):
    one statement for a whole batch. Without ``casts`` that is SQLite's ``json_each``
    (3.38 or later); with them PostgreSQL's ``jsonb_array_elements``, each value's text
    cast to its column's type (``jsonb`` indexes an array once parsed; ``json`` would
    parse it again for every column: twice the server's CPU)."""
    if json_rows and casts is None:
        picks = ", ".join(f"value ->> {i}" for i in range(len(columns)))
        source = f"SELECT {picks} FROM json_each(?) WHERE true"
    elif json_rows:
        picks = ", ".join(f"(value ->> {i}){_pg_cast(cast)}" for i, cast in enumerate(casts or ()))
        source = f"SELECT {picks} FROM jsonb_array_elements(?::jsonb)"
    else:
        source = f"VALUES ({', '.join('?' * len(columns))})"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) {source}"
    if conflict:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in conflict)
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}"
    return sql


_PG_INTEGERS = ("smallint", "integer", "bigint")


def _pg_cast(column_type: str) -> str:
    """The cast of a value's JSON text to a PostgreSQL column's type. Integers go through
    ``double precision``, so a float in an integer column is rounded as a bound float
    is (and JSON integers are within 2**53, :func:`json_rows`, so exact)."""
    if column_type in _PG_INTEGERS:
        return f"::double precision::{column_type}"
    return f"::{column_type}"


def json_inserts(casts: Mapping[str, Sequence[str]] | None = None) -> tuple[str, str, str]:
    """The runs upsert, steps upsert and attempts insert of a batch given as JSON (SQLite's
    form; PostgreSQL's with ``casts``: per table, its columns' types in column order)."""

    def cast(table: str) -> Sequence[str] | None:
        return None if casts is None else casts[table]

    return (
        _insert("runs", RUN_COLUMNS, ("run_id",), json_rows=True, casts=cast("runs")),
        _insert("steps", STEP_COLUMNS, ("run_id", "step_id"), json_rows=True,
                casts=cast("steps")),
        _insert("attempts", ATTEMPT_COLUMNS, json_rows=True, casts=cast("attempts")),
    )  # fmt: skip


UPSERT_RUN = _insert("runs", RUN_COLUMNS, ("run_id",))
UPSERT_STEP = _insert("steps", STEP_COLUMNS, ("run_id", "step_id"))
INSERT_ATTEMPT = _insert("attempts", ATTEMPT_COLUMNS)
TABLE_COLUMNS = {"runs": RUN_COLUMNS, "steps": STEP_COLUMNS, "attempts": ATTEMPT_COLUMNS}

_RUN_SELECT = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
SELECT_RUN = f"{_RUN_SELECT} WHERE run_id = ?"
_AMBIGUOUS_SHOWN = 5
SELECT_RUN_IDS_BY_PREFIX = (
    "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? "
    f"ORDER BY run_id LIMIT {_AMBIGUOUS_SHOWN + 1}"
)
SELECT_STEPS = (
    f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY started_at, step_id"
)
SELECT_ATTEMPTS = (
    f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts WHERE run_id = ? ORDER BY started_at, id"
)


def list_runs_query(
    *, limit: int, workflow: str | None, bench_id: str | None, since: float | None
) -> tuple[str, tuple[Any, ...]]:
    """The ``list_runs`` query and its parameters, most recent first."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (("workflow = ?", workflow), ("bench_id = ?", bench_id)):
        if value is not None:
            where.append(clause)
            params.append(value)
    if since is not None:
        where.append("started_at >= ?")
        params.append(since)
    sql = _RUN_SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
    sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
    params.append(max(0, int(limit)))
    return sql, tuple(params)


def resolve_prefix(prefix: str, matches: Sequence[str]) -> str | None:
    """The one id in ``matches`` (ids starting with ``prefix``, from
    ``SELECT_RUN_IDS_BY_PREFIX``), or None if there is none.

    Several matches raise :class:`~turnout.errors.StoreError` naming them.
    """
    if len(matches) <= 1:
        return matches[0] if matches else None
    shown = ", ".join(matches[:_AMBIGUOUS_SHOWN])
    more = ", ..." if len(matches) > _AMBIGUOUS_SHOWN else ""
    raise StoreError(
        f"run id prefix {prefix!r} is ambiguous: it matches {shown}{more}; give more characters"
    )


# -- records to rows -------------------------------------------------------------------


def run_row(r: RunRecord) -> tuple[Any, ...]:
    return (
        r.run_id, r.workflow, r.policy, r.status, r.started_at, r.ended_at,
        _json(dict(r.inputs)), _json(dict(r.tags)), r.bench_id, r.variant, r.calls,
        r.latency_s, r.input_tokens, r.output_tokens, r.cached_input_tokens,
        cost_to_pico(r.cost_usd), r.score, clean_text(r.error), clean_text(r.tags.get("session")),
        r.writer,
        clean_text(r.tags.get("key")),
    )  # fmt: skip


def step_row(s: StepRecord) -> tuple[Any, ...]:
    return (
        s.run_id, s.step_id, s.kind, s.status, s.started_at, s.latency_s, s.model, s.tier,
        s.policy, clean_text(s.reason), s.ttft_s, s.input_tokens, s.output_tokens,
        s.cached_input_tokens, cost_to_pico(s.cost_usd), s.calls, s.score,
        _checks_json(s.checks), clean_text(s.output), s.error_class, clean_text(s.error),
        clean_text(s.override_by), clean_text(s.override_why),
        _json(dict(s.annotation)) if s.annotation is not None else None,
        _json([dict(m) for m in s.prompt]) if s.prompt else None,
    )  # fmt: skip


def attempt_row(a: AttemptRecord) -> tuple[Any, ...]:
    return (
        a.run_id, a.step_id, a.attempt, a.model, a.provider, a.tier, a.policy,
        clean_text(a.reason), a.started_at, a.latency_s, a.status, a.ttft_s, a.input_tokens,
        a.output_tokens, a.cached_input_tokens, cost_to_pico(a.cost_usd), a.error_class,
        clean_text(a.error), a.cache, cost_to_pico(a.saved_usd), int(a.usage_estimated),
    )  # fmt: skip


Row = tuple[Any, ...]
YIELD_EVERY = 32
"""Records converted between two offers of the GIL in :func:`batch_rows` (about 0.1 ms of
Python)."""


def batch_rows(
    runs: Sequence[RunRecord], steps: Sequence[StepRecord], attempts: Sequence[AttemptRecord]
) -> tuple[list[Row], list[Row], list[Row]]:
    """The rows of one batch's runs, steps and attempts.

    Converting is Python that holds the GIL, and the trace writer converts its batches
    on a thread beside the gateway's event loop: so every :data:`YIELD_EVERY` records it
    offers the GIL (``time.sleep(0)``), and a request that arrives meanwhile waits for
    one chunk, not for the whole batch (a full batch of 500 records, as after a backlog
    or when a spill file is replayed, is about 2 ms of Python)."""
    done = 0

    def converted(records: Sequence[Any], to_row: Callable[[Any], Row]) -> list[Row]:
        nonlocal done
        out: list[Row] = []
        for record in records:
            done += 1
            if done % YIELD_EVERY == 0:
                time.sleep(0)  # gives up the GIL: a waiting thread takes it
            out.append(to_row(record))
        return out

    return converted(runs, run_row), converted(steps, step_row), converted(attempts, attempt_row)


def json_rows(table_rows: Sequence[Row]) -> str | None:
    """The rows as one JSON array, for a store's one-statement batch insert
    (:func:`json_inserts`), or None when JSON would not carry every value exactly (an
    integer past 2**53, a float that is not finite, text that is not valid UTF-8 or
    holds a NUL): the store then binds the rows one by one.

    Why: SQLite's ``executemany`` gives up the GIL and takes it back for every row, and
    on a busy gateway each take waits for the event loop; one statement for the batch
    takes it once. Beside a never-idle uvloop (``benchmarks/trace_writes.py --busy``)
    the writer wrote 1.5x the records per second and the loop turned 1.7x the round
    trips; in a gateway under wrk at c=16 for 12 s the writer kept up (rows = requests
    when the load stopped, RSS flat at 64 MB), where it had fallen behind by two thirds.
    PostgreSQL's ``executemany`` costs the client psycopg's work per row and the server a
    statement per row: one statement halves the client's CPU and cuts the server's
    (``benchmarks/trace_writes.py --gateway``)."""
    try:
        data = orjson.dumps(table_rows, option=orjson.OPT_STRICT_INTEGER)
    except (TypeError, ValueError):
        return None
    # JSON has no infinity or NaN: orjson writes them as null. So the batch goes as JSON
    # only if the nulls among its values (each follows "[" or ",") are its Nones; text
    # holding "[null" or ",null" sends it one by one too, JSON text's `"content":null` not.
    # Counting is C, a third of orjson's own time; testing each float took three times it.
    nulls = data.count(b",null") + data.count(b"[null")
    if nulls != sum(row.count(None) for row in table_rows):
        return None
    if b"\\u0000" in data:  # `->>` would cut the text at a NUL (SQLite), or refuse it
        return None
    return data.decode()


def last_per_key(table_rows: Sequence[Row], width: int) -> Sequence[Row]:
    """The rows with the last of those sharing their first ``width`` values (the
    upsert's key) only: what upserting them one by one leaves, and what one PostgreSQL
    statement needs (it may not update a row twice)."""
    last: dict[Row, Row] = {}
    for row in table_rows:
        last[row[:width]] = row
    return table_rows if len(last) == len(table_rows) else list(last.values())


# -- rows to records -------------------------------------------------------------------


def _float(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def run_from_row(row: Sequence[Any]) -> RunRecord:
    v = dict(zip(RUN_COLUMNS, row, strict=True))
    return RunRecord(
        run_id=v["run_id"], workflow=v["workflow"], policy=v["policy"],
        status=seen_status(v["status"], v["writer"]),
        started_at=_float(v["started_at"]), ended_at=_opt_float(v["ended_at"]),
        inputs=_mapping(v["inputs"]), tags=_mapping(v["tags"]), bench_id=v["bench_id"],
        variant=v["variant"], calls=int(v["calls"]), latency_s=_float(v["latency_s"]),
        input_tokens=int(v["input_tokens"]), output_tokens=int(v["output_tokens"]),
        cached_input_tokens=int(v["cached_input_tokens"]),
        cost_usd=pico_to_cost(v["cost_picousd"]), score=_opt_float(v["score"]), error=v["error"],
        writer=v["writer"],
    )  # fmt: skip


def step_from_row(row: Sequence[Any]) -> StepRecord:
    v = dict(zip(STEP_COLUMNS, row, strict=True))
    return StepRecord(
        run_id=v["run_id"], step_id=v["step_id"], kind=v["kind"], status=v["status"],
        started_at=_float(v["started_at"]), latency_s=_float(v["latency_s"]), model=v["model"],
        tier=v["tier"], policy=v["policy"], reason=v["reason"], ttft_s=_opt_float(v["ttft_s"]),
        input_tokens=int(v["input_tokens"]), output_tokens=int(v["output_tokens"]),
        cached_input_tokens=int(v["cached_input_tokens"]),
        cost_usd=pico_to_cost(v["cost_picousd"]), calls=int(v["calls"]),
        score=_opt_float(v["score"]), checks=_checks(v["checks"]), output=v["output"],
        error_class=v["error_class"], error=v["error"], override_by=v["override_by"],
        override_why=v["override_why"],
        annotation=_mapping(v["annotation"]) if v["annotation"] else None,
        prompt=_messages(v["prompt"]),
    )  # fmt: skip


def attempt_from_row(row: Sequence[Any]) -> AttemptRecord:
    v = dict(zip(ATTEMPT_COLUMNS, row, strict=True))
    return AttemptRecord(
        run_id=v["run_id"], step_id=v["step_id"], attempt=int(v["attempt"]), model=v["model"],
        provider=v["provider"], tier=v["tier"], policy=v["policy"], reason=v["reason"],
        started_at=_float(v["started_at"]), latency_s=_float(v["latency_s"]),
        status=v["status"], ttft_s=_opt_float(v["ttft_s"]), input_tokens=int(v["input_tokens"]),
        output_tokens=int(v["output_tokens"]), cached_input_tokens=int(v["cached_input_tokens"]),
        cost_usd=pico_to_cost(v["cost_picousd"]), error_class=v["error_class"], error=v["error"],
        cache=v["cache"], saved_usd=pico_to_cost(v["saved_picousd"]),
        usage_estimated=bool(v["usage_estimated"]),
    )  # fmt: skip


# -- JSON output -----------------------------------------------------------------------


def record_to_dict(record: RunRecord | StepRecord | AttemptRecord) -> dict[str, Any]:
    """A record as plain JSON-ready values (costs as float USD, checks as dicts)."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        elif f.name == "checks":
            value = [c.as_dict() for c in value]
        elif f.name == "prompt":
            value = [dict(m) for m in value]
        out[f.name] = value
    return out
