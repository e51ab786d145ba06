"""Open registries of kinds: policies, providers and checks, built in or from plugins.

A kind is a :class:`Kind`: how to build one, and the schema of its options. Built-in
kinds and a plugin's are looked up, validated and built the same way; the built-in
ones are listed below as ``"module:attribute"`` references, which is also what a
plugin's entry point holds. A plugin package declares its kinds in the entry-point
groups ``turnout.policies``, ``turnout.providers`` and ``turnout.checks``::

    [project.entry-points."turnout.policies"]
    shout = "turnout_shout.kinds:SHOUT_POLICY"     # a turnout.plugins.Kind

Entry points are read once per process, the first time a kind is asked for that is
not known yet (never at import), and a plugin's module is imported only when one of
its kinds is used. A built-in name wins over a plugin's; :meth:`Registry.register`
replaces either.

An options schema is a pydantic model, or a JSON Schema mapping (checked with
``jsonschema``), or ``None`` (options passed through unchecked). Check kinds may give
just the names of their options (their builder checks the values itself). Every
problem is one :class:`~turnout.errors.ConfigError` line naming the file and field.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from turnout.config.yamlio import first_error
from turnout.errors import ConfigError

GROUPS = ("turnout.policies", "turnout.providers", "turnout.checks")


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of policy, provider or check.

    ``build``: the factory, or ``"module:attr"`` naming it (imported on first use).
    Policies: ``build(name, options, settings) -> Policy``; providers:
    ``build(config, models) -> Provider``; checks: ``build(spec) -> Check`` with a
    :class:`turnout.checks.registry.CheckSpec`.
    ``options``: the schema of the kind's options (see the module's notes), or a
    ``"module:attr"`` naming one. ``main``: checks only, the option that the short
    form ``{kind: value}`` gives (``values`` for ``contains_all: [a, b]``).
    """

    build: Callable[..., Any] | str
    options: type[BaseModel] | Mapping[str, Any] | Collection[str] | str | None = None
    main: str | None = None

    def factory(self) -> Callable[..., Any]:
        return _resolve(self.build) if isinstance(self.build, str) else self.build

    def schema(self) -> type[BaseModel] | Mapping[str, Any] | Collection[str] | None:
        return _resolve(self.options) if isinstance(self.options, str) else self.options


@functools.cache
def _resolve(ref: str) -> Any:
    """``"package.module:Class.attr"`` -> the object."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True, slots=True)
class _Plugin:
    """A kind an entry point declares, not loaded yet."""

    entry_point: EntryPoint


class Registry:
    """The kinds of one sort (``noun``: policy, provider, check), by name."""

    def __init__(self, group: str, noun: str, builtins: Mapping[str, Kind]) -> None:
        self.group = group
        self.noun = noun
        self._builtin = frozenset(builtins)
        self._kinds: dict[str, Kind | _Plugin] = dict(builtins)
        self._scanned = False
        self._lock = threading.Lock()

    def register(self, name: str, kind: Kind) -> None:
        """Add or replace a kind (in-process; a package uses an entry point instead)."""
        self._kinds[name] = kind

    def builtin(self) -> tuple[str, ...]:
        """The names of turnout's own kinds."""
        return tuple(sorted(self._builtin))

    def names(self) -> tuple[str, ...]:
        """Every known name, plugins' included (reads the entry points)."""
        self._scan()
        return tuple(sorted(self._kinds))

    def known(self, name: str) -> bool:
        """Whether ``name`` is a kind (reads the entry points when it is not a known one)."""
        if name not in self._kinds:
            self._scan()
        return name in self._kinds

    def get(self, name: str, *, file: str | None = None, field: str | None = None) -> Kind:
        """The kind called ``name``; an unknown name or a plugin that cannot be loaded is
        a ConfigError naming ``file`` and ``field``."""
        if not isinstance(name, str) or not self.known(name):
            known = ", ".join(sorted(self._kinds))
            close = difflib.get_close_matches(str(name), list(self._kinds), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown {self.noun} kind {name!r} ({hint}known: {known})", file=file, field=field
            )
        kind = self._kinds[name]
        if isinstance(kind, _Plugin):
            kind = self._load(name, kind.entry_point, file, field)
        return kind

    def _load(self, name: str, ep: EntryPoint, file: str | None, field: str | None) -> Kind:
        where = f"plugin {self.noun} kind {name!r} ({self.group}: {ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:  # an import error of someone else's package, any class
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"{where} cannot be loaded: {type(exc).__name__}: {first}", file=file, field=field
            ) from None
        if not isinstance(obj, Kind):
            raise ConfigError(
                f"{where} is a {type(obj).__name__}, not a turnout.plugins.Kind",
                file=file,
                field=field,
            )
        self._kinds[name] = obj
        return obj

    def _scan(self) -> None:
        if self._scanned:
            return
        with self._lock:
            if self._scanned:
                return
            for ep in entry_points(group=self.group):
                self._kinds.setdefault(ep.name, _Plugin(ep))
            self._scanned = True

    def rescan(self) -> None:
        """Read the entry points again (after installing a plugin into a running process)."""
        self._scanned = False
        self._scan()


def validate_options(
    kind: Kind, options: Mapping[str, Any], *, file: str | None, field: str
) -> dict[str, Any]:
    """``options`` checked against ``kind``'s schema (defaults filled in by a pydantic
    model); the first problem is one ConfigError naming ``field.<option>``."""
    schema = kind.schema()
    data = dict(options)
    if schema is None:
        return data
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(data).model_dump()
        except ValidationError as exc:
            raise first_error(
                exc, file or "turnout.yaml", prefix=field, raw=data, schema=schema
            ) from None
    if isinstance(schema, Mapping):
        return _json_schema(schema, data, file, field)
    names = set(schema)
    for key in data:
        if key not in names:
            raise ConfigError("unknown field", file=file, field=f"{field}.{key}")
    return data


def _json_schema(
    schema: Mapping[str, Any], data: dict[str, Any], file: str | None, field: str
) -> dict[str, Any]:
    import jsonschema  # only for kinds that declare a JSON Schema

    validator = _validator(id(schema), schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return data
    path = [str(p) for p in error.absolute_path]
    message = error.message
    if error.validator == "additionalProperties":
        allowed = schema.get("properties", {}) if not path else {}
        extra = [k for k in error.instance if k not in allowed] if allowed else []
        if extra:
            path, message = [*path, str(extra[0])], "unknown field"
    elif error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), None)
        if missing is not None:
            path, message = [*path, str(missing)], "required field is missing"
    raise ConfigError(message, file=file, field=".".join([field, *path]))


_validators: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(key: int, schema: Mapping[str, Any]) -> Any:
    """One compiled validator per schema object (the schema is kept alive with it)."""
    import jsonschema

    entry = _validators.get(key)
    if entry is None or entry[0] is not schema:
        plain = dict(schema)
        cls = jsonschema.validators.validator_for(plain)
        try:
            cls.check_schema(plain)
        except jsonschema.exceptions.SchemaError as exc:
            raise ConfigError(
                f"the kind's options schema is not a valid JSON Schema: {exc.message}"
            ) from None
        entry = _validators[key] = (schema, cls(plain))
    return entry[1]


def _policy(module: str, cls: str, schema: str) -> Kind:
    return Kind(
        f"turnout.policies.{module}:{cls}.from_options", f"turnout.config.policy_schemas:{schema}"
    )


POLICIES = Registry(
    "turnout.policies",
    "policy",
    {
        "static": _policy("static", "StaticPolicy", "StaticPolicySchema"),
        "per_step": _policy("per_step", "PerStepPolicy", "PerStepPolicySchema"),
        "rules": _policy("rules", "RulesPolicy", "RulesPolicySchema"),
        "complexity": _policy("complexity", "ComplexityPolicy", "ComplexityPolicySchema"),
        "task_type": _policy("task_type", "TaskTypePolicy", "TaskTypePolicySchema"),
        "cascade": _policy("cascade", "CascadePolicy", "CascadePolicySchema"),
        "fallback": _policy("fallback", "FallbackPolicy", "FallbackPolicySchema"),
        "ensemble": _policy("ensemble", "EnsemblePolicy", "EnsemblePolicySchema"),
        "ab": _policy("ab", "ABPolicy", "ABPolicySchema"),
        "learned": _policy("learned", "LearnedPolicy", "LearnedPolicySchema"),
        "switch": _policy("switch", "SwitchPolicy", "SwitchPolicySchema"),
        "fastest": _policy("fastest", "FastestPolicy", "FastestPolicySchema"),
        "workflow": _policy("workflow_default", "WorkflowDefaultPolicy", "WorkflowPolicySchema"),
    },
)
"""Policy kinds: ``build(name, options, settings) -> Policy``."""

PROVIDERS = Registry(
    "turnout.providers",
    "provider",
    {
        "openai": Kind(
            "turnout.providers.openai_compat:from_config",
            "turnout.config.schema:OpenAIProviderSchema",
        ),
        "local": Kind(
            "turnout.providers.local:from_config", "turnout.config.schema:LocalProviderSchema"
        ),
    },
)
"""Provider kinds: ``build(config, models) -> Provider``. Every provider entry also takes
``timeouts`` (read by the loader), so a kind's schema leaves it out."""

CHECKS = Registry(
    "turnout.checks",
    "check",
    {
        name: Kind(f"turnout.checks.builtin:{builder}", f"turnout.checks.builtin:{options}", main)
        for name, builder, options, main in (
            ("contains_all", "build_contains", "CONTAINS_OPTIONS", "values"),
            ("contains_any", "build_contains", "CONTAINS_OPTIONS", "values"),
            ("regex", "build_regex", "REGEX_OPTIONS", "pattern"),
            ("json", "build_json", "JSON_OPTIONS", "schema"),
            ("max_chars", "build_max_chars", "MAX_CHARS_OPTIONS", "limit"),
            ("python", "build_python", "PYTHON_OPTIONS", "function"),
        )
    },
)
"""Check kinds: ``build(spec: CheckSpec) -> Check``."""
