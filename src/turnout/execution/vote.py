"""Choosing one answer from an ensemble: majority vote, or the first that passes.

Votes compare normalized answers (case, surrounding punctuation and white
space ignored; for short answers the first line only), so "Billing." and
"billing" are one vote. Ties go to the answer backed by the higher tier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from turnout.types import ChatResponse, Tier

_STRIP = re.compile(r"^[\W_]+|[\W_]+$")
SHORT_ANSWER_WORDS = 8


def normalize(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return _STRIP.sub("", " ".join(first.lower().split()))


def classification_like(texts: Sequence[str]) -> bool:
    """Short one-line answers: a vote makes sense."""
    return all(len(t.split()) <= SHORT_ANSWER_WORDS and "\n" not in t.strip() for t in texts)


@dataclass(frozen=True, slots=True)
class Ballot:
    model: str
    tier: Tier
    response: ChatResponse


@dataclass(frozen=True, slots=True)
class VoteResult:
    winner: Ballot
    votes: int
    total: int
    answer: str


def majority(ballots: Sequence[Ballot]) -> VoteResult:
    """The most common normalized answer; a tie goes to the highest tier backing it."""
    if not ballots:
        raise ValueError("no ballots")
    groups: dict[str, list[Ballot]] = {}
    for b in ballots:
        groups.setdefault(normalize(b.response.text), []).append(b)

    def key(item: tuple[str, list[Ballot]]) -> tuple[int, int, int]:
        _, backers = item
        best = max(b.tier.rank for b in backers)
        first = min(ballots.index(b) for b in backers)
        return (len(backers), best, -first)

    answer, backers = max(groups.items(), key=key)
    winner = max(backers, key=lambda b: b.tier.rank)
    return VoteResult(winner, len(backers), len(ballots), answer)
