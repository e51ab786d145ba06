"""Checks that need both a workflow and a pool: models it names, inputs it needs.

Run before any call is made, so bad input never leaves a half-written run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.config.settings import Settings
from turnout.errors import ConfigError, WorkflowError
from turnout.workflows.spec import Workflow


def check_against_pool(workflow: Workflow, settings: Settings) -> None:
    """Every model the workflow names must be in the pool."""
    file = workflow.file
    known = ", ".join(sorted(settings.models)) or "none"
    if workflow.default_model and workflow.default_model not in settings.models:
        raise ConfigError(
            f"unknown model {workflow.default_model!r} (pool: {known})",
            file=file,
            field="default_model",
        )
    for step in workflow.steps:
        for model, what in (
            (step.model, "model"),
            (step.override.model if step.override else None, "override.model"),
        ):
            if model and model not in settings.models:
                raise WorkflowError(
                    f"{what}: unknown model {model!r} (pool: {known})", file=file, step=step.id
                )


def bind_inputs(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow inputs for one run: all declared inputs present, nothing unknown."""
    missing = [name for name in workflow.inputs if name not in given]
    if missing:
        flags = " ".join(f"--input {m}=..." for m in missing)
        raise ConfigError(
            f"missing workflow input(s) {', '.join(missing)} (give {flags})", file=workflow.file
        )
    unknown = sorted(set(given) - set(workflow.inputs))
    if unknown:
        declared = ", ".join(workflow.inputs) or "none"
        raise ConfigError(
            f"unknown input(s) {', '.join(unknown)} (the workflow declares: {declared})",
            file=workflow.file,
        )
    return {name: given[name] for name in workflow.inputs}
