"""``kind: static``: one model for every step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.types import Decision


class StaticPolicy:
    def __init__(self, name: str, model: str) -> None:
        self.name = name
        self.model = model

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> StaticPolicy:
        return cls(name, str(options["model"]))

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        return Decision((self.model,), f"static: every step -> {self.model}", self.name)
