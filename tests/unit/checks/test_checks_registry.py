"""build_check / build_checks: every accepted spelling and every bad-spec message."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.checks import (
    CHECK_KINDS,
    Check,
    ContainsAll,
    ContainsAny,
    JsonCheck,
    MaxChars,
    PythonCheck,
    RegexCheck,
    build_check,
    build_checks,
)
from turnout.errors import ConfigError

WHERE = "step 'planner': checks[2]"
FILE = "support.yaml"

STEPS_PY = """
def polite(text):
    assert "please" in text.lower(), "no please"
    return True

def has_ids(text, value):
    if not value.get("order_ids"):
        return "no order ids"
    return True

def three_args(text, value, extra):
    return True

NOT_CALLABLE = 3
"""


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text(STEPS_PY)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "order.json").write_text(
        json.dumps({"type": "object", "required": ["order_ids"]})
    )
    (tmp_path / "schemas" / "order.yaml").write_text("type: object\nrequired: [order_ids]\n")
    (tmp_path / "schemas" / "broken.json").write_text("{nope")
    (tmp_path / "schemas" / "list.json").write_text("[1]")
    return tmp_path


def build(spec: Any, base_dir: Path | None = None) -> Check:
    return build_check(spec, where=WHERE, file=FILE, base_dir=base_dir)


# -- accepted spellings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "name", "required", "text", "passed"),
    [
        ({"contains_all": ["a", "b"]}, ContainsAll, "contains_all[a,b]", True, "B a", True),
        (
            {"contains_all": ["A", "b"], "required": False, "case_sensitive": True},
            ContainsAll,
            "contains_all[A,b]",
            False,
            "a b",
            False,
        ),
        (
            {"contains_all": {"values": ["x"], "word": True}},
            ContainsAll,
            "contains_all[x]",
            True,
            "xy",
            False,
        ),
        (
            {"contains_all": {"values": ["x"]}, "word": True},
            ContainsAll,
            "contains_all[x]",
            True,
            "x y",
            True,
        ),
        ({"contains_any": ["no", "yes"]}, ContainsAny, "contains_any[no,yes]", True, "YES", True),
        (
            {"contains_any": ["no"], "word": True},
            ContainsAny,
            "contains_any[no]",
            True,
            "nope",
            False,
        ),
        ({"regex": "^yes"}, RegexCheck, "regex[^yes]", True, "yes sir", True),
        (
            {"regex": {"pattern": "^yes", "ignore_case": True}},
            RegexCheck,
            "regex[^yes]",
            True,
            "YES",
            True,
        ),
        ({"regex": "^yes", "ignore_case": True}, RegexCheck, "regex[^yes]", True, "YES", True),
        (
            {"regex": "^b$", "flags": ["multiline", "ignore_case"]},
            RegexCheck,
            "regex[^b$]",
            True,
            "a\nB",
            True,
        ),
        ({"regex": "^b$", "flags": "multiline"}, RegexCheck, "regex[^b$]", True, "a\nb", True),
        (
            {"regex": {"pattern": "\\d+", "fullmatch": True}},
            RegexCheck,
            "regex[\\d+]",
            True,
            " 42\n",
            True,
        ),
        ({"regex": "\\d+", "fullmatch": True}, RegexCheck, "regex[\\d+]", True, "42 apples", False),
        ("json", JsonCheck, "json", True, '{"a": 1}', True),
        ({"json": True}, JsonCheck, "json", True, "[]", True),
        ({"json": None}, JsonCheck, "json", True, "nope", False),
        ({"json": {}}, JsonCheck, "json", True, "1", True),
        ({"json": {"strict": True}}, JsonCheck, "json", True, 'x {"a": 1}', False),
        ({"json": True, "strict": True}, JsonCheck, "json", True, '{"a": 1}', True),
        ({"json": {"schema": {"type": "array"}}}, JsonCheck, "json[schema]", True, "[1]", True),
        ({"json": True, "schema": {"type": "array"}}, JsonCheck, "json[schema]", True, "{}", False),
        ({"max_chars": 3}, MaxChars, "max_chars[3]", True, "abcd", False),
        (
            {"max_chars": {"limit": 3}, "required": False},
            MaxChars,
            "max_chars[3]",
            False,
            "abc",
            True,
        ),
        (
            {"contains_any": ["x"], "name": " mentions x ", "required": True},
            ContainsAny,
            "mentions x",
            True,
            "x",
            True,
        ),
        (
            {"contains_any": {"values": ["x"], "name": "inner", "required": False}},
            ContainsAny,
            "inner",
            False,
            "",
            False,
        ),
    ],
)
def test_spellings(
    spec: Any, cls: type, name: str, required: bool, text: str, passed: bool
) -> None:
    check = build(spec)
    assert isinstance(check, cls)
    assert (check.name, check.required) == (name, required)
    result = check.run(text, text)
    assert (result.name, result.required, result.passed) == (name, required, passed)


@pytest.mark.parametrize(
    ("spec", "text", "value", "passed", "detail"),
    [
        ({"python": "steps:polite"}, "Please hold.", "", True, ""),
        ({"python": "steps:polite"}, "Hold.", "", False, "raised AssertionError: no please"),
        ({"python": {"function": "steps:has_ids"}}, "{}", {"order_ids": [1]}, True, ""),
        ({"python": "steps:has_ids", "required": False}, "{}", {}, False, "no order ids"),
        (
            {"python": "steps:has_ids"},
            "{}",
            None,
            False,
            "raised AttributeError: 'NoneType' object has no attribute 'get'",
        ),
        (
            {"json": {"schema": "schemas/order.json"}},
            '{"order_ids": []}',
            "",
            True,
            "matches schema",
        ),
        (
            {"json": {"schema": "schemas/order.yaml"}},
            "{}",
            "",
            False,
            "$: 'order_ids' is a required property",
        ),
    ],
)
def test_files_next_to_the_workflow(
    base_dir: Path, spec: Any, text: str, value: object, passed: bool, detail: str
) -> None:
    check = build(spec, base_dir)
    result = check.run(text, value)
    assert (result.passed, result.detail) == (passed, detail)


def test_python_names_the_reference(base_dir: Path) -> None:
    check = build({"python": "steps:polite"}, base_dir)
    assert isinstance(check, PythonCheck)
    assert check.name == "python[steps:polite]"


def test_python_from_sys_path() -> None:
    check = build({"python": "os.path:isabs"})
    assert check.run("/tmp", "/tmp").passed


def test_absolute_schema_path(base_dir: Path) -> None:
    path = base_dir / "schemas" / "order.json"
    assert build({"json": {"schema": str(path)}}).run('{"order_ids": 1}', "").passed


def test_design_example_from_yaml() -> None:
    doc = yaml.safe_load(
        textwrap.dedent(
            r"""
            checks:
              - contains_any: [billing, technical, account]
              - {regex: "^(billing|technical|account)\\b", required: false}
              - json: {schema: {type: object, required: [order_ids]}}
              - max_chars: 500
              - python: "os.path:isabs"
            """
        )
    )
    checks = build_checks(doc["checks"], where_prefix="step 'categorize': checks", file=FILE)
    assert [c.name for c in checks] == [
        "contains_any[billing,technical,account]",
        "regex[^(billing|technical|account)\\b]",
        "json[schema]",
        "max_chars[500]",
        "python[os.path:isabs]",
    ]
    assert [c.required for c in checks] == [True, False, True, True, True]
    assert checks[1].run("billing\n", "").passed


# -- bad specs ----------------------------------------------------------------------

KNOWN = "contains_all, contains_any, json, max_chars, python, regex"

BAD_SPECS: list[tuple[Any, str]] = [
    (
        "nope",
        f"unknown check kind 'nope' (known: {KNOWN})",
    ),
    ("contains_all", "contains_all: needs a list of keywords, e.g. {contains_all: [a, b]}"),
    ("regex", 'regex: needs a pattern, e.g. {regex: "^yes\\b"}'),
    ("max_chars", "max_chars: needs a limit, e.g. {max_chars: 500}"),
    ("python", 'python: needs a callable, e.g. {python: "steps:reply_is_polite"}'),
    (
        ["contains_all", ["a"]],
        "a check must be a mapping such as {contains_all: [a, b]} or a kind name, got list",
    ),
    (None, "a check must be a mapping such as {contains_all: [a, b]} or a kind name, got NoneType"),
    (
        {},
        f"no check kind given (expected one of: {KNOWN})",
    ),
    ({"required": False}, "no check kind given"),
    (
        {"contain_all": ["a"]},
        "unknown check kind 'contain_all' (did you mean 'contains_all'? known: ",
    ),
    ({1: "x"}, "unknown check kind '1' (known: "),
    ({"regex": "a", "json": True}, "one check per entry, found 2 kinds: regex, json"),
    ({"contains_all": "a"}, "contains_all: keywords must be a list of strings, got str 'a'"),
    ({"contains_all": None}, "contains_all: keywords must be a list of strings, got NoneType None"),
    ({"contains_all": []}, "contains_all: the keyword list is empty; give at least one keyword"),
    (
        {"contains_any": ["a", 3]},
        "contains_any: keyword [1] must be a string, got int 3 (quote it in YAML)",
    ),
    ({"contains_any": ["a", True]}, "contains_any: keyword [1] must be a string, got bool True"),
    ({"contains_any": ["a", " "]}, "contains_any: keyword [1] is an empty string"),
    ({"contains_all": {"word": True}}, "contains_all: needs a list of keywords"),
    (
        {"contains_all": ["a"], "case_sensitive": "yes"},
        "contains_all: option 'case_sensitive' must be true or false, got 'yes'",
    ),
    (
        {"contains_all": ["a"], "wrd": True},
        "contains_all: unknown option 'wrd' (did you mean 'word'? "
        "allowed: case_sensitive, name, required, values, word)",
    ),
    ({"contains_all": ["a"], "ignore_case": True}, "contains_all: unknown option 'ignore_case'"),
    (
        {"contains_all": {"values": ["a"], "word": True}, "word": False},
        "contains_all: option 'word' given both inside and beside contains_all",
    ),
    ({"contains_all": ["a"], "values": ["b"]}, "contains_all: 'values' given twice"),
    (
        {"contains_all": ["a"], "required": "no"},
        "contains_all: option 'required' must be true or false, got 'no'",
    ),
    (
        {"contains_all": ["a"], "name": ""},
        "contains_all: option 'name' must be a non-empty string, got ''",
    ),
    (
        {"contains_all": ["a"], "name": 3},
        "contains_all: option 'name' must be a non-empty string, got 3",
    ),
    (
        {"regex": "("},
        "regex: invalid pattern '(': missing ), unterminated subpattern at position 0",
    ),
    ({"regex": ""}, "regex: pattern is empty"),
    ({"regex": 5}, "regex: the pattern must be a string, got int"),
    ({"regex": {"ignore_case": True}}, "regex: needs a pattern"),
    (
        {"regex": "a", "flags": ["i"]},
        "regex: unknown flag 'i' (known: ignore_case, multiline, dotall, verbose, ascii)",
    ),
    ({"regex": "a", "flags": 3}, "regex: option 'flags' must be a list of flag names, got 3"),
    ({"regex": "a", "ignore_case": 1}, "regex: option 'ignore_case' must be true or false, got 1"),
    (
        {"regex": "a", "fullmatch": "true"},
        "regex: option 'fullmatch' must be true or false, got 'true'",
    ),
    ({"regex": "a", "flag": ["dotall"]}, "regex: unknown option 'flag' (did you mean 'flags'?"),
    ({"json": False}, "json: 'json: false' checks nothing; remove the entry instead"),
    ({"json": 3}, "json: expected true or {schema: ...}, got int 3"),
    (
        {"json": {"schema": {"type": "objekt"}}},
        "json: invalid JSON Schema at $.type: 'objekt' is not valid under any of the given schemas",
    ),
    (
        {"json": {"schema": {"required": "a"}}},
        "json: invalid JSON Schema at $.required: 'a' is not of type 'array'",
    ),
    ({"json": {"schema": [1]}}, "json: 'schema' must be a mapping (or a path to one), got list"),
    (
        {"json": {"scheme": {}}},
        "json: unknown option 'scheme' (did you mean 'schema'? "
        "allowed: name, required, schema, strict)",
    ),
    (
        {"json": {"schema": {}}, "schema": {}},
        "json: 'schema' given twice",
    ),
    ({"json": True, "strict": "yes"}, "json: option 'strict' must be true or false, got 'yes'"),
    ({"max_chars": "500"}, "max_chars: the limit must be a positive integer, got str '500'"),
    ({"max_chars": 0}, "max_chars: the limit must be a positive integer, got 0"),
    ({"max_chars": True}, "max_chars: the limit must be a positive integer, got bool True"),
    ({"max_chars": 2.5}, "max_chars: the limit must be a positive integer, got float 2.5"),
    ({"max_chars": {"max": 3}}, "max_chars: unknown option 'max' (allowed: limit, name, required)"),
    ({"max_chars": {}}, "max_chars: needs a limit"),
    (
        {"json": {"type": "object"}},
        "json: unknown option 'type' (allowed: name, required, schema, strict)",
    ),
    ({"json": True, "schema": 5}, "json: 'schema' must be a mapping (or a path to one), got int"),
    ({"python": "steps"}, "python: 'steps' is not of the form 'module:function'"),
    ({"python": "no_such_module_xyz:f"}, "python: cannot import module 'no_such_module_xyz'"),
    ({"python": 5}, "python: expected a 'module:function' string, got int"),
    (
        {"python": "os:getcwd"},
        "python: os:getcwd takes no arguments; a check takes (text) or (text, value)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_specs(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(spec)
    err = info.value
    assert (err.file, err.field) == (FILE, WHERE)
    assert str(err).startswith(f"{FILE}: {WHERE}: {message}")
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"python": "steps:missing"}, "python: module 'steps' has no attribute 'missing'"),
        ({"python": "steps:NOT_CALLABLE"}, "python: 'steps:NOT_CALLABLE' is not callable"),
        ({"python": "steps:three_args"}, "python: steps:three_args takes 3 required arguments"),
        ({"json": {"schema": "schemas/none.json"}}, "json: cannot read schema file "),
        ({"json": {"schema": "schemas/broken.json"}}, "json: schema file "),
        (
            {"json": {"schema": "schemas/list.json"}},
            "json: 'schema' must be a mapping (or a path to one), got list",
        ),
    ],
)
def test_bad_specs_with_files(base_dir: Path, spec: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(spec, base_dir)
    assert (info.value.file, info.value.field) == (FILE, WHERE)
    assert str(info.value).startswith(f"{FILE}: {WHERE}: {message}")


def test_broken_steps_module(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text("raise ImportError('boom')\n")
    with pytest.raises(ConfigError, match=re.escape(f"{WHERE}: python: importing ")):
        build({"python": "steps:f"}, tmp_path)


def test_error_without_file() -> None:
    with pytest.raises(ConfigError) as info:
        build_check({"max_chars": -1}, where=WHERE)
    assert str(info.value) == f"{WHERE}: max_chars: the limit must be a positive integer, got -1"


# -- build_checks -------------------------------------------------------------------


def test_build_checks_names_each_entry() -> None:
    specs: list[Any] = [{"max_chars": 10}, "json", {"regex": "("}]
    with pytest.raises(ConfigError) as info:
        build_checks(specs, where_prefix="step 'planner': checks", file=FILE)
    assert info.value.field == "step 'planner': checks[2]"


@pytest.mark.parametrize("specs", ["json", {"json": True}, 3])
def test_build_checks_needs_a_list(specs: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build_checks(specs, where_prefix="step 'a': checks", file=FILE)
    assert str(info.value).startswith(f"{FILE}: step 'a': checks: must be a list of checks, got ")


def test_build_checks_empty() -> None:
    assert build_checks(None, where_prefix="x") == ()
    assert build_checks([], where_prefix="x") == ()


def test_build_checks_makes_names_unique() -> None:
    checks = build_checks(
        [{"max_chars": 5}, {"max_chars": 5, "required": False}, "json", {"max_chars": 5}],
        where_prefix="step 'a': checks",
    )
    assert [c.name for c in checks] == ["max_chars[5]", "max_chars[5]#2", "json", "max_chars[5]#3"]
    assert checks[1].required is False
    assert checks[1].run("123456", "").name == "max_chars[5]#2"


def test_kinds() -> None:
    assert CHECK_KINDS == ("contains_all", "contains_any", "json", "max_chars", "python", "regex")
