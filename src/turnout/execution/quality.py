"""Answer-quality checks a cascade applies before accepting a cheap model's answer.

These complement a step's own checks: an answer that is too short, that
refuses or says it does not know, or that has no code block where code was
asked for, is escalated to the next rung.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from turnout.types import ChatRequest, ChatResponse, QualitySpec

_CODE_NOUN = (
    r"(?:code|function|method|class|script|program|snippet|patch|diff|regex|sql|query"
    r"|unit tests?|module)"
)
_CODE_ASK = re.compile(
    r"```"  # code in the question
    r"|\b(?:implement|refactor)\b"
    # a verb asking for a code noun, in one clause: "write a Python function", not
    # "write a reply" nor "classify this ticket"
    r"|\b(?:write|create|add|fix|generate|give me|show me)\b[^.?!\n]{0,40}?\b" + _CODE_NOUN + r"\b"
    r"|\bin (?:python|javascript|typescript|rust|go|java|kotlin|swift|ruby|php|bash|c\+\+|c#|sql)"
    r"(?![\w+#])",
    re.IGNORECASE,
)
_CODE_BLOCK = re.compile(r"```|^( {4}|\t)\S", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class QualityCheck:
    spec: QualitySpec
    refusal: re.Pattern[str] | None

    @classmethod
    def build(cls, spec: QualitySpec) -> QualityCheck:
        phrases = [re.escape(p.lower()) for p in spec.refusal_phrases if p.strip()]
        pattern = re.compile("|".join(phrases), re.IGNORECASE) if phrases else None
        return cls(spec, pattern)

    def verdict(self, request: ChatRequest, response: ChatResponse) -> str | None:
        """None when the answer is acceptable, else why it is not."""
        text = response.text.strip()
        if self.spec.min_chars and len(text) < self.spec.min_chars:
            return f"answer shorter than {self.spec.min_chars} characters ({len(text)})"
        if self.refusal is not None:
            m = self.refusal.search(text[:600])
            if m:
                return f"answer refuses or does not know ({m.group(0)!r})"
        if self.spec.code_block_when_asked and not _CODE_BLOCK.search(text):
            asked = " ".join(m.content or "" for m in request.messages if m.role == "user")
            if _CODE_ASK.search(asked):
                return "code was asked for but the answer has no code block"
        return None
