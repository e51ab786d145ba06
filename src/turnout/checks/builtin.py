"""The built-in check kinds' builders (looked up through
:data:`turnout.config.kinds.CHECKS`, like a plugin's) and their option names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnout.checks.base import Check
from turnout.checks.contains import ContainsAll, ContainsAny
from turnout.checks.json_check import JsonCheck
from turnout.checks.max_chars import MaxChars
from turnout.checks.python_check import PythonCheck
from turnout.checks.regex import FLAG_NAMES, RegexCheck, parse_flags
from turnout.checks.registry import MISSING, CheckSpec
from turnout.errors import ConfigError
from turnout.workflows.callables import resolve_callable

CONTAINS_OPTIONS = frozenset({"case_sensitive", "word"})
REGEX_OPTIONS = frozenset({"flags", "fullmatch", *FLAG_NAMES})
JSON_OPTIONS = frozenset({"strict"})
MAX_CHARS_OPTIONS: frozenset[str] = frozenset()
PYTHON_OPTIONS: frozenset[str] = frozenset()


def _keywords(entry: CheckSpec) -> tuple[str, ...]:
    v = entry.value
    if v is MISSING:
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


def build_contains(entry: CheckSpec) -> Check:
    keywords = _keywords(entry)
    cls = ContainsAll if entry.kind == "contains_all" else ContainsAny
    return cls(
        keywords,
        case_sensitive=entry.flag("case_sensitive"),
        word=entry.flag("word"),
        required=entry.required,
        name=entry.name,
    )


def build_regex(entry: CheckSpec) -> Check:
    pattern = entry.value
    if pattern is MISSING:
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
            pattern,
            flags,
            fullmatch=entry.flag("fullmatch"),
            required=entry.required,
            name=entry.name,
        )
    except ValueError as exc:
        entry.fail(str(exc))


def _load_schema(entry: CheckSpec, ref: str) -> Any:
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


def build_json(entry: CheckSpec) -> Check:
    v = entry.value
    if v is False:
        entry.fail("'json: false' checks nothing; remove the entry instead")
    if v is MISSING or v is True or v is None:
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
        return JsonCheck(
            schema, strict=entry.flag("strict"), required=entry.required, name=entry.name
        )
    except ValueError as exc:
        entry.fail(str(exc))


def build_max_chars(entry: CheckSpec) -> Check:
    v = entry.value
    if v is MISSING:
        entry.fail("needs a limit, e.g. {max_chars: 500}")
    if isinstance(v, bool) or not isinstance(v, int):
        entry.fail(f"the limit must be a positive integer, got {type(v).__name__} {v!r}")
    if v < 1:
        entry.fail(f"the limit must be a positive integer, got {v}")
    return MaxChars(v, required=entry.required, name=entry.name)


def build_python(entry: CheckSpec) -> Check:
    ref = entry.value
    if ref is MISSING:
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
        return PythonCheck(fn, ref=ref, required=entry.required, name=entry.name)
    except ValueError as exc:
        entry.fail(f"{ref} {exc}")
