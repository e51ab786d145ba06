"""``build_policy`` makes a policy from ``turnout.yaml``; its kind comes from the policy
registry (:data:`turnout.config.kinds.POLICIES`: built-in kinds and plugins')."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel

from turnout.config.kinds import POLICIES, Kind
from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.policies.base import Policy
from turnout.policies.workflow_default import NAME as WORKFLOW_POLICY
from turnout.policies.workflow_default import WorkflowDefaultPolicy

PolicyFactory = Callable[[str, Mapping[str, Any], Settings], Policy]

_BUILDING: ContextVar[tuple[str, ...]] = ContextVar("turnout_building_policies", default=())


def register_policy(
    kind: str, factory: str | PolicyFactory, options: type[BaseModel] | None = None
) -> None:
    """Add a policy kind in this process (a package declares an entry point in
    ``turnout.policies`` instead; see :mod:`turnout.plugins`). ``options``: the schema
    of its options (None: unchecked)."""
    POLICIES.register(kind, Kind(factory, options))


def build_policy(name: str | None, settings: Settings) -> Policy:
    """The policy called ``name`` in ``settings``; None (or ``workflow``) is the
    workflow's own routing. A policy may build others it names (composition); a
    cycle of policies naming each other is a ConfigError."""
    if name is None or (name == WORKFLOW_POLICY and name not in settings.policies):
        return WorkflowDefaultPolicy(settings)
    stack = _BUILDING.get()
    if name in stack:
        cycle = " -> ".join((*stack[stack.index(name) :], name))
        raise ConfigError(f"policies name each other in a cycle: {cycle}", file=settings.source)
    cfg = settings.policy(name)
    factory: PolicyFactory = POLICIES.get(
        cfg.kind, file=settings.source, field=f"policies.{name}.kind"
    ).factory()
    token = _BUILDING.set((*stack, name))
    try:
        return factory(name, cfg.options, settings)
    finally:
        _BUILDING.reset(token)
