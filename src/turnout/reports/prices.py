"""How the costs in a report were priced, so every cost shown can say so.

Costs in traces are computed from the pool's prices when the runs happen. A
report names those prices next to every cost it shows, and above all says when
a model is a *stand-in* (a local model priced as if it were a hosted one): its
``price_label`` in ``turnout.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from turnout.config.loader import load_settings
from turnout.config.settings import Settings
from turnout.errors import ConfigError


def per_m(price: Decimal | None) -> str:
    """A price per million tokens as written in a price sheet: $5, $0.15, $1.25."""
    if price is None:
        return "—"
    text = f"{price.normalize():f}"
    whole, _, decimals = text.partition(".")
    return f"${whole}" if not decimals else f"${whole}.{decimals.ljust(2, '0')}"


@dataclass(frozen=True, slots=True)
class PricedModel:
    name: str
    tier: str | None = None
    input_per_m: Decimal | None = None
    output_per_m: Decimal | None = None
    label: str | None = None

    def describe(self) -> str:
        parts = [self.name]
        if self.input_per_m is not None and self.output_per_m is not None:
            parts.append(
                f"{per_m(self.input_per_m)} in / {per_m(self.output_per_m)} out per M tokens"
            )
        if self.label:
            parts.append(self.label)
        return " — ".join(parts) if len(parts) > 1 else f"{self.name} (price unknown)"


@dataclass(frozen=True, slots=True)
class Pricing:
    """The prices behind a report's costs; ``problem`` says why they are unknown."""

    models: tuple[PricedModel, ...] = ()
    source: str | None = None
    problem: str | None = None

    @property
    def has_stand_ins(self) -> bool:
        return any(m.label and "stand-in" in m.label.lower() for m in self.models)

    @property
    def labelled(self) -> tuple[PricedModel, ...]:
        return tuple(m for m in self.models if m.label)

    def note(self) -> str:
        """One line for under a chart or table that shows cost."""
        if self.problem:
            return f"Costs as recorded when the bench ran; {self.problem}."
        if not self.models:
            return "Costs as recorded when the bench ran (no model calls were priced)."
        return "Prices: " + "; ".join(m.describe() for m in self.models) + "."


def pricing_of(settings: Settings, models: Iterable[str], source: str | None = None) -> Pricing:
    """The pool's prices and labels for ``models`` (names the pool no longer has are
    listed with an unknown price)."""
    out = []
    for name in dict.fromkeys(models):
        spec = settings.models.get(name)
        if spec is None:
            out.append(PricedModel(name, label="not in the current config; price unknown"))
            continue
        out.append(
            PricedModel(
                name=name,
                tier=str(spec.tier.value),
                input_per_m=spec.price.input,
                output_per_m=spec.price.output,
                label=spec.price_label,
            )
        )
    return Pricing(tuple(out), source=source)


def load_pricing(config: Path | None, models: Iterable[str]) -> Pricing:
    """Prices from the config that ran the bench (or the one given); when it cannot be
    read the report says so rather than failing."""
    if config is None:
        return Pricing(problem="the bench does not say which config priced it")
    if not config.exists():
        return Pricing(problem=f"its config {config} is gone, so price labels are unknown")
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return Pricing(problem=f"its config could not be read ({exc}), so price labels are unknown")
    return pricing_of(settings, models, source=str(config))
