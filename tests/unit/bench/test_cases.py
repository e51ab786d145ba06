from pathlib import Path

import pytest

from turnout.bench.cases import load_cases
from turnout.errors import ConfigError


def test_jsonl_with_ids_defaults_and_comments(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text('{"id": "one", "task": "a"}\n\n// comment\n{"task": "b", "lang": "de"}\n')
    cases = load_cases(f, defaults={"lang": "en"})
    assert [(c.id, dict(c.inputs)) for c in cases] == [
        ("one", {"lang": "en", "task": "a"}),
        ("case2", {"lang": "de", "task": "b"}),
    ]


def test_csv(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text('task,lang\n"x, with comma",en\ny,fr\n')
    assert [c.inputs["task"] for c in load_cases(f)] == ["x, with comma", "y"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"task": 1}\n{bad\n', r"c.jsonl: line 2: invalid JSON"),
        ("[1, 2]\n", r"c.jsonl: line 1: each line must be a JSON object"),
        ("\n", "no cases"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_cases(f)
