"""Policy kinds register here; ``build_policy`` makes one from ``turnout.yaml``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.policies.base import Policy
from turnout.policies.workflow_default import NAME as WORKFLOW_POLICY
from turnout.policies.workflow_default import WorkflowDefaultPolicy

PolicyFactory = Callable[[str, Mapping[str, Any], Settings], Policy]

_KINDS: dict[str, str | PolicyFactory] = {
    "static": "turnout.policies.static:StaticPolicy.from_options",
    "per_step": "turnout.policies.per_step:PerStepPolicy.from_options",
    "rules": "turnout.policies.rules:RulesPolicy.from_options",
    "complexity": "turnout.policies.complexity:ComplexityPolicy.from_options",
    "task_type": "turnout.policies.task_type:TaskTypePolicy.from_options",
    "cascade": "turnout.policies.cascade:CascadePolicy.from_options",
    "fallback": "turnout.policies.fallback:FallbackPolicy.from_options",
    "ensemble": "turnout.policies.ensemble:EnsemblePolicy.from_options",
    "ab": "turnout.policies.ab:ABPolicy.from_options",
    "learned": "turnout.policies.learned:LearnedPolicy.from_options",
    "switch": "turnout.policies.switch:SwitchPolicy.from_options",
}

_BUILDING: ContextVar[tuple[str, ...]] = ContextVar("turnout_building_policies", default=())


def register_policy(kind: str, factory: str | PolicyFactory) -> None:
    _KINDS[kind] = factory


def _factory(kind: str, field: str, file: str) -> PolicyFactory:
    try:
        factory = _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS))
        raise ConfigError(
            f"unknown policy kind {kind!r} (known: {known})", file=file, field=field
        ) from None
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        factory = obj
        _KINDS[kind] = obj
    return factory


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
    factory = _factory(cfg.kind, f"policies.{name}.kind", settings.source)
    token = _BUILDING.set((*stack, name))
    try:
        return factory(name, cfg.options, settings)
    finally:
        _BUILDING.reset(token)
