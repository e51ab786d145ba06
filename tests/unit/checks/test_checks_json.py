"""json check: validity, leniency, strict mode, schema failures and their details."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.checks import JsonCheck

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order_ids"],
    "properties": {
        "order_ids": {"type": "array", "items": {"type": "integer"}},
        "email": {"type": "string", "format": "email"},
    },
}


@pytest.mark.parametrize(
    ("text", "passed", "detail"),
    [
        ('{"a": 1}', True, "valid JSON object"),
        ("[1, 2]", True, "valid JSON array"),
        ("3.5", True, "valid JSON number"),
        ('```json\n{"a": 1}\n```', True, "valid JSON object (from a code block)"),
        ('Here it is: {"a": 1}. Done.', True, "valid JSON object (inside text)"),
        ("no json here", False, "no JSON object or array found"),
        ('{"a": 1', False, "invalid JSON: Expecting ',' delimiter at line 1 column 8"),
    ],
)
def test_plain_json(text: str, passed: bool, detail: str) -> None:
    result = JsonCheck().run(text, text)
    assert (result.name, result.passed, result.detail) == ("json", passed, detail)


@pytest.mark.parametrize(
    ("text", "passed", "detail"),
    [
        ('{"a": 1}', True, "valid JSON object"),
        ('  {"a": 1}\n', True, "valid JSON object"),
        (
            '```json\n{"a": 1}\n```',
            False,
            "the output is not only JSON (found it inside a code block)",
        ),
        ('JSON: {"a": 1}', False, "the output is not only JSON (found it inside surrounding text)"),
    ],
)
def test_strict(text: str, passed: bool, detail: str) -> None:
    result = JsonCheck(strict=True).run(text, text)
    assert (result.passed, result.detail) == (passed, detail)


@pytest.mark.parametrize(
    ("text", "passed", "detail"),
    [
        ('{"order_ids": [1, 2]}', True, "matches schema"),
        (
            'Found them: ```json\n{"order_ids": [7]}\n```',
            True,
            "matches schema (from a code block)",
        ),
        ('{"ids": [1]}', False, "$: 'order_ids' is a required property"),
        ('{"order_ids": [1, "two"]}', False, "$.order_ids[1]: 'two' is not of type 'integer'"),
        (
            '{"order_ids": ["a", "b"]}',
            False,
            "$.order_ids[0]: 'a' is not of type 'integer' (+1 more)",
        ),
        ('{"order_ids": [], "email": "nope"}', False, "$.email: 'nope' is not a 'email'"),
        ("[1]", False, "$: [1] is not of type 'object'"),
        ("not json", False, "no JSON object or array found"),
    ],
)
def test_schema(text: str, passed: bool, detail: str) -> None:
    result = JsonCheck(ORDER_SCHEMA).run(text, text)
    assert (result.name, result.passed, result.detail) == ("json[schema]", passed, detail)


def test_long_schema_messages_are_short() -> None:
    schema = {"type": "array"}
    text = '{"k": "' + "v" * 1000 + '"}'
    detail = JsonCheck(schema).run(text, text).detail
    assert detail.startswith("$: {'k': 'vvv")
    assert len(detail) <= 160


@pytest.mark.parametrize(
    ("value", "passed"),
    [
        ({"order_ids": [1]}, True),  # a code step's dict is checked as is
        ({"order_ids": "1"}, False),
        ([], False),
        (None, False),
    ],
)
def test_structured_value_is_used(value: object, passed: bool) -> None:
    # the text would fail: the value, already parsed, is what counts
    assert JsonCheck(ORDER_SCHEMA).run("unparseable", value).passed is passed


def test_string_value_falls_back_to_text() -> None:
    text = '{"order_ids": [1]}'
    assert JsonCheck(ORDER_SCHEMA).run(text, text).passed


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "objekt"}, r"invalid JSON Schema at \$.type: 'objekt' is not valid"),
        (
            {"properties": {"a": {"minLength": -1}}},
            r"invalid JSON Schema at \$.properties.a.minLength",
        ),
        (
            {"required": "order_ids"},
            r"invalid JSON Schema at \$.required: 'order_ids' is not of type 'array'",
        ),
        ([1], "schema must be a mapping, got list"),
    ],
)
def test_bad_schema(schema: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JsonCheck(schema)


def test_schema_draft_from_dollar_schema() -> None:
    # draft-04 spells exclusiveMaximum as a boolean; 2020-12 would reject it
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "integer",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    check = JsonCheck(schema)
    assert check.run("4", "4").passed
    assert not check.run("5", "5").passed
