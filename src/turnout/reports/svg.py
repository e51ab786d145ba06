"""A tiny SVG chart kit: scatter plots with error bars and horizontal bar charts.

Charts are standalone SVG documents (an ``xmlns``, a white background, fonts
the system has), so the same string is inlined in the HTML report and rendered
to PNG by :mod:`turnout.reports.png`. Nothing here runs JavaScript or fetches
anything. Every piece of text that came from data goes through :func:`esc`.

Layout is computed from estimated text widths (:func:`text_width`); it is
generous rather than tight, so labels stay readable in any sans-serif font.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

FONT = "'DejaVu Sans', 'Liberation Sans', 'Helvetica Neue', Arial, sans-serif"
INK = "#1f2328"
MUTED = "#59636e"
GRID = "#e4e7eb"
FRAME = "#9aa1a9"

POLICY_COLORS = (
    "#2f6db5", "#e0701a", "#23935a", "#c8364a", "#7d55b5",
    "#8c5a45", "#cc4f9e", "#5f6b77", "#a99316", "#1a9eb0",
)  # fmt: skip
"""Strong colours for policies (one per policy, the same in every chart)."""
STEP_COLORS = (
    "#7fb8da", "#f2a65a", "#8cc97a", "#e68f96", "#b39ddb",
    "#e3c65b", "#7fcdc1", "#c9a98c", "#d6a2d0", "#b4bac0",
)  # fmt: skip
"""Lighter colours for steps, so a step is never mistaken for a policy."""

AxisKind = Literal["number", "percent", "usd", "seconds"]
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def esc(value: object) -> str:
    """Text safe inside an XML/HTML element or a double-quoted attribute."""
    return html.escape(_CONTROL.sub("", str(value)), quote=True)


def text_width(text: str, size: float = 12) -> float:
    """Estimated width in px of ``text`` in a sans-serif font (a little generous)."""
    narrow = sum(1 for c in text if c in "il.,:;|!'()[] ")
    wide = sum(1 for c in text if c.isupper() or c in "mwMW%@")
    return size * (0.6 * (len(text) - narrow - wide) + 0.32 * narrow + 0.8 * wide)


def fit(text: str, width: float, size: float = 12) -> str:
    """``text`` cut with an ellipsis so it fits ``width`` px."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


# -- ticks and scales ------------------------------------------------------------------


def nice_step(raw: float) -> float:
    """The 1, 2, 2.5 or 5 × 10^k at or above ``raw`` (> 0)."""
    exp = math.floor(math.log10(raw))
    base = 10.0**exp
    for m in (1.0, 2.0, 2.5, 5.0):
        if raw <= m * base * (1 + 1e-9):
            return m * base
    return 10.0 * base


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> tuple[float, ...]:
    """Evenly spaced round ticks from at or below ``lo`` to at or above ``hi``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need finite bounds, not {lo!r}..{hi!r}")
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        if lo == 0:
            hi = 1.0
        else:
            pad = abs(lo) * 0.1
            lo, hi = (max(0.0, lo - pad) if lo > 0 else lo - pad), hi + pad
    step = nice_step((hi - lo) / max(1, max_ticks - 1))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    digits = max(0, 3 - math.floor(math.log10(step)))
    count = round((last - first) / step)
    return tuple(round(first + i * step, digits) + 0.0 for i in range(count + 1))


def tick_label(value: float, step: float, kind: AxisKind = "number") -> str:
    """A tick's label with as many decimals as the step needs."""
    if kind == "percent":
        value, step = value * 100, step * 100
    if value == 0 and kind in ("usd", "percent"):
        return "$0" if kind == "usd" else "0%"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step > 0 and round(step / 10.0 ** math.floor(math.log10(step)), 6) == 2.5:
        decimals += 1
    if kind in ("usd", "seconds") and 0 < step < 1:
        decimals = max(decimals, 2 if kind == "usd" else 1)
    text = f"{value:,.{decimals}f}"
    if text.startswith("-") and float(text.replace(",", "")) == 0:
        text = text[1:]
    return {
        "percent": f"{text}%",
        "usd": f"${text}" if not text.startswith("-") else f"-${text[1:]}",
        "seconds": f"{text} s",
    }.get(kind, text)


@dataclass(frozen=True, slots=True)
class Axis:
    """How one axis is labelled and bounded. ``bounds`` limit the ticks (0..1 for a rate)."""

    label: str
    kind: AxisKind = "number"
    include_zero: bool = False
    bounds: tuple[float, float] | None = None
    max_ticks: int = 6

    def ticks(self, values: Iterable[float]) -> tuple[float, ...]:
        vals = [v for v in values if math.isfinite(v)]
        if self.include_zero:
            vals.append(0.0)
        if self.bounds is not None:
            b0, b1 = self.bounds
            vals = [min(max(v, b0), b1) for v in vals] or [b0, b1]
        if not vals:
            vals = [0.0, 1.0]
        ticks = nice_ticks(min(vals), max(vals), self.max_ticks)
        if self.bounds is not None:
            inside = tuple(
                t for t in ticks if self.bounds[0] - 1e-12 <= t <= self.bounds[1] + 1e-12
            )
            ticks = inside if len(inside) >= 2 else self.bounds
        return ticks

    def label_of(self, value: float, ticks: Sequence[float]) -> str:
        step = (ticks[-1] - ticks[0]) / max(1, len(ticks) - 1)
        return tick_label(value, step, self.kind)


@dataclass(frozen=True, slots=True)
class Scale:
    """A linear map from the domain ``[d0, d1]`` to the pixel range ``[r0, r1]``."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return (self.r0 + self.r1) / 2
        return self.r0 + (value - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)


# -- drawing primitives ----------------------------------------------------------------


def num(v: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def text(
    x: float,
    y: float,
    content: str,
    *,
    size: float = 12,
    anchor: str = "start",
    fill: str = INK,
    weight: str | None = None,
    rotate: float | None = None,
    tooltip: str | None = None,
) -> str:
    attrs = f'x="{num(x)}" y="{num(y)}" font-size="{num(size)}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    if rotate is not None:
        attrs += f' transform="rotate({num(rotate)} {num(x)} {num(y)})"'
    inner = esc(content) + (f"<title>{esc(tooltip)}</title>" if tooltip else "")
    return f"<text {attrs}>{inner}</text>"


def line(x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1) -> str:
    return (
        f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
        f'stroke="{stroke}" stroke-width="{num(width)}"/>'
    )


def rect(
    x: float, y: float, w: float, h: float, fill: str, *, extra: str = "", tooltip: str = ""
) -> str:
    attrs = (
        f'x="{num(x)}" y="{num(y)}" width="{num(max(0.0, w))}" '
        f'height="{num(max(0.0, h))}" fill="{fill}"{extra}'
    )
    return f"<rect {attrs}><title>{esc(tooltip)}</title></rect>" if tooltip else f"<rect {attrs}/>"


def document(width: float, height: float, title: str, body: Sequence[str]) -> str:
    """A standalone SVG document with a white background."""
    w, h = num(width), num(math.ceil(height))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{esc(title)}" '
        f'font-family="{FONT}" font-size="12">'
        f"<title>{esc(title)}</title>"
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>' + "".join(body) + "</svg>"
    )


def readable_on(fill: str) -> str:
    """Black or white text, whichever reads better on ``fill`` (#rrggbb)."""
    r, g, b = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return INK if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


def wrapped(lines: Sequence[str], width: float, size: float) -> list[str]:
    chars = max(20, int(width / (size * 0.6)))
    out: list[str] = []
    for item in lines:
        out.extend(textwrap.wrap(item, chars) or [""])
    return out


@dataclass(frozen=True, slots=True)
class LegendItem:
    label: str
    color: str
    shape: Literal["dot", "square"] = "square"


def header(
    width: float,
    title: str,
    subtitle: Sequence[str],
    legend: Sequence[LegendItem],
    margin: float = 20,
) -> tuple[list[str], float]:
    """Title, subtitle lines and a wrapping legend; returns the parts and the y below them."""
    parts = [text(margin, 28, title, size=16, weight="bold")]
    y = 28.0
    for sub in wrapped(subtitle, width - 2 * margin, 12):
        y += 18
        parts.append(text(margin, y, sub, fill=MUTED))
    x, y = margin, y + 26
    for item in legend:
        label = fit(item.label, 220)
        w = 18 + text_width(label) + 18
        if x > margin and x + w > width - margin:
            x, y = margin, y + 20
        if item.shape == "dot":
            parts.append(f'<circle cx="{num(x + 6)}" cy="{num(y - 4)}" r="5" fill="{item.color}"/>')
        else:
            parts.append(rect(x, y - 10, 12, 12, item.color, extra=' rx="2"'))
        parts.append(text(x + 18, y, label, tooltip=item.label if label != item.label else None))
        x += w
    return parts, y + (14 if legend else -6)


def footer(
    width: float, y: float, notes: Sequence[str], margin: float = 20
) -> tuple[list[str], float]:
    """Notes under a chart (price labels, what was left out); returns parts and the end y."""
    parts: list[str] = []
    for note in wrapped(notes, width - 2 * margin, 11):
        y += 16
        parts.append(text(margin, y, note, size=11, fill=MUTED))
    return parts, y


def empty_message(x0: float, x1: float, y0: float, y1: float, message: str) -> str:
    return text((x0 + x1) / 2, (y0 + y1) / 2, message, size=13, anchor="middle", fill=MUTED)
