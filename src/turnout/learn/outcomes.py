"""Outcomes: what a router learns from. JSONL, one line per (prompt, model).

::

    {"id": "q17", "prompt": "Sam has 3 apples ...", "model": "smol", "passed": true}
    {"id": "q17", "messages": [{"role": "user", "content": "..."}], "model": "qwen",
     "passed": 0.8, "step": "plan", "workflow": "csv_export",
     "annotation": {"domain": "docs"}, "tags": {"context": "ci"}, "cost_usd": 0.0021}

``prompt`` (a string) or ``messages`` (``role`` / ``content`` objects) is required,
and so are ``model`` and ``passed`` (a bool, or a score in [0, 1]); the rest is
optional. Lines with the same ``id`` (or, without one, the same text, step and
workflow) are one prompt answered by several models. A bad line is a
:class:`~turnout.errors.ConfigError` naming the file and the line.

:func:`export_outcomes` writes them from the trace store: every attempt of a step
that was checked (an answer that was accepted gets the step's verdict, all
required checks passed; one a cascade rejected failed), its id ``run:step``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast, get_args

from turnout.errors import ConfigError
from turnout.tracing.rows import pico_to_cost
from turnout.tracing.store import TraceStore
from turnout.types import Annotation, Message, Role

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ROLES = frozenset(get_args(Role))
_KNOWN = frozenset(
    ("id", "prompt", "messages", "model", "passed", "step", "workflow", "annotation", "tags",
     "cost_usd")
)  # fmt: skip
ANNOTATION_KEYS = ("scope", "domain", "ambiguity")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One model's answer to one prompt, and whether it passed."""

    text: str
    """What the router reads: ``prompt``, or the last user message of ``messages``."""
    model: str
    passed: float
    id: str | None = None
    messages: tuple[Message, ...] = ()
    step: str | None = None
    workflow: str | None = None
    annotation: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cost_usd: float | None = None

    @property
    def key(self) -> str:
        """Which prompt this is: the ``id``, else a hash of text, step and workflow."""
        if self.id is not None:
            return self.id
        raw = "\x00".join((self.text, self.step or "", self.workflow or ""))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.messages:
            out["messages"] = [
                {"role": str(m.role), "content": m.content or ""} for m in self.messages
            ]
        else:
            out["prompt"] = self.text
        out["model"] = self.model
        out["passed"] = self.passed if 0 < self.passed < 1 else bool(self.passed)
        for name in ("step", "workflow"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.annotation:
            out["annotation"] = dict(self.annotation)
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.cost_usd is not None:
            out["cost_usd"] = self.cost_usd
        return out


def _str_map(value: Any, what: str) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{what} must be an object of strings")
    return MappingProxyType({str(k): v for k, v in value.items()})


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("messages must be a non-empty list")
    out = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("content", ""), str):
            raise ValueError("each message needs a role and a string content")
        if m.get("role") not in _ROLES:
            raise ValueError(f"unknown message role {m.get('role')!r}")
        out.append(Message(cast(Role, m["role"]), m.get("content") or ""))
    return tuple(out)


def last_user(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m.role == "user":
            return m.content or ""
    return ""


def parse_outcome(raw: Any) -> Outcome:
    """One outcome from its JSON object; ValueError says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    messages: tuple[Message, ...] = ()
    if "messages" in raw:
        messages = _messages(raw["messages"])
        text = last_user(messages)
    elif isinstance(raw.get("prompt"), str):
        text = raw["prompt"]
    else:
        raise ValueError("needs prompt (a string) or messages")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("needs model (a string)")
    passed = raw.get("passed")
    if isinstance(passed, bool) or (isinstance(passed, int | float) and 0 <= passed <= 1):
        score = float(passed)
    else:
        raise ValueError("passed must be true/false or a score in [0, 1]")
    for name in ("id", "step", "workflow"):
        if raw.get(name) is not None and not isinstance(raw[name], str | int):
            raise ValueError(f"{name} must be a string")
    cost = raw.get("cost_usd")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float)):
        raise ValueError("cost_usd must be a number")
    annotation = _str_map(raw.get("annotation"), "annotation")
    bad = sorted(set(annotation) - set(ANNOTATION_KEYS))
    if bad:
        raise ValueError(f"annotation has unknown key {bad[0]!r}")
    return Outcome(
        text=text,
        model=model,
        passed=score,
        id=None if raw.get("id") is None else str(raw["id"]),
        messages=messages,
        step=None if raw.get("step") is None else str(raw["step"]),
        workflow=None if raw.get("workflow") is None else str(raw["workflow"]),
        annotation=annotation,
        tags=_str_map(raw.get("tags"), "tags"),
        cost_usd=None if cost is None else float(cost),
    )


def read_outcomes(path: str | Path) -> list[Outcome]:
    """Every outcome of a JSONL file (blank lines skipped); a bad line is a ConfigError."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read outcomes ({exc})", file=str(path)) from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse_outcome(json.loads(line)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ConfigError(str(exc), file=str(path), field=f"line {n}") from None
    if not out:
        raise ConfigError("no outcomes", file=str(path))
    return out


def write_outcomes(outcomes: Iterable[Outcome], path: str | Path) -> int:
    """Write outcomes as JSONL (whole, through a temporary file); return how many."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for o in outcomes:
            f.write(json.dumps(o.as_json(), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def annotation_of(outcome: Outcome) -> Annotation | None:
    a = outcome.annotation
    return Annotation(a.get("scope"), a.get("domain"), a.get("ambiguity")) if a else None


# -- from the trace store ------------------------------------------------------------

_EXPORT = (
    "SELECT a.run_id, a.step_id, a.model, a.status, a.cost_picousd, s.checks, s.prompt, "
    "s.annotation, r.workflow, r.tags FROM attempts a "
    "JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id "
    "JOIN runs r ON r.run_id = a.run_id "
    "WHERE s.checks IS NOT NULL AND s.checks != '[]' AND a.status IN ('ok', 'rejected') "
    "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.run_id = a.run_id AND f.step_id = a.step_id)"
)
_FEEDBACK = (  # the answer of a step with feedback (the latest feedback wins), checks or not
    "SELECT a.run_id, a.step_id, a.model, a.status, a.cost_picousd, f.score, s.prompt, "
    "s.annotation, r.workflow, r.tags FROM feedback f "
    "JOIN steps s ON s.run_id = f.run_id AND s.step_id = f.step_id "
    "JOIN attempts a ON a.run_id = f.run_id AND a.step_id = f.step_id AND a.status = 'ok' "
    "JOIN runs r ON r.run_id = f.run_id "
    "WHERE f.id = (SELECT MAX(g.id) FROM feedback g "
    "WHERE g.run_id = f.run_id AND g.step_id = f.step_id)"
)


def _json(text: Any, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def export_outcomes(
    store: TraceStore,
    *,
    bench_id: str | None = None,
    since: float | None = None,
    workflow: str | None = None,
) -> Iterator[Outcome]:
    """Outcomes of a bench or since a time: every checked step's attempts, and the answer
    of every step with recorded feedback (gateway requests have no checks; the latest
    feedback on a step is its verdict, over its checks)."""
    where, params = "", list[Any]()
    if bench_id is not None:
        where += " AND r.bench_id = ?"
        params.append(bench_id)
    if since is not None:
        where += " AND r.started_at >= ?"
        params.append(since)
    if workflow is not None:
        where += " AND r.workflow = ?"
        params.append(workflow)
    order = " ORDER BY r.started_at, a.run_id, a.step_id, a.attempt"
    rows = [(*row, False) for row in store.query(_EXPORT + where + order, params)]
    rows += [(*row, True) for row in store.query(_FEEDBACK + where + order, params)]
    for run_id, step_id, model, status, pico, verdict, prompt, annotation, wf, tags, fed in rows:
        if fed:
            passed = float(verdict)
        else:
            verdicts = _json(verdict, [])
            passed = float(status == "ok" and all(
                bool(c.get("passed")) for c in verdicts if c.get("required", True)
            ))  # fmt: skip
        messages = tuple(
            Message(cast(Role, m["role"]), str(m.get("content") or ""))
            for m in _json(prompt, [])
            if isinstance(m, dict) and m.get("role") in _ROLES
        )
        ann = _json(annotation, {})
        yield Outcome(
            text=last_user(messages),
            model=str(model),
            passed=passed,
            id=f"{run_id}:{step_id}",
            messages=messages,
            step=str(step_id),
            workflow=str(wf),
            annotation={k: str(v) for k, v in ann.items() if k in ANNOTATION_KEYS and v},
            tags={str(k): str(v) for k, v in _json(tags, {}).items()},
            cost_usd=float(pico_to_cost(pico)),
        )
