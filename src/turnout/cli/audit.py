"""``turnout audit``: every decision a person took out of the policy's hands."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.table import Table

from turnout.cli.flag import existing_store
from turnout.cli.output import make_console
from turnout.cli.traces import opened_store, store_option
from turnout.cli.when import parse_since
from turnout.pricing.money import usd
from turnout.tracing.rows import pico_to_cost

_SQL = (
    "SELECT run_id, step_id, model, tier, status, override_by, override_why, started_at, "
    "cost_picousd FROM steps WHERE override_by IS NOT NULL"
)


@click.command("audit")
@store_option
@click.option(
    "--since", "since", metavar="DATE", help="Only overrides since DATE (ISO date, or e.g. 7d)."
)
@click.option("--by", "by", metavar="NAME", help="Only overrides made by NAME.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_cmd(
    store_url: str | None, since: str | None, by: str | None, limit: int, as_json: bool
) -> None:
    """List overridden routing decisions: who, why, which step and model."""
    sql = _SQL
    params: list[object] = []
    if since:
        sql += " AND started_at >= ?"
        params.append(parse_since(since))
    if by:
        sql += " AND override_by = ?"
        params.append(by)
    sql += " ORDER BY started_at DESC LIMIT ?"
    params.append(limit)
    existing_store(store_url)
    with opened_store(store_url) as store:
        rows = store.query(sql, params)
    items = [
        {
            "run_id": r[0], "step_id": r[1], "model": r[2], "tier": r[3], "status": r[4],
            "by": r[5], "why": r[6],
            "at": datetime.fromtimestamp(float(r[7]), UTC).isoformat(timespec="seconds"),
            "cost_usd": float(pico_to_cost(r[8])),
        }
        for r in rows
    ]  # fmt: skip
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    console = make_console()
    if not items:
        console.print("no overrides recorded")
        return
    t = Table(title="overrides (audit trail)")
    for col in ("When (UTC)", "Run", "Step", "Model", "Tier", "Status", "Cost", "By", "Why"):
        t.add_column(col)
    for i in items:
        t.add_row(
            str(i["at"]), str(i["run_id"])[:12], str(i["step_id"]), str(i["model"]), str(i["tier"]),
            str(i["status"]), usd(i["cost_usd"]), str(i["by"]), str(i["why"]),
        )  # fmt: skip
    console.print(t)
