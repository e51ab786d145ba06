"""The bench page and its charts over hand-built bench data (no browser: see
tests/integration/test_report_html.py for the page in headless Chromium)."""

from __future__ import annotations

import re
import sys
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from turnout.bench.analysis import BenchAnalysis, analyze
from turnout.bench.data import BenchData, RunSample, StepSample
from turnout.config import Settings
from turnout.reports import Pricing, load_pricing, pricing_of, render_bench_html
from turnout.reports import png as png_module
from turnout.reports.bench_charts import CHARTS, bench_charts
from turnout.reports.bench_html import write_bench_report
from turnout.reports.prices import PricedModel, per_m
from turnout.tracing.meta import BenchRecord

STAND_IN = "local stand-in priced at claude-haiku-4-5 rates"
PRICING = Pricing(
    (
        PricedModel("opus", "frontier", Decimal(5), Decimal(25)),
        PricedModel("smol", "efficient", Decimal(1), Decimal(5), STAND_IN),
    ),
    source="turnout.yaml",
)
ODD = 'cheap <&> "q"'


def sample(step_id: str, model: str | None, ok: bool, cost: str) -> StepSample:
    return StepSample(
        step_id=step_id, kind="llm" if model else "code", model=model, tier=None,
        status="succeeded" if ok else "failed", cost=Decimal(cost), latency_s=0.5,
        input_tokens=100 if model else 0, output_tokens=20 if model else 0,
        calls=1 if model else 0, checks_passed=int(ok), checks_total=1,
    )  # fmt: skip


def runs(policy: str, model: str, oks: list[bool], cost: str) -> list[RunSample]:
    out = []
    for i, ok in enumerate(oks):
        steps = (sample("parse", None, True, "0"), sample("planner", "opus", True, cost),
                 sample("implementer", model, ok, cost))  # fmt: skip
        out.append(RunSample(
            run_id=f"{policy}-{i}", policy=policy, case="c", repeat=i + 1,
            status="succeeded" if ok else "failed", cost=Decimal(cost) * 2, latency_s=1.0,
            wall_s=1.0, calls=2, input_tokens=200, output_tokens=40, started_at=float(i),
            steps=steps,
        ))  # fmt: skip
    return out


def bench(by_policy: dict[str, list[RunSample]], status: str = "finished") -> BenchData:
    spec: dict[str, Any] = {"policies": list(by_policy), "runs": 10,
                            "cases": [{"id": "c", "inputs": {}}]}  # fmt: skip
    record = BenchRecord("b-test-1", "csv-export", time.time(), status, spec)  # type: ignore[arg-type]
    return BenchData(record, tuple(r for rs in by_policy.values() for r in rs))


@pytest.fixture
def analysis() -> BenchAnalysis:
    return analyze(
        bench({
            "all_frontier": runs("all_frontier", "opus", [True] * 9 + [False], "0.4"),
            ODD: runs(ODD, "smol", [True] * 6 + [False] * 4, "0.01"),
            "broken": runs("broken", "smol", [False] * 10, "0.001"),
        }),
        n_boot=200,
    )  # fmt: skip


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


def test_page_is_self_contained(analysis: BenchAnalysis) -> None:
    page = render_bench_html(analysis, PRICING)
    assert page.startswith("<!DOCTYPE html>")
    for banned in ("<script", "<link", "<img", "<iframe", "@import", "url(", " src=", "href="):
        assert banned not in page.lower()
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert len(svgs(page)) == len(CHARTS) == 3


def test_page_shows_table_verdicts_and_charts(analysis: BenchAnalysis) -> None:
    page = render_bench_html(analysis, PRICING)
    for section in ('id="verdicts"', 'id="comparison"', 'id="charts"', 'id="steps"', 'id="prices"'):
        assert section in page
    for c in analysis.comparisons:
        assert c.verdict.split(":")[1].strip().split(" ")[0] in page
    assert "cheaper per successful run than all_frontier" in page
    assert "90% (9/10)" in page and "Cost per successful run" in page
    assert "Run latency: p50 / p95" in page
    assert "baseline" in page


def test_policy_names_are_escaped_in_page_and_charts(analysis: BenchAnalysis) -> None:
    page = render_bench_html(analysis, PRICING)
    assert ODD not in page
    assert "cheap &lt;&amp;&gt; &quot;q&quot;" in page
    for root in svgs(page):
        shown = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert any(ODD in t for t in shown)


def test_stand_ins_are_labelled_wherever_cost_is_shown(analysis: BenchAnalysis) -> None:
    charts = bench_charts(analysis, PRICING)
    assert STAND_IN in charts["cost-vs-success"] and STAND_IN in charts["step-spend"]
    page = render_bench_html(analysis, PRICING, charts=charts)
    assert "Costs are not real spend" in page
    # banner, comparison note, per-step note, price table, and the two cost charts
    assert page.count(STAND_IN) >= 6


def test_zero_successes_are_reported_not_plotted(analysis: BenchAnalysis) -> None:
    charts = bench_charts(analysis, PRICING)
    assert "Not plotted: broken, 0/10 successful runs" in charts["cost-vs-success"]
    scatter = ET.fromstring(charts["cost-vs-success"])
    markers = [c for c in scatter.iter("{http://www.w3.org/2000/svg}circle")
               if c.attrib.get("r") == "6"]  # fmt: skip
    assert len(markers) == 2
    page = render_bench_html(analysis, PRICING, charts=charts)
    assert "cost: not comparable" in page


def test_code_step_that_always_passes_is_a_note_in_the_pass_chart(
    analysis: BenchAnalysis,
) -> None:
    chart = bench_charts(analysis, PRICING)["step-pass"]
    assert "parse (a code step) passed every time under every policy." in chart
    assert ">planner<" in chart and ">implementer<" in chart


def test_one_policy_and_no_comparison() -> None:
    only = analyze(bench({"solo": runs("solo", "opus", [True, False], "0.2")}), n_boot=50)
    page = render_bench_html(only, Pricing())
    assert "Nothing to compare: a single policy" in page
    assert len(svgs(page)) == 3


def test_no_runs_at_all() -> None:
    empty = analyze(bench({"a": [], "b": []}), n_boot=50)
    page = render_bench_html(
        empty, Pricing(problem="the bench does not say which config priced it")
    )
    assert len(svgs(page)) == 3
    assert "nothing to plot" in page
    assert "Costs as recorded when the bench ran; the bench does not say" in page


def test_unfinished_bench_says_so() -> None:
    data = bench({"a": runs("a", "opus", [True], "0.1")}, status="interrupted")
    page = render_bench_html(analyze(data, n_boot=50), PRICING, bench=data.bench)
    assert "This bench is <b>interrupted</b>" in page
    assert "turnout bench --resume b-test-1" in page


def test_pricing_from_settings_and_missing_config(settings: Settings, tmp_path: Path) -> None:
    p = pricing_of(settings, ["haiku", "opus", "gone"], source="turnout.yaml")
    assert [m.name for m in p.models] == ["haiku", "opus", "gone"]
    assert p.models[1].input_per_m == Decimal(5) and p.models[1].tier == "frontier"
    assert "gone (price unknown)" not in p.note() and "not in the current config" in p.note()
    missing = load_pricing(tmp_path / "nope.yaml", ["opus"])
    assert missing.problem is not None and "nope.yaml" in missing.note()
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [\n")
    assert "could not be read" in load_pricing(bad, ["opus"]).note()
    assert "does not say" in load_pricing(None, []).note()


def test_write_report_with_pngs_next_to_the_html(analysis: BenchAnalysis, tmp_path: Path) -> None:
    if png_module.unavailable() is not None:
        pytest.skip(f"PNG renderer not installed: {png_module.unavailable()}")
    files = write_bench_report(analysis, PRICING, tmp_path / "out" / "r.html")
    assert files.html.read_text("utf-8").startswith("<!DOCTYPE html>")
    names = sorted(p.name for p in files.pngs)
    assert names == ["r-cost-vs-success.png", "r-step-pass.png", "r-step-spend.png"]
    for p in files.pngs:
        head = p.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width = int.from_bytes(head[16:20], "big")
        assert width == 2 * 1040  # rendered at twice the SVG's size
    other = write_bench_report(analysis, PRICING, tmp_path / "r2.html", png_dir=tmp_path / "png")
    assert all(p.parent == tmp_path / "png" for p in other.pngs)


def test_without_the_png_renderer_the_html_is_still_written(
    analysis: BenchAnalysis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # importing it now raises ImportError
    files = write_bench_report(analysis, PRICING, tmp_path / "r.html")
    assert files.html.exists() and files.pngs == ()
    assert files.png_skipped is not None and "pip install 'turnout[report]'" in files.png_skipped
    assert not list(tmp_path.glob("*.png"))
    none = write_bench_report(analysis, PRICING, tmp_path / "q.html", pngs=False)
    assert none.png_skipped is None and none.pngs == ()


def test_prices_per_million_tokens_read_like_a_price_sheet() -> None:
    assert [per_m(Decimal(v)) for v in ("5.00", "25", "0.15", "0.5", "0", "0.075")] == [
        "$5", "$25", "$0.15", "$0.50", "$0", "$0.075",
    ]  # fmt: skip
    assert per_m(None) == "—"


def test_page_tags_are_balanced(analysis: BenchAnalysis) -> None:
    void = {"meta", "br", "hr", "img", "input", "link"}

    class Balance(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag not in void:
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
            self.stack.pop()

    parser = Balance()
    parser.feed(render_bench_html(analysis, PRICING))
    parser.close()
    assert parser.stack == []
