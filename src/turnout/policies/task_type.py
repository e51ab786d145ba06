"""``kind: task_type``: detect what the prompt asks for, apply that type's route.

::

    by_task:
      kind: task_type
      types:
        code:        {model: qwen, system: "You are a careful engineer.", temperature: 0.2}
        translation: {model: smol, temperature: 0.3}
        creative:    {tier: frontier, temperature: 0.9}
      default: {tier: standard}
      keywords: {creative: [villanelle]}        # more strong keywords for a type

Types: code, creative, analysis, translation, math, extraction, classification
and chat. The **last user message** is read (keywords in its first 900 and
last 300 characters, ``scan_chars: 1200``; see :mod:`turnout.policies.textscan`
for the matching rules). Every type has strong keywords (weight 3: "write a
function", "translate", "solve", "extract", "classify", "poem", "analyze",
...) and weak ones (weight 1: "python", "json", "sentiment", "character",
...), plus structural signals: a code fence (3) or code punctuation such as ``=>``,
``();``, ``==``, ``#include`` (2) for code, digits around an operator (``17 * 23``,
``3x + 7 = 22``) for math (3); punctuation and arithmetic are looked for in the
first 600 characters, and only when there is no code fence. Each distinct signal counts once;
the type with the highest score wins, ties going to the earlier of code,
translation, math, extraction, classification, creative, analysis. Below
``min_score`` (3) the prompt is chat.

Each type's ``model`` (or ``tier``: chosen inside the tier as in ``rules``),
``system`` and ``temperature`` fall back field by field to ``default``
(whose own default is ``{tier: standard}``). The decision carries the system
prompt and temperature (``Decision.system_prompt`` / ``Decision.temperature``)
for the executor to apply. The reason names the signals, e.g.
``task_type: translation (matched 'translate', 'into german') -> smol, temperature 0.3``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.policies.speed import FastestRule
from turnout.policies.textscan import (
    SCAN_CHARS,
    KeywordSet,
    TextMemo,
    last_user_text,
    window,
)
from turnout.policies.tiers import Choice, TierChooser, prefer_list, within_tier_speed
from turnout.types import Decision, Tier

TYPES = ("code", "translation", "math", "extraction", "classification", "creative", "analysis")
"""Detected types in tie-break order; anything below ``min_score`` is ``chat``."""
ALL_TYPES = (*TYPES, "chat")

STRONG, WEAK = 3, 1

_LANGUAGES = (
    "english", "french", "german", "spanish", "italian", "portuguese", "dutch", "russian",
    "chinese", "mandarin", "japanese", "korean", "arabic", "hindi", "turkish", "polish",
    "swedish", "norwegian", "danish", "finnish", "greek", "hebrew", "ukrainian", "vietnamese",
)  # fmt: skip

KEYWORDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (strong keywords, weak keywords)
    "code": (
        ("write a function", "write a python function", "write a script", "write a program",
         "write code", "write a class", "write a method", "write a unit test",
         "write unit tests", "write tests", "implement", "refactor", "debug", "fix the bug",
         "fix this bug", "stack trace", "traceback", "compile error", "syntax error", "segfault",
         "code review", "pull request", "regex", "regular expression", "sql query", "unit test",
         "unit tests", "function that", "code snippet", "source code", "bash script",
         "shell script", "python script", "dockerfile"),
        ("function", "code", "python", "javascript", "typescript", "java", "rust", "golang",
         "sql", "bash", "api", "endpoint", "bug", "exception", "variable", "class", "method",
         "algorithm", "script", "compile", "repository", "git", "html", "css", "react",
         "django", "kubernetes", "docker", "library", "npm", "pip", "def", "elif", "lambda",
         "async", "await", "const", "struct", "enum", "println", "printf", "console log",
         "public static", "nullptr", "stderr", "stdout"),
    ),
    "translation": (
        ("translate", "translation", "translated", "translating", "how do you say",
         "how do i say"),
        tuple(f"{prep} {lang}" for lang in _LANGUAGES for prep in ("into", "to", "in")),
    ),
    "math": (
        ("solve", "equation", "equations", "integral", "derivative", "differentiate",
         "prove that", "theorem", "calculate", "compute the", "simplify", "factorize",
         "square root", "probability", "arithmetic", "algebra", "calculus", "matrix",
         "eigenvalues", "how much is", "what is the sum", "percent of", "percentage of"),
        ("sum", "product", "percent", "average", "mean", "median", "ratio", "formula",
         "integrate", "compute", "number", "numbers"),
    ),
    "extraction": (
        ("extract", "extraction", "pull out", "list all the", "find all the", "named entities",
         "from the following text", "from this text", "from the text",
         "key fields", "parse the", "fill in the fields"),
        ("json", "fields", "names", "dates", "emails", "email addresses", "phone numbers",
         "addresses", "entities", "as json", "table", "csv", "invoice", "receipt"),
    ),
    "classification": (
        ("classify", "classification", "categorize", "categorise", "categorization",
         "which category", "which label", "label this", "sentiment", "is this spam",
         "spam or not", "positive or negative", "positive negative or neutral", "intent",
         "yes or no", "true or false", "one of the following categories"),
        ("category", "categories", "label", "positive", "negative", "neutral", "spam", "toxic",
         "priority", "urgent", "tag"),
    ),
    "creative": (
        ("poem", "poetry", "haiku", "limerick", "sonnet", "story", "short story", "fairy tale",
         "fable", "lyrics", "song", "screenplay", "novel", "fiction", "slogan", "tagline",
         "jingle", "verse", "rhyme", "once upon a time", "joke", "bedtime story"),
        ("creative", "imaginative", "whimsical", "character", "characters", "plot",
         "narrative", "metaphor", "in the style of", "funny"),
    ),
    "analysis": (
        ("analyze", "analyse", "analysis", "compare", "comparison", "contrast",
         "pros and cons", "evaluate", "evaluation", "assess", "assessment", "critique",
         "trade-off", "trade-offs", "tradeoff", "tradeoffs", "root cause", "implications",
         "swot", "differences between", "what are the differences", "strengths and weaknesses"),
        ("why", "review", "insights", "trends", "impact", "strengths", "weaknesses", "risks",
         "explain"),
    ),
}  # fmt: skip

# Punctuation that prose rarely has; words such as def, await or println are weak
# keywords instead. One regex whose alternatives start with literals, so the engine
# skips quickly over text without their first characters.
_CODE_SYNTAX = re.compile(r"=>|\(\);|\};|</|#include|!=|==|&&|\|\|")
_STRUCTURE_SCAN = 600
"""Code punctuation and arithmetic are looked for in the first 600 characters."""
_CODE, _MATH = ALL_TYPES.index("code"), ALL_TYPES.index("math")

# An operator between numbers: "17 * 23", "3x + 7 = 22", "2^10", "10 / 4" (- and / need
# spaces, so dates and ranges do not count). It starts with the operator, so the regex
# engine skips quickly over text without one.
_ARITHMETIC = re.compile(
    r"[-+*/^×÷=]"
    r"(?:(?<=[+*^×÷=])(?:(?<=\d.)|(?<=\d\s.)|(?<=\d[a-zA-Z].)|(?<=\d[a-zA-Z]\s.))\s*\(?\d"
    r"|(?<=[-/])(?<=\d\s.)\s+\d)[\d.,]*"
)
_LEFT_OPERAND = re.compile(r"[\d.,]*\d[a-zA-Z]?\s?$")


def _class_table() -> bytes:
    """Latin-1 byte -> class: ``0`` a digit (or ``?``, which also stands for any
    character beyond Latin-1, possibly a digit), ``+`` an operator, ``(`` the first
    character of code punctuation, ``=`` both; anything else a space."""
    table = bytearray(b" " * 256)
    for group, cls in ((b"0123456789?", b"0"), ("-+*/^×÷".encode("latin-1"), b"+")):
        for c in group:
            table[c] = cls[0]
    for c in b"(}<#!&|":
        table[c] = ord("(")
    table[ord("=")] = ord("=")
    return bytes(table)


_CLASSES = _class_table()
_PREFILTER_CHARS = 160
"""Below this length the two regexes cost less than finding where they can start."""


def _first(classes: bytes, a: bytes, b: bytes, start: int) -> int:
    i, j = classes.find(a, start), classes.find(b, start)
    return i if j < 0 or 0 <= i < j else j


def _structure_starts(text: str) -> tuple[int, int]:
    """Where a match of ``_CODE_SYNTAX`` and of ``_ARITHMETIC`` can start at the
    earliest (-1: nowhere) in the first 600 characters, from one ``bytes.translate``
    and a few ``memchr``: the regex engine tests each character against a class in
    about 5 ns, and prose has long runs with neither code punctuation nor digits.

    Code punctuation starts with one of ``= ( } < # ! & |``; an arithmetic match
    starts with an operator that comes after a digit (its look-behinds need one).
    Searching from there finds what a search from 0 finds: a look-behind still sees
    the characters before the start position.
    """
    classes = text[:_STRUCTURE_SCAN].encode("latin-1", "replace").translate(_CLASSES)
    digit = classes.find(b"0")
    return _first(classes, b"(", b"=", 0), -1 if digit < 0 else _first(classes, b"+", b"=", digit)


def _expression(text: str, m: re.Match[str]) -> str:
    """The matched operator with its operands, for the reason."""
    left = _LEFT_OPERAND.search(text, max(0, m.start() - 16), m.start())
    start = left.start() if left else m.start()
    return " ".join(text[start : m.end()].split())


@dataclass(frozen=True, slots=True)
class Target:
    """Where a type goes and how it is asked."""

    model: str | None = None
    tier: Tier | None = None
    system: str | None = None
    temperature: float | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Target:
        raw = raw or {}
        tier = raw.get("tier")
        return cls(
            raw.get("model"),
            Tier.parse(tier) if tier else None,
            raw.get("system"),
            raw.get("temperature"),
        )

    def over(self, base: Target) -> Target:
        """This target with ``base`` filling what it leaves out (model and tier go together)."""
        routed = self.model is not None or self.tier is not None
        return Target(
            self.model if routed else base.model,
            self.tier if routed else base.tier,
            self.system if self.system is not None else base.system,
            self.temperature if self.temperature is not None else base.temperature,
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """The detector's verdict, kept apart from routing (replayable offline)."""

    task: str
    score: int
    matched: tuple[str, ...]

    def describe(self) -> str:
        if not self.matched:
            return f"{self.task} (no clear signal)"
        return f"{self.task} (matched {', '.join(self.matched)})"


_CHAT = Detection("chat", 0, ())


class TaskTypePolicy:
    """Detects the task type of the last user message and applies that type's route."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        types: Mapping[str, Target] | None = None,
        default: Target | None = None,
        keywords: Mapping[str, Sequence[str]] | None = None,
        min_score: int = 3,
        scan_chars: int = SCAN_CHARS,
        prefer: Sequence[str] = (),
        fallback: bool = False,
        fastest: FastestRule | None = None,
    ) -> None:
        self.name = name
        base = default or Target()
        if base.model is None and base.tier is None:
            base = Target(None, Tier.STANDARD, base.system, base.temperature)
        configured = dict(types or {})
        self._configured = frozenset(configured)
        self._targets = {t: configured.get(t, Target()).over(base) for t in ALL_TYPES}
        for target in self._targets.values():
            if target.model is not None:
                settings.model(target.model)  # an unknown model is a ConfigError now
        weights: dict[str, dict[int, int]] = {}  # keyword -> {type index: weight}
        for i, task in enumerate(ALL_TYPES):
            strong, weak = KEYWORDS.get(task, ((), ()))
            extra = tuple((keywords or {}).get(task, ()))
            for kw, w in [*((k, STRONG) for k in (*strong, *extra)), *((k, WEAK) for k in weak)]:
                per_type = weights.setdefault(kw, {})
                per_type[i] = max(w, per_type.get(i, 0))
        self._weights = {kw: tuple(ws.items()) for kw, ws in weights.items()}
        self._keywords = KeywordSet(weights)
        # per type: keyword -> its sort key and label in the reason, looked up in C
        self._labels = [
            {
                kw: (-ws[i], rank, f"'{kw}'")
                for rank, (kw, ws) in enumerate(weights.items())
                if i in ws
            }
            for i in range(len(ALL_TYPES))
        ]
        self._rank_after = len(weights)  # structural signals sort after keywords of their weight
        self._suffixes = {t: self._suffix(t, target) for t, target in self._targets.items()}
        self._min = min_score
        self._scan = scan_chars
        self._memo = TextMemo()
        self._chooser = TierChooser(settings, prefer=prefer, fallback=fallback, fastest=fastest)

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> TaskTypePolicy:
        return cls(
            name,
            settings,
            types={
                t: Target.parse(v) for t, v in (options.get("types") or {}).items() if v is not None
            },
            default=Target.parse(options.get("default")),
            keywords=options.get("keywords") or {},
            min_score=int(options.get("min_score", 3)),
            scan_chars=int(options.get("scan_chars", SCAN_CHARS)),
            prefer=prefer_list(options),
            fallback=bool(options.get("fallback")),
            fastest=within_tier_speed(options),
        )

    def detect(self, ctx: RequestContext) -> Detection:
        """Which task type the last user message is (pure; no routing; memoised by text)."""
        message = last_user_text(ctx.messages)
        known = self._memo.get(message)
        if known is not None:
            return known  # type: ignore[no-any-return]
        found = self._detect(message)
        self._memo.put(message, found)
        return found

    def _detect(self, message: str) -> Detection:
        """The verdict for ``message``. Its cost is :meth:`KeywordSet.find` over the
        window (about 2 µs compiled, 10 µs in pure Python) and the structural regexes,
        which start where a match can start (see
        :func:`_structure_starts`); labels and their order come from per-type dicts
        built once."""
        text = window(message, self._scan)
        if not text:
            return _CHAT
        scores = [0] * len(ALL_TYPES)
        weights = self._weights
        found = self._keywords.find(text, ordered=False)
        for kw in found:
            for i, w in weights[kw]:
                scores[i] += w
        structural: list[tuple[int, int, str]] = []
        if "`" in text and "```" in text:  # memchr first
            structural.append((_CODE, 3, "code fence"))
        else:
            code_at, arithmetic_at = (
                _structure_starts(text) if len(text) > _PREFILTER_CHARS else (0, 0)
            )
            if code_at >= 0:
                syntax = _CODE_SYNTAX.search(text, code_at, _STRUCTURE_SCAN)
                if syntax is not None:
                    structural.append((_CODE, 2, f"code syntax {syntax.group(0)!r}"))
            # not in code (full of operators); near the start, where a question's sum is
            if arithmetic_at >= 0:
                m = _ARITHMETIC.search(text, arithmetic_at, _STRUCTURE_SCAN)
                if m is not None:
                    structural.append((_MATH, 3, f"arithmetic {_expression(text, m)!r}"))
        for i, w, _ in structural:
            scores[i] += w
        top = max(scores)
        if top < self._min:
            return _CHAT
        best = scores.index(top)  # ties: the earlier type
        labels = [*filter(None, map(self._labels[best].get, found))]
        labels += [(-w, self._rank_after, label) for i, w, label in structural if i == best]
        labels.sort()
        return Detection(ALL_TYPES[best], top, tuple([lb[2] for lb in labels[:3]]))

    def _suffix(self, task: str, target: Target) -> tuple[str, str]:
        """What the reason says after the detection and after the model, for ``task``."""
        route = "" if task in self._configured else " -> default"
        extras = ""
        if target.temperature is not None:
            extras += f", temperature {target.temperature:g}"
        if target.system is not None:
            extras += ", with system prompt"
        return route, extras

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        found = self.detect(ctx)
        target = self._targets[found.task]
        choice: Choice
        if target.model is not None:
            choice = self._chooser.named(target.model, health)
        else:
            choice = self._chooser.choose(target.tier or Tier.STANDARD, health, ctx)
        route, extras = self._suffixes[found.task]
        return Decision(
            choice.models,
            f"task_type: {found.describe()}{route} -> {choice.text}{extras}",
            self.name,
            choice.strategy,
            system_prompt=target.system,
            temperature=target.temperature,
        )
