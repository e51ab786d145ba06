"""Running a step's checks and scoring the output.

``score`` is passed / total over *all* checks, required or not (so optional
checks still move the score); ``ok`` is whether every *required* check passed,
which is what decides whether the step succeeded. With no checks the score is
``None`` (nothing was measured) and ``ok`` is true.
"""

from __future__ import annotations

from collections.abc import Sequence

from turnout.checks.base import Check, shorten
from turnout.types import CheckResult


def run_check(check: Check, text: str, value: object) -> CheckResult:
    """Run one check; a check that raises (a bug in a custom check) counts as failed."""
    try:
        return check.run(text, value)
    except Exception as exc:
        return CheckResult(
            check.name, False, shorten(f"check raised {type(exc).__name__}: {exc}"), check.required
        )


def evaluate(
    checks: Sequence[Check], text: str, value: object
) -> tuple[tuple[CheckResult, ...], float | None, bool]:
    """Run ``checks`` in order on one output: ``(results, score, ok)``."""
    results = tuple(run_check(c, text, value) for c in checks)
    if not results:
        return results, None, True
    passed = sum(r.passed for r in results)
    ok = all(r.passed for r in results if r.required)
    return results, passed / len(results), ok
