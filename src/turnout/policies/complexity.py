"""``kind: complexity``: a heuristic score of the prompt, mapped to a tier.

::

    by_complexity:
      kind: complexity
      levels: {medium: 2, high: 5}               # score thresholds
      tiers: {low: efficient, medium: standard, high: frontier}
      models: {low: smol}                        # optional: name a model per level
      signals: {lines: {threshold: 50, weight: 2}}
      extra_keywords: [threat model]             # or keywords: [...] to replace the list
      within_tier: cheapest                      # or: prefer: [model, model]

The score looks at the **last user message** and at the length of the whole
conversation. Each signal adds its weight when its value reaches its threshold
(``weight: 0`` switches a signal off):

=====================  ==========  ======  ==========================================
signal                 threshold   weight  value
=====================  ==========  ======  ==========================================
tokens                 300         1       approximate tokens (characters / 4)
long_tokens            1500        2       the same, a second step for long prompts
code_blocks            1           2       fenced code blocks (```)
questions              3           1       question marks (in the scan window)
lines                  30          1       lines
conversation_tokens    8000        1       approximate tokens of every message
=====================  ==========  ======  ==========================================

Keywords add ``keyword_weight`` (2) each, for at most ``max_keywords`` (3)
distinct ones; low-signal keywords ("summarize", "classify", "extract",
"translate", "yes or no", ...) add ``low_keyword_weight`` (-2) each, for at most
``max_low_keywords`` (2). Keywords are whole words, case-insensitive (see
:mod:`turnout.policies.textscan`), looked for in the first 900 and last 300
characters of the message (``scan_chars: 1200``; 0 scans everything), and so
are question marks; the other counts cover the whole message.

A score of ``levels.high`` or more is high, ``levels.medium`` or more medium,
else low. The reason names the score and every signal that fired, e.g.
``complexity: high (score 7: keyword:architect, code_blocks=2, lines=48) -> frontier -> opus``.
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
    conversation_chars,
    count_newlines,
    last_user_text,
    window,
)
from turnout.policies.tiers import Choice, TierChooser, prefer_list, within_tier_speed
from turnout.types import Decision, Tier

LEVELS = ("low", "medium", "high")

DEFAULT_KEYWORDS: tuple[str, ...] = (
    "analyze", "analyse", "analysis", "design", "compare", "comparison", "refactor",
    "architect", "architecture", "trade-off", "trade-offs", "tradeoff", "tradeoffs", "prove",
    "proof", "optimize", "optimise", "optimization", "debug", "plan", "evaluate", "derive",
    "migrate", "migration", "concurrency", "race condition", "scalability", "threat model",
    "root cause", "step by step", "edge cases", "algorithm", "invariant", "distributed",
)  # fmt: skip

DEFAULT_LOW_KEYWORDS: tuple[str, ...] = (
    "summarize", "summarise", "classify", "categorize", "extract", "translate", "yes or no",
    "true or false", "rephrase", "reformat", "fix typos", "spell check", "one word", "tldr",
)  # fmt: skip

DEFAULT_SIGNALS: Mapping[str, tuple[int, int]] = {
    "tokens": (300, 1),
    "long_tokens": (1500, 2),
    "code_blocks": (1, 2),
    "questions": (3, 1),
    "lines": (30, 1),
    "conversation_tokens": (8000, 1),
}
"""signal -> (threshold, weight)."""

DEFAULT_TIERS: Mapping[str, Tier] = {
    "low": Tier.EFFICIENT,
    "medium": Tier.STANDARD,
    "high": Tier.FRONTIER,
}


@dataclass(frozen=True, slots=True)
class Signal:
    """Adds ``weight`` to the score when its value reaches ``threshold`` (weight 0: off)."""

    threshold: int
    weight: int


@dataclass(frozen=True, slots=True)
class Score:
    """The classifier's verdict, kept apart from the routing decision (replayable)."""

    level: str
    score: int
    fired: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.level} (score {self.score}: {', '.join(self.fired) or 'no signals'})"


_NEVER = 1 << 62


def _approx_tokens(chars: int) -> int:
    return (chars + 3) // 4


_FENCE = re.compile("```")


def code_fences(text: str) -> int:
    """``text.count("```")``, in about half the time: none without a backtick (one
    ``memchr``), else the regex engine's scan for a literal, from the first backtick
    (``str.count`` of a three-character needle costs about 0.7 ns a character)."""
    first = text.find("`")
    return 0 if first < 0 else len(_FENCE.findall(text, first))


class ComplexityPolicy:
    """Scores the prompt; low / medium / high go to a tier (or a named model)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        signals: Mapping[str, Signal] | None = None,
        keywords: Sequence[str] = DEFAULT_KEYWORDS,
        low_keywords: Sequence[str] = DEFAULT_LOW_KEYWORDS,
        keyword_weight: int = 2,
        max_keywords: int = 3,
        low_keyword_weight: int = -2,
        max_low_keywords: int = 2,
        medium: int = 2,
        high: int = 5,
        tiers: Mapping[str, Tier] | None = None,
        models: Mapping[str, str] | None = None,
        prefer: Sequence[str] = (),
        fallback: bool = False,
        fastest: FastestRule | None = None,
        scan_chars: int = SCAN_CHARS,
    ) -> None:
        self.name = name
        merged = {k: Signal(*v) for k, v in DEFAULT_SIGNALS.items()}
        merged.update(signals or {})
        # (threshold, weight); a signal of weight 0 gets a threshold nothing reaches
        self._tokens, self._long, self._code, self._questions, self._lines, self._conv = (
            (sig.threshold if sig.weight else _NEVER, sig.weight)
            for sig in (merged[k] for k in DEFAULT_SIGNALS)
        )
        self._kw = (keyword_weight, max_keywords, frozenset(keywords))
        self._low_kw = (low_keyword_weight, max_low_keywords, frozenset(low_keywords))
        scanned = [*(keywords if keyword_weight and max_keywords else ())]
        scanned += low_keywords if low_keyword_weight and max_low_keywords else ()
        self._keywords = KeywordSet(scanned)  # one pass over the text for both lists
        self._medium, self._high = medium, high
        self._tiers = {**DEFAULT_TIERS, **(tiers or {})}
        self._models = {level: settings.model(m).name for level, m in (models or {}).items()}
        self._scan = scan_chars
        self._memo = TextMemo()
        self._chooser = TierChooser(settings, prefer=prefer, fallback=fallback, fastest=fastest)

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> ComplexityPolicy:
        signals: dict[str, Signal] = {}
        for key, cfg in (options.get("signals") or {}).items():
            if cfg is None:
                continue
            threshold, weight = DEFAULT_SIGNALS[key]
            t, w = cfg.get("threshold"), cfg.get("weight")
            signals[key] = Signal(
                threshold if t is None else int(t), weight if w is None else int(w)
            )
        keywords = options.get("keywords")
        low = options.get("low_keywords")
        levels = options.get("levels") or {}
        return cls(
            name,
            settings,
            signals=signals,
            keywords=[
                *(DEFAULT_KEYWORDS if keywords is None else keywords),
                *(options.get("extra_keywords") or ()),
            ],
            low_keywords=[
                *(DEFAULT_LOW_KEYWORDS if low is None else low),
                *(options.get("extra_low_keywords") or ()),
            ],
            keyword_weight=int(options.get("keyword_weight", 2)),
            max_keywords=int(options.get("max_keywords", 3)),
            low_keyword_weight=int(options.get("low_keyword_weight", -2)),
            max_low_keywords=int(options.get("max_low_keywords", 2)),
            medium=int(levels.get("medium", 2)),
            high=int(levels.get("high", 5)),
            tiers={k: Tier.parse(v) for k, v in (options.get("tiers") or {}).items() if v},
            models={k: str(v) for k, v in (options.get("models") or {}).items() if v},
            prefer=prefer_list(options),
            fallback=bool(options.get("fallback")),
            fastest=within_tier_speed(options),
            scan_chars=int(options.get("scan_chars", SCAN_CHARS)),
        )

    def score(self, ctx: RequestContext) -> Score:
        """Score the last user message (pure; no routing). Memoised by the text (and
        the conversation's length when that is a signal)."""
        messages = ctx.messages
        text = last_user_text(messages)
        conv = conversation_chars(messages) if self._conv[1] else 0
        known = self._memo.get(text, conv)
        if known is not None:
            return known  # type: ignore[no-any-return]
        verdict = self._score(text, conv)
        self._memo.put(text, verdict, conv)
        return verdict

    def _score(self, text: str, conversation: int) -> Score:
        """The verdict for ``text``; ``conversation`` is the conversation's length in
        characters (only read when that signal is on)."""
        total = 0
        fired: list[str] = []
        tokens = _approx_tokens(len(text))
        threshold, weight = self._tokens
        long_threshold, long_weight = self._long
        if tokens >= threshold or tokens >= long_threshold:
            long = tokens >= long_threshold
            total += (weight if tokens >= threshold else 0) + (long_weight if long else 0)
            fired.append(f"tokens~{tokens} (long)" if long else f"tokens~{tokens}")
        if text:
            threshold, weight = self._code
            blocks = (code_fences(text) + 1) // 2
            if blocks >= threshold:
                total += weight
                fired.append(f"code_blocks={blocks}")
            scanned = window(text, self._scan)
            threshold, weight = self._questions
            questions = scanned.count("?")
            if questions >= threshold:
                total += weight
                fired.append(f"questions={questions}")
            threshold, weight = self._lines
            lines = count_newlines(text) + 1
            if lines >= threshold:
                total += weight
                fired.append(f"lines={lines}")
            found = self._keywords.find(scanned) if self._keywords else ()
            if found:
                weight, cap, high = self._kw
                for kw in [k for k in found if k in high][:cap]:
                    total += weight
                    fired.append(f"keyword:{kw}")
                weight, cap, low = self._low_kw
                for kw in [k for k in found if k in low][:cap]:
                    total += weight
                    fired.append(f"low-keyword:{kw}")
        threshold, weight = self._conv
        if weight:
            conv = _approx_tokens(conversation)
            if conv >= threshold:
                total += weight
                fired.append(f"conversation_tokens~{conv}")
        level = "high" if total >= self._high else "medium" if total >= self._medium else "low"
        return Score(level, total, tuple(fired))

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        verdict = self.score(ctx)
        named = self._models.get(verdict.level)
        choice: Choice
        if named is not None:
            choice = self._chooser.named(named, health)
        else:
            choice = self._chooser.choose(self._tiers[verdict.level], health, ctx)
        return Decision(
            choice.models,
            f"complexity: {verdict.describe()} -> {choice.describe()}",
            self.name,
            choice.strategy,
        )
