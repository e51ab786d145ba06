from decimal import Decimal

import pytest

from turnout.pricing import Price, bundled_sheet, lookup
from turnout.types import Usage


def test_cost_is_exact_per_million() -> None:
    p = Price.of(5.00, 25.00, 0.50)
    assert p.cost(Usage(1_000_000, 0)) == Decimal("5")
    assert p.cost(Usage(0, 1_000_000)) == Decimal("25")
    assert p.cost(Usage(1000, 200)) == Decimal("0.01")


def test_cached_input_is_billed_at_cached_price() -> None:
    p = Price.of(5.00, 25.00, 0.50)
    # 1000 prompt tokens of which 800 came from the cache
    assert p.cost(Usage(1000, 0, 800)) == Decimal("0.0014")


def test_cached_price_defaults_to_input_price() -> None:
    p = Price.of(1, 2)
    assert p.cost(Usage(100, 0, 100)) == p.cost(Usage(100, 0, 0))


def test_no_float_drift_over_many_calls() -> None:
    p = Price.of(0.10, 0.40, 0.025)
    one = p.cost(Usage(3, 7, 1))
    total = sum((p.cost(Usage(3, 7, 1)) for _ in range(100_000)), Decimal(0))
    assert total == one * 100_000


def test_price_of_avoids_binary_float_noise() -> None:
    assert Price.of(0.1, 0.2).input == Decimal("0.1")


@pytest.mark.parametrize(
    "name",
    [
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4o",
        "gpt-4o-mini",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "deepseek-v3",
    ],
)
def test_sheet_covers_common_models_with_date_and_source(name: str) -> None:
    e = lookup(name)
    assert e.as_of[:2] == "20" and e.source.startswith("https://")
    assert e.price.input > 0 and e.price.output > 0


def test_sheet_entries_are_dated() -> None:
    assert all(len(e.as_of) == 10 for e in bundled_sheet().values())
