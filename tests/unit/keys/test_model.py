"""key_changes: the one set of rules by which `turnout keys` options and the admin API's
JSON fields become changes to a key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from turnout.errors import ConfigError
from turnout.keys.model import Period, key_changes, parse_expiry


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"rpm": 0, "tpm": None}, {"rpm": None, "tpm": None}),  # 0 or null: no limit
        ({"rpm": "0", "tpm": "none"}, {"rpm": None, "tpm": None}),
        ({"rpm": 60, "tpm": "2000"}, {"rpm": 60, "tpm": 2000}),
        ({"budget_usd": "none"}, {"budget_usd": None}),
        ({"budget_usd": None}, {"budget_usd": None}),
        ({"budget_usd": 0.1}, {"budget_usd": Decimal("0.1")}),
        ({"budget_usd": "50"}, {"budget_usd": Decimal(50)}),
        ({"expires": "never"}, {"expires_at": None}),
        ({"expires": None}, {"expires_at": None}),
        ({"expires": "NONE"}, {"expires_at": None}),
        ({"expires": "2099-01-01"}, {"expires_at": parse_expiry("2099-01-01T00:00:00+00:00")}),
        ({"period": "week"}, {"period": Period.WEEK}),
        (
            {"policies": "a, b", "models": ["x", " y "]},
            {"policies": ("a", "b"), "models": ("x", "y")},
        ),
        ({"policies": "", "models": None}, {"policies": (), "models": ()}),
        ({}, {}),
    ],
)
def test_the_cli_and_the_api_spellings_mean_the_same(
    raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert key_changes(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"rpm": "many"}, "rpm", "expected a whole number"),
        ({"rpm": "--5"}, "rpm", "expected a whole number"),  # int() would raise: a 500
        ({"tpm": "\u00b2"}, "tpm", "expected a whole number"),
        ({"tpm": "\uff11\uff12"}, "tpm", "expected a whole number"),  # full-width 12
        ({"rpm": True}, "rpm", "expected a whole number"),
        ({"tpm": 1.5}, "tpm", "expected a whole number"),
        ({"budget_usd": "lots"}, "budget_usd", "not a number"),
        ({"budget_usd": "NaN"}, "budget_usd", "not a number"),
        ({"budget_usd": False}, "budget_usd", "not a number"),
        ({"period": "year"}, "period", "expected day, week, month or total"),
        ({"period": None}, "period", "expected day, week, month or total"),
        ({"policies": [1]}, "policies", "expected a list of names"),
        ({"expires": "soon"}, "expires", "not a date"),
        ({"expires": 5}, "expires", "expected a date"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_values_name_their_field(raw: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        key_changes(raw)
    assert info.value.field == field and "\n" not in str(info.value)
