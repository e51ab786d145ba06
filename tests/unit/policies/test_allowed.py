"""A decision kept to the models a gateway key may use."""

from __future__ import annotations

import pytest

from turnout.errors import ModelNotAllowed
from turnout.policies.allowed import only_allowed
from turnout.types import Decision


def test_models_outside_the_allowed_are_dropped_in_order() -> None:
    chain = Decision(("opus", "haiku", "sonnet"), "fallback chain", "fb", strategy="fallback",
                     on_content_filter="opus")  # fmt: skip
    kept = only_allowed(chain, frozenset({"sonnet", "haiku"}))
    assert kept.models == ("haiku", "sonnet") and kept.strategy == "fallback"
    assert kept.on_content_filter is None and "not allowed for this key: opus" in kept.reason
    assert only_allowed(chain, frozenset(chain.models)).models == chain.models


def test_nothing_left_is_refused_naming_the_choice() -> None:
    with pytest.raises(ModelNotAllowed, match=r"policy 'strong' chose opus: not among .*haiku"):
        only_allowed(Decision(("opus",), "static", "strong"), frozenset({"haiku"}))


def test_a_judge_or_an_alternative_outside_is_not_kept() -> None:
    from turnout.types import EnsembleSpec

    judged = Decision(("a", "b"), "ensemble", "ens", strategy="ensemble",
                      ensemble=EnsembleSpec(mode="judge", judge="secret"))  # fmt: skip
    with pytest.raises(ModelNotAllowed, match="judged by secret"):
        only_allowed(judged, frozenset({"a", "b"}))
    auto = Decision(("a", "b"), "ensemble", "ens", strategy="ensemble",
                    ensemble=EnsembleSpec(mode="auto", judge="secret"))  # fmt: skip
    kept = only_allowed(auto, frozenset({"a", "b"}))
    assert kept.ensemble is not None and kept.ensemble.judge is None
    chain = Decision(("a", "b"), "chain", "fb", strategy="fallback", on_content_filter="secret")
    kept = only_allowed(chain, frozenset({"a", "b"}))  # the chain itself is all allowed
    assert kept.on_content_filter is None and kept.allowed == frozenset({"a", "b"})
