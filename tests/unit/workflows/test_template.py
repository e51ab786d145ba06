import pytest

from turnout.errors import TemplateError
from turnout.workflows.template import Template


def test_placeholders_render_and_json_braces_stay_literal() -> None:
    t = Template.parse('Plan {{ task }}. Answer as {"risks": [], "tests": []} for {{task}}.')
    assert t.names == {"task"}
    assert t.render({"task": "X"}) == 'Plan X. Answer as {"risks": [], "tests": []} for X.'


def test_structured_values_are_serialized_as_json() -> None:
    t = Template.parse("Facts:\n{{ extract }}")
    assert t.render({"extract": {"order": "A-1"}}) == 'Facts:\n{\n  "order": "A-1"\n}'


def test_dotted_access_and_json_filter() -> None:
    t = Template.parse("{{ e.ids.0 }} / {{ e | json }}")
    assert t.render({"e": {"ids": ["A", "B"]}}).startswith("A / {")


def test_missing_value_names_step_and_variable() -> None:
    with pytest.raises(TemplateError, match=r"step 'planner'.*\{\{ task \}\}"):
        Template.parse("{{ task }}").render({}, step="planner")


def test_missing_field() -> None:
    with pytest.raises(TemplateError, match="has no field 'x'"):
        Template.parse("{{ a.x }}").render({"a": {}})


def test_text_without_placeholders() -> None:
    assert Template.parse("plain {x}").render({}) == "plain {x}"
