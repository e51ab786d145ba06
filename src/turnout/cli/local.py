"""``turnout local``: the embedded local models (list them, get them ready)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from turnout.cli.output import identifier_column, make_console
from turnout.providers.local_models import CATALOGUE, default_cache_dir, ensure_model, resolve


@click.group("local")
def local_group() -> None:
    """The embedded local model pool (llama.cpp, models from PyPI packages)."""


@local_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the local models turnout knows and the packages that ship them."""
    models = list(CATALOGUE.values())
    if as_json:
        rows = [
            {
                "id": m.id,
                "aliases": list(m.aliases),
                "source": m.source,
                "packages": list(m.distributions),
                "install": m.install_command(),
                "context_window": m.context_window,
                "sha256": m.sha256,
            }
            for m in models
        ]
        click.echo(json.dumps({"models": rows}, indent=2))
        return
    t = Table(title="local models")
    identifier_column(t, "Model id", [m.id for m in models])
    for col in ("Source", "Packages", "Context", "sha256"):
        t.add_column(col, overflow="fold")
    for m in models:
        t.add_row(m.id, m.source, m.install_command(), f"{m.context_window:,}", m.sha256)
    make_console().print(t)


@local_group.command("prepare")
@click.option("--model", "models", multiple=True, help="Model id (default: all of them).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where assembled models live.",
)
def prepare_cmd(models: tuple[str, ...], cache_dir: Path | None) -> None:
    """Assemble and verify the local models' GGUF files (once; later runs reuse them)."""
    console = Console(highlight=False)
    entries = [resolve(m) for m in models] if models else list(CATALOGUE.values())
    for entry in entries:
        t0 = time.perf_counter()
        path = ensure_model(entry, cache_dir or default_cache_dir())
        console.print(f"{entry.id}: {path} (sha256 verified, {time.perf_counter() - t0:.1f}s)")
