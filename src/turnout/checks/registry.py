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
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from turnout.checks.base import Check
from turnout.checks.contains import ContainsAll, ContainsAny
from turnout.checks.json_check import JsonCheck
from turnout.checks.max_chars import MaxChars
from turnout.checks.python_check import PythonCheck
from turnout.checks.regex import FLAG_NAMES, RegexCheck, parse_flags
from turnout.errors import ConfigError
from turnout.workflows.callables import resolve_callable

COMMON_OPTIONS = frozenset({"required", "name"})
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class _Entry:
    """One entry being built: its kind, main value, options and where it came from."""

    kind: str
    value: Any
    options: Mapping[str, Any]
    where: str
    file: str | None
    base_dir: Path | None
    long_form: bool = False  # the value came from under its own key ({json: {schema: ...}})

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.kind}: {message}", file=self.file, field=self.where)

    def flag(self, key: str, default: bool = False) -> bool:
        v = self.options.get(key, default)
        if not isinstance(v, bool):
            self.fail(f"option {key!r} must be true or false, got {v!r}")
        return v


_Builder = Callable[[_Entry, bool, str], Check]


def _keywords(entry: _Entry) -> tuple[str, ...]:
    v = entry.value
    if v is _MISSING:
        entry.fail(f"needs a list of keywords, e.g. {{{entry.kind}: [a, b]}}")
    if not isinstance(v, list | tuple):
        entry.fail(f"keywords must be a list of strings, got {type(v).__name__} {v!r}")
    if not v:
        entry.fail("the keyword list is empty; give at least one keyword")
    for i, item in enumerate(v):
        if not isinstance(item, str):
            entry.fail(
                f"keyword [{i}] must be a string, got {type(item).__name__} {item!r} "
                "(quote it in YAML)"
            )
        if not item.strip():
            entry.fail(f"keyword [{i}] is an empty string")
    return tuple(v)


def _build_contains(entry: _Entry, required: bool, name: str) -> Check:
    keywords = _keywords(entry)
    cls = ContainsAll if entry.kind == "contains_all" else ContainsAny
    return cls(
        keywords,
        case_sensitive=entry.flag("case_sensitive"),
        word=entry.flag("word"),
        required=required,
        name=name,
    )


def _build_regex(entry: _Entry, required: bool, name: str) -> Check:
    pattern = entry.value
    if pattern is _MISSING:
        entry.fail('needs a pattern, e.g. {regex: "^yes\\b"}')
    if not isinstance(pattern, str):
        entry.fail(f"the pattern must be a string, got {type(pattern).__name__}")
    names = [k for k in FLAG_NAMES if entry.flag(k)]
    listed = entry.options.get("flags", [])
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
        entry.fail(f"option 'flags' must be a list of flag names, got {listed!r}")
    try:
        flags = parse_flags([*names, *listed])
        return RegexCheck(
            pattern, flags, fullmatch=entry.flag("fullmatch"), required=required, name=name
        )
    except ValueError as exc:
        entry.fail(str(exc))


def _load_schema(entry: _Entry, ref: str) -> Any:
    path = Path(ref)
    if not path.is_absolute() and entry.base_dir is not None:
        path = entry.base_dir / path
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        entry.fail(f"cannot read schema file {str(path)!r}: {exc.strerror or exc}")
    import yaml  # only needed for schema files

    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        entry.fail(f"schema file {str(path)!r} is not valid JSON/YAML: {exc}")


def _build_json(entry: _Entry, required: bool, name: str) -> Check:
    v = entry.value
    if v is False:
        entry.fail("'json: false' checks nothing; remove the entry instead")
    if v is _MISSING or v is True or v is None:
        schema = None
    elif isinstance(v, str):
        schema = _load_schema(entry, v)
    elif isinstance(v, Mapping) or entry.long_form:
        schema = v
    else:
        entry.fail(f"expected true or {{schema: ...}}, got {type(v).__name__} {v!r}")
    if schema is not None and not isinstance(schema, Mapping):
        entry.fail(f"'schema' must be a mapping (or a path to one), got {type(schema).__name__}")
    try:
        return JsonCheck(schema, strict=entry.flag("strict"), required=required, name=name)
    except ValueError as exc:
        entry.fail(str(exc))


def _build_max_chars(entry: _Entry, required: bool, name: str) -> Check:
    v = entry.value
    if v is _MISSING:
        entry.fail("needs a limit, e.g. {max_chars: 500}")
    if isinstance(v, bool) or not isinstance(v, int):
        entry.fail(f"the limit must be a positive integer, got {type(v).__name__} {v!r}")
    if v < 1:
        entry.fail(f"the limit must be a positive integer, got {v}")
    return MaxChars(v, required=required, name=name)


def _build_python(entry: _Entry, required: bool, name: str) -> Check:
    ref = entry.value
    if ref is _MISSING:
        entry.fail('needs a callable, e.g. {python: "steps:reply_is_polite"}')
    if not isinstance(ref, str):
        entry.fail(f"expected a 'module:function' string, got {type(ref).__name__}")
    try:
        fn = resolve_callable(ref, base_dir=entry.base_dir, where=entry.where)
    except ConfigError as exc:
        message = str(exc)
        prefix = f"{exc.field}: " if exc.field else ""
        if prefix and message.startswith(prefix):
            message = message[len(prefix) :]
        entry.fail(message)
    try:
        return PythonCheck(fn, ref=ref, required=required, name=name)
    except ValueError as exc:
        entry.fail(f"{ref} {exc}")


@dataclass(frozen=True, slots=True)
class _Kind:
    main: str  # key of the main value in the long form
    options: frozenset[str]
    build: _Builder
    needs_value: bool = True


_KINDS: dict[str, _Kind] = {
    "contains_all": _Kind("values", frozenset({"case_sensitive", "word"}), _build_contains),
    "contains_any": _Kind("values", frozenset({"case_sensitive", "word"}), _build_contains),
    "regex": _Kind("pattern", frozenset({"flags", "fullmatch", *FLAG_NAMES}), _build_regex),
    "json": _Kind("schema", frozenset({"strict"}), _build_json, needs_value=False),
    "max_chars": _Kind("limit", frozenset(), _build_max_chars),
    "python": _Kind("function", frozenset(), _build_python),
}

CHECK_KINDS: tuple[str, ...] = tuple(sorted(_KINDS))
"""The kinds a ``checks:`` entry may name."""


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

    known = ", ".join(CHECK_KINDS)
    if isinstance(spec, str):
        spec = {spec: _MISSING}
    if not isinstance(spec, Mapping):
        fail(
            f"a check must be a mapping such as {{contains_all: [a, b]}} or a kind name, "
            f"got {type(spec).__name__}"
        )
    keys = [str(k) for k in spec]
    kinds = [k for k in keys if k in _KINDS]
    if len(kinds) > 1:
        fail(f"one check per entry, found {len(kinds)} kinds: {', '.join(kinds)}")
    if not kinds:
        unknown = [k for k in keys if k not in COMMON_OPTIONS]
        if not unknown:
            fail(f"no check kind given (expected one of: {known})")
        hint = _suggest(unknown[0], CHECK_KINDS)
        fail(f"unknown check kind {unknown[0]!r} ({hint}known: {known})")

    kind = kinds[0]
    info = _KINDS[kind]
    head = spec[kind]
    options = {str(k): v for k, v in spec.items() if str(k) != kind}
    value: Any = head
    long_form = isinstance(head, Mapping)
    if isinstance(head, Mapping):
        nested = {str(k): v for k, v in head.items()}
        value = nested.pop(info.main, _MISSING)
        twice = sorted(set(nested) & set(options))
        if twice:
            fail(f"{kind}: option {twice[0]!r} given both inside and beside {kind}")
        options.update(nested)
    if info.main in options:  # {json: true, schema: {...}} reads naturally
        if value is not _MISSING and value is not None and value is not True:
            fail(f"{kind}: {info.main!r} given twice")
        value = options.pop(info.main)
        long_form = True

    allowed = sorted(info.options | COMMON_OPTIONS | {info.main})
    for key in options:
        if key not in allowed:
            hint = _suggest(key, allowed)
            fail(f"{kind}: unknown option {key!r} ({hint}allowed: {', '.join(allowed)})")

    required = options.get("required", True)
    if not isinstance(required, bool):
        fail(f"{kind}: option 'required' must be true or false, got {required!r}")
    name = options.get("name", "")
    if not isinstance(name, str) or ("name" in options and not name.strip()):
        fail(f"{kind}: option 'name' must be a non-empty string, got {name!r}")
    entry = _Entry(kind, value, options, where, file, base_dir, long_form)
    return info.build(entry, required, name.strip())


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
