"""Shared CLI plumbing: parsing ``--input``, loading config, opening the trace store."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from turnout.errors import ConfigError


class CLIError(click.ClickException):
    """A one-line ``error: ...`` on stderr and exit 2: the one error style of every command
    (also when a command is invoked on its own, as tests do)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


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


class Money(click.ParamType):  # type: ignore[type-arg]
    """An amount of USD: a finite number, zero or more (``-1``, ``nan`` and ``inf`` are
    usage errors, not caps)."""

    name = "USD"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value) and value >= 0:
            return value
        try:
            amount = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an amount of USD", param, ctx)
        if not math.isfinite(amount) or amount < 0:
            self.fail(f"{value!r} is not an amount of USD (a finite number, 0 or more)", param, ctx)
        return amount


MONEY = Money()


def writable_file(path: Path, option: str) -> None:
    """Refuse, before any work is done, an output file that cannot be written: its folder
    cannot be made or written to, or the path is a folder. Makes the folder if needed."""
    if path.is_dir():
        raise CLIError(f"{option} {path}: is a folder, not a file")
    writable_dir(path.parent, option, shown=path)


def writable_dir(folder: Path, option: str, *, shown: Path | None = None) -> None:
    """Refuse a folder that cannot be made or written to (checked by writing a file)."""
    what = f"{option} {shown or folder}"
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{what}: cannot write there ({folder} is not a folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".turnout-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"{what}: cannot write there ({exc.strerror or exc})") from None


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
    return context_tags({k: str(v) for k, v in parse_inputs(pairs, flag="--tag").items()})


tag_option = click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A tag for policies (e.g. user=42 for ab, context=ci for switch); "
    "CI=true in the environment adds context=ci unless a context tag is given.",
)
