"""``python``: a function of yours decides.

The contract, kept small:

- **Arguments.** ``fn(text)`` or ``fn(text, value)``: the function is given
  ``value`` too when it accepts two positional arguments (or ``*args``).
  ``text`` is the output text, ``value`` the parsed value (see
  :mod:`turnout.checks.base`). The function must be synchronous.
- **Result.** ``True`` / ``False``; or a pair ``(passed, detail)``; or a str,
  which means *failed* and is the detail (``return "too rude"``).
  Anything else is a failure whose detail says what was returned.
- **Exceptions** raised inside become a failed result whose detail names the
  exception (``raised KeyError: 'order_id'``), so ``assert ok, "why"`` then
  ``return True`` works. Returning ``None`` (a forgotten ``return``) fails.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turnout.checks.base import NAME_LIMIT, shorten
from turnout.types import CheckResult

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_EXPECTED = "expected bool, (bool, detail) or a str failure detail"


def call_arity(fn: Callable[..., Any]) -> int:
    """1 for ``fn(text)``, 2 for ``fn(text, value)``; ValueError when neither fits."""
    if inspect.iscoroutinefunction(fn):
        raise ValueError("is async; python checks must be plain synchronous functions")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1  # some builtins have no signature: call them with the text only
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    required_kw = [
        p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty
    ]
    required_pos = [p for p in positional if p.default is p.empty]
    if required_kw:
        raise ValueError(f"has required keyword-only argument(s): {', '.join(required_kw)}")
    if len(required_pos) > 2:
        raise ValueError(
            f"takes {len(required_pos)} required arguments; a check takes (text) or (text, value)"
        )
    if len(positional) >= 2 or varargs:
        return 2
    if len(positional) == 1:
        return 1
    raise ValueError("takes no arguments; a check takes (text) or (text, value)")


def interpret(out: object) -> tuple[bool, str]:
    """Map a check function's return value to ``(passed, detail)``."""
    if isinstance(out, bool):
        return out, "" if out else "returned False"
    if isinstance(out, str):
        return False, out or "failed"
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], bool):
        detail = out[1]
        return out[0], "" if detail is None else str(detail)
    if inspect.isawaitable(out):
        if inspect.iscoroutine(out):
            out.close()  # never awaited on purpose; closing avoids a RuntimeWarning
        return False, "returned an awaitable; python checks must be synchronous"
    if out is None:
        return False, f"returned None (missing return?); {_EXPECTED}"
    return False, f"returned {type(out).__name__}; {_EXPECTED}"


@dataclass(frozen=True, slots=True)
class PythonCheck:
    """Runs ``fn`` on the output; ``ref`` (``module:function``) names it in results."""

    fn: Callable[..., Any]
    ref: str = ""
    required: bool = True
    name: str = ""
    _arity: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError(f"{self.fn!r} is not callable")
        object.__setattr__(self, "_arity", call_arity(self.fn))
        if not self.ref:
            qualname = getattr(self.fn, "__qualname__", type(self.fn).__name__)
            module = getattr(self.fn, "__module__", None) or "?"
            object.__setattr__(self, "ref", f"{module}:{qualname}")
        if not self.name:
            object.__setattr__(self, "name", shorten(f"python[{self.ref}]", NAME_LIMIT))

    def run(self, text: str, value: object) -> CheckResult:
        try:
            out = self.fn(text, value) if self._arity == 2 else self.fn(text)
        except Exception as exc:
            message = str(exc)
            detail = f"raised {type(exc).__name__}" + (f": {message}" if message else "")
            return CheckResult(self.name, False, shorten(detail), self.required)
        passed, detail = interpret(out)
        return CheckResult(self.name, passed, shorten(detail), self.required)
