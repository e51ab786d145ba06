"""What a router reads of a prompt: one row of numbers per request.

A row is, in this order:

1. the prompt's **MiniLM embedding** (384 numbers) from the semantic cache's offline
   all-MiniLM-L6-v2 package, of its first ``embed_tokens`` tokens: by default
   (``all-MiniLM-L6-v2/static``) the mean of the model's word-piece vectors
   (:mod:`turnout.learn.static_embed`, about 0.1 ms), or the contextual sentence
   embedding of :class:`~turnout.execution.cache.embedding.MiniLMEmbedder`
   (``all-MiniLM-L6-v2``: six transformer layers, milliseconds per prompt, which
   grow with the tokens read);
2. cheap **text signals** (:data:`TEXT_SIGNALS`): length, lines, code fences,
   question marks, digits, numbers, and the keyword scanner's hits
   (:mod:`turnout.policies.textscan`) for the ``complexity`` keywords and each
   ``task_type`` type's strong keywords;
3. **categorical** one-hots for ``step``, ``workflow``, the annotation's keys and
   each tag, for the values seen in training (a value not seen is all zeros);
   absent when the outcomes had none.

The text read is the last user message. :class:`Featurizer` keeps the rows of
recent texts (bounded), so a repeated prompt is not embedded twice.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from turnout.policies.base import RequestContext
from turnout.policies.textscan import KeywordSet, last_user_text, window

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from turnout.execution.cache.embedding import MiniLMEmbedder
    from turnout.learn.outcomes import Outcome
    from turnout.learn.static_embed import StaticMiniLM

    F64 = NDArray[np.float64]

EMBED_DIM = 384
EMBEDDING = "all-MiniLM-L6-v2"
STATIC = "all-MiniLM-L6-v2/static"
EMBEDDINGS = (STATIC, EMBEDDING)
"""``static``: the model's word-piece vectors averaged (:mod:`turnout.learn.static_embed`,
about 0.1 ms); the full name: the contextual sentence embedding (milliseconds)."""
_NO_TAGS: Mapping[str, str] = MappingProxyType({})

TEXT_SIGNALS = (
    "log_chars", "log_words", "log_lines", "code_fences", "questions", "digit_share",
    "log_numbers", "upper_share", "mean_word_len", "hard_keywords", "easy_keywords",
    "kw_code", "kw_translation", "kw_math", "kw_extraction", "kw_classification",
    "kw_creative", "kw_analysis",
)  # fmt: skip
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DIGIT = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z]")
SIGNAL_CHARS = 1200
"""Shares, numbers and keywords are read in the scanner's window (the first 900 and the
last 300 characters), so a signal's cost does not grow with the prompt."""


@dataclass(frozen=True, slots=True)
class Item:
    """The part of a request a router reads."""

    text: str
    step: str | None = None
    workflow: str | None = None
    annotation: Mapping[str, str] = field(default_factory=lambda: _NO_TAGS)
    tags: Mapping[str, str] = field(default_factory=lambda: _NO_TAGS)

    @classmethod
    def of_context(cls, ctx: RequestContext) -> Item:
        ann = ctx.annotation.as_dict() if ctx.annotation is not None else _NO_TAGS
        return cls(last_user_text(ctx.messages), ctx.step_id, ctx.workflow, ann, ctx.tags)

    @classmethod
    def of_outcome(cls, o: Outcome) -> Item:
        return cls(o.text, o.step, o.workflow, o.annotation, o.tags)

    def field_value(self, name: str) -> str | None:
        """``step``, ``workflow``, ``annotation.KEY`` or ``tag.KEY``."""
        if name == "step":
            return self.step
        if name == "workflow":
            return self.workflow
        kind, _, key = name.partition(".")
        source = self.annotation if kind == "annotation" else self.tags
        return source.get(key)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which features a router reads; stored in the router file."""

    embedding: str | None = STATIC
    """One of :data:`EMBEDDINGS`, or None for no embedding."""
    embed_tokens: int = 256
    text: tuple[str, ...] = TEXT_SIGNALS
    categorical: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(field, values seen in training)."""

    @property
    def width(self) -> int:
        return (
            (EMBED_DIM if self.embedding else 0)
            + len(self.text)
            + sum(len(v) for _, v in self.categorical)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "embedding": self.embedding,
            "embed_tokens": self.embed_tokens,
            "text": list(self.text),
            "categorical": {name: list(values) for name, values in self.categorical},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FeatureSpec:
        embedding = raw.get("embedding")
        if embedding is not None and embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {embedding!r}")
        text = tuple(raw.get("text") or ())
        unknown = [t for t in text if t not in TEXT_SIGNALS]
        if unknown:
            raise ValueError(f"unknown text signal {unknown[0]!r}")
        cats = raw.get("categorical") or {}
        return cls(
            embedding=embedding,
            embed_tokens=int(raw.get("embed_tokens", 256)),
            text=text,
            categorical=tuple((str(k), tuple(str(v) for v in vs)) for k, vs in cats.items()),
        )


def categorical_fields(
    items: Sequence[Item], max_values: int = 30
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The categorical fields present in ``items`` and their most common values."""
    counts: dict[str, dict[str, int]] = {}
    for it in items:
        names = ["step", "workflow"]
        names += [f"annotation.{k}" for k in it.annotation]
        names += [f"tag.{k}" for k in it.tags]
        for name in names:
            value = it.field_value(name)
            if value is not None:
                seen = counts.setdefault(name, {})
                seen[value] = seen.get(value, 0) + 1
    out = []
    for name in sorted(counts):
        ranked = sorted(counts[name].items(), key=lambda kv: (-kv[1], kv[0]))[:max_values]
        out.append((name, tuple(sorted(v for v, _ in ranked))))
    return tuple(out)


class _Keywords:
    """The scanner's keyword sets, built once per process on first use."""

    sets: tuple[KeywordSet, ...] | None = None

    @classmethod
    def get(cls) -> tuple[KeywordSet, ...]:
        if cls.sets is None:
            from turnout.policies.complexity import DEFAULT_KEYWORDS, DEFAULT_LOW_KEYWORDS
            from turnout.policies.task_type import KEYWORDS, TYPES

            groups = [DEFAULT_KEYWORDS, DEFAULT_LOW_KEYWORDS, *(KEYWORDS[t][0] for t in TYPES)]
            cls.sets = tuple(KeywordSet(g) for g in groups)
        return cls.sets


def text_signals(text: str) -> list[float]:
    """:data:`TEXT_SIGNALS` of one text."""
    chars = len(text)
    scanned = window(text, SIGNAL_CHARS)
    n = max(len(scanned), 1)
    words = scanned.split()
    hits = [float(len(k.find(scanned, ordered=False))) for k in _Keywords.get()]
    return [
        math.log1p(chars),
        math.log1p(text.count(" ") + 1),
        math.log1p(text.count("\n")),
        float(text.count("```") // 2),
        float(min(text.count("?"), 10)),
        len(_DIGIT.findall(scanned)) / n,
        math.log1p(len(_NUMBER.findall(scanned))),
        len(_UPPER.findall(scanned)) / n,
        (sum(map(len, words)) / len(words)) if words else 0.0,
        *hits,
    ]


class Featurizer:
    """Rows of features for requests, per a :class:`FeatureSpec`.

    The embedder is made on first use (``threads`` cores); rows of the last
    ``cache_size`` texts are kept, so a repeated prompt costs a dictionary look-up.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        *,
        embedder: MiniLMEmbedder | StaticMiniLM | None = None,
        threads: int | None = 1,
        cache_size: int = 4096,
    ) -> None:
        self.spec = spec
        self._embedder = embedder
        self._threads = threads
        self._cache: OrderedDict[str, F64] = OrderedDict()
        self._cache_size = cache_size
        self._text_index = [TEXT_SIGNALS.index(t) for t in spec.text]

    @property
    def embedder(self) -> MiniLMEmbedder | StaticMiniLM:
        if self._embedder is None:
            if self.spec.embedding == STATIC:
                from turnout.learn.static_embed import StaticMiniLM

                self._embedder = StaticMiniLM(max_tokens=self.spec.embed_tokens)
            else:
                from turnout.execution.cache.embedding import MiniLMEmbedder

                self._embedder = MiniLMEmbedder(
                    max_seq_length=self.spec.embed_tokens, threads=self._threads
                )
        return self._embedder

    def _text_rows(self, texts: Sequence[str]) -> F64:
        """Embedding and text signals of each text (the part that depends on text alone)."""
        parts: list[F64] = []
        if self.spec.embedding:
            parts.append(self.embedder.embed(list(texts)).astype(np.float64))
        if self.spec.text:
            sig = np.array([text_signals(t) for t in texts], dtype=np.float64)
            parts.append(sig[:, self._text_index])
        if not parts:
            return np.zeros((len(texts), 0))
        return np.hstack(parts)

    def _categorical(self, item: Item) -> F64:
        out: list[float] = []
        for name, values in self.spec.categorical:
            v = item.field_value(name)
            out.extend(1.0 if v == value else 0.0 for value in values)
        return np.asarray(out, dtype=np.float64)

    def row(self, item: Item) -> F64:
        """One request's row (text part cached)."""
        text_part = self._cache.get(item.text)
        if text_part is None:
            text_part = self._text_rows([item.text])[0]
            self._cache[item.text] = text_part
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(item.text)
        if not self.spec.categorical:
            return text_part
        return np.concatenate((text_part, self._categorical(item)))

    def matrix(self, items: Sequence[Item], batch: int = 64) -> F64:
        """Rows for many requests (texts embedded once each, in batches)."""
        texts = list(dict.fromkeys(it.text for it in items))
        index = {t: i for i, t in enumerate(texts)}
        chunks = [self._text_rows(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        by_text = np.vstack(chunks) if chunks else np.zeros((0, self.spec.width))
        rows = by_text[[index[it.text] for it in items]]
        if self.spec.categorical:
            rows = np.hstack([rows, np.vstack([self._categorical(it) for it in items])])
        return rows
