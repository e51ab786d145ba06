"""Pydantic schemas for ``turnout.yaml``: validation at the edge, nothing else.

The loader turns these into the frozen dataclasses of :mod:`turnout.config.settings`.
Policy kinds are validated here too, each by its own schema, discriminated by ``kind``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsSchema(_Strict):
    connect: PositiveFloat = 5.0
    read: PositiveFloat = 60.0
    total: PositiveFloat = 300.0


class OpenAIProviderSchema(_Strict):
    kind: Literal["openai"]
    base_url: str
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: TimeoutsSchema = Field(default_factory=TimeoutsSchema)
    max_connections: PositiveInt = 100


class LocalProviderSchema(_Strict):
    kind: Literal["local"]
    cache_dir: str | None = None
    context_size: PositiveInt = 4096
    threads: PositiveInt | None = None
    timeouts: TimeoutsSchema = Field(default_factory=TimeoutsSchema)


ProviderSchema = Annotated[
    OpenAIProviderSchema | LocalProviderSchema, Field(discriminator="kind")
]


class PriceSchema(_Strict):
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class ModelSchema(_Strict):
    provider: str
    id: str
    tier: Literal["efficient", "standard", "frontier"]
    price: PriceSchema | None = None
    price_sheet: str | None = None
    price_label: str | None = None
    context_window: PositiveInt | None = None
    max_concurrency: PositiveInt | None = None


class StaticPolicySchema(_Strict):
    kind: Literal["static"]
    model: str


class PerStepPolicySchema(_Strict):
    kind: Literal["per_step"]
    default: str
    steps: dict[str, str] = Field(default_factory=dict)


PolicySchema = Annotated[
    StaticPolicySchema | PerStepPolicySchema, Field(discriminator="kind")
]


class SettingsSchema(_Strict):
    providers: dict[str, ProviderSchema]
    models: dict[str, ModelSchema]
    policies: dict[str, PolicySchema] = Field(default_factory=dict)
    storage: str | None = None
    gateway: dict[str, Any] | None = None
