"""Turning workflow YAML ``checks:`` entries into :class:`~turnout.checks.base.Check` objects.

Each entry names exactly one kind. The short form puts the kind's main value
next to the kind and options beside it; the long form puts a mapping under
the kind, with the main value under its own key. Both may be mixed::

    - contains_all: [risks, tests, rollback]
    - {contains_all: [a, b], required: false, case_sensitive: true, word: true}
    - contains_any: {values: [billing, technical], word: true}
    - regex: "^(billing|technical|account)\\b"
    - regex: {pattern: "^yes$", ignore_case: true, multiline: true}   # or flags: [ignore_case]
    - {regex: "^\\d+$", fullmatch: true}
    - json                                # or {json: true}
    - json: {schema: {type: object, required: [order_ids]}, strict: true}
    - json: {schema: schemas/order.json}   # a path, relative to the workflow file
    - max_chars: 500                      # or {max_chars: {limit: 500}}
    - python: "steps:reply_is_polite"     # or {python: {function: "steps:reply_is_polite"}}

Every entry also takes ``required`` (default true) and ``name`` (default: a
readable summary such as ``contains_all[risks,tests,rollback]``).

Anything wrong (unknown kind or option, two kinds in one entry, a value of the
wrong type, an invalid regex or JSON Schema, a callable that cannot be
imported) is a one-line :class:`~turnout.errors.ConfigError` naming the file
and the entry.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from turnout.checks.base import Check
from turnout.config.kinds import CHECKS, Kind, validate_options
from turnout.errors import ConfigError

COMMON_OPTIONS = frozenset({"required", "name"})
MISSING: Any = object()
"""The value of a kind given without one (``- json``)."""


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One ``checks:`` entry, parsed: what a check kind's builder is given.

    ``value`` is the main value (MISSING when none was given); ``options`` the other
    options, checked against the kind's schema (for a kind with a pydantic or JSON
    schema, the main value is in there too, under its key, with defaults filled in).
    ``where`` and ``file`` name the entry for errors: raise with :meth:`fail`.
    """

    kind: str
    value: Any
    options: Mapping[str, Any]
    where: str
    file: str | None
    base_dir: Path | None
    long_form: bool = False  # the value came from under its own key ({json: {schema: ...}})
    required: bool = True
    name: str = ""

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.kind}: {message}", file=self.file, field=self.where)

    def flag(self, key: str, default: bool = False) -> bool:
        v = self.options.get(key, default)
        if not isinstance(v, bool):
            self.fail(f"option {key!r} must be true or false, got {v!r}")
        return v


def register_check(kind: str, kind_spec: Kind) -> None:
    """Add a check kind in this process (a package declares an entry point in
    ``turnout.checks`` instead; see :mod:`turnout.plugins`)."""
    CHECKS.register(kind, kind_spec)


CHECK_KINDS: tuple[str, ...] = CHECKS.builtin()
"""turnout's own kinds (plugins add theirs: ``CHECKS.names()``)."""


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def build_check(
    spec: Mapping[str, Any] | str,
    *,
    where: str,
    file: str | None = None,
    base_dir: Path | None = None,
) -> Check:
    """Build one check from a ``checks:`` entry.

    ``where`` names the entry (e.g. ``"step 'planner': checks[2]"``) and ``file``
    the workflow file, for error messages; ``base_dir`` is where relative
    ``python`` modules and schema files are looked up first.
    """

    def fail(message: str) -> NoReturn:
        raise ConfigError(message, file=file, field=where)

    if isinstance(spec, str):
        spec = {spec: MISSING}
    if not isinstance(spec, Mapping):
        fail(
            f"a check must be a mapping such as {{contains_all: [a, b]}} or a kind name, "
            f"got {type(spec).__name__}"
        )
    keys = [str(k) for k in spec]
    kinds = [k for k in keys if k in CHECK_KINDS]
    if not kinds:  # a plugin's kind, maybe (reads the entry points once)
        kinds = [k for k in keys if k not in COMMON_OPTIONS and CHECKS.known(k)]
    if len(kinds) > 1:
        fail(f"one check per entry, found {len(kinds)} kinds: {', '.join(kinds)}")
    if not kinds:
        known = ", ".join(CHECKS.names())
        unknown = [k for k in keys if k not in COMMON_OPTIONS]
        if not unknown:
            fail(f"no check kind given (expected one of: {known})")
        hint = _suggest(unknown[0], CHECKS.names())
        fail(f"unknown check kind {unknown[0]!r} ({hint}known: {known})")

    kind = kinds[0]
    info = CHECKS.get(kind, file=file, field=where)
    main = info.main or "value"
    head = spec[kind]
    options = {str(k): v for k, v in spec.items() if str(k) != kind}
    value: Any = head
    long_form = isinstance(head, Mapping)
    if isinstance(head, Mapping):
        nested = {str(k): v for k, v in head.items()}
        value = nested.pop(main, MISSING)
        twice = sorted(set(nested) & set(options))
        if twice:
            fail(f"{kind}: option {twice[0]!r} given both inside and beside {kind}")
        options.update(nested)
    if main in options:  # {json: true, schema: {...}} reads naturally
        if value is not MISSING and value is not None and value is not True:
            fail(f"{kind}: {main!r} given twice")
        value = options.pop(main)
        long_form = True

    required = options.pop("required", True)
    if not isinstance(required, bool):
        fail(f"{kind}: option 'required' must be true or false, got {required!r}")
    named = "name" in options
    name = options.pop("name", "")
    if not isinstance(name, str) or (named and not name.strip()):
        fail(f"{kind}: option 'name' must be a non-empty string, got {name!r}")
    schema = info.schema()
    if schema is None or isinstance(schema, type | Mapping):  # a schema checks the options
        given = options if value is MISSING else {main: value, **options}
        options = validate_options(info, given, file=file, field=f"{where}: {kind}")
        value = options.get(main, MISSING)
    else:  # the option names (the builder checks the values)
        allowed = sorted({*schema, *COMMON_OPTIONS, main})
        for key in options:
            if key not in allowed:
                hint = _suggest(key, allowed)
                fail(f"{kind}: unknown option {key!r} ({hint}allowed: {', '.join(allowed)})")
    entry = CheckSpec(
        kind, value, options, where, file, base_dir, long_form, required, name.strip()
    )
    check = info.factory()(entry)
    if not isinstance(check, Check):
        fail(f"the {kind} plugin built a {type(check).__name__}, not a check")
    return check


def build_checks(
    specs: Sequence[Mapping[str, Any] | str] | None,
    *,
    where_prefix: str,
    file: str | None = None,
    base_dir: Path | None = None,
) -> tuple[Check, ...]:
    """Build a step's ``checks:`` list; entry ``i`` is named ``f"{where_prefix}[{i}]"``.

    Pass ``where_prefix="step 'planner': checks"``. ``None`` (no ``checks:``) gives
    ``()``. When two entries would share a name, the later ones get ``#2``, ``#3``...
    so every result in a trace can be told apart.
    """
    if specs is None:
        return ()
    if isinstance(specs, str | bytes) or not isinstance(specs, Sequence):
        raise ConfigError(
            f"must be a list of checks, got {type(specs).__name__}", file=file, field=where_prefix
        )
    checks = [
        build_check(spec, where=f"{where_prefix}[{i}]", file=file, base_dir=base_dir)
        for i, spec in enumerate(specs)
    ]
    seen: dict[str, int] = {}
    out: list[Check] = []
    for check in checks:
        count = seen[check.name] = seen.get(check.name, 0) + 1
        if count > 1 and dataclasses.is_dataclass(check):
            check = dataclasses.replace(check, name=f"{check.name}#{count}")
        out.append(check)
    return tuple(out)
