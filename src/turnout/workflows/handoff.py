"""Context handoff between steps: explicit and serialized.

A step sees only the workflow inputs and the outputs of the steps it lists in
``inputs``. Whatever crosses from one step (and possibly one model) to the
next is turned into text here, the same way every time, so a handoff can be
read in the trace exactly as the next model saw it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)


def serialize(value: Any) -> str:
    """Text for a prompt: strings as they are, everything else as indented JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return to_json(value)


def step_context(
    workflow_inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    declared: Sequence[str],
) -> dict[str, Any]:
    """The values one step may see: workflow inputs plus its declared step inputs."""
    ctx = dict(workflow_inputs)
    for name in declared:
        ctx[name] = outputs[name]
    return ctx
