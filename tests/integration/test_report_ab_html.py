"""The A/B report page, opened in real headless Chromium: the console stays empty, the
page is not blank, and the cost-vs-success chart is drawn with each variant's colour
and its error bars (75% opacity, a blend that appears nowhere else)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from tests.integration.test_report_html import (
    colours,
    count_near,
    needs_chromium,
    over_white,
    render,
)
from tests.unit.reports.test_ab import seed

from turnout.cli.main import cli
from turnout.reports.svg import POLICY_COLORS
from turnout.tracing.sqlite import SQLiteStore


@needs_chromium
def test_ab_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    store = SQLiteStore(db)
    seed(store, "model_ab", {"cheap": (0.6, "0.001", "nano"), "strong": (0.95, "0.01", "opus")})
    store.close()
    page = tmp_path / "ab.html"
    res = CliRunner().invoke(cli, [
        "report", "ab", "model_ab", "--since", "2026-03-02", "--until", "2026-03-09",
        "--store", str(db), "--html", str(page),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    shot = render(page, tmp_path)
    assert shot.console == [], shot.console
    png = shot.png
    counts = colours(png)
    total = png.width * png.height
    assert total - counts[(255, 255, 255)] > total * 0.01, "the page is nearly blank"
    for colour in POLICY_COLORS[:2]:
        assert count_near(counts, colour) > 200, f"{colour}: the variant is not drawn"
        assert count_near(counts, over_white(colour, 0.75), tol=4) > 50, f"{colour}: no error bars"
