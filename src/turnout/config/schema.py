"""Pydantic schemas for ``turnout.yaml``: validation at the edge, nothing else.

The loader turns these into the frozen dataclasses of :mod:`turnout.config.settings`.
A policy or provider entry is a ``kind`` and that kind's options: the loader looks the
kind up in its registry (:mod:`turnout.config.kinds`, plugins' kinds included) and
validates the options with the kind's own schema; the built-in kinds' schemas are here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_TIMEOUT_S = 0.5
"""``executor.redis_timeout_s``: how long any Redis call may take (a request's own
included) before the process goes on with its own state."""
REDIS_URL = "redis://127.0.0.1:6379/0"
"""``executor.redis_url`` when unset."""
REDIS_PREFIX = "turnout"
"""``executor.redis_prefix`` when unset."""


def redis_of(executor: Mapping[str, Any]) -> tuple[str, str, float]:
    """The shared state's Redis URL, key prefix and call timeout from an ``executor:``
    section (as loaded: a mapping), the defaults filled in."""
    return (
        str(executor.get("redis_url", REDIS_URL)),
        str(executor.get("redis_prefix", REDIS_PREFIX)),
        float(executor.get("redis_timeout_s", REDIS_TIMEOUT_S)),
    )


def check_redis_url(url: str) -> str:
    """``url`` if it is a Redis URL redis-py takes (``redis://``, ``rediss://`` or
    ``unix://``); ValueError saying so otherwise (the URL is not repeated: it may hold a
    password)."""
    if not url.lower().startswith(REDIS_SCHEMES):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsSchema(_Strict):
    connect: PositiveFloat = 5.0
    read: PositiveFloat = 60.0
    total: PositiveFloat = 300.0


class OpenAIProviderSchema(_Strict):
    """Options of ``kind: openai`` (``timeouts`` is read for every provider kind)."""

    base_url: str
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    max_connections: PositiveInt = 100


class LocalProviderSchema(_Strict):
    cache_dir: str | None = None
    context_size: PositiveInt = 4096
    threads: PositiveInt | None = None


class KindEntrySchema(BaseModel):
    """A policy entry: its ``kind`` and that kind's options (checked by the kind's schema)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key (kind: switch) as the boolean true
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ProviderEntrySchema(KindEntrySchema):
    """A provider entry: its ``kind``, ``timeouts`` (every kind) and the kind's options."""

    timeouts: TimeoutsSchema = Field(default_factory=TimeoutsSchema)


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
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None


# -- executor: retries, timeouts, breaker, cache -------------------------------------------


# Defaults live in the dataclasses the executor is built from (RetryPolicy, Timeouts,
# BreakerConfig): the config passes on only what it sets (``model_dump(exclude_unset=True)``).


class RetrySchema(_Strict):
    max_attempts: PositiveInt | None = None
    base_delay_s: float | None = Field(default=None, ge=0)
    max_delay_s: float | None = Field(default=None, ge=0)
    jitter: float | None = Field(default=None, ge=0, le=1)
    max_retry_after_s: float | None = Field(default=None, ge=0)


class ExecTimeoutsSchema(_Strict):
    attempt_s: PositiveFloat | None = None
    total_s: PositiveFloat | None = None


class BreakerSchema(_Strict):
    enabled: bool = True
    window_s: PositiveFloat | None = None
    min_requests: PositiveInt | None = None
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    cooldown_s: PositiveFloat | None = None
    max_cooldown_s: PositiveFloat | None = None
    # with state: redis, how old this process's view of the shared breakers may be, and
    # how long a success may wait to be sent (RedisBreakerStore)
    view_ttl_s: float | None = Field(default=None, ge=0)
    flush_s: PositiveFloat | None = None


class ExactCacheSchema(_Strict):
    enabled: bool = True
    ttl_s: PositiveFloat = 3600.0
    max_entries: PositiveInt = 10_000


class SemanticCacheSchema(_Strict):
    enabled: bool = False
    threshold: float = Field(default=0.92, gt=0, le=1)
    ttl_s: PositiveFloat = 3600.0
    # what runs the embedding model: onnxruntime (fast), numpy (reference), or auto
    engine: Literal["auto", "onnxruntime", "numpy"] = "auto"
    threads: PositiveInt = 1


class CacheSchema(_Strict):
    exact: ExactCacheSchema = Field(default_factory=ExactCacheSchema)
    semantic: SemanticCacheSchema = Field(default_factory=SemanticCacheSchema)


class SpeedSchema(_Strict):
    """Observed speed per model (:mod:`turnout.execution.speed`)."""

    alpha: float = Field(default=0.2, gt=0, le=1)
    seed_window_s: float = Field(default=86400.0, ge=0)
    seed_limit: int = Field(default=2000, ge=0)
    flush_s: PositiveFloat = 0.5


class ExecutorSchema(_Strict):
    retries: RetrySchema = Field(default_factory=RetrySchema)
    timeouts: ExecTimeoutsSchema = Field(default_factory=ExecTimeoutsSchema)
    breaker: BreakerSchema = Field(default_factory=BreakerSchema)
    cache: CacheSchema | None = None
    state: Literal["memory", "redis"] = "memory"
    speed: SpeedSchema = Field(default_factory=SpeedSchema)
    redis_url: str = REDIS_URL
    redis_prefix: str = REDIS_PREFIX
    # how long any Redis call may take before this process uses its own state instead
    redis_timeout_s: PositiveFloat = REDIS_TIMEOUT_S
    # what a stream does when it breaks after tokens reached the caller
    on_stream_cut: Literal["continue", "restart", "fail"] = "continue"

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)


# -- gateway: turnout serve -----------------------------------------------------------------


class CorsSchema(_Strict):
    allow_origins: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=lambda: ["*"])
    max_age_s: int = Field(default=600, ge=0)


class GatewaySchema(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    default_policy: str | None = None
    # a `model` that is neither a policy nor a pool model: 404, or the default policy
    unknown_models: Literal["reject", "default_policy"] = "reject"
    max_body_bytes: PositiveInt = 4 * 1024 * 1024
    # overrides executor.on_stream_cut for gateway traffic (unset: the executor's rule)
    on_stream_cut: Literal["continue", "restart", "fail"] | None = None
    # CORS is off unless origins are listed ("*" allows any origin)
    cors: CorsSchema | None = None
    shutdown_timeout_s: PositiveFloat = 30.0
    # virtual keys: `keys` (the default unless the host is loopback) or `none` (loopback only)
    auth: Literal["keys", "none"] | None = None
    # the environment variable holding the admin key of /admin/keys (unset: no admin API)
    admin_key_env: str = "TURNOUT_ADMIN_KEY"
    # how long a replica trusts a cached key record when Redis cannot say it changed
    key_cache_s: PositiveFloat = 30.0
    # rate limits per key and model (a request naming a pool model) rather than per key
    per_model_limits: bool = False
    # where traces spill when the store is unreachable (default: .turnout/spill-N.jsonl
    # beside a PostgreSQL store's gateway); `none` turns spilling off
    spill: str | None = None
    spill_max_bytes: PositiveInt = 256 * 1024 * 1024


class SettingsSchema(_Strict):
    providers: dict[str, ProviderEntrySchema]
    models: dict[str, ModelSchema]
    policies: dict[str, KindEntrySchema] = Field(default_factory=dict)
    storage: str | None = None
    executor: ExecutorSchema = Field(default_factory=ExecutorSchema)
    gateway: GatewaySchema = Field(default_factory=GatewaySchema)
