"""Shared CLI plumbing: parsing ``--input``, loading config, opening the trace store."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from turnout.errors import ConfigError


def parse_inputs(pairs: Iterable[str], *, flag: str = "--input") -> dict[str, Any]:
    """``KEY=VALUE`` pairs; ``KEY=@file`` reads the value from a file;
    ``KEY:=JSON`` parses the value as JSON. Errors name ``flag``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair and pair.index(":=") < pair.index("=") + 1:
            key, _, raw = pair.partition(":=")
            try:
                out[key.strip()] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{flag} {key}: invalid JSON ({exc.msg})") from None
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                value = path.read_text("utf-8")
            except OSError:
                raise ConfigError(f"{flag} {key}: cannot read {path}") from None
        out[key.strip()] = value
    return out


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("turnout.yaml"),
    show_default=True,
    help="The turnout.yaml with providers, models and policies.",
)

input_option = click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A workflow input (repeatable). KEY=@file reads a file; KEY:=JSON parses JSON.",
)
