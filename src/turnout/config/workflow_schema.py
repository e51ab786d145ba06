"""Pydantic schema for workflow YAML files (validation at the edge only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnnotationSchema(_Strict):
    scope: str | None = None
    domain: str | None = None
    ambiguity: str | None = None


class OverrideSchema(_Strict):
    model: str
    by: str
    why: str


class StepSchema(_Strict):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    kind: Literal["llm", "code"] = "llm"
    prompt: str | None = None
    system: str | None = None
    run: str | None = None
    inputs: list[str] = Field(default_factory=list)
    model: str | None = None
    tier: Literal["efficient", "standard", "frontier"] | None = None
    annotation: AnnotationSchema | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    latency: Literal["normal", "sensitive"] = "normal"
    temperature: float | None = Field(default=None, ge=0, le=2)
    output: Literal["text", "json"] = "text"
    checks: list[Any] = Field(default_factory=list)
    override: OverrideSchema | None = None


class BudgetSchema(_Strict):
    run_usd: float | None = Field(default=None, gt=0)
    step_usd: float | None = Field(default=None, gt=0)


class WorkflowSchema(_Strict):
    name: str
    description: str | None = None
    default_model: str | None = None
    inputs: list[str] = Field(default_factory=list)
    budget: BudgetSchema | None = None
    steps: list[StepSchema]
