"""The model pool at run time: pool names -> specs, providers and concurrency limits.

Providers are built lazily, one per ``providers:`` entry, the first time one
of their models is used, so a run that only touches local models never opens
an HTTP session and a run on hosted models never loads llama.cpp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from turnout.config.settings import ModelSpec, Settings
from turnout.providers.base import Provider
from turnout.providers.registry import build_provider

LOCAL_DEFAULT_CONCURRENCY = 1


class ModelPool:
    def __init__(
        self, settings: Settings, *, providers: Mapping[str, Provider] | None = None
    ) -> None:
        """``providers`` injects ready providers by provider name (tests, embedding apps)."""
        self.settings = settings
        self._providers: dict[str, Provider] = dict(providers or {})
        self._limits: dict[str, asyncio.Semaphore] = {}

    def spec(self, model: str) -> ModelSpec:
        return self.settings.model(model)

    def provider_for(self, model: str) -> Provider:
        spec = self.spec(model)
        provider = self._providers.get(spec.provider)
        if provider is None:
            cfg = self.settings.providers[spec.provider]
            served = [m for m in self.settings.models.values() if m.provider == spec.provider]
            provider = build_provider(cfg, served)
            self._providers[spec.provider] = provider
        return provider

    def provider_kind(self, model: str) -> str:
        spec = self.spec(model)
        cfg = self.settings.providers.get(spec.provider)
        return cfg.kind if cfg else "injected"

    def limiter(self, model: str) -> asyncio.Semaphore | None:
        """The per-model concurrency limit (``max_concurrency``); local models default to 1."""
        sem = self._limits.get(model)
        if sem is None:
            spec = self.spec(model)
            limit = spec.max_concurrency
            if limit is None and self.provider_kind(model) == "local":
                limit = LOCAL_DEFAULT_CONCURRENCY
            if limit is None:
                return None
            sem = asyncio.Semaphore(limit)
            self._limits[model] = sem
        return sem

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            await p.aclose()
