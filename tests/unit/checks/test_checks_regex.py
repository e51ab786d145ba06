"""regex: search by default, fullmatch, flags, details."""

from __future__ import annotations

import re

import pytest

from turnout.checks import RegexCheck
from turnout.checks.regex import parse_flags

ANSWER = "Category: Billing\nbilling\n"


@pytest.mark.parametrize(
    ("pattern", "flags", "fullmatch", "passed", "detail"),
    [
        (r"billing", [], False, True, "matched 'billing' at 18"),
        (r"Billing", [], False, True, "matched 'Billing' at 10"),
        (r"^billing$", [], False, False, "no match for /^billing$/"),
        (r"^billing$", ["multiline"], False, True, "matched 'billing' at 18"),
        (r"^category", [], False, False, "no match for /^category/"),
        (r"^category", ["ignore_case"], False, True, "matched 'Category' at 0"),
        (r"Billing.billing", [], False, False, "no match for /Billing.billing/"),
        (r"Billing.billing", ["dotall"], False, True, "matched 'Billing billing' at 10"),
        (r"Category: \w+", [], True, False, r"text does not fully match /Category: \w+/"),
        (r"Category: \w+\s+\w+", [], True, True, "full match"),  # surrounding whitespace stripped
        (r"category: .*", ["ignore_case", "dotall"], True, True, "full match"),
        (r"\d+  # digits", ["verbose"], False, False, r"no match for /\d+ # digits/"),
    ],
)
def test_regex(pattern: str, flags: list[str], fullmatch: bool, passed: bool, detail: str) -> None:
    result = RegexCheck(pattern, parse_flags(flags), fullmatch=fullmatch).run(ANSWER, ANSWER)
    assert (result.passed, result.detail) == (passed, detail)


def test_fullmatch_on_one_word_answer() -> None:
    check = RegexCheck("billing|technical|account", re.IGNORECASE, fullmatch=True)
    assert check.run("Technical\n", "Technical\n").passed
    assert not check.run("Technical issue", "Technical issue").passed


def test_long_match_is_shortened_in_detail() -> None:
    text = "x" * 500
    detail = RegexCheck("x+").run(text, text).detail
    assert detail.startswith("matched 'xxx")
    assert detail.endswith("…' at 0")
    assert len(detail) < 80


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "invalid pattern '\\(': missing \\)"),
        ("", "pattern is empty"),
        ("a{2,1}", "invalid pattern"),
    ],
)
def test_bad_pattern(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegexCheck(pattern)


def test_parse_flags() -> None:
    assert parse_flags(["ignore_case", "multiline"]) == re.IGNORECASE | re.MULTILINE
    assert parse_flags([]) == 0
    with pytest.raises(ValueError, match="unknown flag 'i' \\(known: ignore_case, multiline"):
        parse_flags(["i"])


def test_name() -> None:
    assert RegexCheck(r"^(yes|no)\b").name == r"regex[^(yes|no)\b]"
    assert RegexCheck("a", name="starts right").name == "starts right"
