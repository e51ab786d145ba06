"""`turnout traces list|show` over a seeded SQLite file, through click's CliRunner."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from turnout.cli.traces import format_cost, traces
from turnout.tracing import AttemptRecord, RunRecord, SQLiteStore, StepRecord
from turnout.types import CheckResult

T0 = 1_750_000_000.0
WIDE = {"COLUMNS": "220"}


def _seed(path: Path) -> None:
    runs = [
        RunRecord(
            run_id="0a1b2c3d4e5f60718293",
            workflow="support-ticket",
            policy="cascade",
            status="succeeded",
            started_at=T0 + 10,
            ended_at=T0 + 12.5,
            inputs={"ticket": "Where is my refund?"},
            tags={"team": "support"},
            bench_id="bench-7",
            variant="B",
            calls=3,
            latency_s=2.5,
            input_tokens=1234,
            output_tokens=56,
            cached_input_tokens=100,
            cost_usd=Decimal("0.000123"),
            score=0.9,
        ),
        RunRecord(
            run_id="0a1b99990000",
            workflow="code-review",
            policy="all_frontier",
            status="failed",
            started_at=T0,
            ended_at=T0 + 4,
            calls=1,
            latency_s=4.0,
            cost_usd=Decimal("0.84"),
            error="step 'review' failed",
        ),
    ]
    steps = [
        StepRecord(
            run_id="0a1b2c3d4e5f60718293",
            step_id="classify",
            kind="llm",
            status="succeeded",
            started_at=T0 + 10,
            latency_s=0.42,
            model="qwen-small",
            tier="efficient",
            policy="cascade",
            reason="escalated to frontier after check 'has_refund' failed",
            ttft_s=0.1,
            input_tokens=1000,
            output_tokens=40,
            cached_input_tokens=100,
            cost_usd=Decimal("0.000100"),
            calls=2,
            score=1.0,
            checks=(
                CheckResult("has_refund", True),
                CheckResult("short_enough", False, "301 > 200", required=False),
            ),
            output="refund",
        ),
        StepRecord(
            run_id="0a1b2c3d4e5f60718293",
            step_id="lookup_order",
            kind="code",
            status="succeeded",
            started_at=T0 + 11,
            latency_s=0.003,
        ),
    ]
    attempts = [
        AttemptRecord(
            run_id="0a1b2c3d4e5f60718293",
            step_id="classify",
            attempt=1,
            model="qwen-small",
            provider="local",
            tier="efficient",
            policy="cascade",
            reason="cheapest first",
            started_at=T0 + 10,
            latency_s=0.2,
            status="error",
            error_class="rate_limited",
            error="429 slow down",
        ),
        AttemptRecord(
            run_id="0a1b2c3d4e5f60718293",
            step_id="classify",
            attempt=2,
            model="qwen-large",
            provider="local",
            tier="frontier",
            policy="cascade",
            reason="fallback",
            started_at=T0 + 10.2,
            latency_s=0.22,
            status="ok",
            ttft_s=0.05,
            input_tokens=1000,
            output_tokens=40,
            cached_input_tokens=100,
            cost_usd=Decimal("0.000100"),
        ),
    ]
    with SQLiteStore(path) as store:
        store.write_batch(runs, steps, attempts)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    _seed(path)
    return path


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(traces, list(args), env=WIDE, catch_exceptions=False)


def test_list_shows_recent_runs_first(db: Path) -> None:
    result = _invoke("list", "--store", str(db))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("0a1b2c3d4e5f") < out.index("0a1b99990000")
    for text in ("support-ticket", "cascade (B)", "succeeded", "1,234/56", "$0.000123", "2.50 s"):
        assert text in out
    assert "$0.84" in out
    assert "failed" in out


def test_list_filters(db: Path) -> None:
    result = _invoke("list", "--store", f"sqlite:///{db}", "--workflow", "code-review")
    assert "0a1b99990000" in result.output
    assert "0a1b2c3d4e5f" not in result.output
    result = _invoke("list", "--store", str(db), "--bench", "bench-7", "-n", "1")
    assert "0a1b2c3d4e5f" in result.output
    assert "0a1b99990000" not in result.output


def test_list_json(db: Path) -> None:
    result = _invoke("list", "--store", str(db), "--json", "--limit", "1")
    assert result.exit_code == 0
    runs = json.loads(result.output)["runs"]
    assert len(runs) == 1
    assert runs[0]["run_id"] == "0a1b2c3d4e5f60718293"
    assert runs[0]["cost_usd"] == pytest.approx(0.000123)
    assert runs[0]["inputs"] == {"ticket": "Where is my refund?"}


def test_list_with_no_store_file_says_nothing_was_recorded(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    result = _invoke("list", "--store", str(missing))
    assert result.exit_code == 0
    assert "no runs recorded" in result.output
    assert not missing.exists()  # listing does not create a store
    assert json.loads(_invoke("list", "--store", str(missing), "--json").output) == {"runs": []}


def test_show_by_unique_prefix(db: Path) -> None:
    result = _invoke("show", "0a1b2c", "--store", str(db))
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "0a1b2c3d4e5f60718293",  # header: the full id
        "support-ticket",
        "cascade (variant B)",
        "1,234 in / 56 out / 100 cached",
        "bench-7",
        "team=support",
        # steps
        "classify",
        "lookup_order",
        "qwen-small",
        "efficient",
        "420 ms",
        "1,000/40/100",
        "$0.0001",
        "1/2",
        "cascade: escalated to frontier after check 'has_refund' failed",
        "failed checks: short_enough (301 > 200)",
        "(code)",
        # attempts
        "qwen-large",
        "rate_limited",
        "classify #1  qwen-small: 429 slow down",
        "220 ms",
    ):
        assert text in out, text
    assert out.index("steps") < out.index("attempts")


def test_show_json(db: Path) -> None:
    result = _invoke("show", "0a1b2c3d4e5f60718293", "--store", str(db), "--json")
    data = json.loads(result.output)
    assert data["run"]["workflow"] == "support-ticket"
    assert [s["step_id"] for s in data["steps"]] == ["classify", "lookup_order"]
    assert data["steps"][0]["checks"][1] == {
        "name": "short_enough",
        "passed": False,
        "detail": "301 > 200",
        "required": False,
    }
    assert [a["attempt"] for a in data["attempts"]] == [1, 2]


def test_show_unknown_run_is_one_line_and_exit_2(db: Path) -> None:
    result = _invoke("show", "ffff", "--store", str(db))
    assert result.exit_code == 2
    assert result.output.strip() == "error: no run 'ffff' in the trace store"


def test_show_ambiguous_prefix_is_one_line_and_exit_2(db: Path) -> None:
    result = _invoke("show", "0a1b", "--store", str(db))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "ambiguous" in lines[0]
    assert "0a1b2c3d4e5f60718293" in lines[0]


def test_show_with_no_store_file(tmp_path: Path) -> None:
    result = _invoke("show", "abc", "--store", str(tmp_path / "none.db"))
    assert result.exit_code == 2
    assert "no trace store at" in result.output


def test_default_store_is_in_the_working_directory(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(db.parent)
    (db.parent / ".turnout").mkdir()
    db.rename(db.parent / ".turnout" / "traces.db")
    result = _invoke("list")
    assert "0a1b2c3d4e5f" in result.output


def test_bad_store_url_is_one_line_and_exit_2() -> None:
    result = _invoke("list", "--store", "mongodb://x")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown trace store URL scheme mongodb://")


def test_unreachable_postgres_is_one_line_without_password() -> None:
    result = _invoke("list", "--store", "postgresql://u:topsecret@127.0.0.1:1/db")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "topsecret" not in result.output


@pytest.mark.parametrize(
    ("cost", "shown"),
    [
        ("0", "$0"),
        ("0.84", "$0.84"),
        ("0.5", "$0.50"),
        ("0.03", "$0.03"),
        ("0.0315", "$0.0315"),
        ("0.000123456", "$0.000123"),
        ("0.000000001875", "$0.00000000188"),
        ("0.999999", "$1.00"),
        ("12.346", "$12.35"),
        ("1234.5", "$1,234.50"),
        ("-0.25", "-$0.25"),
    ],
)
def test_costs_keep_enough_digits(cost: str, shown: str) -> None:
    assert format_cost(Decimal(cost)) == shown


def test_list_shows_ids_long_enough_to_tell_runs_apart(tmp_path: Path) -> None:
    """Two runs started in the same millisecond share their first 12 characters."""
    db = tmp_path / "same-ms.db"
    ids = ["01a2337bd98155aa0001", "01a2337bd981ffbb0002"]
    with SQLiteStore(db) as store:
        store.write_batch([RunRecord(i, "w", "p", "succeeded", T0) for i in ids], [], [])
    result = _invoke("list", "--store", str(db))
    assert result.exit_code == 0
    shown = [line.split()[0] for line in result.output.splitlines() if line.startswith("01a2")]
    assert sorted(shown) == ["01a2337bd9815", "01a2337bd981f"]  # 13 characters tell them apart
    result = _invoke("show", "01a2337bd981", "--store", str(db))
    assert result.exit_code == 2 and "ambiguous" in result.output
    shown = "01a2337bd9815"
    result = _invoke("show", shown, "--store", str(db))
    assert result.exit_code == 0 and ids[0] in result.output


def test_show_prints_step_outputs_cut_unless_full(tmp_path: Path) -> None:
    db = tmp_path / "outputs.db"
    long = "\n".join(f"line {i}: " + "x" * 40 for i in range(40))
    with SQLiteStore(db) as store:
        store.write_batch(
            [RunRecord("feedc0de0001", "w", "p", "succeeded", T0)],
            [StepRecord("feedc0de0001", "plan", "llm", "succeeded", T0, 1.0, output=long)],
            [],
        )
    out = _invoke("show", "feedc0de0001", "--store", str(db)).output
    assert "outputs" in out and "line 0: xxxx" in out and "line 39" not in out
    assert f"{len(long) - 400:,} more characters (--full shows all)" in out
    out = _invoke("show", "feedc0de0001", "--store", str(db), "--full").output
    assert "line 39: " + "x" * 40 in out and "more characters" not in out
