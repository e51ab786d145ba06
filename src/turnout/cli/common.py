"""Shared CLI plumbing: parsing ``--input``, loading config, opening the trace store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from turnout.errors import ConfigError


def parse_inputs(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; ``KEY=@file`` reads the value from a file;
    ``KEY:=JSON`` parses the value as JSON."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair and pair.index(":=") < pair.index("=") + 1:
            key, _, raw = pair.partition(":=")
            try:
                out[key.strip()] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--input {key}: invalid JSON ({exc.msg})") from None
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--input {pair!r}: expected KEY=VALUE")
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                value = path.read_text("utf-8")
            except OSError:
                raise ConfigError(f"--input {key}: cannot read {path}") from None
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


CONTEXT_TAG = "context"
_TRUE = frozenset(("1", "true", "yes", "on"))


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment says CI (``CI`` set to true, 1, yes or on)."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in _TRUE


def context_tags(
    tags: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A run's tags with ``context=ci`` added when the environment says CI and no
    ``context`` tag was given (``--tag context=local`` overrides it). The one rule
    for ``turnout run``, ``bench`` and ``chat``: in CI no person reviews an output
    before it merges, so policies may route stricter there (``kind: switch``)."""
    out = dict(tags)
    if CONTEXT_TAG not in out and in_ci(environ):
        out[CONTEXT_TAG] = "ci"
    return out


def parse_tags(pairs: Iterable[str]) -> dict[str, str]:
    """``--tag KEY=VALUE`` pairs as strings, with :func:`context_tags` applied."""
    return context_tags({k: str(v) for k, v in parse_inputs(pairs).items()})


tag_option = click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A tag for policies (e.g. user=42 for ab, context=ci for switch); "
    "CI=true in the environment adds context=ci unless a context tag is given.",
)
