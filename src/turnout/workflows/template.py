"""Prompt templates: ``{{ name }}`` placeholders, Jinja2-style, nothing else.

Only double-brace placeholders are special, so JSON in a prompt
(``{"order_id": "A-1"}``) stays literal. A placeholder may reach into a
value (``{{ extract.order_ids }}``) and may ask for JSON (``{{ extract | json }}``).
Values are serialized by :func:`turnout.workflows.handoff.serialize`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turnout.errors import TemplateError
from turnout.workflows.handoff import serialize, to_json

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w-]*)((?:\.[\w-]+)*)\s*(?:\|\s*(json)\s*)?\}\}")


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and placeholders, parsed once."""

    source: str
    parts: tuple[str | tuple[str, tuple[str, ...], bool], ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        parts: list[str | tuple[str, tuple[str, ...], bool]] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            path = tuple(p for p in m.group(2).split(".") if p)
            parts.append((m.group(1), path, m.group(3) == "json"))
            pos = m.end()
        if pos < len(source):
            parts.append(source[pos:])
        return cls(source, tuple(parts))

    @property
    def names(self) -> frozenset[str]:
        """The top-level names this template needs."""
        return frozenset(p[0] for p in self.parts if isinstance(p, tuple))

    def render(self, values: Mapping[str, Any], *, step: str | None = None) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, path, as_json = part
            if name not in values:
                raise TemplateError(
                    f"template needs {{{{ {name} }}}} but it was not given", step=step
                )
            value = values[name]
            for key in path:
                value = _get(value, key, name, step)
            out.append(to_json(value) if as_json else serialize(value))
        return "".join(out)


def _get(value: Any, key: str, name: str, step: str | None) -> Any:
    if isinstance(value, Mapping) and key in value:
        return value[key]
    if isinstance(value, list | tuple) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    raise TemplateError(f"{{{{ {name}.{key} }}}}: {name} has no field {key!r}", step=step)
