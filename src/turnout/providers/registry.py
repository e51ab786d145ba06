"""Provider kinds register here; ``build_provider`` makes one from config.

Factories are imported lazily, so importing turnout never imports aiohttp or
llama.cpp. A new kind registers with ``register_provider("kind", "module:factory")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from turnout.config.settings import ModelSpec, ProviderConfig
from turnout.errors import ConfigError
from turnout.providers.base import Provider

ProviderFactory = Callable[[ProviderConfig, Sequence[ModelSpec]], Provider]

_FACTORIES: dict[str, str | ProviderFactory] = {
    "openai": "turnout.providers.openai_compat:from_config",
    "local": "turnout.providers.local:from_config",
}


def register_provider(kind: str, factory: str | ProviderFactory) -> None:
    _FACTORIES[kind] = factory


def build_provider(config: ProviderConfig, models: Sequence[ModelSpec]) -> Provider:
    """Build the provider for one ``providers:`` entry, serving ``models``."""
    try:
        factory = _FACTORIES[config.kind]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise ConfigError(
            f"unknown provider kind {config.kind!r} (known: {known})",
            field=f"providers.{config.name}.kind",
        ) from None
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _FACTORIES[config.kind] = factory
    return factory(config, models)
