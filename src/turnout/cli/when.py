"""Parsing ``--since`` values: an ISO date or date-time, or a relative age like ``7d``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from turnout.errors import ConfigError

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, *, now: float | None = None) -> float:
    """Epoch seconds for ``2026-11-01``, ``2026-11-01T09:00``, or ``7d`` / ``12h`` ago."""
    m = _AGE.match(value)
    if m:
        return (now if now is not None else time.time()) - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: expected a date (2026-11-01), a date-time, or an age such as 7d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
