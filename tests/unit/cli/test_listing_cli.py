"""`turnout prices` and `turnout local list`: identifiers are never cut; --json."""

from __future__ import annotations

import io
import json

from click.testing import CliRunner
from rich.console import Console

from turnout.cli.local import list_cmd
from turnout.cli.prices import price_table, prices_cmd
from turnout.pricing import bundled_sheet
from turnout.providers.local_models import CATALOGUE


def _render(table: object, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system=None).print(table)
    return out.getvalue()


def test_prices_never_cuts_a_name_on_a_narrow_terminal() -> None:
    text = _render(price_table(list(bundled_sheet().values())), 60)
    names = {line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")}
    assert set(bundled_sheet()) <= names  # each name whole, on one line


def test_prices_piped_and_json() -> None:
    result = CliRunner().invoke(prices_cmd, [], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    for name in bundled_sheet():
        assert name in result.output
    assert "…" not in result.output
    data = json.loads(CliRunner().invoke(prices_cmd, ["--json"]).output)
    names = [p["name"] for p in data["prices"]]
    assert names == list(bundled_sheet())
    opus = data["prices"][names.index("claude-opus-4-5")]
    assert (opus["input"], opus["output"], opus["cached_input"]) == (5.0, 25.0, 0.5)


def test_local_list_never_cuts_ids_and_has_json() -> None:
    result = CliRunner().invoke(list_cmd, [], env={"COLUMNS": "60"})
    assert result.exit_code == 0
    for m in CATALOGUE.values():
        assert m.id in result.output and m.sha256[:16] in result.output
    assert "…" not in result.output
    data = json.loads(CliRunner().invoke(list_cmd, ["--json"]).output)
    assert [m["id"] for m in data["models"]] == [m.id for m in CATALOGUE.values()]
    assert all(len(m["sha256"]) == 64 for m in data["models"])
