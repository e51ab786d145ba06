"""Reading YAML files with one-line errors that name the file and the line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from turnout.errors import ConfigError


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing file or malformed YAML becomes a ConfigError."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = exc.problem or "malformed YAML"
        raise ConfigError(f"malformed YAML: {problem}", file=str(path), field=where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=str(path)) from None


def first_error(
    exc: ValidationError,
    file: str,
    prefix: str = "",
    raw: Any = None,
    schema: type[BaseModel] | None = None,
) -> ConfigError:
    """Turn pydantic's report into one line naming the first bad field.

    With ``raw`` (the validated input), the tags pydantic adds for discriminated
    unions (``policies.p.cascade.models``) are dropped: ``policies.p.models``. With
    ``schema`` (the model validated), an unknown field gets the closest known one.
    """
    errors = exc.errors()
    # An unknown field explains the required one "missing" next to it (a typo: `teir:`),
    # so it is the one to report, with the close match.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    parts: list[str] = []
    node = raw
    tagged: Any = None
    for p in err["loc"]:
        key = str(p)
        if key.startswith("function-"):
            continue
        if isinstance(node, dict) and node.get("kind") == key and tagged is not node:
            tagged = node
            continue  # a discriminator tag, not a field of the input
        parts.append(key)
        if isinstance(node, dict):
            node = node.get(p)
        elif isinstance(node, list) and isinstance(p, int) and p < len(node):
            node = node[p]
        else:
            node = None
    loc = ".".join(parts)
    field = ".".join(p for p in (prefix, loc) if p)
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = len(errors) - 1
    if err["type"] == "extra_forbidden":
        name = str(err["loc"][-1])
        close = _close_match(name, err["loc"][:-1], errors)
        more -= close is not None  # the "missing" field is the same typo
        if close is None and schema is not None:
            close = _close_field(name, _fields_at(schema, err["loc"][:-1]))
        msg = "unknown field" + (f"; did you mean {close!r}?" if close else "")
    elif err["type"] == "missing":
        msg = "required field is missing"
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(msg, file=file, field=field or None)


def _close_match(name: str, parent: tuple[Any, ...], errors: list[Any]) -> str | None:
    """A required field missing beside the unknown ``name`` and close to it (``tier``)."""
    missing = [str(e["loc"][-1]) for e in errors
               if e["type"] == "missing" and tuple(e["loc"][:-1]) == tuple(parent)]  # fmt: skip
    return _close_field(name, missing)


def _close_field(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _fields_at(schema: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names of the model at ``loc`` (pydantic's path, with dict keys, list
    indexes and union tags) under ``schema``; empty when it cannot be told."""
    models: list[type[BaseModel]] = [schema]
    keyed = False  # the next part is a dict key or a list index, not a field
    for part in loc:
        if keyed or not isinstance(part, str):
            keyed = False
            continue
        tagged = [m for m in models if _tag_of(m) == part]
        if tagged:  # a union's tag: the kind it names
            models = tagged
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            return []
        models = [m for f in fields for m in _models_in(f.annotation)]
        keyed = any(_keyed(f.annotation) for f in fields)
    if len(models) != 1:
        return []
    return list(models[0].model_fields)


def _keyed(annotation: Any) -> bool:
    """Whether values of ``annotation`` are reached through a key or an index (a dict
    or a list of models, possibly optional)."""
    origin = get_origin(annotation)
    if origin in (dict, list, Mapping, Sequence):
        return True
    return any(_keyed(arg) for arg in get_args(annotation) if get_origin(arg) is not None)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds (``X``, ``X | None``, ``dict[str, X]``,
    ``list[X]``, an ``Annotated`` union of kinds)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tag_of(model: type[BaseModel]) -> str | None:
    kind = model.model_fields.get("kind")
    values = get_args(kind.annotation) if kind is not None else ()
    return str(values[0]) if len(values) == 1 else None
