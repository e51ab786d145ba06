"""How a key is refused: the bearer token read, the missing-key refusal, the budget's
soft-limit warning."""

from __future__ import annotations

from decimal import Decimal

from turnout.keys import Period
from turnout.keys.model import VirtualKey
from turnout.keys.refusals import bearer_token, budget_warning, missing_key
from turnout.limits.budget import KeyBudget


def test_the_bearer_token_is_read_as_openai_clients_send_it() -> None:
    assert bearer_token("Bearer tk-abc") == "tk-abc"
    assert bearer_token("bearer   tk-abc  ") == "tk-abc"
    for sent in (None, "", "Basic dXNlcg==", "Bearer ", "tk-abc"):
        assert bearer_token(sent) is None


def test_a_missing_key_is_a_401_in_openai_shape() -> None:
    refusal = missing_key()
    assert (refusal.status, refusal.code, refusal.type) == (
        401, "invalid_api_key", "invalid_request_error"
    )  # fmt: skip
    assert refusal.body()["error"]["code"] == "invalid_api_key"


def test_the_budget_warning_starts_at_80_percent() -> None:
    key = VirtualKey(name="team-a", key_hash="h", prefix="tk-abcd", created_at=0.0,
                     budget_usd=Decimal(10), period=Period.DAY)  # fmt: skip
    budget = KeyBudget("team-a", Decimal(10), Period.DAY)
    assert budget_warning(key, budget, 7_999_999_999_999) is None
    warning = budget_warning(key, budget, 8_500_000_000_000)
    assert warning == "key 'team-a' has used 85% of its $10 day budget"
