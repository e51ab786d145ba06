"""The policy interface: a pure decision from a request context and the pool's health.

A policy never calls the network and never sleeps; the executor carries its
decision out. The same policy object serves ``turnout run``, ``turnout bench``
and the gateway, and can be replayed offline over recorded traces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

from turnout.policies.speed import NO_SPEEDS, SpeedSnapshot
from turnout.types import Annotation, Decision, Message, Tier

_NO_TAGS: Mapping[str, str] = MappingProxyType({})

Latency = Literal["normal", "sensitive"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a policy may look at.

    ``step_model`` / ``step_tier`` / ``default_model`` carry the workflow's own
    routing (a step's ``model:`` or ``tier:``, the workflow's ``default_model``);
    gateway requests have none of them and may carry ``requested_model``.
    ``latency="sensitive"`` (a step's ``latency: sensitive``, the gateway header
    ``x-turnout-latency: sensitive``) makes every in-tier choice pick the fastest model.
    """

    messages: tuple[Message, ...] = ()
    step_id: str | None = None
    workflow: str | None = None
    annotation: Annotation | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _NO_TAGS)
    step_model: str | None = None
    step_tier: Tier | None = None
    default_model: str | None = None
    requested_model: str | None = None
    max_tokens: int | None = None
    latency: Latency = "normal"

    @property
    def latency_sensitive(self) -> bool:
        return self.latency == "sensitive"


@dataclass(frozen=True, slots=True)
class PoolHealth:
    """What a policy knows about the pool at decision time: which models are unusable,
    and how fast each model has been (``speeds``, read-only; not part of equality)."""

    unavailable: frozenset[str] = frozenset()
    speeds: SpeedSnapshot = field(default=NO_SPEEDS, compare=False)

    def healthy(self, model: str) -> bool:
        return model not in self.unavailable


HEALTHY = PoolHealth()


class Policy(Protocol):
    name: str

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        """Return which model(s) to use, in what strategy, and why."""
        ...
