"""API keys checked before the first call: a command fails in one line naming the
environment variable, instead of running every job to a stored 0/N.

Which models a command may call: the ones its policy names (recursively for ``ab``
variants that are policies; for a ``fallback``, also the pool's models of its tier or
above, which it may move to past a context window), the workflow's default and step
models, and, for a
policy that chooses by tier (or names no model), every pool model (the tier rule
may pick any of them). A provider is checked when one of those models uses it and
its config names an ``api_key_env``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from turnout.config.loader import model_refs
from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.policies.workflow_default import NAME as WORKFLOW_POLICY
from turnout.workflows.spec import Workflow

NAMING_KINDS = frozenset({"static", "per_step", "cascade", "fallback", "ensemble", "ab"})
"""Policy kinds that can only call the models their options name."""


def models_in_reach(
    settings: Settings, policies: Iterable[str | None], workflow: Workflow
) -> set[str]:
    """Every pool model that running ``workflow`` under ``policies`` may call."""
    reach: set[str] = set()
    for name in policies:
        reach |= _policy_models(settings, name, ())
    for step in workflow.steps:
        if step.kind != "llm":
            continue
        for model in (step.model, step.override.model if step.override else None):
            if model:
                reach.add(model)
        if step.tier is not None:
            reach |= {m for m, spec in settings.models.items() if spec.tier == step.tier}
        elif step.model is None and workflow.default_model is None:
            reach |= set(settings.models)  # the workflow's own routing may pick any model
    if workflow.default_model:
        reach.add(workflow.default_model)
    return reach & set(settings.models)


def policy_reach(settings: Settings, name: str | None) -> set[str]:
    """Every pool model the policy called ``name`` may call (None: any model)."""
    return _policy_models(settings, name, ()) or set(settings.models)


TOGETHER_KINDS = frozenset({"ensemble", "cascade"})
"""Policy kinds one request of which may pay several calls: an ensemble calls every
member (and its judge), a cascade may escalate through its whole chain."""

Plan = tuple[tuple[str, int], ...]
"""The calls one request may pay for together: each a pool model and how many other
calls' answers its prompt carries (an ensemble's judge reads every member's)."""


def policy_plans(settings: Settings, name: str | None, seen: tuple[str, ...] = ()) -> list[Plan]:
    """The sets of calls one request under the policy called ``name`` may pay for
    together, at worst: an ensemble's members (a model named twice, called twice) and its
    judge, a cascade's chain, else one model at a time (a fallback moves on after a
    failure, and a failure bills nothing). A variant or case that is another policy
    brings its own sets."""
    config = settings.policies.get(name or "")
    if config is not None and config.kind in TOGETHER_KINDS and name not in seen:
        calls = [(m, 0) for m in config.options.get("models") or () if m in settings.models]
        judge = config.options.get("judge")
        if config.kind == "ensemble" and isinstance(judge, str) and judge in settings.models:
            calls.append((judge, len(calls)))
        if calls:
            return [tuple(calls)]
    plans: list[Plan] = [((m, 0),) for m in sorted(policy_reach(settings, name))]
    if config is None or name in seen:
        return plans
    options = config.options
    targets = [*(options.get("variants") or ()), *(options.get("cases") or {}).values()]
    if config.kind == "switch" and isinstance(options.get("default"), str):
        targets.append(options["default"])
    for target in targets:
        if target in settings.policies and target not in settings.models:
            inner = policy_plans(settings, target, (*seen, name or ""))
            plans += [p for p in inner if len(p) > 1]
    return plans


def _policy_models(settings: Settings, name: str | None, seen: tuple[str, ...]) -> set[str]:
    config = settings.policies.get(name or "")
    if name in (None, WORKFLOW_POLICY) or config is None:
        return set() if name in (None, WORKFLOW_POLICY) else set(settings.models)
    if config.kind not in NAMING_KINDS or name in seen:
        return set(settings.models)
    named = {m for _, m in model_refs(config.options, config.kind)}
    for variant in config.options.get("variants") or ():
        if variant in settings.policies:
            named |= _policy_models(settings, variant, (*seen, name))
        else:
            named.add(variant)
    if config.kind == "fallback" and named:  # past a context window: a larger one, from
        lowest = min(settings.models[m].tier.rank for m in named if m in settings.models)
        named |= {m for m, spec in settings.models.items() if spec.tier.rank >= lowest}
    return named or set(settings.models)


def require_keys(settings: Settings, models: Iterable[str]) -> None:
    """Raise ConfigError naming the first unset API key env var a model needs."""
    missing: dict[str, list[str]] = {}
    for model in sorted(set(models)):
        spec = settings.models[model]
        provider = settings.providers.get(spec.provider)
        env = provider.options.get("api_key_env") if provider is not None else None
        if isinstance(env, str) and env and not os.environ.get(env):
            missing.setdefault(env, []).append(f"{model} (provider {spec.provider})")
    if missing:
        env, used_by = next(iter(missing.items()))
        more = f"; also unset: {', '.join(list(missing)[1:])}" if len(missing) > 1 else ""
        raise ConfigError(
            f"environment variable {env} is not set: it holds the API key for "
            f"{', '.join(used_by)}{more}",
            file=settings.source,
        )
