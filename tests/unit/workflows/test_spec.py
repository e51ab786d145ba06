import pytest

from turnout.errors import WorkflowError
from turnout.workflows.spec import Step, Workflow


def _code(_: object) -> str:
    return "x"


def test_topological_order_and_dependents() -> None:
    wf = Workflow(
        name="w",
        inputs=("task",),
        steps=(
            Step.llm("verify", "{{ impl }}", inputs=("impl",)),
            Step.llm("plan", "{{ task }}"),
            Step.llm("impl", "{{ plan }}", inputs=("plan",)),
        ),
    )
    assert wf.order == ("plan", "impl", "verify")
    assert wf.dependents()["plan"] == ("impl",)


def test_cycle_is_reported_with_its_path() -> None:
    with pytest.raises(WorkflowError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        Workflow(
            name="w",
            steps=(Step.code("a", _code, inputs=("b",)), Step.code("b", _code, inputs=("a",))),
        )


def test_unknown_input_names_the_step() -> None:
    with pytest.raises(WorkflowError, match=r"step 'b'.*input 'zzz' is not a step"):
        Workflow(name="w", steps=(Step.code("a", _code), Step.code("b", _code, inputs=("zzz",))))


def test_placeholder_must_be_visible() -> None:
    with pytest.raises(WorkflowError, match=r"step 'b'.*\{\{ a \}\}.*add it to the step's inputs"):
        Workflow(name="w", steps=(Step.code("a", _code), Step.llm("b", "use {{ a }}")))


def test_duplicate_ids() -> None:
    with pytest.raises(WorkflowError, match="duplicate step id"):
        Workflow(name="w", steps=(Step.code("a", _code), Step.code("a", _code)))


def test_self_input() -> None:
    with pytest.raises(WorkflowError, match="its own output"):
        Workflow(name="w", steps=(Step.code("a", _code, inputs=("a",)),))


def test_empty_workflow() -> None:
    with pytest.raises(WorkflowError, match="at least one step"):
        Workflow(name="w", steps=())
