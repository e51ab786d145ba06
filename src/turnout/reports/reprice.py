"""Re-pricing a decision on recorded token counts, for ``turnout whatif`` (an estimate).

* A ``single`` or ``fallback`` decision is priced on its first model; a ``cascade``
  on its first rung only (where it would have escalated is unknown offline, so a
  lower bound); an ``ensemble`` on every member (a judge's call is not counted).
* Input and cached-input tokens are the recorded ones, at the new model's prices.
* Output tokens are scaled by a **learned ratio** when bench runs know one: for the
  same workflow and step, the mean output tokens of the new model over those of
  the recorded model, over the succeeded steps of runs that have a ``bench_id``,
  each side with at least ``min_samples`` steps. Otherwise they stay as recorded.

Costs come out in whole pico-dollars (see :mod:`turnout.tracing.rows`), so totals
are exact sums of the per-step figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal

from turnout.config.settings import Settings
from turnout.pricing.cost import MILLION
from turnout.tracing.rows import cost_to_pico
from turnout.tracing.store import TraceStore
from turnout.types import Decision

_PICO = Decimal("1E-12")
_MEANS_SQL = (
    "SELECT r.workflow, s.step_id, s.model, COUNT(*), SUM(s.output_tokens) "
    "FROM steps s JOIN runs r ON r.run_id = s.run_id "
    "WHERE r.bench_id IS NOT NULL AND s.kind = 'llm' AND s.status = 'succeeded' "
    "AND s.model IS NOT NULL GROUP BY r.workflow, s.step_id, s.model"
)

Means = Mapping[tuple[str, str, str], tuple[int, int]]
"""(workflow, step, model) -> (samples, total output tokens)."""


@dataclass(frozen=True, slots=True)
class OutputRatio:
    """Output tokens of ``to_model`` per output token of ``from_model`` on one step."""

    workflow: str
    step_id: str
    from_model: str
    to_model: str
    ratio: Decimal
    from_samples: int
    to_samples: int
    applied: int = 0
    """How many recorded steps it scaled."""


def bench_output_means(store: TraceStore) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Output tokens per (workflow, step, model) over the succeeded steps of bench runs."""
    return {
        (str(r[0]), str(r[1]), str(r[2])): (int(r[3]), int(r[4] or 0))
        for r in store.query(_MEANS_SQL)
    }


class Ratios:
    """Learned output-token ratios, each found once, and how often each was applied."""

    def __init__(self, means: Means, min_samples: int) -> None:
        self.means = means
        self.min_samples = min_samples
        self._found: dict[tuple[str, str, str, str], OutputRatio | None] = {}
        self._applied: Counter[tuple[str, str, str, str]] = Counter()

    def get(self, workflow: str, step_id: str, recorded: str, model: str) -> Decimal | None:
        """The ratio for moving this step from ``recorded`` to ``model`` (counted as used)."""
        if model == recorded:
            return None
        key = (workflow, step_id, recorded, model)
        if key not in self._found:
            self._found[key] = self._learn(*key)
        ratio = self._found[key]
        if ratio is None:
            return None
        self._applied[key] += 1
        return ratio.ratio

    def _learn(self, workflow: str, step_id: str, recorded: str, model: str) -> OutputRatio | None:
        base = self.means.get((workflow, step_id, recorded))
        new = self.means.get((workflow, step_id, model))
        if base is None or new is None or base[1] <= 0:
            return None
        if min(base[0], new[0]) < self.min_samples:
            return None
        ratio = (Decimal(new[1]) / new[0]) / (Decimal(base[1]) / base[0])
        return OutputRatio(workflow, step_id, recorded, model, ratio, base[0], new[0])

    def used(self) -> tuple[OutputRatio, ...]:
        """Every ratio applied at least once, with its count."""
        return tuple(
            replace(r, applied=self._applied[key])
            for key, r in self._found.items()
            if r is not None and self._applied[key]
        )


def price_decision(
    decision: Decision,
    settings: Settings,
    ratios: Ratios,
    *,
    workflow: str,
    step_id: str,
    recorded_model: str,
    tokens: tuple[int, int, int],
) -> list[tuple[str, int]]:
    """(model, projected pico-dollars) for every model the decision would call.

    ``tokens`` is the recorded (input, output, cached input) of the step.
    """
    models = decision.models if decision.strategy == "ensemble" else decision.models[:1]
    inp, out, cached = tokens
    cached = min(cached, inp)
    priced = []
    for model in models:
        price = settings.models[model].price
        ratio = ratios.get(workflow, step_id, recorded_model, model)
        output = Decimal(out) if ratio is None else out * ratio
        cached_price = price.input if price.cached_input is None else price.cached_input
        cost = (inp - cached) * price.input + cached * cached_price + output * price.output
        exact = (cost / MILLION).quantize(_PICO, rounding=ROUND_HALF_EVEN)
        priced.append((model, cost_to_pico(exact)))
    return priced
