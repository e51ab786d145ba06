"""``contains_all`` / ``contains_any``: keyword presence in the output text.

Matching is case-insensitive by default (``case_sensitive: true`` turns that
off) and by substring by default (``word: true`` requires whole words: the
keyword may not be preceded or followed by a letter, digit or underscore, so
``test`` no longer matches ``tests`` or ``attest``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from turnout.checks.base import NAME_LIMIT, join_words, shorten
from turnout.types import CheckResult


@dataclass(frozen=True, slots=True)
class KeywordMatcher:
    """Finds which of a fixed set of keywords occur in a text."""

    keywords: tuple[str, ...]
    case_sensitive: bool = False
    word: bool = False
    _needles: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keywords:
            raise ValueError("needs at least one keyword")
        for i, kw in enumerate(self.keywords):
            if not isinstance(kw, str):
                raise ValueError(f"keyword [{i}] must be a string, got {type(kw).__name__}")
            if not kw.strip():
                raise ValueError(f"keyword [{i}] is empty")
        fold = (lambda s: s) if self.case_sensitive else str.casefold
        object.__setattr__(self, "_needles", tuple(fold(k) for k in self.keywords))
        patterns: tuple[re.Pattern[str], ...] = ()
        if self.word:
            flags = 0 if self.case_sensitive else re.IGNORECASE
            patterns = tuple(
                re.compile(rf"(?<!\w){re.escape(k)}(?!\w)", flags) for k in self.keywords
            )
        object.__setattr__(self, "_patterns", patterns)

    def found(self, text: str) -> tuple[bool, ...]:
        """One flag per keyword, in order: does it occur in ``text``?"""
        if self.word:
            return tuple(p.search(text) is not None for p in self._patterns)
        hay = text if self.case_sensitive else text.casefold()
        return tuple(n in hay for n in self._needles)


def _default_name(kind: str, keywords: Iterable[str]) -> str:
    return shorten(f"{kind}[{','.join(keywords)}]", NAME_LIMIT)


@dataclass(frozen=True, slots=True)
class _Contains:
    """Keywords matched case-insensitively (or not), as substrings (or whole words)."""

    keywords: tuple[str, ...]
    case_sensitive: bool = False
    word: bool = False
    required: bool = True
    name: str = ""
    _matcher: KeywordMatcher = field(init=False, repr=False, compare=False)

    kind: ClassVar[str] = "contains"

    def __post_init__(self) -> None:
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(
            self, "_matcher", KeywordMatcher(self.keywords, self.case_sensitive, self.word)
        )
        if not self.name:
            object.__setattr__(self, "name", _default_name(self.kind, self.keywords))


@dataclass(frozen=True, slots=True)
class ContainsAll(_Contains):
    """Passes when every keyword occurs; the detail lists the missing ones."""

    kind: ClassVar[str] = "contains_all"

    def run(self, text: str, value: object) -> CheckResult:
        found = self._matcher.found(text)
        missing = [k for k, ok in zip(self.keywords, found, strict=True) if not ok]
        if missing:
            detail = f"missing {len(missing)} of {len(self.keywords)}: {join_words(missing)}"
            return CheckResult(self.name, False, shorten(detail), self.required)
        return CheckResult(self.name, True, f"all {len(self.keywords)} found", self.required)


@dataclass(frozen=True, slots=True)
class ContainsAny(_Contains):
    """Passes when at least one keyword occurs; the detail lists those that matched."""

    kind: ClassVar[str] = "contains_any"

    def run(self, text: str, value: object) -> CheckResult:
        found = self._matcher.found(text)
        matched = [k for k, ok in zip(self.keywords, found, strict=True) if ok]
        if matched:
            return CheckResult(
                self.name, True, shorten(f"found: {join_words(matched)}"), self.required
            )
        detail = f"none found of: {join_words(self.keywords)}"
        return CheckResult(self.name, False, shorten(detail), self.required)
