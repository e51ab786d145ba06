"""python checks: argument detection, every return shape, exceptions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from turnout.checks import PythonCheck
from turnout.checks.python_check import call_arity, interpret

EXPECTED = "expected bool, (bool, detail) or a str failure detail"


def polite(text: str) -> bool:
    return "please" in text.lower()


def polite_with_detail(text: str) -> tuple[bool, str]:
    ok = "please" in text.lower()
    return ok, "polite" if ok else "no 'please'"


def complaint(text: str) -> str | bool:
    return True if "please" in text.lower() else "sounds rude"


def empty_complaint(text: str) -> str:
    return ""


def has_ids(text: str, value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("order_ids"))


def asserting(text: str) -> bool:
    # written out because pytest rewrites asserts in test modules (the registry
    # tests use a real ``assert`` in a loaded steps.py)
    if not text.endswith("."):
        raise AssertionError("reply must end with a full stop")
    return True


def raising(text: str) -> bool:
    raise KeyError("order_id")


def raising_bare(text: str) -> bool:
    raise RuntimeError


def returns_none(text: str) -> None:
    return None


def returns_int(text: str) -> int:
    return 1


def returns_triple(text: str) -> tuple[bool, str, int]:
    return True, "x", 1


def pair_none_detail(text: str) -> tuple[bool, None]:
    return False, None


def pair_object_detail(text: str) -> tuple[bool, int]:
    return False, 42


def long_detail(text: str) -> str:
    return "bad " * 200


def varargs(*args: Any) -> bool:
    return len(args) == 2


class Callable2:
    def __call__(self, text: str, value: object) -> bool:
        return value == {"a": 1}


@pytest.mark.parametrize(
    ("fn", "text", "value", "passed", "detail"),
    [
        (polite, "Please wait.", "Please wait.", True, ""),
        (polite, "Wait.", "Wait.", False, "returned False"),
        (polite_with_detail, "Please wait.", "", True, "polite"),
        (polite_with_detail, "Wait.", "", False, "no 'please'"),
        (complaint, "Please.", "", True, ""),
        (complaint, "Go away", "", False, "sounds rude"),
        (empty_complaint, "x", "", False, "failed"),
        (has_ids, '{"order_ids": [1]}', {"order_ids": [1]}, True, ""),
        (has_ids, '{"order_ids": []}', {"order_ids": []}, False, "returned False"),
        (asserting, "Done.", "", True, ""),
        (asserting, "Done", "", False, "raised AssertionError: reply must end with a full stop"),
        (raising, "x", "", False, "raised KeyError: 'order_id'"),
        (raising_bare, "x", "", False, "raised RuntimeError"),
        (
            returns_none,
            "x",
            "",
            False,
            f"returned None (missing return?); {EXPECTED}",
        ),
        (
            returns_int,
            "x",
            "",
            False,
            f"returned int; {EXPECTED}",
        ),
        (
            returns_triple,
            "x",
            "",
            False,
            f"returned tuple; {EXPECTED}",
        ),
        (pair_none_detail, "x", "", False, ""),
        (pair_object_detail, "x", "", False, "42"),
        (varargs, "x", "v", True, ""),
        (Callable2(), "{}", {"a": 1}, True, ""),
        (functools.partial(has_ids), "x", {"order_ids": [2]}, True, ""),
    ],
)
def test_python_check(
    fn: Callable[..., Any], text: str, value: object, passed: bool, detail: str
) -> None:
    result = PythonCheck(fn, ref="steps:fn").run(text, value)
    assert (result.name, result.passed, result.detail) == ("python[steps:fn]", passed, detail)


def test_long_detail_is_shortened() -> None:
    detail = PythonCheck(long_detail).run("x", "x").detail
    assert len(detail) == 200
    assert detail.endswith("…")


def test_default_ref_names_the_function() -> None:
    check = PythonCheck(polite)
    assert check.ref == f"{__name__}:polite"
    assert check.name == f"python[{__name__}:polite]"


async def _async_check(text: str) -> bool:
    return True


def _sync_returning_coroutine(text: str) -> Any:
    return _async_check(text)


def test_awaitable_result_is_a_failure_without_warnings() -> None:
    result = PythonCheck(_sync_returning_coroutine).run("x", "x")
    assert not result.passed
    assert result.detail == "returned an awaitable; python checks must be synchronous"


def _kw_only(text: str, *, strict: bool) -> bool:
    return True


def _three(text: str, value: object, extra: object) -> bool:
    return True


def _none() -> bool:
    return True


def _one_with_default(text: str, flag: bool = False) -> bool:
    return True


@pytest.mark.parametrize(
    ("fn", "arity"),
    [
        (polite, 1),
        (has_ids, 2),
        (varargs, 2),
        (Callable2(), 2),
        (_one_with_default, 2),  # two positional parameters: it is given the value
        (str.isupper, 1),
        (len, 1),
    ],
)
def test_call_arity(fn: Callable[..., Any], arity: int) -> None:
    assert call_arity(fn) == arity


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_async_check, "is async"),
        (_kw_only, "required keyword-only argument\\(s\\): strict"),
        (_three, "takes 3 required arguments"),
        (_none, "takes no arguments"),
    ],
)
def test_bad_signatures(fn: Callable[..., Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PythonCheck(fn)


def test_not_callable() -> None:
    with pytest.raises(ValueError, match="is not callable"):
        PythonCheck("steps:fn")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        (True, (True, "")),
        (False, (False, "returned False")),
        ("why", (False, "why")),
        ((True, "ok"), (True, "ok")),
        (
            [True, "ok"],
            (False, f"returned list; {EXPECTED}"),
        ),
    ],
)
def test_interpret(out: object, expected: tuple[bool, str]) -> None:
    assert interpret(out) == expected
