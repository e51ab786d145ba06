"""Two chart kinds built on :mod:`turnout.reports.svg`.

- :func:`scatter_chart`: labelled points with error bars on both axes (a policy's
  success rate against its cost per successful run, each with its interval);
- :func:`hbar_chart`: horizontal bars, stacked (where a policy's money goes, step
  by step) or grouped (a step's pass rate under each policy), optionally with
  interval whiskers and a text label at the end of each bar.

Both return a standalone SVG document as a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from turnout.reports.svg import (
    FRAME,
    GRID,
    INK,
    MUTED,
    POLICY_COLORS,
    Axis,
    LegendItem,
    Scale,
    document,
    empty_message,
    esc,
    fit,
    footer,
    header,
    line,
    num,
    readable_on,
    rect,
    text,
    text_width,
)

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Point:
    """One labelled point; ``x_err`` / ``y_err`` are intervals ``(low, high)``."""

    label: str
    x: float
    y: float
    x_err: Span | None = None
    y_err: Span | None = None
    color: str | None = None
    tooltip: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    """One series of bars: a value per category (None: no bar), optional whiskers
    and a label per bar."""

    name: str
    values: Sequence[float | None]
    errors: Sequence[Span | None] = ()
    labels: Sequence[str] = ()
    color: str | None = None


def _color(given: str | None, i: int, palette: Sequence[str]) -> str:
    return given or palette[i % len(palette)]


def _boxes_overlap(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scatter_chart(
    points: Sequence[Point],
    *,
    title: str,
    x: Axis,
    y: Axis,
    subtitle: Sequence[str] = (),
    notes: Sequence[str] = (),
    hint: str | None = None,
    width: float = 1040,
    plot_height: float = 400,
) -> str:
    """Points with horizontal and vertical error bars, a legend and labels beside points."""
    colors = [_color(p.color, i, POLICY_COLORS) for i, p in enumerate(points)]
    legend = [LegendItem(p.label, c, "dot") for p, c in zip(points, colors, strict=True)]
    parts, top = header(width, title, subtitle, legend)
    xs = [v for p in points for v in (p.x, *(p.x_err or ()))]
    ys = [v for p in points for v in (p.y, *(p.y_err or ()))]
    xt, yt = x.ticks(xs), y.ticks(ys)
    y_labels = [y.label_of(t, yt) for t in yt]
    left = 20 + 22 + max(text_width(s) for s in y_labels) + 10
    x0, x1, y0, y1 = left, width - 28, top + 8, top + 8 + plot_height
    pad = 10.0
    sx = Scale(xt[0], xt[-1], x0 + pad, x1 - pad)
    sy = Scale(yt[0], yt[-1], y1 - pad, y0 + pad)
    for t, label in zip(yt, y_labels, strict=True):
        parts.append(line(x0, sy(t), x1, sy(t), GRID))
        parts.append(text(x0 - 8, sy(t) + 4, label, anchor="end", fill=MUTED))
    for t in xt:
        parts.append(line(sx(t), y0, sx(t), y1, GRID))
        parts.append(text(sx(t), y1 + 18, x.label_of(t, xt), anchor="middle", fill=MUTED))
    parts.append(rect(x0, y0, x1 - x0, y1 - y0, "none", extra=f' stroke="{FRAME}"'))
    parts.append(text((x0 + x1) / 2, y1 + 40, x.label, anchor="middle", weight="bold"))
    mid = (y0 + y1) / 2
    parts.append(text(20 + 12, mid, y.label, anchor="middle", weight="bold", rotate=-90))
    if hint:
        parts.append(text(x1 - 8, y1 - 8, hint, size=11, anchor="end", fill=MUTED))
    if not points:
        parts.append(empty_message(x0, x1, y0, y1, "nothing to plot"))
    for p, c in zip(points, colors, strict=True):
        parts.extend(_error_bars(p, c, sx, sy))
    placed: list[tuple[float, float, float, float]] = []
    for p, c in zip(points, colors, strict=True):
        cx, cy = sx(p.x), sy(p.y)
        parts.append(
            f'<circle cx="{num(cx)}" cy="{num(cy)}" r="6" fill="{c}" stroke="#ffffff" '
            f'stroke-width="1.5"><title>{esc(p.tooltip or p.label)}</title></circle>'
        )
        parts.append(_point_label(p.label, cx, cy, c, (x0, y0, x1, y1), placed))
    bottom, end = footer(width, y1 + 48, notes)
    parts.extend(bottom)
    return document(width, end + 14, title, parts)


def _error_bars(p: Point, color: str, sx: Scale, sy: Scale) -> list[str]:
    out: list[str] = []
    cx, cy = sx(p.x), sy(p.y)
    if p.x_err is not None:
        a, b = sx(p.x_err[0]), sx(p.x_err[1])
        out += [line(a, cy, b, cy, color, 2), line(a, cy - 5, a, cy + 5, color, 2),
                line(b, cy - 5, b, cy + 5, color, 2)]  # fmt: skip
    if p.y_err is not None:
        a, b = sy(p.y_err[0]), sy(p.y_err[1])
        out += [line(cx, a, cx, b, color, 2), line(cx - 5, a, cx + 5, a, color, 2),
                line(cx - 5, b, cx + 5, b, color, 2)]  # fmt: skip
    return [f'<g opacity="0.75">{"".join(out)}</g>'] if out else []


def _point_label(
    label: str,
    cx: float,
    cy: float,
    color: str,
    plot: tuple[float, float, float, float],
    placed: list[tuple[float, float, float, float]],
) -> str:
    """A label beside its point, moved round the point until it overlaps no other label."""
    shown = fit(label, 180)
    w, h = text_width(shown) + 2, 14.0
    spots = [(cx + 10, cy - 8, "start"), (cx + 10, cy + 18, "start"),
             (cx - 10, cy - 8, "end"), (cx - 10, cy + 18, "end")]  # fmt: skip
    chosen = spots[0]
    for sx_, sy_, anchor in spots:
        box = (
            sx_ - (w if anchor == "end" else 0),
            sy_ - h + 3,
            sx_ + (0 if anchor == "end" else w),
            sy_ + 3,
        )
        inside = (
            box[0] >= plot[0] + 2
            and box[2] <= plot[2] - 2
            and box[1] >= plot[1]
            and box[3] <= plot[3]
        )
        if inside and not any(_boxes_overlap(box, other) for other in placed):
            chosen = (sx_, sy_, anchor)
            placed.append(box)
            break
    else:
        sx_, sy_, anchor = chosen
        if cx + 10 + w > plot[2]:
            chosen = (cx - 10, sy_, "end")
    return text(chosen[0], chosen[1], shown, anchor=chosen[2], fill=color, weight="bold",
                tooltip=label if shown != label else None)  # fmt: skip


def hbar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    axis: Axis,
    stacked: bool = False,
    subtitle: Sequence[str] = (),
    notes: Sequence[str] = (),
    totals: Sequence[str] = (),
    palette: Sequence[str] = POLICY_COLORS,
    width: float = 1040,
) -> str:
    """Horizontal bars, one band per category: stacked segments or one bar per series."""
    colors = [_color(s.color, i, palette) for i, s in enumerate(series)]
    legend = [LegendItem(s.name, c) for s, c in zip(series, colors, strict=True)]
    parts, top = header(width, title, subtitle, legend)
    values = [_value(s, i) for s in series for i in range(len(categories))]
    if stacked:
        extent = [sum(_value(s, i) for s in series) for i in range(len(categories))]
    else:
        extent = values + [v for s in series for e in s.errors if e is not None for v in e]
    ticks = Axis(axis.label, axis.kind, True, axis.bounds, axis.max_ticks).ticks(extent)
    cat_w = min(240.0, max([text_width(c) for c in categories] + [40.0]))
    end_labels = (
        [*totals, *(lab for s in series for lab in s.labels)] if not stacked else list(totals)
    )
    right = max([text_width(t) for t in end_labels] + [20.0]) + 16
    x0, x1 = 20 + cat_w + 12, width - right
    bar = 22.0 if stacked else 15.0
    band = bar + 16 if stacked else max(1, len(series)) * (bar + 3) + 14
    y0 = top + 6
    y1 = y0 + max(1, len(categories)) * band
    sx = Scale(ticks[0], ticks[-1], x0, x1)
    for t in ticks:
        parts.append(line(sx(t), y0, sx(t), y1, GRID))
        parts.append(text(sx(t), y1 + 18, axis.label_of(t, ticks), anchor="middle", fill=MUTED))
    parts.append(line(sx(0), y0, sx(0), y1, FRAME))
    parts.append(text((x0 + x1) / 2, y1 + 40, axis.label, anchor="middle", weight="bold"))
    if not categories or not series:
        parts.append(empty_message(x0, x1, y0, y1, "nothing to plot"))
    for i, cat in enumerate(categories):
        by = y0 + i * band + 7
        shown = fit(cat, cat_w)
        parts.append(text(20 + cat_w, by + (band - 14) / 2 + 4, shown, anchor="end", weight="bold",
                          tooltip=cat if shown != cat else None))  # fmt: skip
        if stacked:
            parts.extend(_stack(series, colors, i, by, bar, sx))
            if i < len(totals):
                end = sx(sum(_value(s, i) for s in series))
                parts.append(text(end + 6, by + bar / 2 + 4, totals[i], weight="bold"))
        else:
            for j, (s, c) in enumerate(zip(series, colors, strict=True)):
                parts.extend(_bar(s, c, i, by + j * (bar + 3), bar, sx))
    bottom, end = footer(width, y1 + 48, notes)
    parts.extend(bottom)
    return document(width, end + 14, title, parts)


def _value(s: Series, i: int) -> float:
    v = s.values[i] if i < len(s.values) else None
    return 0.0 if v is None else float(v)


def _stack(series: Sequence[Series], colors: Sequence[str], i: int, y: float, h: float,
           sx: Scale) -> list[str]:  # fmt: skip
    out: list[str] = []
    acc = 0.0
    for s, c in zip(series, colors, strict=True):
        v = _value(s, i)
        if v <= 0:
            continue
        a, b = sx(acc), sx(acc + v)
        label = s.labels[i] if i < len(s.labels) else ""
        out.append(rect(a, y, b - a, h, c, extra=' stroke="#ffffff" stroke-width="1"',
                        tooltip=f"{s.name}: {label}" if label else s.name))  # fmt: skip
        if label and text_width(label, 11) + 8 < b - a:
            out.append(text((a + b) / 2, y + h / 2 + 4, label, size=11, anchor="middle",
                            fill=readable_on(c)))  # fmt: skip
        acc += v
    return out


def _bar(s: Series, color: str, i: int, y: float, h: float, sx: Scale) -> list[str]:
    v = s.values[i] if i < len(s.values) else None
    label = s.labels[i] if i < len(s.labels) else ""
    if v is None:
        return [text(sx(0) + 6, y + h / 2 + 4, label or "n/a", size=11, fill=MUTED)]
    out = [rect(sx(0), y, sx(v) - sx(0), h, color, extra=' rx="2"')]
    end = sx(v)
    err = s.errors[i] if i < len(s.errors) else None
    if err is not None:
        a, b = sx(err[0]), sx(err[1])
        mid = y + h / 2
        out += [line(a, mid, b, mid, INK, 1.25), line(a, mid - 4, a, mid + 4, INK, 1.25),
                line(b, mid - 4, b, mid + 4, INK, 1.25)]  # fmt: skip
        end = max(end, b)
    if label:
        out.append(text(end + 6, y + h / 2 + 4, label, size=11, fill=INK))
    return out
