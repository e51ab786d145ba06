"""Number formatting shared by the report's tables and charts."""

from __future__ import annotations

from decimal import Decimal

from turnout.bench.stats import Interval

DASH = "—"


def usd(value: Decimal | float | None) -> str:
    """Dollars with three significant digits for small amounts: $0.84, $0.0315, $0.000123."""
    if value is None:
        return DASH
    v = float(value)
    if v == 0:
        return "$0"
    sign, v = ("-" if v < 0 else ""), abs(v)
    if v >= 100:
        return f"{sign}${v:,.0f}"
    if v >= 1:
        return f"{sign}${v:,.2f}"
    text = f"{v:.3g}"
    if "e" in text:  # below 0.0001
        text = f"{v:.8f}".rstrip("0")
    elif len(text.split(".")[1]) < 2:
        text = f"{v:.2f}"
    return f"{sign}${text}"


def usd_span(ci: Interval | None) -> str:
    return DASH if ci is None else f"{usd(ci.low)}–{usd(ci.high)}"


def pct(value: float | None, digits: int = 0) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f}%"


def pct_span(ci: Interval | None) -> str:
    if ci is None:
        return DASH
    lo, hi = ci.low * 100, ci.high * 100
    return f"{lo:.0f}–{hi:.0f}%" if lo >= 0 else f"{lo:.0f}% to {hi:.0f}%"


def secs(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.2f} s"


def secs_span(ci: Interval | None) -> str:
    return DASH if ci is None else f"{secs(ci.low)}–{secs(ci.high)}"


def count(n: int) -> str:
    return f"{n:,}"
