"""The check interface: a deterministic, pure test of one step's output.

A check is built once from a workflow entry (regexes compiled, schemas
validated, callables imported) and then run many times. ``run`` never raises
for a bad output: it returns a failed :class:`~turnout.types.CheckResult` whose
``detail`` says why in a few words.

``run(text, value)``:

- ``text`` is the step's output as text (for code steps and ``output: json``
  steps: the value serialized as JSON, unless it is a str);
- ``value`` is the parsed value (a dict / list / ... for json outputs and code
  steps; the same str as ``text`` for plain llm steps).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from turnout.types import CheckResult

DETAIL_LIMIT = 200
NAME_LIMIT = 80


@runtime_checkable
class Check(Protocol):
    """Anything with a ``name``, a ``required`` flag and a pure ``run`` method."""

    @property
    def name(self) -> str:
        """Human readable, e.g. ``contains_all[risks,tests,rollback]``."""
        ...

    @property
    def required(self) -> bool:
        """Whether the step fails when this check fails (default true)."""
        ...

    def run(self, text: str, value: object) -> CheckResult:
        """Judge one output. Must not raise for any output."""
        ...


def shorten(text: str, limit: int = DETAIL_LIMIT) -> str:
    """Collapse whitespace runs and cut ``text`` to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def join_words(words: Iterable[str]) -> str:
    """``a, b, c`` for details; each word quoted only if it has a comma or spaces at its ends."""
    return ", ".join(repr(w) if ("," in w or w != w.strip()) else w for w in words)
