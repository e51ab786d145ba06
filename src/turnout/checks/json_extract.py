"""Finding the JSON in a model's answer, leniently.

Models wrap JSON in prose and code fences. :func:`extract_json` tries, in order:

1. the whole text (stripped), which may be any JSON value (``42`` is JSON);
2. each fenced code block (```` ```json ```` tagged blocks first, then the
   others, in order of appearance), whole;
3. the first ``{...}`` or ``[...]`` in the text that parses, scanning from the
   left (a bounded number of candidate start positions).

The JSON itself is strict: no comments, trailing commas or single quotes, and
``NaN`` / ``Infinity`` are rejected (they would not survive re-serialization).
When nothing parses, :class:`JSONExtractError` (a ValueError) explains the most
promising failure in one line.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

Source = Literal["whole", "fence", "embedded"]

MAX_CANDIDATES = 64
"""How many ``{`` / ``[`` start positions the embedded scan tries before giving up."""

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_OPENERS = re.compile(r"[{\[]")


class JSONExtractError(ValueError):
    """No JSON value could be found in the text."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    obj, end = _DECODER.raw_decode(text)
    if text[end:].strip():
        raise json.JSONDecodeError("Extra data", text, end)
    return obj


def _why(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def find_json(text: str) -> tuple[Any, Source]:
    """Like :func:`extract_json`, but also say where the JSON was found."""
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise JSONExtractError("empty output, no JSON")
    first_error: str | None = None

    try:
        return _loads(stripped), "whole"
    except (ValueError, RecursionError) as exc:
        if stripped[0] in "{[":
            first_error = f"invalid JSON: {_why(exc)}"

    fences = sorted(
        _FENCE.finditer(stripped), key=lambda m: m.group(1).lower() not in ("json", "jsonc")
    )
    for m in fences:
        body = m.group(2).strip()
        if not body:
            continue
        try:
            return _loads(body), "fence"
        except (ValueError, RecursionError) as exc:
            if first_error is None:
                first_error = f"invalid JSON in code block: {_why(exc)}"

    for tries, m in enumerate(_OPENERS.finditer(stripped)):
        if tries >= MAX_CANDIDATES:
            break
        try:
            obj, _ = _DECODER.raw_decode(stripped, m.start())
        except (ValueError, RecursionError) as exc:
            if first_error is None:
                first_error = f"no valid JSON object or array: {_why(exc)}"
            continue
        return obj, "embedded"

    raise JSONExtractError(first_error or "no JSON object or array found")


def extract_json(text: str) -> Any:
    """Return the first JSON value in ``text`` (see the module docstring for the order).

    Raises :class:`JSONExtractError` when there is none.
    """
    return find_json(text)[0]
