"""Core value types: messages, requests, responses, usage, tiers and decisions.

Everything here is a frozen dataclass: cheap to build, safe to share between
tasks, and free of validation logic (pydantic validates only at the edges:
config files and wire schemas).

Token accounting follows the OpenAI convention: ``input_tokens`` counts the
whole prompt, and ``cached_input_tokens`` is the part of it served from the
provider's prompt cache (billed at the cached-input price instead).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Tier(enum.Enum):
    """How capable (and expensive) a model is. Code steps have no tier."""

    EFFICIENT = "efficient"
    STANDARD = "standard"
    FRONTIER = "frontier"

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]

    def up(self) -> Tier:
        """The next tier up ("when in doubt, route up"); frontier stays frontier."""
        return _TIERS[min(self.rank + 1, len(_TIERS) - 1)]

    def route_order(self) -> tuple[Tier, ...]:
        """Where to look for a model of this tier: the tier, the tiers above it (route
        up), then the ones below it from the top down."""
        above = _TIERS[self.rank :]
        return (*above, *reversed(_TIERS[: self.rank]))

    @classmethod
    def parse(cls, value: str) -> Tier:
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown tier {value!r} (expected one of: {names})") from None


_TIERS = (Tier.EFFICIENT, Tier.STANDARD, Tier.FRONTIER)
_TIER_RANK = {t: i for i, t in enumerate(_TIERS)}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        return cls("assistant", content)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request, independent of any provider's wire format.

    ``model`` is the provider's model id; the executor fills it in from the pool.
    ``tools``, ``tool_choice``, ``response_format`` and ``extra`` are passed
    through to OpenAI-compatible providers untouched. ``max_tokens_param`` is the
    name the cap goes out under: ``max_tokens`` (what every OpenAI-compatible server
    knows), or ``max_completion_tokens`` (OpenAI's current name; its reasoning models
    refuse ``max_tokens``), as the gateway's client sent it.
    """

    messages: tuple[Message, ...]
    model: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: Any = None
    response_format: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    max_tokens_param: MaxTokensParam = "max_tokens"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False
    """The provider reported no usage: these counts are turnout's estimate
    (:mod:`turnout.pricing.tokens`)."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class WireExtra:
    """What an upstream answer said that turnout does not read itself, by where it said
    it, so that the gateway can pass it on as it came (fields without a value left out).

    ``response``: top-level fields (``system_fingerprint``, ``service_tier``);
    ``choice``: fields of ``choices[0]`` (``logprobs``); ``message``: fields of its
    ``message``, or of a chunk's ``delta`` (``refusal``, ``annotations``); ``usage``:
    fields of ``usage`` besides the three counts (``completion_tokens_details``,
    ``prompt_tokens_details``)."""

    response: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    choice: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    message: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    usage: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def output_text(self) -> str:
        """The text of the message's own fields (a refusal, a reasoning): output too,
        when the output's tokens must be estimated."""
        return "".join(v for v in self.message.values() if isinstance(v, str))


NO_EXTRA = WireExtra()


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A finished answer. ``latency_s`` is wall time of the call; ``ttft_s`` the
    time to the first token when streamed (or measured by the provider). ``extra``:
    what the one upstream answer said besides (none for an answer made of several)."""

    content: str | None
    usage: Usage
    model: str
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    latency_s: float = 0.0
    ttft_s: float | None = None
    response_id: str | None = None
    extra: WireExtra = NO_EXTRA

    @property
    def text(self) -> str:
        return self.content or ""


# -- streaming -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text. ``extra``: what the upstream chunk it came in said
    besides (``logprobs``, ``system_fingerprint``...); a chunk that said only such things
    (a ``refusal`` delta) comes as a TextDelta with no text."""

    text: str
    extra: WireExtra = NO_EXTRA


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    extra: WireExtra = NO_EXTRA


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a stream: how it finished and what it consumed.

    ``ttft_s`` is the time from sending the request to the first delta, when the
    provider measured it. ``extra``: what the whole answer said besides (as
    :attr:`ChatResponse.extra`)."""

    finish_reason: str | None
    usage: Usage
    model: str
    response_id: str | None = None
    ttft_s: float | None = None
    extra: WireExtra = NO_EXTRA


StreamEvent = TextDelta | ToolCallDelta | StreamEnd


# -- routing ---------------------------------------------------------------------------

Strategy = Literal["single", "fallback", "cascade", "ensemble"]


@dataclass(frozen=True, slots=True)
class Annotation:
    """The written routing policy's vocabulary: ``[scope] [domain] [ambiguity]``."""

    scope: str | None = None
    domain: str | None = None
    ambiguity: str | None = None

    def as_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.scope is not None:
            out["scope"] = self.scope
        if self.domain is not None:
            out["domain"] = self.domain
        if self.ambiguity is not None:
            out["ambiguity"] = self.ambiguity
        return out


DEFAULT_REFUSALS = (
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "i cannot help",
    "i can't help",
    "i cannot assist",
    "i can't assist",
    "as an ai",
    "i'm unable to",
    "i am unable to",
)


@dataclass(frozen=True, slots=True)
class QualitySpec:
    """Answer-quality checks a cascade applies on top of the step's own checks."""

    min_chars: int = 0
    refusal_phrases: tuple[str, ...] = DEFAULT_REFUSALS
    code_block_when_asked: bool = True


EnsembleMode = Literal["auto", "vote", "first_passing", "judge"]


@dataclass(frozen=True, slots=True)
class EnsembleSpec:
    """How an ensemble picks one answer. ``auto`` votes when every answer is short
    (classification-like) and otherwise takes the first answer that passes the checks."""

    mode: EnsembleMode = "auto"
    judge: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy decided: which pool models, in what strategy, and why.

    Decisions are data: a policy never calls the network, so a decision can be
    replayed offline over recorded traces.
    """

    models: tuple[str, ...]
    reason: str
    policy: str
    strategy: Strategy = "single"
    variant: str | None = None
    system_prompt: str | None = None
    """A system prompt the policy wants sent with the request (``task_type``)."""
    temperature: float | None = None
    """A temperature the policy wants used (``task_type``)."""
    quality: QualitySpec | None = None
    """``cascade``: extra answer-quality checks before accepting a rung's answer."""
    ensemble: EnsembleSpec | None = None
    """``ensemble``: how one answer is chosen."""
    on_content_filter: str | None = None
    """``fallback``: the model to try when a provider refuses on content grounds."""
    allowed: frozenset[str] | None = None
    """The pool models the caller may use (a gateway key's ``models``; None: any): the
    executor picks nothing outside them, not even a fallback's larger window."""

    @property
    def model(self) -> str:
        """The first (or only) model of the decision."""
        return self.models[0]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict on a step's output."""

    name: str
    passed: bool
    detail: str = ""
    required: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "required": self.required,
        }
