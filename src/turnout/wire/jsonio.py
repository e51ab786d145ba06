"""JSON in and out of the wire: compact UTF-8 out, errors that say what was not JSON in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def load_json(raw: bytes | str, *, what: str = "response body") -> Any:
    """Parse JSON or raise ValueError naming ``what`` (the caller adds provider and model)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError:  # bytes that are not UTF-8
        raise ValueError(f"{what} is not valid UTF-8 JSON") from None
