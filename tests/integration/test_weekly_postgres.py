"""The weekly report against the real PostgreSQL on 127.0.0.1:5432: the same seeded week,
the same figures as in SQLite (tests/unit/reports/weekly_seed.py).

The test creates a database with a random name and drops it afterwards. Set
``TURNOUT_TEST_POSTGRES_DSN`` to an admin DSN to use another server; the test is
skipped, saying why, only when no server answers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from support import pg
from turnout.cli.report import report_group
from turnout.reports.weekly import weekly_report
from turnout.tracing import PostgresStore

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.postgres

SEED_FILE = Path(__file__).parents[1] / "unit" / "reports" / "weekly_seed.py"


def _seed_module() -> ModuleType:
    name = "turnout_tests_weekly_seed"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SEED_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


seed = _seed_module()


@pytest.fixture
def dsn() -> Iterator[str]:
    with pg.throwaway_database() as url:
        yield url


@pytest.fixture
def seeded(dsn: str) -> str:
    with PostgresStore(dsn) as store:
        seed.seed(store)
    return dsn


def test_the_seeded_week_in_postgres(seeded: str) -> None:
    with PostgresStore(seeded) as store:
        report = weekly_report(store, since=seed.SINCE, until=seed.UNTIL)
    seed.check_expected(report)


def test_the_cli_over_postgres(seeded: str) -> None:
    result = CliRunner().invoke(
        report_group,
        ["weekly", "--store", seeded, "--since", "2026-01-05", "--until", "2026-01-12", "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["total_cost_usd"], out["runs"], out["sessions"]) == (0.615, 4, 3)
    assert out["efficiency"]["ratio"] == 0.625


def test_the_report_indexes_exist(seeded: str) -> None:
    with psycopg.connect(seeded) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert {"steps_report", "attempts_cache_hits", "attempts_report"} <= names
