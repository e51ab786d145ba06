"""``kind: ab``: weighted variants with sticky assignment.

The variant comes from a stable hash (SHA-256) of the policy name and the value
of the tag named by ``key`` (a user or session id), so the same user always gets
the same variant, across runs, processes and machines. A variant is a model, or
the name of another policy, whose decision is then used (composition). A run
without that tag is assigned by its run id, and the reason says so. The variant
is recorded with the decision and with the run.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import replace
from itertools import accumulate
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, Policy, PoolHealth, RequestContext
from turnout.types import Decision

RUN_TAG = "run"
_SCALE = float(2**64)


def bucket(salt: str, value: str) -> float:
    """A uniform number in [0, 1) that depends only on ``salt`` and ``value``."""
    digest = hashlib.sha256(f"{salt}\x00{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


class ABPolicy:
    def __init__(
        self,
        name: str,
        key: str,
        variants: Mapping[str, float],
        delegates: Mapping[str, Policy],
        salt: str | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self.names = tuple(variants)
        total = sum(variants.values())
        self.cuts = tuple(w / total for w in accumulate(variants.values()))
        self.delegates = dict(delegates)
        self.salt = salt or name

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any], settings: Settings) -> ABPolicy:
        from turnout.policies.registry import build_policy

        variants: Mapping[str, float] = options["variants"]
        delegates = {
            v: build_policy(v, settings)
            for v in variants
            if v not in settings.models and v in settings.policies
        }
        return cls(name, str(options.get("key", "user")), variants, delegates, options.get("salt"))

    def assign(self, value: str) -> str:
        i = bisect_right(self.cuts, bucket(self.salt, value))
        return self.names[min(i, len(self.names) - 1)]

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        value = ctx.tags.get(self.key)
        by = f"{self.key}={value}"
        if value is None:
            value = ctx.tags.get(RUN_TAG, "")
            by = f"no {self.key} tag, by run"
        variant = self.assign(value)
        delegate = self.delegates.get(variant)
        if delegate is None:
            reason = f"ab: {by} -> variant {variant}"
            return Decision((variant,), reason, self.name, variant=variant)
        inner = delegate.decide(ctx, health)
        return replace(
            inner,
            reason=f"ab: {by} -> variant {variant} -> {inner.reason}",
            policy=self.name,
            variant=variant,
        )
