"""Number formatting shared by the report's tables and charts."""

from __future__ import annotations

from turnout.bench.stats import Interval
from turnout.pricing.money import DASH, usd

__all__ = ["DASH", "count", "pct", "pct_span", "secs", "secs_span", "usd", "usd_span"]


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
