"""The weekly report over a seeded SQLite trace file: every figure known exactly."""

from __future__ import annotations

import importlib.util
import json
import sys
from decimal import Decimal as D
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from turnout.cli.report import report_group
from turnout.reports.weekly import EFFICIENCY_RULE, WEEK_S, WeeklyReport, weekly_report
from turnout.tracing import SQLiteStore


def load_seed() -> ModuleType:
    """``weekly_seed.py`` next to this file (shared with the PostgreSQL test)."""
    name = "turnout_tests_weekly_seed"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("weekly_seed.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


seed = load_seed()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    with SQLiteStore(path) as store:
        seed.seed(store)
    return path


@pytest.fixture
def report(db: Path) -> WeeklyReport:
    with SQLiteStore(db) as store:
        return weekly_report(store, since=seed.SINCE, until=seed.UNTIL)


def test_every_figure_of_the_seeded_week(report: WeeklyReport) -> None:
    seed.check_expected(report)


def test_costs_are_exact_decimals(report: WeeklyReport) -> None:
    assert sum((x.cost for x in report.by_model), D(0)) == report.total_cost
    assert sum((x.cost for x in report.by_step), D(0)) + report.unattributed_cost == (
        report.total_cost
    )


def test_default_period_is_the_seven_days_before_until(db: Path) -> None:
    with SQLiteStore(db) as store:
        r = weekly_report(store, until=seed.UNTIL)
    assert r.since == seed.UNTIL - WEEK_S == seed.SINCE
    assert r.total_cost == D("0.615")


def test_a_narrower_period_leaves_the_rest_out(db: Path) -> None:
    with SQLiteStore(db) as store:
        r = weekly_report(store, since=seed.T + 150, until=seed.UNTIL)
    assert (r.runs, r.sessions, r.runs_without_session) == (2, 2, 1)  # r3, r4
    assert r.efficiency.llm_steps == 3  # review (r3), classify (r4), lost
    assert r.efficiency.ratio == 1.0
    assert r.total_cost == D("0.115")


def test_an_empty_store(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "empty.db") as store:
        r = weekly_report(store, since=seed.SINCE, until=seed.UNTIL)
    assert (r.total_cost, r.calls, r.runs, r.sessions) == (D(0), 0, 0, 0)
    assert r.cost_per_run is None and r.cost_per_session is None
    assert r.efficiency.ratio is None
    assert r.by_tier == r.by_model == r.by_step == ()


def test_json_keys(report: WeeklyReport) -> None:
    out = report.as_json()
    assert out["total_cost_usd"] == 0.615
    assert out["cost_per_session_usd"] == 0.2
    assert out["runs_without_session"] == 1
    assert out["efficiency"]["ratio"] == 0.625
    assert out["efficiency"]["definition"] == EFFICIENCY_RULE
    assert out["cache"] == {"hits": 1, "saved_usd": 0.02}
    assert out["by_step"][0] == {
        "name": "planner", "workflow": "csv-export", "steps": 2, "calls": 2,
        "cost_usd": 0.35, "share": pytest.approx(0.35 / 0.615), "input_tokens": 2000,
        "output_tokens": 200,
    }  # fmt: skip
    assert out["since"] == "2026-01-05T00:00:00+00:00"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(report_group, ["weekly", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_json(db: Path) -> None:
    out = json.loads(
        _cli("--store", str(db), "--since", "2026-01-05", "--until", "2026-01-12", "--json")
    )
    assert out["total_cost_usd"] == 0.615
    assert out["runs"] == 4
    assert [x["name"] for x in out["by_tier"]] == ["frontier", "standard", "efficient", "(none)"]


def test_cli_text_shows_the_ratio_and_the_counts_behind_it(db: Path) -> None:
    text = _cli("--store", str(db), "--since", "2026-01-05", "--until", "2026-01-12")
    assert "Total spend $0.6150" in text
    assert "average $0.1500 per run" in text
    assert "Sessions 3: average $0.2000 per session; 1 runs had no session" in text
    assert "Routing efficiency 62.5% = 1 - (2 could be cheaper + 1 needed frontier) / 8" in text
    assert "Cache 1 hits saved $0.0200" in text
    for title in ("Spend by tier", "Spend by model", "Spend by step"):
        assert title in text
    assert "(no run record)" in text


def test_cli_rejects_an_empty_period(db: Path) -> None:
    result = CliRunner().invoke(
        report_group,
        ["weekly", "--store", str(db), "--since", "2026-01-12", "--until", "2026-01-05"],
    )
    assert result.exit_code == 2
    assert "--since must be before --until" in result.output


def test_cli_missing_store_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(report_group, ["weekly", "--store", str(missing)])
    assert result.exit_code == 2
    assert f"no trace store at {missing}: nothing recorded yet" in result.output
    assert not missing.exists()
