"""``json``: the output is (or contains) valid JSON, optionally matching a JSON Schema.

The JSON is found the lenient way (:func:`~turnout.checks.json_extract.extract_json`:
whole text, a code fence, or the first ``{...}`` / ``[...]``); ``strict: true``
requires the whole text to be JSON. When the step's value is already structured
(a code step's dict, an ``output: json`` step's parsed value) it is checked as is.

A schema is checked against its meta-schema when the check is built (``$schema``
picks the draft; 2020-12 by default) and ``format`` keywords are asserted. A
failure's detail names the path of the most relevant error and its message.
``jsonschema`` is imported only when a schema is first used (it is slow to import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnout.checks.base import shorten
from turnout.checks.json_extract import JSONExtractError, find_json
from turnout.types import CheckResult

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

_STRUCTURED = (dict, list, int, float, bool, type(None))


def json_path(parts: Any) -> str:
    """``$.orders[0].id`` from a jsonschema path deque."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def make_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for ``schema``; an invalid schema raises ValueError naming where."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, Mapping):
        raise ValueError(f"schema must be a mapping, got {type(schema).__name__}")
    schema = dict(schema)
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = json_path(exc.path)
        raise ValueError(f"invalid JSON Schema at {where}: {shorten(exc.message, 120)}") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def first_error(errors: list[ValidationError]) -> ValidationError:
    """The error to show: the shallowest, then the first reported; anyOf/oneOf last.

    Its sub-errors (under anyOf / oneOf) are then narrowed with jsonschema's
    ``best_match``.
    """
    from jsonschema.exceptions import WEAK_MATCHES, best_match

    ranked = min(
        enumerate(errors),
        key=lambda ie: (len(ie[1].path), ie[1].validator in WEAK_MATCHES, ie[0]),
    )[1]
    return best_match([ranked]) or ranked


@dataclass(frozen=True, slots=True)
class JsonCheck:
    """Passes when the output holds valid JSON (matching ``schema`` when given)."""

    schema: Mapping[str, Any] | None = None
    strict: bool = False
    required: bool = True
    name: str = ""
    _validator: Validator | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validator = None if self.schema is None else make_validator(self.schema)
        object.__setattr__(self, "_validator", validator)
        if not self.name:
            object.__setattr__(self, "name", "json[schema]" if self.schema is not None else "json")

    def _instance(self, text: str, value: object) -> tuple[Any, str]:
        if not isinstance(value, str) and isinstance(value, _STRUCTURED):
            return value, "value"
        obj, source = find_json(text)
        if self.strict and source != "whole":
            found = "a code block" if source == "fence" else "surrounding text"
            raise JSONExtractError(f"the output is not only JSON (found it inside {found})")
        return obj, source

    def run(self, text: str, value: object) -> CheckResult:
        try:
            instance, source = self._instance(text, value)
        except JSONExtractError as exc:
            return CheckResult(self.name, False, shorten(str(exc)), self.required)
        where = {"fence": " (from a code block)", "embedded": " (inside text)"}.get(source, "")
        if self._validator is None:
            return CheckResult(
                self.name, True, f"valid JSON {_kind(instance)}{where}", self.required
            )
        errors: list[ValidationError] = list(self._validator.iter_errors(instance))
        if not errors:
            return CheckResult(self.name, True, f"matches schema{where}", self.required)
        err = first_error(errors)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        detail = f"{json_path(err.absolute_path)}: {shorten(err.message, 150)}{more}"
        return CheckResult(self.name, False, detail, self.required)
