"""extract_json / find_json: whole text, code fences, JSON inside prose."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.checks import JSONExtractError, extract_json, find_json
from turnout.checks.json_extract import MAX_CANDIDATES


@pytest.mark.parametrize(
    ("text", "value", "source"),
    [
        ('{"a": 1}', {"a": 1}, "whole"),
        ("  \n[1, 2, 3]\n ", [1, 2, 3], "whole"),
        ("42", 42, "whole"),
        ('"hi"', "hi", "whole"),
        ("null", None, "whole"),
        ('\ufeff{"bom": true}', {"bom": True}, "whole"),
        ('```json\n{"a": 1}\n```', {"a": 1}, "fence"),
        ('```JSON\n{"a": 1}\n```', {"a": 1}, "fence"),
        ('```\n{"a": 1}\n```', {"a": 1}, "fence"),
        ('Here you go:\n```json\n{"ids": [1, 2]}\n```\nAnything else?', {"ids": [1, 2]}, "fence"),
        (  # a json-tagged fence wins over an earlier untagged one
            '```\nnot json\n```\n```python\n{"x": 1}\n```\n```json\n{"y": 2}\n```',
            {"y": 2},
            "fence",
        ),
        ('Fence with trailing text ```json {"a": 1}``` done', {"a": 1}, "embedded"),
        (
            'Sure! The answer is {"category": "billing"} - hope it helps.',
            {"category": "billing"},
            "embedded",
        ),
        ('Use {placeholders} like this: {"real": [1]}', {"real": [1]}, "embedded"),
        ('Orders: [10, 11] and then {"a": 1}', [10, 11], "embedded"),  # the first one wins
        ('Truncated fence:\n```json\n{"a": {"b": 2}}\n', {"a": {"b": 2}}, "embedded"),
        ('{"a": 1}\n{"b": 2}', {"a": 1}, "embedded"),  # JSON lines: the first value
        ('```json\n{"a": 1} // a comment\n```', {"a": 1}, "embedded"),
    ],
)
def test_finds_json(text: str, value: Any, source: str) -> None:
    assert find_json(text) == (value, source)
    assert extract_json(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty output, no JSON"),
        ("   \n", "empty output, no JSON"),
        ("billing", "no JSON object or array found"),
        ("The answer is 42", "no JSON object or array found"),
        (
            '{"a": 1,}',
            "invalid JSON: Expecting property name enclosed in double quotes at line 1 column 9",
        ),
        ("{'a': 1}", "invalid JSON: Expecting property name"),
        ('```json\n{"a": }\n```', "invalid JSON in code block: Expecting value at line 1 column 7"),
        ("Set {x} to [y]", "no valid JSON object or array: Expecting property name"),
        ('{"a": NaN}', "invalid JSON: NaN is not valid JSON"),
        ("[" * 100_000, "invalid JSON: nested too deeply"),
    ],
)
def test_no_json(text: str, message: str) -> None:
    with pytest.raises(JSONExtractError) as info:
        extract_json(text)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_embedded_scan_is_bounded() -> None:
    text = "{x} " * (MAX_CANDIDATES + 5) + '{"late": 1}'
    with pytest.raises(JSONExtractError):
        extract_json(text)
    assert extract_json("{x} " * (MAX_CANDIDATES - 1) + '{"ok": 1}') == {"ok": 1}
