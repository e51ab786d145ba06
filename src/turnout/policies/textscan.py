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

Speed (a decision's budget is 50 µs, and a gateway reads most prompts for the
first time): keywords are matched by a small compiled scanner,
``turnout.policies._wordscan`` (C, built when turnout is installed; about 2 µs
over a 1200-character window), which reads the text once, word by word, and
looks each word up in a hash table of the keywords' words, without making a
Python object per word. Where it was not built (no C compiler at install time),
where a keyword has letters beyond ASCII, or with ``TURNOUT_SCANNER=python`` in
the environment, the pure-Python engine below gives the same results, its
keyword matching about five times slower (a decision about twice as slow): the
text becomes UTF-8 bytes by one ``bytes.translate`` (see :func:`normalise` for
text beyond ASCII), which are split and intersected with a precomputed set of
words (about 40 ns a word); a multi-word keyword is only searched for (a
substring search in C) when its words occur. Python's regex engine would cost
several nanoseconds per character for a character class and tens for an
alternation of keywords. Long messages are scanned in a bounded window: the
first three quarters and the last quarter of ``scan_chars`` characters (where
instructions usually sit; the middle of a long prompt is mostly pasted
material), so a decision's cost does not grow with the prompt.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from turnout.types import Message

try:
    from turnout.policies import _wordscan
except ImportError:  # installed without a C compiler: the pure-Python engine
    COMPILED = False
else:
    COMPILED = True

_DROPPED = "'\"`*,.;:!?"
"""Dropped rather than turned into a word break (they sit at the edges of words)."""
_DROPPED_UNICODE = "\u2018\u2019\u201c\u201d\u00ab\u00bb"  # curly quotes, guillemets
_BREAKS_NON_ASCII = re.compile(r"[^\x00-\x7f\w]")
"""Characters beyond ASCII that are neither letters nor digits (``\\w`` is ``str.isalnum``
or ``_`` in a ``str`` pattern)."""

SCAN_CHARS = 1200
"""Default scan window: the first 900 and the last 300 characters of a message."""


def _byte_table() -> bytes:
    """ASCII letters and digits to lower case, other ASCII to a space; bytes of
    multi-byte UTF-8 characters (0x80 and up) are kept."""
    table = bytearray(b" " * 128) + bytearray(range(128, 256))
    for c in range(128):
        if chr(c).isalnum():
            table[c] = ord(chr(c).lower())
    return bytes(table)


_TABLE = _byte_table()
_DELETE = _DROPPED.encode()

_COMMON = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "into", "is", "it", "list", "make", "me", "my", "of", "on", "or",
    "our", "please", "show", "so", "tell", "that", "the", "this", "to", "us", "was", "we",
    "what", "when", "where", "which", "who", "why", "will", "with", "write", "you", "your",
))  # fmt: skip
"""Words too common to index a phrase by (a phrase is looked for when its key word occurs)."""


_ASCII = bytes(range(128))
_LOWERS_TO_ASCII = "\u0130\u212a"
"""The letters beyond ASCII whose lower case holds ASCII (İ -> i + a combining dot, the
Kelvin sign -> k); every other letter or digit lowers to letters and digits beyond
ASCII, and nothing else lowers to a letter or a digit (a unit test checks it)."""
_MATTERS_UNCASED = re.compile(rf"[^\x00-\x7f\w]|[{_LOWERS_TO_ASCII}]")
"""What changes the words of a text for keywords all in ASCII: characters beyond ASCII
that are neither letters nor digits, and the letters that lower to ASCII."""
_forms: dict[str, str] = {}
_FORMS_MAX = 4096


def _form(ch: str) -> str:
    """How ``ch`` reads in normalised text: lower case, a dropped character deleted,
    any other one that is neither a letter nor a digit a space (memoised)."""
    form = _forms.get(ch)
    if form is None:
        form = "".join(
            c if c.isalnum() else "" if c in _DROPPED or c in _DROPPED_UNICODE else " "
            for c in ch.lower()
        )
        if len(_forms) >= _FORMS_MAX:
            _forms.clear()
        _forms[ch] = form
    return form


def normalise(text: str, *, cased: bool = True) -> bytes:
    """``text`` as normalised UTF-8 bytes: its words separated by spaces (one or more),
    the words of ``[^\\W_]+`` over the lower-cased text with the dropped characters
    deleted.

    ASCII text costs one ``bytes.translate``. Other text is lower-cased as a whole
    and its distinct characters beyond ASCII that are neither letters nor digits,
    found by one regex, are deleted or replaced by a space before the translation:
    ``str.lower`` and the regex cost about 4 ns a character each.

    ``cased=False`` is for matching keywords that are all ASCII: then a word beyond
    ASCII never matches whatever its case, and only word boundaries matter (see
    ``_LOWERS_TO_ASCII``), so nothing is lower-cased but ASCII, and the regex only
    reads the characters beyond ASCII, taken from the UTF-8 bytes with one
    ``translate`` that deletes ASCII (a typical prompt has a few curly quotes and dashes,
    or a sentence in another script); each distinct one found is replaced in the
    ``str`` (``str.replace`` of one character by one costs about 0.2 µs on 1200
    characters, a deletion about 0.8 µs).
    """
    if text.isascii():
        return text.encode("ascii").translate(_TABLE, _DELETE)
    if not cased:
        beyond = text.encode("utf-8", "surrogatepass").translate(None, _ASCII)
        for ch in set(_MATTERS_UNCASED.findall(beyond.decode("utf-8", "surrogatepass"))):
            text = text.replace(ch, _form(ch))  # one character by one: a fast path in C
        return text.encode("utf-8").translate(_TABLE, _DELETE)
    low = text.lower()
    for ch in set(_BREAKS_NON_ASCII.findall(low)):  # also lone surrogates: no encode error
        low = low.replace(ch, "" if ch in _DROPPED_UNICODE else " ")
    return low.encode("utf-8").translate(_TABLE, _DELETE)


def words_of(text: str) -> list[str]:
    """The normalised words of ``text`` (the same words for ASCII and other text)."""
    return [w.decode("utf-8") for w in normalise(text).split()]


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


def _count_newlines(text: str) -> int:
    return text.count("\n")


count_newlines: Callable[[str], int] = _wordscan.count_newlines if COMPILED else _count_newlines
"""``text.count("\\n")``; compiled, about ten times faster on long text (0.3 µs for 8 KB)."""


def conversation_chars(messages: Sequence[Message]) -> int:
    """Characters of content over the whole conversation (system prompt included)."""
    return sum([len(m.content) for m in messages if m.content])


@functools.cache
def _warn_not_compiled() -> None:
    logging.getLogger(__name__).warning(
        "turnout's compiled keyword scanner was not built (no C compiler when turnout was "
        "installed): complexity and task_type use the pure-Python one, about twice as slow"
    )


def _fits_compiled(words: tuple[bytes, ...]) -> bool:
    """Whether the compiled scanner takes a keyword of these words (at most 32 words of
    at most 255 bytes each; longer ones go to the pure-Python engine)."""
    return len(words) <= 32 and max(map(len, words)) <= 255


_Phrase = tuple[bytes, int, str, frozenset[bytes]]
"""(normalised phrase between two spaces, offset of `` key `` in it, keyword, its words)."""


class KeywordSet:
    """Whole-word, case-insensitive keyword matching at C speed.

    :meth:`find` returns the keywords that occur, spelled as configured, each
    once (two spellings of the same words, such as ``trade-off`` and ``trade
    off``, are both reported).

    A phrase is indexed by its least common word (not a stop word, then the
    longest, then the last) and only searched for, as a substring of the
    normalised text, when that word and its other words that are not stop words
    all occur (they are in the index too, so the one set intersection tells); with
    two phrases or more on one word, only between the word's first and last
    occurrence. A substring search costs 0.5-1 µs over a 1200-character window, a
    look-up in the index a few tens of nanoseconds. In text beyond ASCII a
    phrase's words match whatever separates them (the text's words are joined by
    one space before the search), in ASCII text one separator apart.

    When every keyword is ASCII, text beyond ASCII is normalised with
    ``cased=False`` (see :func:`normalise`), and the compiled scanner does the
    whole search when it is there (see the module's notes). ``compiled``: None uses
    it where it can (and logs a warning once per process where it was not built);
    False never; True raises RuntimeError where it was not built. Either way a
    keyword beyond ASCII (or of more than 32 words) is matched in Python.
    """

    __slots__ = ("_cased", "_keys", "_matcher", "_order", "_phrased", "_phrases", "_singles")

    def __init__(self, keywords: Iterable[str], *, compiled: bool | None = None) -> None:
        singles: dict[bytes, list[str]] = {}
        phrases: dict[bytes, list[_Phrase]] = {}
        order: dict[str, int] = {}
        for kw in keywords:
            words = normalise(kw).split()
            if not words or kw in order:
                continue
            order[kw] = len(order)
            if len(words) == 1:
                singles.setdefault(words[0], []).append(kw)
                continue
            key = max(
                enumerate(words),
                key=lambda iw: (iw[1].decode() not in _COMMON, len(iw[1].decode()), iw[0]),
            )[1]
            phrase = b" " + b" ".join(words) + b" "
            at = phrase.find(b" " + key + b" ")
            rare = frozenset(w for w in words if w.decode() not in _COMMON)
            phrases.setdefault(key, []).append((phrase, at, kw, rare | {key}))
        self._order = order
        keys = {*singles, *(w for ps in phrases.values() for p in ps for w in p[3])}
        self._keys = frozenset(keys)
        self._cased = not all(w.isascii() for w in keys)
        """Whether a word beyond ASCII may match (then text is lower-cased in full)."""
        self._singles = {word: tuple(singles.get(word, ())) for word in keys}
        """word -> the one-word keywords it is (maybe none: a word of a phrase only)."""
        self._phrased = frozenset(phrases)
        self._phrases = {w: (tuple(ps), b" " + w + b" ") for w, ps in phrases.items()}
        """word -> (the phrases indexed by it, `` word ``)."""
        self._matcher: _wordscan.Matcher[str] | None = None
        if compiled is None:
            compiled = os.environ.get("TURNOUT_SCANNER", "") != "python"
            if compiled and not COMPILED:
                _warn_not_compiled()
                compiled = False
        if compiled:
            if not COMPILED:
                raise RuntimeError("turnout's compiled scanner was not built (no C compiler)")
            patterns = [tuple(normalise(kw).split()) for kw in order]
            if not self._cased and all(map(_fits_compiled, patterns)):
                self._matcher = _wordscan.Matcher(patterns, list(order))

    @property
    def compiled(self) -> bool:
        """Whether the compiled scanner does the matching."""
        return self._matcher is not None

    def __len__(self) -> int:
        return len(self._order)

    def find(self, text: str, *, ordered: bool = True) -> tuple[str, ...]:
        """The keywords found in ``text``, in the configured order unless ``ordered`` is
        false (the caller bounds the text's length with :func:`window`)."""
        if not text:
            return ()
        if self._matcher is not None:
            return self._matcher.find(text)  # always in the configured order
        norm = normalise(text, cased=self._cased)
        words = norm.split()
        hits = self._keys.intersection(words)  # no set of the text's words is built
        if not hits:
            return ()
        found: list[str] = []
        singles = self._singles
        for word in hits:
            found += singles[word]
        padded = b""
        for word in self._phrased.intersection(hits):
            phrases, key = self._phrases[word]
            live = [p for p in phrases if p[3] <= hits]  # every word of the phrase occurs
            if not live:
                continue
            if not padded:  # text that is not ASCII: its words one space apart
                padded = b" " + (norm if text.isascii() else b" ".join(words)) + b" "
            if len(live) == 1:
                if live[0][0] in padded:
                    found.append(live[0][2])
                continue
            # every occurrence of a phrase holds one of its key word: search in between
            first, last = padded.find(key), padded.rfind(key)
            for phrase, at, kw, _ in live:
                if padded.find(phrase, max(first - at, 0), last - at + len(phrase)) >= 0:
                    found.append(kw)
        if ordered and len(found) > 1:
            found.sort(key=self._order.__getitem__)
        return tuple(found)


_WHOLE_KEY_CHARS = 2048
"""Texts up to this length are their own memo key (hashing them costs under 0.5 µs)."""
_EDGE_CHARS = 48


class TextMemo:
    """A bounded memo of verdicts by prompt text (oldest entry evicted first).

    Identical prompts (retries, fallbacks, a bench's repeats, fan-out) are then
    scored once. A new prompt costs a look-up that does not grow with its length:
    a long text is keyed by its length and its first and last 48 characters (a new
    ``str`` has no cached hash, and hashing 8 KB costs about 2 µs), and a hit is
    only taken when the whole text is equal (a ``memcmp``), so texts that share
    that key merely displace each other. ``extra`` is part of the key (the
    ``complexity`` policy's conversation length). The insertion order is kept in a
    deque, so evicting costs O(1) (finding a dict's oldest key with ``next(iter(d))``
    walks over every slot deleted before it). A memo of size 0 remembers nothing
    but still pays the look-up.
    """

    __slots__ = ("_data", "_order", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._data: dict[Any, tuple[str, Any]] = {}
        self._order: deque[Any] = deque()
        self._size = size

    @staticmethod
    def _key(text: str, extra: int) -> Any:
        if len(text) <= _WHOLE_KEY_CHARS:
            return (text, extra) if extra else text
        return (len(text), text[:_EDGE_CHARS], text[-_EDGE_CHARS:], extra)

    def get(self, text: str, extra: int = 0) -> Any:
        """The value stored for ``text`` (and ``extra``), or None."""
        entry = self._data.get(self._key(text, extra))
        if entry is None or (entry[0] is not text and entry[0] != text):
            return None
        return entry[1]

    def put(self, text: str, value: Any, extra: int = 0) -> None:
        if self._size <= 0:
            return
        key = self._key(text, extra)
        data = self._data
        if key not in data:
            if len(data) >= self._size:
                del data[self._order.popleft()]
            self._order.append(key)
        data[key] = (text, value)
