r"""Fast text signals for the prompt-reading policies (``complexity``, ``task_type``).

Keywords are matched as whole words, case-insensitively, after one
normalisation of both the keyword and the text: lower case; quotes, ``*``,
backticks and the punctuation that ends a word (``, . ; : ! ?``) are dropped;
every other character that is not a letter or a digit (spaces, line breaks,
brackets, ``- / _ + =`` ...) separates words. So ``trade-off`` matches
"trade-off", "trade off" and "Trade-Off", ``write a function`` matches "Write
a **function**:", ``yes or no`` matches "yes, or no?" and ``console.log``
matches "console.log(x)". A keyword of several words matches those words in
that order, one separator apart.

Speed: Python's regex engine costs on the order of 100 ns per character for an
alternation of keywords, far too slow for a decision budget of 50 µs. Instead
the text is normalised by one ``bytes.translate`` (ASCII text; other text goes
through one precompiled ``[^\W_]+`` pattern), split, and intersected with a
precomputed set; a multi-word keyword is only searched for (a substring search
in C) when its least common word occurs. Long messages are scanned in a bounded
window: the first three quarters and the last quarter of ``scan_chars``
characters (where instructions usually sit; the middle of a long prompt is
mostly pasted material), so a decision's cost does not grow with the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from turnout.types import Message

_DROPPED = "'\"`*,.;:!?"
"""Dropped rather than turned into a word break (they sit at the edges of words)."""
_DROPPED_UNICODE = "\u2018\u2019\u201c\u201d\u00ab\u00bb"  # curly quotes, guillemets
_WORD = re.compile(r"[^\W_]+")

SCAN_CHARS = 1200
"""Default scan window: the first 900 and the last 300 characters of a message."""


def _ascii_table() -> bytes:
    table = bytearray(b" " * 256)
    for c in range(128):
        if chr(c).isalnum():
            table[c] = ord(chr(c).lower())
    return bytes(table)


_TABLE = _ascii_table()
_DELETE = _DROPPED.encode()
_DELETE_MAP = {ord(c): None for c in _DROPPED + _DROPPED_UNICODE}

_COMMON = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "into", "is", "it", "list", "make", "me", "my", "of", "on", "or",
    "our", "please", "show", "so", "tell", "that", "the", "this", "to", "us", "was", "we",
    "what", "when", "where", "which", "who", "why", "will", "with", "write", "you", "your",
))  # fmt: skip
"""Words too common to index a phrase by (a phrase is looked for when its key word occurs)."""


def _normalise_ascii(text: str) -> bytes:
    return text.encode("ascii").translate(_TABLE, _DELETE)


def words_of(text: str) -> list[str]:
    """The normalised words of ``text`` (the same words for ASCII and other text)."""
    if text.isascii():
        return _normalise_ascii(text).decode("ascii").split()
    return _WORD.findall(text.lower().translate(_DELETE_MAP))


def window(text: str, scan_chars: int) -> str:
    """``text`` itself, or its first 3/4 and last 1/4 of ``scan_chars`` characters."""
    if scan_chars <= 0 or len(text) <= scan_chars:
        return text
    head = scan_chars * 3 // 4
    return f"{text[:head]}\n{text[len(text) - (scan_chars - head) :]}"


def last_user_text(messages: Sequence[Message]) -> str:
    """The content of the last user message ("" when there is none)."""
    for m in reversed(messages):
        if m.role == "user":
            return m.content or ""
    return ""


def conversation_chars(messages: Sequence[Message]) -> int:
    """Characters of content over the whole conversation (system prompt included)."""
    return sum(len(m.content) for m in messages if m.content)


_Phrase = tuple[Any, str]
"""(padded normalised phrase, keyword), in bytes or str."""
_Entry = tuple[tuple[str, ...], tuple[_Phrase, ...]]
"""(single-word keywords, phrases indexed by this word)."""


class _Index:
    """word -> entry, for bytes (ASCII text) or str words."""

    __slots__ = ("entries", "keys")

    def __init__(self, entries: dict[Any, _Entry]) -> None:
        self.entries = entries
        self.keys = frozenset(entries)

    def find(self, words: list[Any], padded: Any) -> list[str]:
        """``padded`` is the normalised text between two spaces, or None to join ``words``."""
        found: list[str] = []
        for word in self.keys.intersection(words):  # no set of the text's words is built
            singles, phrases = self.entries[word]
            found += singles
            if phrases:
                if padded is None:
                    padded = " " + " ".join(words) + " "
                found += [kw for phrase, kw in phrases if phrase in padded]
        return found


class KeywordSet:
    """Whole-word, case-insensitive keyword matching at C speed.

    :meth:`find` returns the keywords that occur, spelled as configured, each
    once (two spellings of the same words, such as ``trade-off`` and ``trade
    off``, are both reported).

    A phrase is indexed by its least common word (not a stop word, then the
    longest, then the last) and only searched for, as a substring of the
    normalised text, when that word occurs.
    """

    __slots__ = ("_ascii", "_order", "_unicode")

    def __init__(self, keywords: Iterable[str]) -> None:
        singles: dict[str, list[str]] = {}
        phrases: dict[str, list[_Phrase]] = {}
        order: dict[str, int] = {}
        for kw in keywords:
            words = words_of(kw)
            if not words or kw in order:
                continue
            order[kw] = len(order)
            if len(words) == 1:
                singles.setdefault(words[0], []).append(kw)
                continue
            key = max(enumerate(words), key=lambda iw: (iw[1] not in _COMMON, len(iw[1]), iw[0]))[1]
            phrases.setdefault(key, []).append((f" {' '.join(words)} ", kw))
        self._order = order
        uni: dict[Any, _Entry] = {}
        asc: dict[Any, _Entry] = {}
        for word in {*singles, *phrases}:
            entry = (tuple(singles.get(word, ())), tuple(phrases.get(word, ())))
            uni[word] = entry
            if word.isascii():
                ascii_phrases = tuple((p.encode(), kw) for p, kw in entry[1] if p.isascii())
                asc[word.encode()] = (entry[0], ascii_phrases)
        self._unicode = _Index(uni)
        self._ascii = _Index(asc)

    def __len__(self) -> int:
        return len(self._order)

    def find(self, text: str, *, ordered: bool = True) -> tuple[str, ...]:
        """The keywords found in ``text``, in the configured order unless ``ordered`` is
        false (the caller bounds the text's length with :func:`window`)."""
        if not text:
            return ()
        if text.isascii():
            padded = b" " + _normalise_ascii(text) + b" "
            found = self._ascii.find(padded.split(), padded)
        else:
            found = self._unicode.find(words_of(text), None)
        if ordered and len(found) > 1:
            found.sort(key=self._order.__getitem__)
        return tuple(found)


class TextMemo:
    """A bounded memo of verdicts by prompt text (oldest entry evicted first).

    Identical prompts (retries, fallbacks, a bench's repeats, fan-out) are then
    scored once; a new prompt costs one hash of its text (C speed) more.
    """

    __slots__ = ("_data", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._data: dict[Any, Any] = {}
        self._size = size

    def get(self, key: Any) -> Any:
        return self._data.get(key)

    def put(self, key: Any, value: Any) -> None:
        data = self._data
        if self._size <= 0:
            return
        if len(data) >= self._size:
            del data[next(iter(data))]
        data[key] = value
