"""JSON in and out of the wire: compact UTF-8 out, errors that say what was not JSON in.

orjson does the work (several times faster than the standard library both ways, which
shows on every request and every stream chunk); the standard library takes what orjson
refuses (integers past 64 bits, non-string keys, ``NaN``), so what is accepted and how
it fails are the same as with ``json`` alone.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def load_json(raw: bytes | str, *, what: str = "response body") -> Any:
    """Parse JSON or raise ValueError naming ``what`` (the caller adds provider and model)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError:  # bytes that are not UTF-8
        raise ValueError(f"{what} is not valid UTF-8 JSON") from None
