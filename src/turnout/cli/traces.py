"""``turnout traces``: list recorded runs, show one run's steps and attempts.

Thin over :mod:`turnout.tracing`. :func:`store_option` is the shared ``--store``
option for any command that reads or writes traces.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from turnout.cli.common import CLIError
from turnout.errors import StoreError
from turnout.pricing.money import usd
from turnout.tracing import (
    AttemptRecord,
    RunRecord,
    RunTrace,
    StepRecord,
    TraceStore,
    open_store,
    record_to_dict,
    sqlite_path_of,
)

F = TypeVar("F", bound=Callable[..., Any])

_PIPED_WIDTH = 200
OUTPUT_CHARS = 400
"""How much of each step's output ``traces show`` prints unless ``--full``."""
STORE_HELP = (
    "Trace store: a SQLite file path, sqlite:///PATH or postgresql://USER@HOST/DB "
    "[default: $TURNOUT_STORE, else storage: of the config where the command reads one, "
    "else .turnout/traces.db]."
)


def store_option(fn: F) -> F:
    """``--store URL``, passed to the command as ``store_url`` (None: the default)."""
    return click.option(
        "--store", "store_url", metavar="URL", envvar="TURNOUT_STORE", help=STORE_HELP
    )(fn)


@contextmanager
def opened_store(store_url: str | None) -> Iterator[TraceStore]:
    """Open the store for a command; a StoreError becomes a one-line CLI error."""
    try:
        store = open_store(store_url)
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    try:
        yield store
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    finally:
        store.close()


def _missing_sqlite_file(store_url: str | None) -> str | None:
    """The SQLite file the URL names if it does not exist (so nothing was recorded)."""
    try:
        path = sqlite_path_of(store_url)
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    return str(path) if path is not None and not path.exists() else None


@click.group("traces")
def traces() -> None:
    """Inspect recorded runs: their steps, and every model call they made."""


@traces.command("list")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most N runs.",
)
@click.option("--workflow", "-w", metavar="NAME", help="Only runs of this workflow.")
@click.option("--bench", "bench_id", metavar="BENCH_ID", help="Only runs of this bench.")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_runs(
    limit: int, workflow: str | None, bench_id: str | None, store_url: str | None, as_json: bool
) -> None:
    """List recent runs, most recent first."""
    missing = _missing_sqlite_file(store_url)
    if missing is not None:
        runs: list[RunRecord] = []
    else:
        with opened_store(store_url) as store:
            runs = store.list_runs(limit=limit, workflow=workflow, bench_id=bench_id)
    if as_json:
        click.echo(json.dumps({"runs": [record_to_dict(r) for r in runs]}, indent=2))
        return
    if not runs:
        where = f" (no trace store at {missing})" if missing else ""
        click.echo(f"no runs recorded{where}")
        return
    _console().print(runs_table(runs))


@traces.command("show")
@click.argument("run_id")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--full", is_flag=True, help=f"Show step outputs whole (default: {OUTPUT_CHARS} characters)."
)
def show_run(run_id: str, store_url: str | None, as_json: bool, full: bool) -> None:
    """Show one run: its steps, then every attempt.

    RUN_ID may be any unique prefix of the id.
    """
    missing = _missing_sqlite_file(store_url)
    if missing is not None:
        raise CLIError(f"no run {run_id!r}: no trace store at {missing}")
    with opened_store(store_url) as store:
        trace = store.get_run(run_id)
    if trace is None:
        raise CLIError(f"no run {run_id!r} in the trace store")
    if as_json:
        click.echo(json.dumps(trace_to_dict(trace), indent=2))
        return
    console = _console()
    console.print(run_header(trace.run))
    console.print()
    console.print(steps_table(trace.steps))
    console.print(step_notes(trace.steps), end="")
    outputs = step_outputs(trace.steps, full=full)
    if outputs:
        console.print()
        console.print(outputs, end="")
    console.print()
    console.print(attempts_table(trace.attempts))
    console.print(attempt_errors(trace.attempts), end="")


def _console() -> Console:
    """A console for tables: the terminal's width, or a wide page when piped."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPED_WIDTH)
    return console


def trace_to_dict(trace: RunTrace) -> dict[str, Any]:
    return {
        "run": record_to_dict(trace.run),
        "steps": [record_to_dict(s) for s in trace.steps],
        "attempts": [record_to_dict(a) for a in trace.attempts],
    }


# -- formatting ------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def format_time(epoch: float | None, *, seconds: bool = True) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def _status(status: str) -> Text:
    style = {"succeeded": "green", "ok": "green", "failed": "red", "error": "red"}
    return Text(status, style=style.get(status, "yellow"))


def _tokens(n: int) -> str:
    return f"{n:,}"


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.3g}"


def _or_dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


SHORT_ID = 12


def short_ids(ids: Sequence[str], least: int = SHORT_ID) -> int:
    """The shortest prefix length (at least ``least``) at which ``ids`` are all told
    apart: runs started in the same millisecond share their first 12 characters."""
    distinct = set(ids)
    longest = max((len(i) for i in distinct), default=least)
    for n in range(least, longest + 1):
        if len({i[:n] for i in distinct}) == len(distinct):
            return n
    return longest


def runs_table(runs: Sequence[RunRecord]) -> Table:
    table = _table(
        "runs",
        ("id", "started", "workflow", "policy", "status"),
        ("calls", "in/out", "cost", "latency"),
    )
    width = short_ids([r.run_id for r in runs])
    for r in runs:
        table.add_row(
            r.run_id[:width],
            format_time(r.started_at, seconds=False),
            r.workflow,
            r.policy + (f" ({r.variant})" if r.variant else ""),
            _status(r.status),
            str(r.calls),
            f"{_tokens(r.input_tokens)}/{_tokens(r.output_tokens)}",
            usd(r.cost_usd),
            format_seconds(r.latency_s),
        )
    return table


def run_header(run: RunRecord) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("run", run.run_id),
        ("workflow", run.workflow),
        ("policy", run.policy + (f" (variant {run.variant})" if run.variant else "")),
        ("status", _status(run.status)),
        ("started", format_time(run.started_at)),
        ("ended", format_time(run.ended_at)),
        ("latency", format_seconds(run.latency_s)),
        ("calls", str(run.calls)),
        (
            "tokens",
            f"{_tokens(run.input_tokens)} in / {_tokens(run.output_tokens)} out / "
            f"{_tokens(run.cached_input_tokens)} cached",
        ),
        ("cost", usd(run.cost_usd)),
        ("score", _score(run.score)),
    ]
    if run.bench_id:
        rows.append(("bench", run.bench_id))
    if run.inputs:
        rows.append(("inputs", json.dumps(dict(run.inputs), ensure_ascii=False, default=str)))
    if run.tags:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in run.tags.items())))
    if run.error:
        rows.append(("error", Text(run.error, style="red")))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def _table(title: str, columns: Sequence[str], right: Sequence[str]) -> Table:
    """A compact table; narrow terminals fold cells onto more lines, hiding nothing."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
    )
    for name in columns:
        table.add_column(name, overflow="fold")
    for name in right:
        table.add_column(name, justify="right", overflow="fold", min_width=min(len(name), 7))
    return table


def _token_counts(inp: int, out: int, cached: int) -> str:
    return f"{inp:,}/{out:,}/{cached:,}"


def steps_table(steps: Sequence[StepRecord]) -> Table:
    """One line a step; its decision reason and failures follow in :func:`step_notes`."""
    table = _table(
        "steps",
        ("step", "model", "tier", "status"),
        ("latency", "in/out/cached", "cost", "score", "checks"),
    )
    for s in steps:
        passed = sum(c.passed for c in s.checks)
        checks = Text(
            f"{passed}/{len(s.checks)}", style="green" if passed == len(s.checks) else "red"
        )
        table.add_row(
            s.step_id,
            s.model or f"({s.kind})",
            _or_dash(s.tier),
            _status(s.status),
            format_seconds(s.latency_s),
            _token_counts(s.input_tokens, s.output_tokens, s.cached_input_tokens),
            usd(s.cost_usd),
            _score(s.score),
            checks if s.checks else "-",
        )
    return table


def step_notes(steps: Sequence[StepRecord]) -> Text:
    """Per step: the policy's reason, failed checks and the error, one line each."""
    text = Text()
    for s in steps:
        lines: list[tuple[str, str]] = []
        if s.reason:
            lines.append((f"{s.policy or 'decision'}: {s.reason}", ""))
        failed = [c for c in s.checks if not c.passed]
        if failed:
            listed = ", ".join(f"{c.name} ({c.detail})" if c.detail else c.name for c in failed)
            lines.append((f"failed checks: {listed}", "red"))
        if s.error:
            lines.append((f"{s.error_class or 'error'}: {s.error}", "red"))
        for line, style in lines:
            text.append(f"  {s.step_id}  ", style="bold")
            text.append(line + "\n", style=style)
    return text


def step_outputs(steps: Sequence[StepRecord], *, full: bool = False) -> Text:
    """Each step's output under a heading, cut at :data:`OUTPUT_CHARS` unless ``full``."""
    text = Text()
    shown = [s for s in steps if s.output]
    if shown:
        text.append("outputs\n", style="bold")
    for s in shown:
        out = (s.output or "").rstrip()
        rest = 0 if full else max(0, len(out) - OUTPUT_CHARS)
        text.append(f"  {s.step_id}\n", style="bold")
        body = out if not rest else out[:OUTPUT_CHARS].rstrip()
        text.append("".join(f"    {line}\n" for line in body.splitlines()))
        if rest:
            text.append(f"    … {rest:,} more characters (--full shows all)\n", style="dim")
    return text


def attempts_table(attempts: Sequence[AttemptRecord]) -> Table:
    """Every call, failed ones too; error messages follow in :func:`attempt_errors`."""
    table = _table(
        "attempts",
        ("step", "#", "model", "status", "error class"),
        ("latency", "ttft", "in/out/cached", "cost"),
    )
    for a in attempts:
        table.add_row(
            a.step_id,
            str(a.attempt),
            a.model,
            _status(a.status),
            _or_dash(a.error_class),
            format_seconds(a.latency_s),
            format_seconds(a.ttft_s),
            _token_counts(a.input_tokens, a.output_tokens, a.cached_input_tokens),
            usd(a.cost_usd),
        )
    return table


def attempt_errors(attempts: Sequence[AttemptRecord]) -> Text:
    text = Text()
    for a in attempts:
        if a.error:
            text.append(f"  {a.step_id} #{a.attempt}  ", style="bold")
            text.append(f"{a.model}: {a.error}\n", style="red")
    return text
