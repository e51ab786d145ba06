"""``turnout prices``: the bundled price sheet, with dates and sources."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from turnout.pricing import bundled_sheet


@click.command("prices")
def prices_cmd() -> None:
    """List the bundled price sheet (USD per million tokens)."""
    t = Table(title="bundled price sheet (USD per million tokens)")
    for col in (
        "Name",
        "Provider",
        "Input",
        "Cached input",
        "Output",
        "Context",
        "As of",
        "Source",
    ):
        t.add_column(col)
    for e in bundled_sheet().values():
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
    Console().print(t)
