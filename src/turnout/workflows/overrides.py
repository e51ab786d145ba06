"""Human overrides: ``--override STEP=MODEL --by NAME --why TEXT`` applied to a workflow.

An override supersedes the policy's decision for one step and is recorded with
the trace (who and why), so ``turnout audit`` can list every decision a person
took out of the policy's hands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from turnout.errors import ConfigError
from turnout.workflows.spec import Override, Workflow


def parse_overrides(pairs: Sequence[str], by: str | None, why: str | None) -> dict[str, Override]:
    """``STEP=MODEL`` pairs; an override must say who made it and why."""
    if not pairs:
        return {}
    if not by or not why:
        raise ConfigError(
            "--override needs --by NAME and --why TEXT (they go into the audit trail)"
        )
    out: dict[str, Override] = {}
    for pair in pairs:
        step, sep, model = pair.partition("=")
        if not sep or not step.strip() or not model.strip():
            raise ConfigError(f"--override {pair!r}: expected STEP=MODEL")
        out[step.strip()] = Override(model.strip(), by, why)
    return out


def apply_overrides(workflow: Workflow, overrides: dict[str, Override]) -> Workflow:
    """A copy of ``workflow`` with the overrides set on their steps."""
    if not overrides:
        return workflow
    ids = {s.id for s in workflow.steps}
    for step_id in overrides:
        if step_id not in ids:
            known = ", ".join(s.id for s in workflow.steps)
            raise ConfigError(
                f"--override: no step {step_id!r} (steps: {known})", file=workflow.file
            )
    steps = tuple(
        replace(s, override=overrides[s.id]) if s.id in overrides else s for s in workflow.steps
    )
    return replace(workflow, steps=steps)
