"""`turnout report weekly` splits gateway spend by virtual key (the runs' `key` tag,
kept in `runs.key_name`)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from rich.console import Console

from turnout.reports.weekly import weekly_report
from turnout.tracing import AttemptRecord, RunRecord, SQLiteStore

T0 = 1_800_000_000.0


def test_spend_by_key(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        runs, attempts = [], []
        for i, (key, cost) in enumerate([("team-a", "0.5"), ("team-a", "0.25"), ("team-b", "1"),
                                         (None, "2")]):  # fmt: skip
            tags = {"key": key} if key else {}
            runs.append(RunRecord(f"r{i}", "gateway", "rules", "succeeded", T0 + i, tags=tags,
                                  calls=1, cost_usd=Decimal(cost), input_tokens=10))  # fmt: skip
            attempts.append(AttemptRecord(f"r{i}", "chat", 1, "m", "p", None, "rules", "why",
                                          T0 + i, 0.1, "ok", cost_usd=Decimal(cost)))  # fmt: skip
        store.write_batch(runs, [], attempts)
        report = weekly_report(store, since=T0 - 1, until=T0 + 100)
    assert [(line.name, line.cost, line.calls) for line in report.by_key] == [
        ("team-b", Decimal(1), 1),
        ("team-a", Decimal("0.75"), 2),
    ]
    assert report.by_key[0].share == 1 / 3.75
    assert report.as_json()["by_key"][1]["name"] == "team-a"
    console = Console(record=True, width=120)
    report.print(console)
    assert "Spend by key (gateway)" in console.export_text()
