"""The validated, frozen form of ``turnout.yaml`` that the rest of turnout uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from turnout.errors import ConfigError
from turnout.pricing.cost import Price
from turnout.types import MaxTokensParam, Tier

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    read: float = 60.0
    total: float = 300.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider entry. ``options`` holds the kind-specific fields (base_url, ...).

    For ``kind: openai`` the API key is *not* here: only the name of the env var
    that holds it (``api_key_env``), read when the provider is built.
    """

    name: str
    kind: str
    timeouts: Timeouts = field(default_factory=Timeouts)
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model in the pool. ``name`` is the pool name; ``id`` the provider's model id."""

    name: str
    provider: str
    id: str
    tier: Tier
    price: Price
    context_window: int | None = None
    max_concurrency: int | None = None
    price_label: str | None = None
    max_tokens_param: MaxTokensParam | None = None
    """The name the output cap goes out under to this model, whatever the request used
    (OpenAI's reasoning models take only ``max_completion_tokens``; some compatible
    servers only ``max_tokens``); None: the request's own."""


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


def beside_config(config: Path | None, path: Path) -> Path:
    """A path written in the config file ``config``: relative to the file's folder (for
    ``storage:``, ``gateway.spill``, a ``learned`` policy's ``router``), not to wherever
    the command runs; as it is without a file."""
    return path if path.is_absolute() or config is None else config.parent / path


@dataclass(frozen=True, slots=True)
class Settings:
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelSpec]
    policies: Mapping[str, PolicyConfig]
    storage: str | None = None
    path: Path | None = None
    gateway: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    executor: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """The validated ``executor:`` section (retries, timeouts, breaker, cache, state)."""

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "turnout.yaml"

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(
                f"unknown model {name!r} (known: {known})", file=self.source
            ) from None

    def policy(self, name: str) -> PolicyConfig:
        try:
            return self.policies[name]
        except KeyError:
            known = ", ".join(sorted(self.policies)) or "none"
            raise ConfigError(
                f"unknown policy {name!r} (known: {known})", file=self.source, field="policies"
            ) from None

    def models_in_tier(self, tier: Tier) -> tuple[ModelSpec, ...]:
        return tuple(m for m in self.models.values() if m.tier is tier)
