"""Load a workflow from YAML into a validated :class:`~turnout.workflows.spec.Workflow`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from turnout.checks.registry import build_checks
from turnout.config.workflow_schema import StepSchema, WorkflowSchema
from turnout.config.yamlio import first_error, read_yaml
from turnout.errors import ConfigError, WorkflowError
from turnout.pricing.cost import to_decimal
from turnout.types import Annotation, Tier
from turnout.workflows.callables import resolve_callable
from turnout.workflows.spec import BudgetSpec, Override, Step, Workflow
from turnout.workflows.template import Template


def load_workflow(path: str | Path) -> Workflow:
    p = Path(path)
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping with name and steps", file=str(p))
    return workflow_from_dict(raw, path=p)


def workflow_from_dict(raw: Mapping[str, Any], *, path: Path | None = None) -> Workflow:
    file = str(path) if path else "workflow"
    steps_raw = raw.get("steps")
    try:
        schema = WorkflowSchema.model_validate(dict(raw))
    except ValidationError as exc:
        err = first_error(exc, file, raw=dict(raw), schema=WorkflowSchema)
        # name the step by id rather than by list index where we can
        loc = exc.errors()[0]["loc"]
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            sid = _step_id(steps_raw, loc[1])
            if sid:
                rest = ".".join(str(p) for p in loc[2:])
                msg = str(err).split(": ")[-1]
                raise WorkflowError(
                    f"{rest}: {msg}" if rest else msg, file=file, step=sid
                ) from None
        raise err from None
    base_dir = path.parent if path else None
    steps = tuple(_step(s, file, base_dir) for s in schema.steps)
    return Workflow(
        name=schema.name,
        steps=steps,
        inputs=tuple(schema.inputs),
        default_model=schema.default_model,
        description=schema.description,
        path=path,
        budget=_budget(schema.budget.run_usd, schema.budget.step_usd) if schema.budget else None,
    )


def _budget(run_usd: float | None, step_usd: float | None) -> BudgetSpec:
    return BudgetSpec(
        run_usd=to_decimal(run_usd) if run_usd is not None else None,
        step_usd=to_decimal(step_usd) if step_usd is not None else None,
    )


def _step_id(steps_raw: Any, index: int) -> str | None:
    if isinstance(steps_raw, list) and index < len(steps_raw):
        item = steps_raw[index]
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            return str(item["id"])
    return f"#{index + 1}"


def _step(s: StepSchema, file: str, base_dir: Path | None) -> Step:
    where = f"step {s.id!r}"
    checks = build_checks(s.checks, where_prefix=f"{where}: checks", file=file, base_dir=base_dir)
    annotation = Annotation(**s.annotation.model_dump()) if s.annotation else None
    override = Override(**s.override.model_dump()) if s.override else None
    if s.model and s.tier:
        raise WorkflowError("give either model or tier, not both", file=file, step=s.id)
    if s.kind == "code":
        if s.prompt is not None:
            raise WorkflowError("a code step has `run`, not `prompt`", file=file, step=s.id)
        if not s.run:
            raise WorkflowError("a code step needs `run: module:function`", file=file, step=s.id)
        try:
            fn = resolve_callable(s.run, base_dir=base_dir, where=where)
        except ConfigError as exc:
            raise WorkflowError(str(exc).removeprefix(f"{where}: "), file=file, step=s.id) from None
        return Step(
            id=s.id,
            kind="code",
            run=fn,
            run_ref=s.run,
            inputs=tuple(s.inputs),
            checks=checks,
            annotation=annotation,
        )
    if s.run is not None:
        raise WorkflowError("`run` is for code steps (add `kind: code`)", file=file, step=s.id)
    if not s.prompt:
        raise WorkflowError("an llm step needs a prompt", file=file, step=s.id)
    return Step(
        id=s.id,
        kind="llm",
        prompt=Template.parse(s.prompt),
        system=Template.parse(s.system) if s.system else None,
        inputs=tuple(s.inputs),
        model=s.model,
        tier=Tier(s.tier) if s.tier else None,
        annotation=annotation,
        max_tokens=s.max_tokens,
        latency=s.latency,
        temperature=s.temperature,
        output=s.output,
        checks=checks,
        override=override,
    )
