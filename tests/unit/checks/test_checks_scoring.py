"""evaluate: results in order, score over all checks, success over required ones."""

from __future__ import annotations

import pytest

from turnout.checks import (
    Check,
    ContainsAll,
    ContainsAny,
    MaxChars,
    RegexCheck,
    evaluate,
    run_check,
)
from turnout.types import CheckResult

TEXT = "billing: refund requested"


@pytest.mark.parametrize(
    ("checks", "passed", "score", "ok"),
    [
        ((), (), None, True),
        ((ContainsAny(("billing",)),), (True,), 1.0, True),
        ((ContainsAny(("technical",)),), (False,), 0.0, False),
        ((ContainsAny(("technical",), required=False),), (False,), 0.0, True),
        (
            (ContainsAny(("billing",)), RegexCheck("^refund"), MaxChars(100)),
            (True, False, True),
            2 / 3,
            False,
        ),
        (
            (ContainsAny(("billing",)), RegexCheck("^refund", required=False), MaxChars(100)),
            (True, False, True),
            2 / 3,
            True,  # an optional failure lowers the score but not success
        ),
        (
            (
                ContainsAll(("refund",)),
                MaxChars(5, required=False),
                RegexCheck("x", required=False),
            ),
            (True, False, False),
            1 / 3,
            True,
        ),
        (
            (ContainsAll(("nope",), required=False), MaxChars(5)),
            (False, False),
            0.0,
            False,
        ),
    ],
)
def test_evaluate(
    checks: tuple[Check, ...], passed: tuple[bool, ...], score: float | None, ok: bool
) -> None:
    results, got_score, got_ok = evaluate(checks, TEXT, TEXT)
    assert tuple(r.passed for r in results) == passed
    assert tuple(r.name for r in results) == tuple(c.name for c in checks)
    assert got_score == pytest.approx(score) if score is not None else got_score is None
    assert got_ok is ok


class Broken:
    name = "broken"
    required = False

    def run(self, text: str, value: object) -> CheckResult:
        raise RuntimeError("bug in a custom check")


def test_a_raising_check_is_a_failed_result() -> None:
    assert isinstance(Broken(), Check)
    result = run_check(Broken(), "x", "x")
    assert result == CheckResult(
        "broken", False, "check raised RuntimeError: bug in a custom check", False
    )
    results, score, ok = evaluate([Broken(), MaxChars(5)], "x", "x")
    assert [r.passed for r in results] == [False, True]
    assert (score, ok) == (0.5, True)
