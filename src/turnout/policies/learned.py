"""``kind: learned``: route by a router trained on outcomes (``turnout learn``).

::

    smart:
      kind: learned
      router: routers/smart.json     # relative to turnout.yaml
      models: [smol, qwen]           # cheapest first; default: the router's models
      target: {quality: 0.95}        # or {strong_share: 0.3}, or threshold: 0.1
      fallback: false                # true: the rest of the list follows as a chain

The router scores the request: per model, the probability that its answer
passes (:mod:`turnout.learn`). Deciding is separate from scoring: the policy
takes the cheapest healthy model whose probability is within ``threshold`` of
the strongest healthy model's. ``threshold:`` is used as given; a ``target:`` is
turned into a threshold when the policy is built, on the out-of-fold predictions
stored in the router file (no retraining); with neither, the router's own
threshold (the one ``turnout learn`` calibrated) is used. The reason names the
probabilities and the threshold, e.g.
``learned: p_pass smol 0.41, qwen 0.83; qwen ahead by 0.42 > 0.10 -> qwen``.

Scoring reads the prompt's MiniLM embedding (the semantic cache's offline
encoder), so the first decision of a new prompt costs an embedding; the rows of
recent prompts are kept, so a repeated prompt costs a look-up and a dot product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from turnout.config.settings import Settings, beside_config
from turnout.errors import ConfigError
from turnout.learn.calibrate import choose, threshold_for
from turnout.learn.features import Featurizer, Item
from turnout.learn.router_file import Router, load_router
from turnout.policies.base import HEALTHY, PoolHealth, RequestContext
from turnout.types import Decision


class LearnedPolicy:
    def __init__(
        self,
        name: str,
        router: Router,
        *,
        models: Sequence[str] | None = None,
        threshold: float | None = None,
        target: Mapping[str, Any] | None = None,
        fallback: bool = False,
        featurizer: Featurizer | None = None,
    ) -> None:
        self.name = name
        self.router = router
        self.models = tuple(models) if models else router.models
        missing = [m for m in self.models if m not in router.models]
        if missing:
            raise ValueError(f"model {missing[0]!r} is not scored by the router")
        if len(self.models) < 2:
            raise ValueError("models needs at least two models")
        self._cols = [router.models.index(m) for m in self.models]
        self.threshold = self._threshold(threshold, target)
        self.fallback = fallback
        self.featurizer = featurizer or Featurizer(router.spec)

    def _threshold(self, threshold: float | None, target: Mapping[str, Any] | None) -> float:
        if threshold is not None:
            return float(threshold)
        if target:
            p, passed = self.router.calibration_p, self.router.calibration_passed
            if p is None or passed is None or not len(p):
                raise ValueError("the router file has no calibration sample for a target")
            return threshold_for(target, p[:, self._cols], passed[:, self._cols])
        return self.router.threshold

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> LearnedPolicy:
        field = f"policies.{name}"
        router = load_router(beside_config(settings.path, Path(str(options["router"]))))
        try:
            return cls(
                name,
                router,
                models=options.get("models"),
                threshold=options.get("threshold"),
                target=options.get("target"),
                fallback=bool(options.get("fallback")),
            )
        except ValueError as exc:
            raise ConfigError(str(exc), file=settings.source, field=field) from None

    def p_pass(self, ctx: RequestContext) -> dict[str, float]:
        """The router's pass probability for each of this policy's models."""
        p = self.router.p_pass(self.featurizer.row(Item.of_context(ctx)))
        return {m: float(p[c]) for m, c in zip(self.models, self._cols, strict=True)}

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        p_all = self.router.p_pass(self.featurizer.row(Item.of_context(ctx)))
        healthy = [i for i, m in enumerate(self.models) if health.healthy(m)] or list(
            range(len(self.models))
        )
        p = p_all[[self._cols[i] for i in healthy]]
        pick = healthy[choose(p, self.threshold)]
        model, strongest = self.models[pick], self.models[healthy[-1]]
        shown = ", ".join(
            f"{m} {p_all[c]:.2f}" for m, c in zip(self.models, self._cols, strict=True)
        )
        ahead = float(p[-1] - p_all[self._cols[pick]]) if model != strongest else None
        if model == strongest:
            lead = min((float(p[-1] - q) for q in p[:-1]), default=0.0)
            why = f"{strongest} ahead by {lead:.2f} > {self.threshold:.2f}"
        else:
            why = f"{strongest} ahead by {max(ahead or 0.0, 0.0):.2f} <= {self.threshold:.2f}"
        down = [m for m in self.models if not health.healthy(m)]
        note = f" ({', '.join(down)} unavailable)" if down else ""
        reason = f"learned: p_pass {shown}; {why}{note} -> {model}"
        if self.fallback:
            chain = (model, *(self.models[i] for i in healthy if i > pick))
            return Decision(
                chain, reason, self.name, strategy="fallback" if len(chain) > 1 else "single"
            )
        return Decision((model,), reason, self.name)
