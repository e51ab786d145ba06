"""Load ``turnout.yaml`` into :class:`~turnout.config.settings.Settings`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from turnout.config.kinds import POLICIES, PROVIDERS, validate_options
from turnout.config.schema import ModelSchema, ProviderEntrySchema, SettingsSchema
from turnout.config.settings import (
    ModelSpec,
    PolicyConfig,
    ProviderConfig,
    Settings,
    Timeouts,
    beside_config,
)
from turnout.config.yamlio import first_error, read_yaml
from turnout.errors import ConfigError
from turnout.pricing import Price, lookup
from turnout.types import Tier


def load_settings(path: str | Path) -> Settings:
    """Read and validate a ``turnout.yaml``. Every problem is one ConfigError line."""
    p = Path(path)
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping with providers, models and policies", file=str(p))
    return settings_from_dict(raw, source=p)


def settings_from_dict(raw: Mapping[str, Any], *, source: Path | None = None) -> Settings:
    file = str(source) if source else "turnout.yaml"
    try:
        schema = SettingsSchema.model_validate(dict(raw))
    except ValidationError as exc:
        raise first_error(exc, file, raw=dict(raw), schema=SettingsSchema) from None

    providers = {name: _provider(name, p, file) for name, p in schema.providers.items()}
    models = {name: _model(name, m, providers, file) for name, m in schema.models.items()}
    policies: dict[str, PolicyConfig] = {}
    for name, pol in schema.policies.items():
        where = f"policies.{name}"
        kind = POLICIES.get(pol.kind, file=file, field=f"{where}.kind")
        options = validate_options(kind, pol.options(), file=file, field=where)
        if pol.kind == "ab":
            for variant in options["variants"]:
                if variant not in models and variant not in schema.policies:
                    raise ConfigError(
                        f"variant {variant!r} is neither a model nor a policy",
                        file=file,
                        field=f"policies.{name}.variants",
                    )
        if pol.kind == "switch":
            targets = [(f"cases.{k}", v) for k, v in options["cases"].items()]
            for at, target in [*targets, ("default", options["default"])]:
                if target not in models and target not in schema.policies:
                    raise ConfigError(
                        f"{target!r} is neither a model nor a policy",
                        file=file,
                        field=f"policies.{name}.{at}",
                    )
        for field, model in model_refs(options, pol.kind):
            if model not in models:
                known = ", ".join(sorted(models)) or "none"
                raise ConfigError(
                    f"unknown model {model!r} (known: {known})",
                    file=file,
                    field=f"policies.{name}.{field}",
                )
        policies[name] = PolicyConfig(name, pol.kind, MappingProxyType(options))
    default = schema.gateway.default_policy
    if default is not None and default not in policies:
        known = ", ".join(sorted(policies)) or "none"
        raise ConfigError(
            f"unknown policy {default!r} (known: {known})",
            file=file,
            field="gateway.default_policy",
        )
    gateway = schema.gateway.model_dump()
    if gateway.get("spill") not in (None, "none"):
        gateway["spill"] = str(beside_config(source, Path(gateway["spill"]).expanduser()))
    return Settings(
        providers=MappingProxyType(providers),
        models=MappingProxyType(models),
        policies=MappingProxyType(policies),
        storage=_storage(schema.storage, source, file),
        path=source,
        gateway=MappingProxyType(gateway),
        executor=MappingProxyType(schema.executor.model_dump(exclude_none=True)),
    )


def _storage(value: str | None, source: Path | None, file: str) -> str | None:
    """``storage:`` checked, and a relative SQLite path made relative to the config file
    (``--store`` and ``TURNOUT_STORE`` stay relative to the working directory). URLs of
    PostgreSQL and in-memory SQLite are kept as they are."""
    if value is None:
        return None
    from turnout.errors import StoreError
    from turnout.tracing.open import sqlite_path_of

    try:
        path = sqlite_path_of(value)
    except StoreError as exc:
        raise ConfigError(str(exc), file=file, field="storage") from None
    return value if path is None else str(beside_config(source, path))


def _provider(name: str, p: ProviderEntrySchema, file: str) -> ProviderConfig:
    where = f"providers.{name}"
    kind = PROVIDERS.get(p.kind, file=file, field=f"{where}.kind")
    options = validate_options(kind, p.options(), file=file, field=where)
    t = p.timeouts
    return ProviderConfig(
        name, p.kind, Timeouts(t.connect, t.read, t.total), MappingProxyType(options)
    )


def _model(
    name: str, m: ModelSchema, providers: Mapping[str, ProviderConfig], file: str
) -> ModelSpec:
    field = f"models.{name}"
    if m.provider not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise ConfigError(
            f"unknown provider {m.provider!r} (known: {known})",
            file=file,
            field=f"{field}.provider",
        )
    context_window = m.context_window
    if m.price is not None and m.price_sheet is not None:
        raise ConfigError("give either price or price_sheet, not both", file=file, field=field)
    if m.price is not None:
        price = Price.of(m.price.input, m.price.output, m.price.cached_input)
    elif m.price_sheet is not None:
        try:
            entry = lookup(m.price_sheet)
        except KeyError:
            raise ConfigError(
                f"{m.price_sheet!r} is not in the bundled price sheet (see `turnout prices`)",
                file=file,
                field=f"{field}.price_sheet",
            ) from None
        price = entry.price
        context_window = context_window or entry.context_window
    else:
        raise ConfigError(
            "needs a price {input, output[, cached_input]} or a price_sheet entry",
            file=file,
            field=field,
        )
    return ModelSpec(
        name=name,
        provider=m.provider,
        id=m.id,
        tier=Tier(m.tier),
        price=price,
        context_window=context_window,
        max_concurrency=m.max_concurrency,
        price_label=m.price_label,
        max_tokens_param=m.max_tokens_param,
    )


def model_refs(options: Mapping[str, Any], kind: str = "") -> list[tuple[str, str]]:
    """(field, model name) pairs that a policy's options refer to."""
    refs: list[tuple[str, str]] = []
    for key in ("model", "default"):
        if key == "default" and kind in ("rules", "switch"):
            continue  # a tier name (rules) or a model or policy (switch, checked apart)
        if isinstance(options.get(key), str):
            refs.append((key, options[key]))
    steps = options.get("steps")
    if isinstance(steps, Mapping):
        refs.extend((f"steps.{s}", m) for s, m in steps.items() if isinstance(m, str))
    models = options.get("models")
    if isinstance(models, list):
        refs.extend((f"models[{i}]", m) for i, m in enumerate(models) if isinstance(m, str))
    elif isinstance(models, Mapping):  # complexity: {low: m, ...}
        refs.extend((f"models.{k}", m) for k, m in models.items() if isinstance(m, str))
    refs.extend(_within_tier_refs(options))
    types = options.get("types")
    if isinstance(types, Mapping):  # task_type: {code: {model: m, ...}, ...}
        for t, target in types.items():
            if isinstance(target, Mapping) and isinstance(target.get("model"), str):
                refs.append((f"types.{t}.model", target["model"]))
    default = options.get("default")
    if isinstance(default, Mapping) and isinstance(default.get("model"), str):
        refs.append(("default.model", default["model"]))
    for key in ("judge", "on_content_filter"):  # ensemble, fallback
        if isinstance(options.get(key), str):
            refs.append((key, options[key]))
    return refs


def _within_tier_refs(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``prefer: [m, ...]`` or ``within_tier: {prefer: [m, ...]}``."""
    within = options.get("within_tier")
    for field, prefer in (
        ("prefer", options.get("prefer")),
        ("within_tier.prefer", within.get("prefer") if isinstance(within, Mapping) else None),
    ):
        if isinstance(prefer, list):
            return [(f"{field}[{i}]", m) for i, m in enumerate(prefer) if isinstance(m, str)]
    return []
