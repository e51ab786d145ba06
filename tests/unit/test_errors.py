"""The error tree: a provider error names the pool model callers know, its provider's id
for it kept beside."""

from __future__ import annotations

from turnout.errors import AuthenticationError, EndpointNotFound, ServerError


def test_a_provider_error_is_renamed_to_the_pool_model() -> None:
    error = ServerError("HTTP 500 from up: boom", model="gpt-4o-mini-2024-07-18", status=500)
    error.name_model("cheap")
    assert error.model == "cheap"
    assert str(error) == "cheap (gpt-4o-mini-2024-07-18): HTTP 500 from up: boom"
    same = ServerError("HTTP 500 from up: boom", model="cheap")
    same.name_model("cheap")
    assert str(same) == "cheap: HTTP 500 from up: boom"
    anonymous = ServerError("the connection closed")
    anonymous.name_model("cheap")
    assert str(anonymous) == "cheap: the connection closed"


def test_set_up_faults_are_not_retried_but_move_a_fallback_on() -> None:
    for error in (EndpointNotFound("404"), AuthenticationError("401")):
        assert error.model_fault and not error.retryable
    assert ServerError("500").retryable and not ServerError("500").model_fault
