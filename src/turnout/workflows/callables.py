"""Resolving ``module:function`` references from workflow YAML.

A module is looked up first next to the workflow file (so an example's
``steps.py`` works without installing anything), then on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnout.errors import ConfigError


def resolve_callable(
    ref: str, *, base_dir: Path | None = None, where: str = "callable"
) -> Callable[..., Any]:
    """Import ``package.module:function`` and return the function.

    ``where`` names the place in the workflow (file and step) for error messages.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{ref!r} is not of the form 'module:function'", field=where)
    module = _import(module_name, base_dir, where)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"module {module_name!r} has no attribute {attr!r}", field=where
            ) from None
    if not callable(obj):
        raise ConfigError(f"{ref!r} is not callable", field=where)
    return obj  # type: ignore[no-any-return]


def _import(module_name: str, base_dir: Path | None, where: str) -> Any:
    if base_dir is not None:
        candidate = base_dir.joinpath(*module_name.split(".")).with_suffix(".py")
        if candidate.is_file():
            key = f"_turnout_local_{abs(hash(str(candidate.resolve())))}_{module_name}"
            if key in sys.modules:
                return sys.modules[key]
            spec = importlib.util.spec_from_file_location(key, candidate)
            if spec is None or spec.loader is None:
                raise ConfigError(f"cannot load {candidate}", field=where)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[key]
                raise ConfigError(
                    f"importing {candidate} failed: {type(exc).__name__}: {exc}", field=where
                ) from exc
            return module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import module {module_name!r}", field=where) from None
        raise
