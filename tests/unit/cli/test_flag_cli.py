"""`turnout flag` over a real SQLite trace file, through click's CliRunner."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from turnout.cli.flag import flag_cmd
from turnout.tracing import RunRecord, SQLiteStore, StepRecord
from turnout.tracing.meta import list_flags

T0 = 1_767_571_200.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    with SQLiteStore(path) as store:
        store.write_batch(
            [
                RunRecord("0a1b2c3d4e5f", "csv-export", "rules", "succeeded", T0),
                RunRecord("0a1b99990000", "csv-export", "rules", "succeeded", T0 + 1),
            ],
            [
                StepRecord(
                    "0a1b2c3d4e5f",
                    "planner",
                    "llm",
                    "succeeded",
                    T0,
                    1.0,
                    model="opus",
                    tier="frontier",
                    cost_usd=Decimal("0.25"),
                ),
                StepRecord("0a1b2c3d4e5f", "words", "code", "succeeded", T0 + 1, 0.01),
            ],
            [],
        )
    return path


def _flag(db: Path, *args: str) -> Result:
    return CliRunner().invoke(flag_cmd, [*args, "--store", str(db)])


def test_flags_a_step_by_unique_prefix(db: Path) -> None:
    result = _flag(
        db, "0a1b2c", "planner", "--could-be-cheaper", "--by", "ana", "--why", "a  lookup\nreally"
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "flagged 0a1b2c3d4e5f planner [opus (frontier)]: could have been cheaper "
        "(by ana: a lookup really)\n"
    )
    with SQLiteStore(db) as store:
        (flag,) = list_flags(store)
    assert (flag.run_id, flag.step_id, flag.verdict, flag.by, flag.why) == (
        "0a1b2c3d4e5f", "planner", "could_be_cheaper", "ana", "a lookup really",
    )  # fmt: skip


def test_needed_frontier(db: Path) -> None:
    result = _flag(db, "0a1b2c3d4e5f", "planner", "--needed-frontier", "--by", "bob", "--why", "x")
    assert result.exit_code == 0, result.output
    with SQLiteStore(db) as store:
        assert [f.verdict for f in list_flags(store)] == ["needed_frontier"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "planner", "--could-be-cheaper"], "no run 'nope' in the trace store"),
        (["0a1b", "planner", "--could-be-cheaper"], "run id prefix '0a1b' is ambiguous"),
        (
            ["0a1b2c", "review", "--could-be-cheaper"],
            "run 0a1b2c3d4e5f has no step 'review' (its steps: planner, words)",
        ),
        (["0a1b2c", "words", "--needed-frontier"], "step 'words' of run 0a1b2c3d4e5f is a code"),
        (["0a1b2c", "planner"], "say which: --could-be-cheaper or --needed-frontier"),
    ],
)
def test_one_line_errors(db: Path, args: list[str], message: str) -> None:
    result = _flag(db, *args, "--by", "ana", "--why", "because")
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    # "error:" (turnout's style); "Error:" for click's usage errors when the command is
    # invoked on its own (through `turnout`, main() prints those as "error:" too)
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1 and message in errors[0]  # one line
    with SQLiteStore(db) as store:
        assert list_flags(store) == []


def test_blank_by_or_why_is_refused(db: Path) -> None:
    result = _flag(db, "0a1b2c", "planner", "--could-be-cheaper", "--by", " ", "--why", "x")
    assert result.exit_code == 2 and "--by must name someone" in result.output
    result = _flag(db, "0a1b2c", "planner", "--could-be-cheaper", "--by", "ana", "--why", "  ")
    assert result.exit_code == 2 and "--why must say why" in result.output


def test_by_and_why_are_required(db: Path) -> None:
    result = _flag(db, "0a1b2c", "planner", "--could-be-cheaper", "--why", "x")
    assert result.exit_code == 2 and "Missing option '--by'" in result.output


def test_missing_store_file(tmp_path: Path) -> None:
    result = _flag(tmp_path / "none.db", "x", "planner", "--could-be-cheaper", "--by", "a",
                   "--why", "b")  # fmt: skip
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "no trace store at" in result.output
    assert not (tmp_path / "none.db").exists()


def test_both_verdicts_are_a_usage_error(db: Path) -> None:
    result = _flag(db, "0a1b2c", "planner", "--needed-frontier", "--could-be-cheaper",
                   "--by", "ana", "--why", "x")  # fmt: skip
    assert result.exit_code == 2
    assert "--could-be-cheaper and --needed-frontier exclude each other" in result.output
    with SQLiteStore(db) as store:
        assert list_flags(store) == []
