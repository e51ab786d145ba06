"""The chart kit's primitives: escaping, nice ticks, tick labels, text fitting."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from turnout.reports.svg import (
    Axis,
    Scale,
    document,
    esc,
    fit,
    nice_step,
    nice_ticks,
    readable_on,
    text,
    text_width,
    tick_label,
)


def test_esc_makes_markup_inert() -> None:
    assert esc("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#x27;"
    assert esc("bell\x07 and nul\x00 gone, tab\tkept") == "bell and nul gone, tab\tkept"
    assert esc(3.5) == "3.5"


def test_text_with_hostile_content_is_valid_xml() -> None:
    svg = document(100, 50, "t <&>", [text(1, 2, "</text><script>x()</script>", tooltip="a&b")])
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["</text><script>x()</script>"]
    assert not list(root.iter("{http://www.w3.org/2000/svg}script"))
    assert root.attrib["aria-label"] == "t <&>"


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0.17, 0.2), (1.0, 1.0), (2.2, 2.5), (3, 5), (7, 10), (0.00042, 0.0005), (1234, 2000)],
)
def test_nice_step(raw: float, step: float) -> None:
    assert nice_step(raw) == pytest.approx(step)


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0, 0.84, (0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        (0, 1, (0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        (0.3, 0.97, (0.2, 0.4, 0.6, 0.8, 1.0)),
        (0, 0.0293, (0, 0.01, 0.02, 0.03)),
        (0, 0.024, (0, 0.005, 0.01, 0.015, 0.02, 0.025)),
        (-3, 7, (-4, -2, 0, 2, 4, 6, 8)),
        (0, 10, (0, 2, 4, 6, 8, 10)),
        (0, 12, (0, 2.5, 5, 7.5, 10, 12.5)),
    ],
)
def test_nice_ticks_cover_the_range_with_round_steps(
    lo: float, hi: float, ticks: tuple[float, ...]
) -> None:
    got = nice_ticks(lo, hi)
    assert got == pytest.approx(ticks)
    assert got[0] <= lo and got[-1] >= hi
    assert len(got) <= 8


def test_nice_ticks_degenerate_ranges() -> None:
    assert nice_ticks(0, 0) == pytest.approx((0, 0.2, 0.4, 0.6, 0.8, 1.0))
    one = nice_ticks(5, 5)
    assert one[0] <= 5 <= one[-1] and one[0] >= 0 and len(one) >= 2
    neg = nice_ticks(-2, -2)
    assert neg[0] <= -2 <= neg[-1]
    assert nice_ticks(1, 0) == nice_ticks(0, 1)
    tiny = nice_ticks(1e-7, 3e-7)
    assert tiny[0] <= 1e-7 and tiny[-1] >= 3e-7 and len(set(tiny)) == len(tiny)
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0, math.inf)


def test_ticks_have_no_float_noise_or_negative_zero() -> None:
    for t in nice_ticks(0.1, 0.7):
        assert repr(t) == repr(round(t, 6))
    assert all(math.copysign(1, t) == 1 for t in nice_ticks(0, 1) if t == 0)


@pytest.mark.parametrize(
    ("value", "step", "kind", "label"),
    [
        (0.4, 0.2, "percent", "40%"),
        (0.025, 0.025, "percent", "2.5%"),
        (0.5, 0.25, "usd", "$0.50"),
        (0.005, 0.005, "usd", "$0.005"),
        (0.00025, 0.00025, "usd", "$0.00025"),
        (1500, 500, "number", "1,500"),
        (7.5, 2.5, "number", "7.5"),
        (0.0, 0.5, "seconds", "0.0 s"),
        (-0.0, 0.2, "usd", "$0"),
        (0.0, 0.0002, "usd", "$0"),
        (-1, 1, "usd", "-$1"),
    ],
)
def test_tick_labels(value: float, step: float, kind: str, label: str) -> None:
    assert tick_label(value, step, kind) == label  # type: ignore[arg-type]


def test_axis_ticks_respect_bounds_zero_and_empty_data() -> None:
    rate = Axis("rate", kind="percent", bounds=(0.0, 1.0))
    ticks = rate.ticks([0.93, 0.99, 1.0])
    assert ticks[0] <= 0.93 and ticks[-1] == 1.0
    assert all(0 <= t <= 1 for t in rate.ticks([-0.5, 1.7]))
    assert Axis("cost", include_zero=True).ticks([0.4, 0.8])[0] == 0
    assert Axis("x").ticks([]) == pytest.approx((0, 0.2, 0.4, 0.6, 0.8, 1.0))
    assert Axis("x").ticks([math.nan, 2.0])[0] <= 2.0
    assert rate.label_of(0.5, ticks).endswith("%")


def test_scale_maps_linearly_and_survives_a_point_domain() -> None:
    s = Scale(0, 10, 100, 200)
    assert (s(0), s(5), s(10)) == (100, 150, 200)
    flipped = Scale(0, 1, 300, 100)
    assert flipped(1) == 100
    assert Scale(3, 3, 0, 10)(3) == 5


def test_fit_shortens_with_an_ellipsis() -> None:
    assert fit("short", 200) == "short"
    long = "a_really_long_policy_name_that_goes_on"
    cut = fit(long, 80)
    assert cut.endswith("…") and text_width(cut) <= 80 and long.startswith(cut[:-1])


def test_readable_text_colour_on_fills() -> None:
    assert readable_on("#ffffff") != "#ffffff"
    assert readable_on("#1f2328") == "#ffffff"
