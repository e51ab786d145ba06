"""max_chars: length in characters, inclusive limit."""

from __future__ import annotations

import pytest

from turnout.checks import MaxChars


@pytest.mark.parametrize(
    ("limit", "text", "passed", "detail"),
    [
        (5, "", True, "0 of 5 chars"),
        (5, "hello", True, "5 of 5 chars"),
        (5, "hello!", False, "6 chars, over the limit of 5"),
        (3, "héé", True, "3 of 3 chars"),  # characters, not bytes
        (2, "🙂🙂", True, "2 of 2 chars"),
    ],
)
def test_max_chars(limit: int, text: str, passed: bool, detail: str) -> None:
    result = MaxChars(limit).run(text, text)
    assert (result.name, result.passed, result.detail) == (f"max_chars[{limit}]", passed, detail)


@pytest.mark.parametrize(
    ("limit", "message"),
    [(0, "at least 1"), (-3, "at least 1"), (True, "must be an integer"), (2.5, "integer")],
)
def test_bad_limit(limit: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaxChars(limit)  # type: ignore[arg-type]
