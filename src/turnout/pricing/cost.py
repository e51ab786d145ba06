"""Exact cost arithmetic.

Prices are USD per million tokens, held as :class:`~decimal.Decimal` so that a
total over a million calls is the same number as the sum of its parts: no
float drift. Floats appear only at the output edge (JSON, tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from turnout.types import Usage

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Convert a price from config without picking up binary float noise."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. ``cached_input`` defaults to ``input`` when unknown."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    @classmethod
    def of(
        cls,
        input: float | int | str | Decimal,
        output: float | int | str | Decimal,
        cached_input: float | int | str | Decimal | None = None,
    ) -> Price:
        return cls(
            to_decimal(input),
            to_decimal(output),
            None if cached_input is None else to_decimal(cached_input),
        )

    def cost(self, usage: Usage) -> Decimal:
        """Exact cost of one call. Cached input tokens are part of ``input_tokens``
        and are billed at the cached-input price instead of the input price."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        fresh = usage.input_tokens - cached
        cached_price = self.input if self.cached_input is None else self.cached_input
        total = fresh * self.input + cached * cached_price + usage.output_tokens * self.output
        return total / MILLION

    def estimate(self, input_tokens: int, max_output_tokens: int) -> Decimal:
        """Upper-bound estimate before a call (no cache assumed)."""
        return (input_tokens * self.input + max_output_tokens * self.output) / MILLION


FREE = Price(ZERO, ZERO, ZERO)


def usd(value: Decimal) -> float:
    """A Decimal cost as a float for output (JSON, tables)."""
    return float(value)
