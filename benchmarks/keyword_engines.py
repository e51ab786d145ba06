"""Candidate keyword engines for ``decision_latency.py --scanner``: maintained
Aho-Corasick matchers that ship wheels, measured against turnout's compiled scanner.

Each is a drop-in for :class:`turnout.policies.textscan.KeywordSet` with the same
documented matching (tests/unit/policies/test_textscan.py's reference is checked
against them by ``python benchmarks/keyword_engines.py``): the text is normalised
by turnout's own :func:`~turnout.policies.textscan.normalise` into lower-case words
separated by spaces, padded with a space at each end, and every keyword becomes the
pattern `` word word `` (its normalised words one space apart, a space at each
end), so a match is whole words and, in ASCII text, one separator apart. In text
beyond ASCII a phrase's words match whatever separates them, so runs of spaces are
squeezed to one there. Matches overlap (two keywords share the space between them),
so both engines search in their "standard" (overlapping) mode.

    ahocorasick-rs   ahocorasick_rs.BytesAhoCorasick (Rust's aho-corasick; DFA) on bytes
    pyahocorasick    ahocorasick.Automaton (C; the PyPI wheel is built for str keys)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from turnout.policies.textscan import _DELETE, _TABLE, normalise

_SPACES = re.compile(rb"  +")


def padded(text: str, cased: bool) -> bytes:
    """`` normalised text ``; beyond ASCII, its words one space apart."""
    if text.isascii():
        return b" " + text.encode("ascii").translate(_TABLE, _DELETE) + b" "
    return b" " + _SPACES.sub(b" ", normalise(text, cased=cased)) + b" "


class _Patterns:
    """The keywords' patterns, each with the keywords (spellings) that normalise to it."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self.order: dict[str, int] = {}
        self.patterns: dict[bytes, list[str]] = {}
        for kw in keywords:
            words = normalise(kw).split()
            if not words or kw in self.order:
                continue
            self.order[kw] = len(self.order)
            self.patterns.setdefault(b" " + b" ".join(words) + b" ", []).append(kw)
        self.cased = not all(p.isascii() for p in self.patterns)

    def __len__(self) -> int:
        return len(self.order)


class RustAhoCorasickSet(_Patterns):
    def __init__(self, keywords: Iterable[str], **_: Any) -> None:
        import ahocorasick_rs

        super().__init__(keywords)
        self._labels = [tuple(v) for v in self.patterns.values()]
        self._ac = (
            ahocorasick_rs.BytesAhoCorasick(
                list(self.patterns), implementation=ahocorasick_rs.Implementation.DFA
            )
            if self.patterns
            else None
        )

    def find(self, text: str, *, ordered: bool = True) -> tuple[str, ...]:
        if not text or self._ac is None:
            return ()
        hits = self._ac.find_matches_as_indexes(padded(text, self.cased), overlapping=True)
        if not hits:
            return ()
        labels = self._labels
        found = [kw for i in {h[0] for h in hits} for kw in labels[i]]
        if ordered and len(found) > 1:
            found.sort(key=self.order.__getitem__)
        return tuple(found)


class PyAhoCorasickSet(_Patterns):
    def __init__(self, keywords: Iterable[str], **_: Any) -> None:
        import ahocorasick

        super().__init__(keywords)
        self._ac: Any = None
        if self.patterns:
            automaton = ahocorasick.Automaton()
            for pattern, kws in self.patterns.items():
                automaton.add_word(pattern.decode("latin-1"), tuple(kws))
            automaton.make_automaton()
            self._ac = automaton

    def find(self, text: str, *, ordered: bool = True) -> tuple[str, ...]:
        if not text or self._ac is None:
            return ()
        haystack = padded(text, self.cased).decode("latin-1")  # bytes as code points
        found: list[str] = []
        seen: set[str] = set()
        for _, kws in self._ac.iter(haystack):
            if kws[0] not in seen:
                seen.add(kws[0])
                found += kws
        if ordered and len(found) > 1:
            found.sort(key=self.order.__getitem__)
        return tuple(found)


ENGINES = {"ahocorasick-rs": RustAhoCorasickSet, "pyahocorasick": PyAhoCorasickSet}


def use(engine: str) -> None:
    """Make ``complexity`` and ``task_type`` build their keyword sets with ``engine``
    (call before building the policies)."""
    from turnout.policies import complexity, task_type

    complexity.KeywordSet = ENGINES[engine]  # type: ignore[misc,assignment]
    task_type.KeywordSet = ENGINES[engine]  # type: ignore[misc,assignment]


def _check_against_the_reference(rounds: int = 3000) -> None:
    """The reference of tests/unit/policies/test_textscan.py on generated text."""
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "unit" / "policies"))
    from test_textscan import (  # type: ignore[import-not-found]
        SEPARATORS,
        TEXT_WORDS,
        VOCABULARY,
        generated,
        reference_find,
    )

    for name, cls in ENGINES.items():
        rng = random.Random(0)
        for _ in range(rounds):
            keywords = rng.sample(VOCABULARY, rng.randint(1, 12))
            if rng.random() < 0.5:
                keywords = [k for k in keywords if k.isascii()]
            parts = []
            for _ in range(rng.randint(0, 40)):
                if rng.random() < 0.2:
                    parts.append(generated(rng, rng.randint(1, 3), 0.3))
                words = [*TEXT_WORDS, "\u0130t", "o\u212a"]
                parts += [rng.choice(words), rng.choice(SEPARATORS)]
            text = "".join(parts)
            kws = cls(keywords)
            expected = reference_find(keywords, text)
            assert list(kws.find(text)) == expected, (name, keywords, text)
            assert sorted(kws.find(text, ordered=False)) == sorted(expected)
        print(f"{name}: same matches as the reference on {rounds} generated cases")


if __name__ == "__main__":
    _check_against_the_reference()
