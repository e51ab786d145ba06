"""contains_all / contains_any: case, substring vs whole word, details."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.checks import Check, ContainsAll, ContainsAny

TEXT = "The plan lists Risks, a Rollback step and two tests."


@pytest.mark.parametrize(
    ("keywords", "options", "passed", "detail"),
    [
        (("risks", "tests", "rollback"), {}, True, "all 3 found"),
        (("RISKS", "ROLLBACK"), {}, True, "all 2 found"),  # case-insensitive by default
        (("risks", "rollback"), {"case_sensitive": True}, False, "missing 2 of 2: risks, rollback"),
        (("Risks", "Rollback"), {"case_sensitive": True}, True, "all 2 found"),
        (("test",), {}, True, "all 1 found"),  # substring by default
        (("test",), {"word": True}, False, "missing 1 of 1: test"),
        (("tests", "rollback step"), {"word": True}, True, "all 2 found"),
        (("ROLLBACK",), {"word": True}, True, "all 1 found"),  # word + case-insensitive
        (("ROLLBACK",), {"word": True, "case_sensitive": True}, False, "missing 1 of 1: ROLLBACK"),
        (("risks", "budget", "owner"), {}, False, "missing 2 of 3: budget, owner"),
        (("a, b",), {}, False, "missing 1 of 1: 'a, b'"),
    ],
)
def test_contains_all(
    keywords: tuple[str, ...], options: dict[str, Any], passed: bool, detail: str
) -> None:
    result = ContainsAll(keywords, **options).run(TEXT, TEXT)
    assert (result.passed, result.detail) == (passed, detail)


@pytest.mark.parametrize(
    ("keywords", "options", "passed", "detail"),
    [
        (
            ("billing", "technical", "account"),
            {},
            False,
            "none found of: billing, technical, account",
        ),
        (("billing", "rollback", "tests"), {}, True, "found: rollback, tests"),
        (("PLAN",), {}, True, "found: PLAN"),
        (("PLAN",), {"case_sensitive": True}, False, "none found of: PLAN"),
        (("roll", "list"), {}, True, "found: roll, list"),
        (("roll", "list"), {"word": True}, False, "none found of: roll, list"),
        (("roll", "lists"), {"word": True}, True, "found: lists"),
    ],
)
def test_contains_any(
    keywords: tuple[str, ...], options: dict[str, Any], passed: bool, detail: str
) -> None:
    result = ContainsAny(keywords, **options).run(TEXT, TEXT)
    assert (result.passed, result.detail) == (passed, detail)


@pytest.mark.parametrize(
    ("keyword", "text", "found"),
    [
        ("c++", "we use C++ here", True),  # keywords with non-word characters at the ends
        ("c++", "we use c++x", False),  # the character after the keyword is a word character
        ("e-mail", "send an E-Mail now", True),
        ("e-mail", "e-mails", False),
        ("straße", "STRASSE", False),  # word mode uses re.IGNORECASE, not casefold
        ("id", "order_id: 5", False),  # underscore is a word character
        ("id", "id: 5", True),
    ],
)
def test_whole_word_edges(keyword: str, text: str, found: bool) -> None:
    assert ContainsAll((keyword,), word=True).run(text, text).passed is found


def test_substring_mode_casefolds() -> None:
    assert ContainsAll(("straße",)).run("STRASSE", "STRASSE").passed


@pytest.mark.parametrize(
    ("cls", "keywords", "name"),
    [
        (ContainsAll, ("risks", "tests", "rollback"), "contains_all[risks,tests,rollback]"),
        (ContainsAny, ("billing", "technical"), "contains_any[billing,technical]"),
    ],
)
def test_default_name_and_protocol(cls: type[Check], keywords: tuple[str, ...], name: str) -> None:
    check = cls(keywords)  # type: ignore[call-arg]
    assert check.name == name
    assert check.required is True
    assert isinstance(check, Check)
    result = check.run("", "")
    assert (result.name, result.required) == (name, True)


def test_long_names_are_shortened() -> None:
    check = ContainsAll(tuple(f"keyword{i}" for i in range(30)))
    assert len(check.name) == 80
    assert check.name.endswith("…")


def test_custom_name_and_optional() -> None:
    result = ContainsAny(("x",), required=False, name="mentions x").run("y", "y")
    assert result.as_dict() == {
        "name": "mentions x",
        "passed": False,
        "detail": "none found of: x",
        "required": False,
    }


@pytest.mark.parametrize(
    ("keywords", "message"),
    [((), "needs at least one keyword"), (("a", " "), "keyword [1] is empty")],
)
def test_bad_keywords(keywords: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        ContainsAll(keywords)


def test_checks_are_frozen() -> None:
    check = ContainsAll(("a",))
    with pytest.raises(AttributeError):
        check.name = "b"  # type: ignore[misc]
