"""``turnout report ab``: seeded SQLite stores with a known difference and with none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from turnout.cli.main import cli
from turnout.reports.ab import ab_report, ab_tests
from turnout.reports.weekly import weekly_report
from turnout.tracing import AttemptRecord, RunRecord, StepRecord
from turnout.tracing.meta import FlagRecord, add_flag
from turnout.tracing.sqlite import SQLiteStore
from turnout.types import CheckResult

SINCE = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
UNTIL = datetime(2026, 3, 9, tzinfo=UTC).timestamp()


def seed(
    store: SQLiteStore,
    policy: str,
    variants: dict[str, tuple[float, str, str]],
    *,
    runs: int = 200,
    checks: bool = True,
    at: float = SINCE + 3600,
) -> None:
    """``variants``: name -> (success share, cost per run, model). Users u0..u49 are
    assigned by their number (sticky); every 10th call of a run fails first."""
    names = list(variants)
    out_runs, out_steps, out_attempts = [], [], []
    for i in range(runs):
        user = f"u{i % 50}"
        v = names[(i % 50) % len(names)]
        share, cost, model = variants[v]
        ok = (i // len(names)) % 100 < share * 100
        rid = f"{policy}-{i}"
        t = at + i
        out_runs.append(RunRecord(
            run_id=rid, workflow="support", policy=policy, variant=v,
            status="succeeded" if ok else "failed", started_at=t, ended_at=t + 1,
            tags={"user": user}, calls=2 if i % 10 == 0 else 1, latency_s=0.5 + (i % 7) / 10,
            cost_usd=Decimal(cost),
        ))  # fmt: skip
        out_steps.append(StepRecord(
            run_id=rid, step_id="answer", kind="llm", status="succeeded" if ok else "failed",
            started_at=t, latency_s=0.5, model=model, cost_usd=Decimal(cost),
            checks=(CheckResult("mentions refund", ok),) if checks else (),
        ))  # fmt: skip
        if i % 10 == 0:
            out_attempts.append(AttemptRecord(
                run_id=rid, step_id="answer", attempt=1, model=model, provider="p", tier=None,
                policy=policy, reason="r", started_at=t, latency_s=0.1, status="error",
                error_class="server_error",
            ))  # fmt: skip
        out_attempts.append(AttemptRecord(
            run_id=rid, step_id="answer", attempt=2 if i % 10 == 0 else 1, model=model,
            provider="p", tier=None, policy=policy, reason="r", started_at=t, latency_s=0.5,
            status="ok", cost_usd=Decimal(cost),
        ))  # fmt: skip
    store.write_batch(out_runs, out_steps, out_attempts)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "traces.db")
    seed(s, "model_ab", {"cheap": (0.6, "0.001", "nano"), "strong": (0.95, "0.01", "opus")})
    seed(s, "same_ab", {"a": (0.8, "0.002", "haiku"), "b": (0.8, "0.002", "nano")})
    return s


def test_a_known_difference_is_significant(store: SQLiteStore) -> None:
    r = ab_report(store, "model_ab", since=SINCE, until=UNTIL, n_boot=500)
    cheap, strong = r.variants
    assert (cheap.name, strong.name) == ("cheap", "strong")
    assert r.analysis.baseline == "cheap"
    assert (cheap.stats.runs, strong.stats.runs) == (100, 100)
    assert (cheap.stats.successes, strong.stats.successes) == (60, 95)
    # every 10th run (all of them even, so all cheap) failed a call first
    assert cheap.stats.calls == 120 and cheap.error_calls == 20 and cheap.error_rate == 20 / 120
    assert strong.error_calls == 0 and strong.error_rate == 0
    assert cheap.cost_per_run == Decimal("0.001") and strong.models == ("opus",)
    ci = cheap.stats.success_ci
    assert ci.low < 0.6 < ci.high
    (c,) = r.analysis.comparisons
    assert c.success_significant and c.cost_significant
    assert r.verdicts == (
        "strong: 532% dearer per successful run than cheap (95% CI "
        f"{r.verdicts[0].split('95% CI ')[1].split(')')[0]}); success 0.95 vs 0.60, "
        "a significant difference at n=100",
    )
    assert (r.users, r.users_with_several_variants, r.runs_without_key) == (50, 0, 0)


def test_no_difference_is_not_significant(store: SQLiteStore) -> None:
    r = ab_report(store, "same_ab", since=SINCE, until=UNTIL, n_boot=500)
    (c,) = r.analysis.comparisons
    assert not c.success_significant and not c.cost_significant
    assert r.verdicts[0].startswith("b: same cost per successful run as a (95% CI ")
    assert r.verdicts[0].endswith(
        "not significant); success 0.80 vs 0.80, not a significant difference at n=100"
    )


def test_baseline_chosen_and_unknown(store: SQLiteStore) -> None:
    r = ab_report(store, "model_ab", since=SINCE, until=UNTIL, baseline="strong", n_boot=200)
    assert r.analysis.baseline == "strong" and r.verdicts[0].startswith("cheap: ")
    from turnout.errors import ConfigError

    with pytest.raises(ConfigError, match="baseline 'nope' is not a variant of 'model_ab'"):
        ab_report(store, "model_ab", since=SINCE, until=UNTIL, baseline="nope")


def test_sticky_check_counts_users_with_several_variants(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "t.db")
    seed(s, "p", {"x": (0.5, "0.001", "nano"), "y": (0.5, "0.001", "haiku")}, runs=20)
    # the weights changed: u0 (variant x so far) now gets y
    late = RunRecord(run_id="late", workflow="support", policy="p", variant="y",
                     status="succeeded", started_at=SINCE + 7200, ended_at=SINCE + 7201,
                     tags={"user": "u0"})  # fmt: skip
    s.write_batch([late], [], [])
    r = ab_report(s, "p", since=SINCE, until=UNTIL, n_boot=100)
    assert r.users_with_several_variants == 1


def test_runs_without_checks_judged_by_flags(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "t.db")
    seed(s, "p", {"x": (1.0, "0.001", "nano"), "y": (1.0, "0.001", "haiku")}, runs=4,
         checks=False)  # fmt: skip
    add_flag(s, FlagRecord("p-0", "answer", "needed_frontier", "ana", "wrong", SINCE + 9000))
    add_flag(s, FlagRecord("p-1", "answer", "needed_frontier", "ana", "meh", SINCE + 9000))
    add_flag(s, FlagRecord("p-1", "answer", "could_be_cheaper", "bo", "fine", SINCE + 9001))
    r = ab_report(s, "p", since=SINCE, until=UNTIL, n_boot=100)
    x, y = r.variants
    assert (x.stats.successes, x.stats.runs) == (1, 2)  # p-0 flagged needed_frontier
    assert (y.stats.successes, y.stats.runs) == (2, 2)  # p-1's latest flag is fine


JSON_KEYS = {"policy", "since", "until", "level", "baseline", "variants", "comparisons", "sticky"}
VARIANT_KEYS = {
    "variant", "runs", "successes", "success_rate", "success_ci", "calls", "error_calls",
    "error_rate", "latency_p50_s", "latency_p95_s", "cost_usd", "cost_per_run_usd",
    "cost_per_run_ci", "cost_per_success_usd", "cost_per_success_ci", "models",
}  # fmt: skip


def test_cli_json_keys_and_html(store: SQLiteStore, tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    html = tmp_path / "ab.html"
    res = CliRunner().invoke(cli, [
        "report", "ab", "model_ab", "--since", "2026-03-02", "--until", "2026-03-09",
        "--store", str(db), "--json", "--html", str(html),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == JSON_KEYS
    assert all(set(v) == VARIANT_KEYS for v in data["variants"])
    assert set(data["comparisons"][0]) == {
        "variant", "baseline", "cost_saving", "cost_saving_ci", "cost_significant",
        "success_diff", "success_diff_ci", "success_significant", "verdict",
    }  # fmt: skip
    assert data["sticky"] == {"key": "user", "users": 50, "users_with_several_variants": 0,
                              "runs_without_key": 0}  # fmt: skip
    page = html.read_text()
    assert "<svg" in page and "strong: 532% dearer" in page and "<script" not in page
    assert "0 of 50 users saw more than one variant: sticky" in page

    res = CliRunner().invoke(cli, [
        "report", "ab", "model_ab", "--since", "2026-03-02", "--until", "2026-03-09",
        "--store", str(db),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "A/B test model_ab" in res.output and "a significant difference at n=100" in res.output


def test_weekly_lists_the_ab_tests(store: SQLiteStore) -> None:
    tests = ab_tests(store, since=SINCE, until=UNTIL, n_boot=200)
    assert [(t.policy, t.runs, t.variants) for t in tests] == [
        ("model_ab", 200, 2), ("same_ab", 200, 2),
    ]  # fmt: skip
    assert "a significant difference" in tests[0].verdicts[0]
    assert "not a significant difference" in tests[1].verdicts[0]
    w = weekly_report(store, since=SINCE, until=UNTIL)
    assert [t["policy"] for t in w.as_json()["ab_tests"]] == ["model_ab", "same_ab"]
