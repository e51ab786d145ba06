"""Money as text and numbers: the one home of how turnout shows a cost.

Costs are :class:`~decimal.Decimal` USD everywhere inside turnout; these turn them
into what people and programs read.
"""

from __future__ import annotations

from decimal import Decimal

DASH = "—"


def usd(value: Decimal | float | None) -> str:
    """Dollars for people, with enough digits for the tiny costs of cheap models: three
    significant digits and at least two decimals below $1 (``$0.84``, ``$0.0315``,
    ``$0.000123``), cents above (``$1,234.50``); ``—`` for no value."""
    if value is None:
        return DASH
    cost = value if isinstance(value, Decimal) else Decimal(str(value))
    if cost == 0:
        return "$0"
    sign = "-" if cost < 0 else ""
    cost = abs(cost)
    if cost >= 1:
        return f"{sign}${cost:,.2f}"
    digits = max(2, 2 - cost.adjusted())
    text = f"{cost:.{digits}f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{sign}${whole}.{decimals.ljust(2, '0')}"


def usd_exact(cost: Decimal) -> str:
    """Dollars for programs (a header, a CSV cell): up to ten decimals, no exponent,
    no sign of a negative zero (``0.0000125``)."""
    text = format(cost.quantize(Decimal("1e-10")).normalize(), "f")
    return text if text != "-0" else "0"


def usd_number(value: Decimal | None) -> float | None:
    """A cost as a JSON number (None stays None)."""
    return None if value is None else float(value)
