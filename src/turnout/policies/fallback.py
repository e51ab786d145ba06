"""``kind: fallback``: an ordered list of models, usually across providers.

The executor moves down the list on retryable failures (429, 5xx, timeouts,
refused connections, malformed responses, an open breaker), to a model with a
larger window on context-length-exceeded, and to ``on_content_filter`` when a
provider refuses on content grounds. Models whose breaker is open are moved to
the end of the chain rather than dropped, so they are still tried last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.types import Decision


class FallbackPolicy:
    def __init__(self, name: str, models: tuple[str, ...], on_content_filter: str | None) -> None:
        self.name = name
        self.models = models
        self.on_content_filter = on_content_filter
        self._reason = f"fallback: {' -> '.join(models)}"

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> FallbackPolicy:
        return cls(name, tuple(options["models"]), options.get("on_content_filter"))

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        healthy = tuple(m for m in self.models if health.healthy(m))
        if len(healthy) == len(self.models):
            chain, reason = self.models, self._reason
        else:
            down = tuple(m for m in self.models if m not in healthy)
            chain = healthy + down
            reason = f"fallback: {' -> '.join(chain)} ({', '.join(down)} breaker open, tried last)"
        return Decision(
            chain, reason, self.name, strategy="fallback", on_content_filter=self.on_content_filter
        )
