"""``regex``: the output text must match a regular expression.

By default the pattern is *searched* anywhere in the text (``re.search``).
``fullmatch: true`` requires the whole text to match instead; the text is
stripped of leading and trailing whitespace first, because model answers
often end with a newline.

Flags are given by name, either as booleans (``ignore_case: true``) or as a
list (``flags: [ignore_case, multiline]``): ``ignore_case``, ``multiline``,
``dotall``, ``verbose``, ``ascii``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from turnout.checks.base import NAME_LIMIT, shorten
from turnout.types import CheckResult

FLAG_NAMES: dict[str, re.RegexFlag] = {
    "ignore_case": re.IGNORECASE,
    "multiline": re.MULTILINE,
    "dotall": re.DOTALL,
    "verbose": re.VERBOSE,
    "ascii": re.ASCII,
}


def parse_flags(names: Iterable[str]) -> re.RegexFlag:
    """Combine flag names into ``re`` flags; an unknown name raises ValueError."""
    flags = re.RegexFlag(0)
    for name in names:
        try:
            flags |= FLAG_NAMES[name]
        except KeyError:
            known = ", ".join(FLAG_NAMES)
            raise ValueError(f"unknown flag {name!r} (known: {known})") from None
    return flags


@dataclass(frozen=True, slots=True)
class RegexCheck:
    """Passes when ``pattern`` is found in (or, with ``fullmatch``, is) the text."""

    pattern: str
    flags: int = 0
    fullmatch: bool = False
    required: bool = True
    name: str = ""
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise ValueError(f"pattern must be a string, got {type(self.pattern).__name__}")
        if not self.pattern:
            raise ValueError("pattern is empty")
        try:
            compiled = re.compile(self.pattern, self.flags)
        except re.error as exc:
            raise ValueError(f"invalid pattern {self.pattern!r}: {exc}") from None
        object.__setattr__(self, "_compiled", compiled)
        if not self.name:
            object.__setattr__(self, "name", shorten(f"regex[{self.pattern}]", NAME_LIMIT))

    def run(self, text: str, value: object) -> CheckResult:
        if self.fullmatch:
            m = self._compiled.fullmatch(text.strip())
            if m is None:
                detail = f"text does not fully match /{self.pattern}/"
                return CheckResult(self.name, False, shorten(detail), self.required)
            return CheckResult(self.name, True, "full match", self.required)
        m = self._compiled.search(text)
        if m is None:
            return CheckResult(
                self.name, False, shorten(f"no match for /{self.pattern}/"), self.required
            )
        detail = f"matched {shorten(m.group(0), 60)!r} at {m.start()}"
        return CheckResult(self.name, True, detail, self.required)
