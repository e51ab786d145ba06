"""The options schemas of the built-in policy kinds (each kind validates its own options:
see :mod:`turnout.config.kinds`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from turnout.config.schema import _Strict


class StaticPolicySchema(_Strict):
    model: str


class PerStepPolicySchema(_Strict):
    default: str
    steps: dict[str, str] = Field(default_factory=dict)


# -- rules, complexity, task_type ---------------------------------------------------------

TierName = Literal["efficient", "standard", "frontier"]

ANNOTATION_VOCABULARY: Mapping[str, tuple[str, ...]] = {
    "scope": ("single-file", "multi-file", "cross-service"),
    "domain": ("docs", "config", "tests", "feature", "security", "schema", "refactor"),
    "ambiguity": ("low", "medium", "high"),
}
"""The written routing policy's annotation vocabulary (``vocabulary:`` extends it per policy)."""


class VocabularySchema(_Strict):
    """Values a policy adds to the annotation vocabulary, per key. Any other key
    declares a tag that conditions may match (``context: [ci, local]``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    scope: list[str] = Field(default_factory=list)
    domain: list[str] = Field(default_factory=list)
    ambiguity: list[str] = Field(default_factory=list)

    @field_validator("scope", "domain", "ambiguity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return _lower_values(value)

    @model_validator(mode="before")
    @classmethod
    def _tags(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if key in ANNOTATION_VOCABULARY:
                    continue
                values = [value] if isinstance(value, str) else value
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise ValueError(f"{key}: expected a list of tag values")
            return {k: _lower_values(v) for k, v in data.items()}
        return data


def _lower_values(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, list):
        return [v.strip().lower() if isinstance(v, str) else v for v in value]
    return value


class WhenSchema(_Strict):
    """Annotation conditions: each key matches one value or any of a list. Other keys
    match tags, and must be declared in the policy's ``vocabulary``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    scope: str | list[str] | None = None
    domain: str | list[str] | None = None
    ambiguity: str | list[str] | None = None

    @field_validator("scope", "domain", "ambiguity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return _lower_values(value)

    @model_validator(mode="before")
    @classmethod
    def _lower_tags(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                ok = isinstance(value, str) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)
                )
                if key not in ANNOTATION_VOCABULARY and not ok:
                    raise ValueError(f"{key}: expected a value or a list of values")
            return {k: _lower_values(v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> WhenSchema:
        given = self.model_dump(exclude_none=True)
        if not given:
            raise ValueError("needs at least one of scope, domain, ambiguity or a tag")
        for key, value in given.items():
            if value == []:
                raise ValueError(f"{key}: an empty list never matches")
        return self


class RuleSchema(_Strict):
    when: WhenSchema
    tier: TierName


class PreferSchema(_Strict):
    prefer: list[str] = Field(min_length=1)


class SpeedRuleSchema(_Strict):
    """How ``fastest`` ranks by observed speed (see :mod:`turnout.policies.speed`)."""

    metric: Literal["ttft", "per_token", "total"] = "ttft"
    explore: float = Field(default=0.05, ge=0, le=1)
    min_samples: int = Field(default=3, ge=0)
    stale_s: PositiveFloat = 300.0
    default_tokens: PositiveInt = 256


class _WithinTierSchema(_Strict):
    """How a model is chosen inside a tier: cheapest healthy, a preference order, or the
    fastest by observed speed (tuned by ``fastest:``)."""

    within_tier: Literal["cheapest", "prefer", "fastest"] | PreferSchema | None = None
    prefer: list[str] | None = None
    fallback: bool = False
    fastest: SpeedRuleSchema | None = None

    @field_validator("within_tier", mode="before")
    @classmethod
    def _within_tier(cls, value: Any) -> Any:
        if value is None or value in ("cheapest", "prefer", "fastest") or isinstance(value, dict):
            return value
        raise ValueError(
            f"expected cheapest, prefer, fastest or {{prefer: [model, ...]}}, got {value!r}"
        )

    @model_validator(mode="after")
    def _one_rule(self) -> _WithinTierSchema:
        w, prefer = self.within_tier, self.prefer
        if self.fastest is not None and w != "fastest":
            raise ValueError("fastest: options are given but within_tier is not fastest")
        if w == "fastest" and prefer:
            raise ValueError("within_tier is fastest but a prefer list is given")
        if isinstance(w, PreferSchema) and prefer is not None:
            raise ValueError("give prefer either at the top or under within_tier, not both")
        if w == "cheapest" and prefer:
            raise ValueError("within_tier is cheapest but a prefer list is given")
        if w == "prefer" and not prefer:
            raise ValueError("within_tier is prefer but no prefer list is given")
        return self


class RulesPolicySchema(_WithinTierSchema):
    must_stay_frontier: list[WhenSchema] = Field(default_factory=list)
    rules: list[RuleSchema] = Field(default_factory=list)
    default: TierName = "standard"
    vocabulary: VocabularySchema = Field(default_factory=VocabularySchema)

    @model_validator(mode="after")
    def _known_values(self) -> RulesPolicySchema:
        extra = self.vocabulary.model_dump()
        known = {k: {*vs, *extra.get(k, [])} for k, vs in ANNOTATION_VOCABULARY.items()}
        known.update({k: set(v) for k, v in extra.items() if k not in ANNOTATION_VOCABULARY})
        conditions = [
            (f"must_stay_frontier[{i}]", w) for i, w in enumerate(self.must_stay_frontier)
        ]
        conditions += [(f"rules[{i}].when", r.when) for i, r in enumerate(self.rules)]
        for where, when in conditions:
            for key, value in when.model_dump(exclude_none=True).items():
                if key not in known:
                    raise ValueError(
                        f"{where}: unknown key {key!r} (annotation keys: scope, domain, "
                        f"ambiguity; declare a tag under vocabulary.{key} to match it)"
                    )
                for v in [value] if isinstance(value, str) else value:
                    if v not in known[key]:
                        names = ", ".join(sorted(known[key]))
                        raise ValueError(
                            f"{where}.{key}: unknown value {v!r} (known: {names}; "
                            f"add it under vocabulary.{key} to extend)"
                        )
        return self


class PerLevelTierSchema(_Strict):
    low: TierName | None = None
    medium: TierName | None = None
    high: TierName | None = None


class PerLevelModelSchema(_Strict):
    low: str | None = None
    medium: str | None = None
    high: str | None = None


class SignalSchema(_Strict):
    """One complexity signal: it adds ``weight`` when its value reaches ``threshold``."""

    threshold: int | None = Field(default=None, ge=0)
    weight: int | None = None


class ComplexitySignalsSchema(_Strict):
    tokens: SignalSchema | None = None
    long_tokens: SignalSchema | None = None
    code_blocks: SignalSchema | None = None
    questions: SignalSchema | None = None
    lines: SignalSchema | None = None
    conversation_tokens: SignalSchema | None = None


class LevelsSchema(_Strict):
    """Score thresholds: ``medium`` and above is medium, ``high`` and above is high."""

    medium: int = 2
    high: int = 5

    @model_validator(mode="after")
    def _ordered(self) -> LevelsSchema:
        if self.medium >= self.high:
            raise ValueError("medium must be below high")
        return self


class ComplexityPolicySchema(_WithinTierSchema):
    signals: ComplexitySignalsSchema = Field(default_factory=ComplexitySignalsSchema)
    keywords: list[str] | None = None
    extra_keywords: list[str] = Field(default_factory=list)
    low_keywords: list[str] | None = None
    extra_low_keywords: list[str] = Field(default_factory=list)
    keyword_weight: int = 2
    max_keywords: int = Field(default=3, ge=0)
    low_keyword_weight: int = -2
    max_low_keywords: int = Field(default=2, ge=0)
    levels: LevelsSchema = Field(default_factory=LevelsSchema)
    tiers: PerLevelTierSchema = Field(default_factory=PerLevelTierSchema)
    models: PerLevelModelSchema = Field(default_factory=PerLevelModelSchema)
    scan_chars: int = Field(default=1200, ge=0)


class TaskTargetSchema(_Strict):
    """Where a task type goes (a model or a tier) and how it is asked."""

    model: str | None = None
    tier: TierName | None = None
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)

    @model_validator(mode="after")
    def _model_or_tier(self) -> TaskTargetSchema:
        if self.model is not None and self.tier is not None:
            raise ValueError("give either model or tier, not both")
        return self


class TaskTypesSchema(_Strict):
    code: TaskTargetSchema | None = None
    creative: TaskTargetSchema | None = None
    analysis: TaskTargetSchema | None = None
    translation: TaskTargetSchema | None = None
    math: TaskTargetSchema | None = None
    extraction: TaskTargetSchema | None = None
    classification: TaskTargetSchema | None = None
    chat: TaskTargetSchema | None = None


class TaskKeywordsSchema(_Strict):
    """More strong keywords per task type."""

    code: list[str] = Field(default_factory=list)
    creative: list[str] = Field(default_factory=list)
    analysis: list[str] = Field(default_factory=list)
    translation: list[str] = Field(default_factory=list)
    math: list[str] = Field(default_factory=list)
    extraction: list[str] = Field(default_factory=list)
    classification: list[str] = Field(default_factory=list)
    chat: list[str] = Field(default_factory=list)


class TaskTypePolicySchema(_WithinTierSchema):
    types: TaskTypesSchema = Field(default_factory=TaskTypesSchema)
    default: TaskTargetSchema = Field(default_factory=TaskTargetSchema)
    keywords: TaskKeywordsSchema = Field(default_factory=TaskKeywordsSchema)
    min_score: int = Field(default=3, ge=1)
    scan_chars: int = Field(default=1200, ge=0)


# -- cascade, fallback, ensemble, ab --------------------------------------------------------


class QualitySchema(_Strict):
    min_chars: int = Field(default=0, ge=0)
    refusal_phrases: list[str] | None = None
    code_block_when_asked: bool = True


class CascadePolicySchema(_Strict):
    models: list[str] = Field(min_length=2)
    quality: QualitySchema = Field(default_factory=QualitySchema)


class FallbackPolicySchema(_Strict):
    models: list[str] = Field(min_length=1)
    on_content_filter: str | None = None


class EnsemblePolicySchema(_Strict):
    models: list[str] = Field(min_length=2)
    mode: Literal["auto", "vote", "first_passing", "judge"] = "auto"
    judge: str | None = None

    @model_validator(mode="after")
    def _judge_named(self) -> EnsemblePolicySchema:
        if self.mode == "judge" and not self.judge:
            raise ValueError("mode judge needs a judge model")
        return self


class FastestPolicySchema(SpeedRuleSchema):
    models: list[str] | None = Field(default=None, min_length=1)
    tier: TierName | None = None
    fallback: bool = False

    @model_validator(mode="after")
    def _models_or_tier(self) -> FastestPolicySchema:
        if self.models is not None and self.tier is not None:
            raise ValueError("give either models or tier, not both")
        return self


class WorkflowPolicySchema(_WithinTierSchema):
    """``kind: workflow``: the workflow's own routing, with its in-tier rule."""


class ABPolicySchema(_Strict):
    key: str = "user"
    variants: dict[str, float] = Field(min_length=1)
    salt: str | None = None

    @field_validator("variants")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("weights must be non-negative and add up to more than 0")
        return value


class LearnedPolicySchema(_Strict):
    router: str
    models: list[str] | None = Field(default=None, min_length=2)
    threshold: float | None = Field(default=None, ge=-1, le=1)
    target: dict[Literal["quality", "strong_share"], float] | None = None
    fallback: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> LearnedPolicySchema:
        if self.threshold is not None and self.target:
            raise ValueError("give threshold or target, not both")
        if self.target is not None:
            if len(self.target) != 1:
                raise ValueError("target takes one of quality: or strong_share:")
            if not all(0 <= v <= 1 for v in self.target.values()):
                raise ValueError("target must be a number in [0, 1]")
        return self


class SwitchPolicySchema(_Strict):
    on: str = Field(min_length=1)
    cases: dict[str, str] = Field(default_factory=dict)
    default: str
