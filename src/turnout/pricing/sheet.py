"""The bundled price sheet: list prices of common hosted models, each dated and sourced.

A model entry in ``turnout.yaml`` may say ``price_sheet: claude-haiku-4-5``
instead of repeating the prices. Prices change: every entry carries the date it
was read and where from, and ``turnout prices`` prints them so a user can see
how old they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from turnout.errors import ConfigError
from turnout.pricing.cost import Price

SHEET_FILE = "prices.yaml"


@dataclass(frozen=True, slots=True)
class SheetEntry:
    name: str
    provider: str
    price: Price
    context_window: int | None
    as_of: str
    source: str
    note: str | None = None


def _parse(raw: object, file: str) -> dict[str, SheetEntry]:
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise ConfigError("expected a top-level 'models' mapping", file=file)
    out: dict[str, SheetEntry] = {}
    for name, e in raw["models"].items():
        if not isinstance(e, dict):
            raise ConfigError("entry must be a mapping", file=file, field=f"models.{name}")
        try:
            out[str(name)] = SheetEntry(
                name=str(name),
                provider=str(e["provider"]),
                price=Price.of(e["input"], e["output"], e.get("cached_input")),
                context_window=int(e["context_window"]) if e.get("context_window") else None,
                as_of=str(e["as_of"]),
                source=str(e["source"]),
                note=str(e["note"]) if e.get("note") else None,
            )
        except KeyError as missing:
            raise ConfigError(
                f"missing field {missing.args[0]!r}", file=file, field=f"models.{name}"
            ) from None
    return out


@lru_cache(maxsize=1)
def bundled_sheet() -> dict[str, SheetEntry]:
    """The price sheet shipped inside the package."""
    text = resources.files("turnout.pricing").joinpath(SHEET_FILE).read_text("utf-8")
    return _parse(yaml.safe_load(text), f"turnout/pricing/{SHEET_FILE}")


def lookup(name: str) -> SheetEntry:
    sheet = bundled_sheet()
    try:
        return sheet[name]
    except KeyError:
        raise KeyError(name) from None
