"""Scatter and bar charts: valid XML, escaped labels, intervals drawn, degenerate data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from turnout.reports.charts import Point, Series, hbar_chart, scatter_chart
from turnout.reports.svg import STEP_COLORS, Axis

NS = "{http://www.w3.org/2000/svg}"
RATE = Axis("Success rate", kind="percent", bounds=(0.0, 1.0))
COST = Axis("Cost per successful run (USD)", kind="usd", include_zero=True)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{NS}svg"
    assert float(root.attrib["width"]) > 0 and float(root.attrib["height"]) > 0
    return root


def texts(root: ET.Element) -> list[str]:
    """What each text element shows (its tooltip, a child <title>, left out)."""
    return [t.text or "" for t in root.iter(f"{NS}text")]


def lines(root: ET.Element, color: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}line") if e.attrib.get("stroke") == color]


def test_scatter_draws_points_both_error_bars_and_a_legend() -> None:
    points = [
        Point("all_frontier", 0.93, 0.84, (0.78, 0.98), (0.80, 0.90), color="#111111"),
        Point("rules", 0.90, 0.30, (0.74, 0.97), (0.25, 0.36), color="#222222"),
    ]
    root = parse(scatter_chart(points, title="Cost vs success", x=RATE, y=COST,
                               notes=["Prices: smol — local stand-in"]))  # fmt: skip
    assert len(list(root.iter(f"{NS}circle"))) == 2 + 2  # markers + legend dots
    # one horizontal and one vertical bar per point, each with two caps
    assert len(lines(root, "#111111")) == 6 and len(lines(root, "#222222")) == 6
    shown = texts(root)
    assert "Cost vs success" in shown
    assert shown.count("rules") == 2  # legend and point label
    assert "Prices: smol — local stand-in" in shown
    assert any(t.endswith("%") for t in shown) and any(t.startswith("$") for t in shown)


def test_scatter_error_bars_span_their_intervals() -> None:
    svg = scatter_chart([Point("p", 0.5, 1.0, (0.25, 0.75), None, color="#123456")],
                        title="t", x=Axis("x", bounds=(0, 1)), y=COST)  # fmt: skip
    root = parse(svg)
    horizontal = [e for e in lines(root, "#123456") if e.attrib["y1"] == e.attrib["y2"]]
    bar = max(horizontal, key=lambda e: abs(float(e.attrib["x2"]) - float(e.attrib["x1"])))
    marker = next(c for c in root.iter(f"{NS}circle") if c.attrib.get("r") == "6")
    cx = float(marker.attrib["cx"])
    left, right = sorted((float(bar.attrib["x1"]), float(bar.attrib["x2"])))
    assert abs((cx - left) - (right - cx)) < 0.02  # symmetric interval around the point
    assert right - left > 100


def test_names_with_markup_are_escaped_everywhere() -> None:
    name = 'cheap <&> "quoted"'
    svg = scatter_chart([Point(name, 0.5, 0.1, (0.4, 0.6), (0.05, 0.2))], title=f"t {name}",
                        x=RATE, y=COST, subtitle=[name], notes=[name])  # fmt: skip
    root = parse(svg)
    assert "<&>" not in svg
    assert sum(name in t for t in texts(root)) >= 4  # title, subtitle, legend, label, note
    bars = hbar_chart([name], [Series(name, [1.0], labels=[name])], title=name,
                      axis=COST, stacked=True, totals=[name])  # fmt: skip
    assert name in texts(parse(bars))


def test_scatter_without_points_or_intervals() -> None:
    empty = parse(scatter_chart([], title="nothing", x=RATE, y=COST, notes=["Not plotted: x"]))
    assert "nothing to plot" in texts(empty)
    bare = parse(scatter_chart([Point("only", 0.0, 0.0)], title="one", x=RATE, y=COST))
    assert not [e for e in bare.iter(f"{NS}line") if e.attrib.get("stroke-width") == "2"]
    assert "only" in texts(bare)


def test_scatter_with_every_value_equal() -> None:
    pts = [Point(f"p{i}", 1.0, 0.25, (1.0, 1.0), (0.25, 0.25)) for i in range(3)]
    root = parse(scatter_chart(pts, title="same", x=RATE, y=COST))
    labels = [t for t in texts(root) if t.startswith("p")]
    assert sorted(labels) == ["p0", "p0", "p1", "p1", "p2", "p2"]  # legend and beside the point


def test_long_label_is_cut_but_kept_whole_in_a_tooltip() -> None:
    long = "a_policy_with_a_name_far_too_long_to_print_beside_its_point_in_full"
    root = parse(scatter_chart([Point(long, 0.5, 0.5)], title="t", x=RATE, y=COST))
    titles = ["".join(t.itertext()) for t in root.iter(f"{NS}title")]
    assert long in titles
    assert any(t.endswith("…") for t in texts(root))


def test_stacked_bars_add_up_and_label_segments() -> None:
    series = [Series("planner", [0.5, 0.02], labels=["60%", "40%"]),
              Series("implementer", [0.3, 0.03], labels=["36%", "60%"])]  # fmt: skip
    root = parse(hbar_chart(["all_frontier", "cheap"], series, title="spend", axis=COST,
                            stacked=True, totals=["$0.80", "$0.05"], palette=STEP_COLORS))  # fmt: skip
    rects = [r for r in root.iter(f"{NS}rect") if r.attrib["fill"] in STEP_COLORS[:2]]
    segments = [r for r in rects if float(r.attrib["height"]) > 12]
    assert len(segments) == 4
    first = sorted((r for r in segments if r.attrib["y"] == segments[0].attrib["y"]),
                   key=lambda r: float(r.attrib["x"]))  # fmt: skip
    # the second segment starts where the first ends
    assert abs(float(first[0].attrib["x"]) + float(first[0].attrib["width"])
               - float(first[1].attrib["x"])) < 0.02  # fmt: skip
    shown = texts(root)
    assert {"$0.80", "$0.05", "60%", "36%"} <= set(shown)
    assert "planner" in shown and "implementer" in shown


def test_grouped_bars_with_whiskers_and_missing_values() -> None:
    series = [
        Series("a", [0.9, None], [(0.8, 0.96), None], ["90% (27/30)", "did not run"], "#aa0000"),
        Series("b", [0.0, 1.0], [(0.0, 0.1), (0.9, 1.0)], ["0% (0/30)", "100% (30/30)"], "#00aa00"),
    ]
    root = parse(hbar_chart(["planner", "review"], series, title="pass", axis=RATE))
    bars = [r for r in root.iter(f"{NS}rect") if r.attrib["fill"] in ("#aa0000", "#00aa00")]
    assert len(bars) == 3 + 2  # three values (one is None) and two legend swatches
    whiskers = [e for e in root.iter(f"{NS}line") if e.attrib.get("stroke-width") == "1.25"]
    assert len(whiskers) == 3 * 3
    assert "did not run" in texts(root) and "100% (30/30)" in texts(root)


def test_bars_with_nothing_or_only_zeros() -> None:
    assert "nothing to plot" in texts(parse(hbar_chart([], [], title="t", axis=COST)))
    zeros = parse(hbar_chart(["a", "b"], [Series("s", [0.0, 0.0])], title="t", axis=COST,
                             stacked=True, totals=["$0 / run", "$0 / run"]))  # fmt: skip
    assert texts(zeros).count("$0 / run") == 2
    one = parse(hbar_chart(["only"], [Series("s", [None])], title="t", axis=RATE))
    assert "n/a" in texts(one)
