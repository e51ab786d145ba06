"""``turnout prices``: the bundled price sheet, with dates and sources.

Names are what users type into ``price_sheet:``: never cut, however narrow the
terminal or when piped (the other columns fold instead); ``--json`` for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from turnout.cli.output import identifier_column, make_console
from turnout.pricing import bundled_sheet
from turnout.pricing.sheet import SheetEntry


@click.command("prices")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def prices_cmd(as_json: bool) -> None:
    """List the bundled price sheet (USD per million tokens)."""
    entries = list(bundled_sheet().values())
    if as_json:
        click.echo(json.dumps({"prices": [_entry_json(e) for e in entries]}, indent=2))
        return
    make_console().print(price_table(entries))


def price_table(entries: Sequence[SheetEntry]) -> Table:
    t = Table(title="bundled price sheet (USD per million tokens)")
    identifier_column(t, "Name", [e.name for e in entries])
    identifier_column(t, "Provider", [e.provider for e in entries])
    for col in ("Input", "Cached input", "Output", "Context", "As of", "Source"):
        t.add_column(col, overflow="fold")
    for e in entries:
        p = e.price
        t.add_row(
            e.name,
            e.provider,
            f"{p.input}",
            "" if p.cached_input is None else f"{p.cached_input}",
            f"{p.output}",
            f"{e.context_window:,}" if e.context_window else "",
            e.as_of,
            e.source,
        )
    return t


def _entry_json(e: SheetEntry) -> dict[str, Any]:
    p = e.price
    return {
        "name": e.name,
        "provider": e.provider,
        "input": float(p.input),
        "cached_input": None if p.cached_input is None else float(p.cached_input),
        "output": float(p.output),
        "context_window": e.context_window,
        "as_of": e.as_of,
        "source": e.source,
        "note": e.note,
    }
