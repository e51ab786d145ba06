"""Keep API keys out of errors, logs, traces and reprs.

:func:`redact` scrubs known secret values (and anything shaped like a bearer
token or an ``sk-`` key) from text; run it *before* truncating, so a key cut in
half by the truncation cannot survive as a fragment. :class:`Secret` holds a key
so that ``repr()``, ``vars()`` and debuggers show ``Secret('***')`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values ("EMPTY", "x") are placeholders, not keys

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPED = re.compile(r"\b(?:sk|gsk|xai|pk|rk)[-_][A-Za-z0-9_-]{16,}")


class Secret:
    """A secret string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def redact(text: str, secrets: Iterable[str | Secret | None] = ()) -> str:
    """``text`` with every secret value, bearer token and key-shaped string replaced."""
    values = [s.reveal() if isinstance(s, Secret) else s for s in secrets]
    for value in sorted((v for v in values if v and len(v) >= MIN_SECRET_LENGTH), key=len)[::-1]:
        text = text.replace(value, REDACTED)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _KEY_SHAPED.sub(REDACTED, text)


def truncate(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
