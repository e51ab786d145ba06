"""Bench cases: one row of workflow inputs per case, from JSONL or CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BenchCase:
    id: str
    inputs: Mapping[str, Any]


def load_cases(path: str | Path, *, defaults: Mapping[str, Any] | None = None) -> list[BenchCase]:
    """Read cases; ``defaults`` (from ``--input``) fill keys a row does not set.

    JSONL: one JSON object per line (blank lines and ``//`` comments skipped); an
    ``id`` key names the case. CSV: a header row, then one case per row.
    """
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(p)) from None
    rows = _csv(text, p) if p.suffix.lower() == ".csv" else _jsonl(text, p)
    if not rows:
        raise ConfigError("no cases in file", file=str(p))
    cases = []
    for n, (_lineno, row) in enumerate(rows, start=1):
        inputs = dict(defaults or {})
        case_id = str(row.pop("id", f"case{n}"))
        inputs.update(row)
        cases.append(BenchCase(case_id, inputs))
    return cases


def _jsonl(text: str, p: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("//"):
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON: {exc.msg}", file=str(p), field=f"line {lineno}"
            ) from None
        if not isinstance(obj, dict):
            raise ConfigError(
                "each line must be a JSON object", file=str(p), field=f"line {lineno}"
            )
        rows.append((lineno, obj))
    return rows


def _csv(text: str, p: Path) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise ConfigError("a CSV cases file needs a header row", file=str(p))
    rows = []
    for lineno, row in enumerate(reader, start=2):
        if None in row:
            raise ConfigError(
                "more values than header columns", file=str(p), field=f"line {lineno}"
            )
        rows.append((lineno, {k: v for k, v in row.items() if k}))
    return rows
