"""Workflow definitions: named steps forming a DAG, each ``llm`` or ``code``.

Build one in Python::

    wf = Workflow(
        name="triage",
        inputs=("ticket",),
        steps=(
            Step.llm("categorize", "Classify: {{ ticket }}", tier=Tier.EFFICIENT),
            Step.code("route", route_fn, inputs=("categorize",)),
        ),
    )

or load one from YAML with :func:`turnout.workflows.loader.load_workflow`.
Construction validates the graph: unique ids, known inputs, no cycles, and
placeholders that name only what the step can see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from turnout.errors import WorkflowError
from turnout.execution.budget import Budget
from turnout.policies.base import Latency
from turnout.types import Annotation, Tier
from turnout.workflows.template import Template

if TYPE_CHECKING:
    from turnout.checks.base import Check

StepKind = Literal["llm", "code"]
OutputKind = Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class Override:
    """A recorded human decision that supersedes the policy for one step."""

    model: str
    by: str
    why: str


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """Spend caps (USD) for each run of a workflow and for each of its steps."""

    run_usd: Decimal | None = None
    step_usd: Decimal | None = None

    def fresh(self, *, run_usd: Decimal | None = None) -> Budget:
        """A new budget for one run; ``run_usd`` (e.g. ``--max-cost``) tightens the run cap."""
        cap = self.run_usd
        if run_usd is not None:
            cap = run_usd if cap is None else min(cap, run_usd)
        return Budget(run_usd=cap, step_usd=self.step_usd)


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    kind: StepKind = "llm"
    prompt: Template | None = None
    system: Template | None = None
    run: Callable[..., Any] | None = None
    run_ref: str | None = None
    inputs: tuple[str, ...] = ()
    model: str | None = None
    tier: Tier | None = None
    annotation: Annotation | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    output: OutputKind = "text"
    checks: tuple[Check, ...] = ()
    override: Override | None = None
    latency: Latency = "normal"
    """``sensitive``: the fastest model of its tier, whatever the policy's in-tier rule."""

    @classmethod
    def llm(
        cls,
        id: str,
        prompt: str,
        *,
        inputs: Sequence[str] = (),
        system: str | None = None,
        model: str | None = None,
        tier: Tier | None = None,
        annotation: Annotation | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        output: OutputKind = "text",
        checks: Sequence[Check] = (),
        latency: Latency = "normal",
    ) -> Step:
        return cls(
            id=id,
            kind="llm",
            prompt=Template.parse(prompt),
            system=Template.parse(system) if system is not None else None,
            inputs=tuple(inputs),
            model=model,
            tier=tier,
            annotation=annotation,
            max_tokens=max_tokens,
            temperature=temperature,
            output=output,
            checks=tuple(checks),
            latency=latency,
        )

    @classmethod
    def code(
        cls,
        id: str,
        fn: Callable[..., Any],
        *,
        inputs: Sequence[str] = (),
        checks: Sequence[Check] = (),
    ) -> Step:
        ref = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
        return cls(
            id=id, kind="code", run=fn, run_ref=ref, inputs=tuple(inputs), checks=tuple(checks)
        )


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    steps: tuple[Step, ...]
    inputs: tuple[str, ...] = ()
    default_model: str | None = None
    description: str | None = None
    path: Path | None = None
    budget: BudgetSpec | None = None
    _order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_order", _validate(self))

    @property
    def file(self) -> str | None:
        return str(self.path) if self.path else None

    @property
    def order(self) -> tuple[str, ...]:
        """Step ids in a topological order (declaration order where free)."""
        return self._order

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def dependents(self) -> Mapping[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for dep in s.inputs:
                out[dep].append(s.id)
        return {k: tuple(v) for k, v in out.items()}


def _validate(wf: Workflow) -> tuple[str, ...]:
    file = wf.file
    if not wf.steps:
        raise WorkflowError("a workflow needs at least one step", file=file)
    ids: dict[str, Step] = {}
    for s in wf.steps:
        if s.id in ids:
            raise WorkflowError("duplicate step id", file=file, step=s.id)
        if s.id in wf.inputs:
            raise WorkflowError("step id collides with a workflow input", file=file, step=s.id)
        ids[s.id] = s
    for s in wf.steps:
        _validate_step(s, ids, wf.inputs, file)
    return _topological(wf.steps, file)


def _validate_step(
    s: Step, ids: Mapping[str, Step], inputs: Sequence[str], file: str | None
) -> None:
    for dep in s.inputs:
        if dep == s.id:
            raise WorkflowError("a step cannot take its own output as input", file=file, step=s.id)
        if dep not in ids:
            known = ", ".join(ids) or "none"
            raise WorkflowError(
                f"input {dep!r} is not a step of this workflow (steps: {known})",
                file=file,
                step=s.id,
            )
    if s.kind == "llm":
        if s.prompt is None:
            raise WorkflowError("an llm step needs a prompt", file=file, step=s.id)
        visible = set(inputs) | set(s.inputs)
        templates = [s.prompt] + ([s.system] if s.system else [])
        for t in templates:
            for name in sorted(t.names - visible):
                hint = " (add it to the step's inputs)" if name in ids else ""
                raise WorkflowError(
                    f"prompt uses {{{{ {name} }}}}, which is neither a workflow input "
                    f"nor one of the step's inputs{hint}",
                    file=file,
                    step=s.id,
                )
        if s.max_tokens is not None and s.max_tokens <= 0:
            raise WorkflowError("max_tokens must be positive", file=file, step=s.id)
    elif s.run is None:
        raise WorkflowError("a code step needs `run: module:function`", file=file, step=s.id)


def _topological(steps: Sequence[Step], file: str | None) -> tuple[str, ...]:
    remaining = {s.id: set(s.inputs) for s in steps}
    order: list[str] = []
    while remaining:
        ready = [sid for sid, deps in remaining.items() if not deps]
        if not ready:
            cycle = _find_cycle({sid: set(d) for sid, d in remaining.items()})
            raise WorkflowError(
                "steps form a cycle: " + " -> ".join(cycle), file=file, step=cycle[0]
            )
        for sid in ready:
            order.append(sid)
            del remaining[sid]
        for deps in remaining.values():
            deps.difference_update(ready)
    return tuple(order)


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    start = next(iter(graph))
    path: list[str] = [start]
    seen = {start: 0}
    node = start
    while True:
        node = sorted(graph[node])[0]
        if node in seen:
            return [*path[seen[node] :], node]
        seen[node] = len(path)
        path.append(node)
