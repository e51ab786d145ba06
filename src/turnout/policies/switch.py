"""``kind: switch``: a policy per context, chosen by a tag.

::

    by_context:
      kind: switch
      on: context                    # the tag to look at
      cases: {ci: strict, local: cheap_first}
      default: balanced

Each case (and ``default``) names another policy, whose decision is used
(composition, as in ``ab``), or a pool model. A request whose tag is missing or
has no case gets ``default``. ``turnout run`` and ``bench`` set ``context=ci``
when the environment says CI (see :func:`turnout.cli.common.context_tags`). The
reason shows the context: ``switch: context=ci -> strict -> rules: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from turnout.config.settings import Settings
from turnout.policies.base import HEALTHY, Policy, PoolHealth, RequestContext
from turnout.types import Decision


class SwitchPolicy:
    def __init__(
        self,
        name: str,
        on: str,
        cases: Mapping[str, str],
        default: str,
        delegates: Mapping[str, Policy],
    ) -> None:
        self.name = name
        self.on = on
        self.cases = {str(k).strip().lower(): v for k, v in cases.items()}
        self.default = default
        self.delegates = dict(delegates)

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], settings: Settings
    ) -> SwitchPolicy:
        from turnout.policies.registry import build_policy

        cases: Mapping[str, str] = options.get("cases") or {}
        default = str(options["default"])
        targets = {*cases.values(), default}
        delegates = {
            t: build_policy(t, settings)
            for t in targets
            if t not in settings.models and t in settings.policies
        }
        return cls(name, str(options["on"]), cases, default, delegates)

    def decide(self, ctx: RequestContext, health: PoolHealth = HEALTHY) -> Decision:
        value = ctx.tags.get(self.on)
        target = self.cases.get(value.strip().lower()) if value is not None else None
        if target is None:
            target = self.default
            head = (
                f"switch: {self.on}={value} has no case" if value else f"switch: no {self.on} tag"
            )
            head += f", default {target}"
        else:
            head = f"switch: {self.on}={value} -> {target}"
        delegate = self.delegates.get(target)
        if delegate is None:
            if not health.healthy(target):
                head += f" ({target} unavailable)"
            return Decision((target,), head, self.name)
        inner = delegate.decide(ctx, health)
        return replace(inner, reason=f"{head} -> {inner.reason}", policy=self.name)
