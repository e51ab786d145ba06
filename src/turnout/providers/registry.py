"""``build_provider`` makes a provider from config; its kind comes from the provider
registry (:data:`turnout.config.kinds.PROVIDERS`: built-in kinds and plugins').

Factories are imported lazily, so importing turnout never imports aiohttp or
llama.cpp. A package adds a kind with an entry point in ``turnout.providers`` (see
:mod:`turnout.plugins`); in-process, ``register_provider("kind", "module:factory")``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from turnout.config.kinds import PROVIDERS, Kind
from turnout.config.settings import ModelSpec, ProviderConfig
from turnout.providers.base import Provider

ProviderFactory = Callable[[ProviderConfig, Sequence[ModelSpec]], Provider]


def register_provider(
    kind: str, factory: str | ProviderFactory, options: type[BaseModel] | None = None
) -> None:
    """Add a provider kind in this process; ``options``: the schema of its options
    (``timeouts`` excluded: every provider has it). None: unchecked."""
    PROVIDERS.register(kind, Kind(factory, options))


def build_provider(config: ProviderConfig, models: Sequence[ModelSpec]) -> Provider:
    """Build the provider for one ``providers:`` entry, serving ``models``."""
    kind = PROVIDERS.get(config.kind, field=f"providers.{config.name}.kind")
    factory: ProviderFactory = kind.factory()
    return factory(config, models)
