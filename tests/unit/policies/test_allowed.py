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
    assert only_allowed(chain, frozenset(chain.models)) is chain


def test_nothing_left_is_refused_naming_the_choice() -> None:
    with pytest.raises(ModelNotAllowed, match=r"policy 'strong' chose opus: not among .*haiku"):
        only_allowed(Decision(("opus",), "static", "strong"), frozenset({"haiku"}))
