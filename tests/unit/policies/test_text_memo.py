from turnout.config import Settings
from turnout.policies import RequestContext, build_policy
from turnout.policies.textscan import TextMemo
from turnout.types import Message


def test_memo_is_bounded_and_evicts_the_oldest() -> None:
    memo = TextMemo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (None, 2, 3)


def test_a_zero_sized_memo_remembers_nothing() -> None:
    memo = TextMemo(0)
    memo.put("a", 1)
    assert memo.get("a") is None


def test_memoised_verdicts_equal_fresh_ones(pool_dict: dict) -> None:  # type: ignore[type-arg]
    from turnout.config import settings_from_dict

    pool_dict["policies"]["cx"] = {"kind": "complexity"}
    pool_dict["policies"]["tt"] = {"kind": "task_type"}
    settings: Settings = settings_from_dict(pool_dict)
    ctx = RequestContext(messages=(Message.user("Translate to German: good morning"),))
    for name in ("cx", "tt"):
        warm = build_policy(name, settings)
        first = warm.decide(ctx)
        again = warm.decide(ctx)
        cold = build_policy(name, settings)
        cold._memo = TextMemo(0)  # type: ignore[attr-defined]
        assert first == again == cold.decide(ctx)
