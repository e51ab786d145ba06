"""Text signals: normalisation, keyword matching and the memo, against plain reference
implementations of the documented rules (slow, obviously right) on generated text."""

from __future__ import annotations

import copy
import importlib
import logging
import pickle
import random
import re
import sys

import pytest

from turnout.policies import textscan
from turnout.policies.textscan import (
    _LOWERS_TO_ASCII,
    COMPILED,
    KeywordSet,
    TextMemo,
    count_newlines,
    normalise,
    window,
)

DROPPED = "'\"`*,.;:!?\u2018\u2019\u201c\u201d\u00ab\u00bb"
BEYOND = "Σσςİ\u212aǅßẞ\u0307’‘“”«»—–…\u00a0\u2003é€™①²Ⅻ٣ﬁ🙏\ud800\udfffКлиентыЕС先月、。ÀÉÎÕÜ"


def reference_words(text: str) -> list[str]:
    """The rule as first written: ``[^\\W_]+`` over the lower-cased text, dropped
    characters deleted."""
    low = text.lower().translate({ord(c): None for c in DROPPED})
    return re.findall(r"[^\W_]+", low)


def reference_spaced(text: str) -> str:
    """The normalised text with its separators (one space for each), ASCII only."""
    assert text.isascii()
    return "".join(c.lower() if c.isalnum() else "" if c in DROPPED else " " for c in text)


def generated(rng: random.Random, n: int, beyond: float) -> str:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < beyond / 2:
            out.append(rng.choice(BEYOND))
        elif r < beyond:
            out.append(chr(rng.randint(128, sys.maxunicode)))
        else:
            out.append(rng.choice("abcXYZ 019\n\t-_/'\".,;:!?*`=()"))
    return "".join(out)


needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="the compiled scanner was not built (test_the_compiled_scanner_is_built)"
)
ENGINES = [
    pytest.param(True, id="compiled", marks=needs_compiled),
    pytest.param(False, id="python"),
]


def words(data: bytes) -> list[str]:
    return [w.decode("utf-8") for w in data.split()]


@pytest.mark.parametrize("seed", range(2))
def test_normalise_gives_the_words_of_the_rule(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        text = generated(rng, rng.choice([3, 20, 200, 1300]), rng.choice([0.0, 0.05, 0.6]))
        assert words(normalise(text)) == reference_words(text), text


@pytest.mark.parametrize("seed", range(2))
def test_uncased_normalise_keeps_every_ascii_word_and_boundary(seed: int) -> None:
    """``cased=False`` may leave letters beyond ASCII in upper case, nothing else."""
    rng = random.Random(seed)
    for _ in range(500):
        text = generated(rng, rng.choice([3, 20, 200, 1300]), rng.choice([0.05, 0.6]))
        exact = [w if w.isascii() else None for w in words(normalise(text))]
        uncased = [w if w.isascii() else None for w in words(normalise(text, cased=False))]
        assert uncased == exact, text


def test_only_the_listed_letters_lower_to_ascii() -> None:
    """What ``cased=False`` relies on, for the Unicode data of this Python."""
    for c in map(chr, range(128, sys.maxunicode + 1)):
        low = c.lower()
        if low == c:
            continue
        if c.isalnum():
            beyond_only = all(x.isalnum() and not x.isascii() for x in low)
            assert beyond_only or c in _LOWERS_TO_ASCII, hex(ord(c))
        else:
            assert not any(x.isalnum() for x in low), hex(ord(c))


def reference_find(keywords: list[str], text: str) -> list[str]:
    """Each keyword whose words occur in that order: one separator apart in ASCII
    text, whatever separates them in other text."""
    if text.isascii():
        spaced = f" {reference_spaced(text)} "
    else:
        spaced = f" {' '.join(reference_words(text))} "
    found: list[str] = []
    for kw in keywords:
        kw_words = reference_words(kw)
        if not kw_words or kw in found:
            continue
        if len(kw_words) == 1:
            hit = kw_words[0] in reference_words(text)
        else:
            hit = f" {' '.join(kw_words)} " in spaced
        if hit:
            found.append(kw)
    return found


VOCABULARY = [
    "design", "trade-off", "trade off", "yes or no", "step by step", "into german",
    "in german", "to german", "write a function", "function", "function that", "a b",
    "b a", "x", "1 + 1", "c++", "from the text", "text", "the", "Design", "ünïcode",
    "straße", "σας", "i", "how do i say", "", "!!",
]  # fmt: skip
TEXT_WORDS = [
    "design", "trade", "off", "yes", "or", "no", "step", "by", "into", "in", "to", "german",
    "write", "a", "function", "that", "b", "x", "1", "c", "from", "the", "text", "DESIGN",
    "ünïcode", "STRASSE", "straße", "ΣΑΣ", "I", "how", "do", "say",
]  # fmt: skip
SEPARATORS = [" ", "  ", ", ", " - ", "-", "\n", "’", "—", "“", "**", "'", "/", "\u00a0", ". "]


@pytest.mark.parametrize("compiled", ENGINES)
@pytest.mark.parametrize("seed", range(2))
def test_find_matches_the_reference(seed: int, compiled: bool) -> None:
    rng = random.Random(seed)
    for _ in range(800):
        keywords = rng.sample(VOCABULARY, rng.randint(1, 12))
        if rng.random() < 0.5:
            keywords = [k for k in keywords if k.isascii()]  # the uncased path
        parts = []
        for _ in range(rng.randint(0, 40)):
            parts += [rng.choice(TEXT_WORDS), rng.choice(SEPARATORS)]
        text = "".join(parts)
        kws = KeywordSet(keywords, compiled=compiled)
        assert kws.compiled == (compiled and all(k.isascii() for k in keywords))
        expected = reference_find(keywords, text)
        assert list(kws.find(text)) == expected, (keywords, text)
        assert sorted(kws.find(text, ordered=False)) == sorted(expected)


@pytest.mark.parametrize("compiled", ENGINES)
def test_phrases_in_text_beyond_ascii(compiled: bool) -> None:
    kws = KeywordSet(["trade-offs", "into german"], compiled=compiled)
    assert kws.find("Weigh the “trade—offs” and translate it into — German") == (
        "trade-offs",
        "into german",
    )
    assert kws.find("Weigh the trade - offs, into - German") == ()  # ASCII: one separator


def test_the_compiled_scanner_is_built() -> None:
    """The development install (``make setup``) builds it; without a C compiler turnout
    runs on the pure-Python engine, and this test says so."""
    assert COMPILED, "turnout.policies._wordscan was not built: install gcc, then make setup"
    assert KeywordSet(["design"]).compiled
    assert not KeywordSet(["straße"]).compiled  # a keyword beyond ASCII: the Python engine


def test_without_the_compiled_scanner_the_python_one_runs_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(textscan, "COMPILED", False)
    textscan._warn_not_compiled.cache_clear()
    with caplog.at_level(logging.WARNING, logger="turnout.policies.textscan"):
        first, second = KeywordSet(["design"]), KeywordSet(["plan"])
    assert not first.compiled
    assert not second.compiled
    assert first.find("DESIGN it") == ("design",)
    assert [r.getMessage() for r in caplog.records] == [  # once per process
        "turnout's compiled keyword scanner was not built (no C compiler when turnout was "
        "installed): complexity and task_type use the pure-Python one, about twice as slow"
    ]
    with pytest.raises(RuntimeError, match="not built"):
        KeywordSet(["design"], compiled=True)
    textscan._warn_not_compiled.cache_clear()


def test_the_environment_can_turn_the_compiled_scanner_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TURNOUT_SCANNER", "python")
    kws = KeywordSet(["design", "trade-off"])
    assert not kws.compiled
    assert kws.find("Design the trade-off") == ("design", "trade-off")


@needs_compiled
@pytest.mark.parametrize("seed", range(3))
def test_compiled_and_python_engines_agree_on_any_text(seed: int) -> None:
    """Random text of every width (Latin-1, two-byte and four-byte strings, lone
    surrogates, the letters that lower to ASCII) with keywords planted in it."""
    rng = random.Random(seed)
    keywords = [k for k in VOCABULARY if k.isascii()] + ["k", "i", "dot i", "ok", "it"]
    compiled, python = KeywordSet(keywords), KeywordSet(keywords, compiled=False)
    assert compiled.compiled
    assert not python.compiled
    for _ in range(1500):
        parts = []
        for _ in range(rng.randint(0, 30)):
            if rng.random() < 0.6:
                parts.append(rng.choice([*TEXT_WORDS, "\u0130t", "o\u212a", "dot \u0130"]))
            parts.append(
                generated(rng, rng.randint(1, 3), rng.choice([0.0, 0.3]))
                if rng.random() < 0.3
                else rng.choice(SEPARATORS)
            )
        text = "".join(parts)
        assert compiled.find(text) == python.find(text), text
        assert compiled.find(text) == tuple(reference_find(keywords, text)), text


@needs_compiled
def test_compiled_scanner_reads_long_words_and_many_keywords() -> None:
    """Words longer than its buffer never match; more than 256 keywords (a heap table
    of hits); a keyword's words at the start and the end of the text."""
    keywords = [f"w{i}" for i in range(400)] + ["x y", "y x z"]
    kws = KeywordSet(keywords)
    assert kws.compiled
    text = "x y " + "a" * 600 + " w399 w7 " + "b" * 300 + " w1 " + "y x z"
    assert kws.find(text) == ("w1", "w7", "w399", "x y", "y x z")
    assert kws.find("w" + "1" * 400) == ()


@needs_compiled
def test_compiled_scanner_with_many_phrases_on_one_word() -> None:
    """Phrases are looked up by their last two words, so 2000 phrases ending in "the"
    cost nothing where "the" follows none of their other words."""
    keywords = [f"w{i} the" for i in range(2000)] + ["a w7 the", "the the"]
    kws = KeywordSet(keywords)
    text = "the " * 50 + "w1999 the, w5 - the w7 the a w7 the"
    expected = ("w7 the", "w1999 the", "a w7 the", "the the")
    assert kws.find(text) == expected
    assert KeywordSet(keywords, compiled=False).find(text) == expected


@pytest.mark.parametrize("compiled", ENGINES)
def test_keyword_sets_copy_and_pickle(compiled: bool) -> None:
    """Policies holding them can be deep-copied or sent to another process."""
    kws = KeywordSet(["trade-off", "design", "yes or no"], compiled=compiled)
    text = "Design: yes, or no? A trade off."
    for other in (copy.deepcopy(kws), pickle.loads(pickle.dumps(kws))):
        assert other.compiled == compiled
        assert other.find(text) == kws.find(text) == ("trade-off", "design", "yes or no")


@needs_compiled
def test_compiled_matcher_refuses_what_it_cannot_match() -> None:
    _wordscan = importlib.import_module("turnout.policies._wordscan")
    with pytest.raises(ValueError, match="lower-case ASCII"):
        _wordscan.Matcher([(b"Design",)], ["Design"])
    with pytest.raises(ValueError, match="lower-case ASCII"):
        _wordscan.Matcher([(b"a\x00b",)], ["nul"])
    with pytest.raises(ValueError, match="1 to 32 words"):
        _wordscan.Matcher([()], ["nothing"])
    with pytest.raises(ValueError, match="more than 255 bytes"):
        _wordscan.Matcher([(b"a" * 256,)], ["long"])
    with pytest.raises(ValueError, match="one label per pattern"):
        _wordscan.Matcher([(b"a",)], [])
    with pytest.raises(TypeError):
        _wordscan.Matcher([(b"a",)], ["a"]).find(b"a")
    matcher = _wordscan.Matcher([(b"a",)], ["a"])
    with pytest.raises(RuntimeError, match="already initialised"):
        matcher.__init__([(b"b",)], ["b"])
    with pytest.raises(RuntimeError, match="not initialised"):
        _wordscan.Matcher.__new__(_wordscan.Matcher).find("a")
    # what the compiled scanner refuses, the Python engine takes
    assert not KeywordSet(["a " * 33]).compiled
    assert KeywordSet(["a " * 33]).find("a " * 40) == ("a " * 33,)


@pytest.mark.parametrize(
    "text", ["", "\n", "a\nb", "x" * 9000 + "\n" * 300, "é\n" * 700, "€\n" * 700, "🙏\n" * 700]
)
def test_count_newlines(text: str) -> None:
    assert count_newlines(text) == text.count("\n")


def test_window_is_head_and_tail() -> None:
    text = "a" * 1000 + "b" * 1000
    assert window(text, 1200) == "a" * 900 + "\n" + "b" * 300
    assert window(text, 0) is text
    assert window("short", 1200) == "short"


def test_memo_tells_long_texts_with_the_same_edges_apart() -> None:
    memo = TextMemo(8)
    head, tail = "h" * 100, "t" * 100
    one, two = head + "x" * 3000 + tail, head + "y" * 3000 + tail
    memo.put(one, 1)
    assert memo.get(one) == 1
    assert memo.get(two) is None  # same length and edges, other text
    assert memo.get("".join([head, "x" * 3000, tail])) == 1  # an equal copy
    memo.put(two, 2)
    assert (memo.get(one), memo.get(two)) == (None, 2)  # they share a slot
    memo.put(one, 3, extra=7)
    assert (memo.get(one, 7), memo.get(one), memo.get(two)) == (3, None, 2)


def test_memo_evicts_in_insertion_order_and_updates_in_place() -> None:
    memo = TextMemo(3)
    for i, text in enumerate(["a", "b", "c"]):
        memo.put(text, i)
    memo.put("a", 9)  # an update keeps its place
    memo.put("d", 3)
    assert [memo.get(t) for t in "abcd"] == [None, 1, 2, 3]
    memo.put("e", 4)
    assert [memo.get(t) for t in "bcde"] == [None, 2, 3, 4]
