"""Checks: deterministic tests of a step's output, one kind a module.

Build them from workflow YAML with :func:`build_checks`, run them with
:func:`evaluate`::

    checks = build_checks(spec["checks"], where_prefix="step 'plan': checks", file=path)
    results, score, ok = evaluate(checks, text, value)

Kinds: ``contains_all``, ``contains_any``, ``regex``, ``json`` (optionally with a
JSON Schema), ``max_chars`` and ``python`` (a function of yours). See
:mod:`turnout.checks.registry` for the YAML spellings.
"""

from turnout.checks.base import Check
from turnout.checks.contains import ContainsAll, ContainsAny
from turnout.checks.json_check import JsonCheck
from turnout.checks.json_extract import JSONExtractError, extract_json, find_json
from turnout.checks.max_chars import MaxChars
from turnout.checks.python_check import PythonCheck
from turnout.checks.regex import RegexCheck
from turnout.checks.registry import CHECK_KINDS, build_check, build_checks
from turnout.checks.scoring import evaluate, run_check

__all__ = [
    "CHECK_KINDS",
    "Check",
    "ContainsAll",
    "ContainsAny",
    "JSONExtractError",
    "JsonCheck",
    "MaxChars",
    "PythonCheck",
    "RegexCheck",
    "build_check",
    "build_checks",
    "evaluate",
    "extract_json",
    "find_json",
    "run_check",
]
