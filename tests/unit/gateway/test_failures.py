"""Failures to OpenAI error replies: the status the SDK maps, the code, the headers."""

from __future__ import annotations

import pytest

from support.gateway_double import call
from turnout.errors import (
    AllAttemptsFailed,
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    CircuitOpen,
    ContentFiltered,
    ContextLengthExceeded,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from turnout.execution.stream_cut import Restart
from turnout.gateway import failures
from turnout.wire.requests import WireError


def failed(*errors: ProviderError) -> AllAttemptsFailed:
    return AllAttemptsFailed(None, errors)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (
            failed(ServerError("503", model="a", status=503), ProviderTimeout("slow", model="b")),
            502,
            "all_attempts_failed",
        ),
        (
            failed(CircuitOpen("open", model="a"), CircuitOpen("open", model="b")),
            503,
            "circuit_open",
        ),
        (
            failed(ContextLengthExceeded("too long", model="a", status=400)),
            400,
            "context_length_exceeded",
        ),
        (failed(ContentFiltered("no", model="a")), 400, "content_filter"),
        (BadRequest("bad tool", model="a", status=400), 400, "invalid_request"),
        (failed(AuthenticationError("key", model="a", status=401)), 502, "all_attempts_failed"),
        (BudgetExceeded("run cap $0.10 reached"), 429, "budget_exceeded"),
    ],
)
def test_failure_statuses(exc: Exception, status: int, code: str) -> None:
    reply = failures.from_failure(exc)
    assert reply.status == status
    assert reply.body["error"]["code"] == code
    assert reply.headers["x-should-retry"] == "false"
    assert set(reply.body["error"]) >= {"message", "type", "param", "code"}


def numbered(error: ProviderError, n: int) -> ProviderError:
    error.attempt = n
    return error


def test_attempts_are_listed() -> None:
    errors = (
        numbered(ServerError("boom", model="a-1", status=500), 1),
        numbered(ProviderTimeout("slow", model="b-1"), 2),
    )
    calls = [call("a", 1, "server_error"), call("b", 2, "timeout")]
    reply = failures.from_failure(failed(*errors), calls)
    assert reply.body["error"]["attempts"] == [
        {"model": "a", "error": "server_error", "status": 500},
        {"model": "b", "error": "timeout", "status": None},
    ]
    assert reply.body["error"]["skipped"] == []
    assert "2 attempt(s) failed" in reply.body["error"]["message"]


def test_attempts_are_the_calls_made() -> None:
    """A model skipped for its open breaker was not called: not an attempt, but named."""
    errors = (
        numbered(ServerError("boom", model="a-1", status=500), 1),
        CircuitOpen("open", model="a"),
    )
    reply = failures.from_failure(failed(*errors), [call("a", 1, "server_error")])
    assert reply.body["error"]["attempts"] == [
        {"model": "a", "error": "server_error", "status": 500}
    ]
    assert reply.body["error"]["skipped"] == [{"model": "a", "error": "circuit_open"}]
    only_open = failures.from_failure(CircuitOpen("open", model="b"), [])
    assert only_open.status == 503 and only_open.body["error"]["attempts"] == []
    assert only_open.body["error"]["skipped"] == [{"model": "b", "error": "circuit_open"}]


def test_rate_limits_carry_retry_after() -> None:
    reply = failures.from_failure(
        failed(
            RateLimited("slow down", model="a", retry_after=2.2),
            RateLimited("x", model="b", retry_after=7),
        )
    )
    assert (reply.status, reply.headers["retry-after"]) == (429, "3")
    assert failures.from_failure(failed(RateLimited("x", model="a"))).headers["retry-after"] == "1"


def limited(retry_after: float | None = None, kind: str | None = None) -> RateLimited:
    error = RateLimited("slow down", model="a", retry_after=retry_after)
    error.provider_code, error.provider_type = "rate_limit_exceeded", kind
    return error


@pytest.mark.parametrize(
    ("errors", "kind"),
    [
        ((limited(kind="tokens"),), "tokens"),
        ((limited(kind="tokens"), limited()), "tokens"),  # one said nothing
        ((limited(kind="requests"),), "requests"),
        ((limited(),), "requests"),  # the upstream said nothing: OpenAI's usual
        ((limited(kind="tokens"), limited(kind="requests")), "requests"),  # they differ
    ],
)
def test_an_upstream_rate_limit_is_openais(errors: tuple[RateLimited, ...], kind: str) -> None:
    body = failures.from_failure(failed(*errors)).body["error"]
    assert (body["code"], body["type"]) == ("rate_limit_exceeded", kind)


def refused(cls: type[ProviderError], code: str | None, param: str | None) -> ProviderError:
    error = cls("no", model="a", status=400)
    error.provider_code, error.provider_param = code, param
    return error


@pytest.mark.parametrize(
    ("errors", "code", "param"),
    [
        ((refused(ContextLengthExceeded, "context_length_exceeded", "messages"),),
         "context_length_exceeded", "messages"),
        ((refused(ContextLengthExceeded, None, None),), "context_length_exceeded", None),
        ((refused(BadRequest, "invalid_value", "temperature"),), "invalid_value", "temperature"),
        ((refused(BadRequest, "400", None),), "invalid_request", None),  # old vLLM: a number
        ((refused(BadRequest, None, "tools"),), "invalid_request", "tools"),
        ((refused(BadRequest, "a", "x"), refused(BadRequest, "b", "y")), "invalid_request", None),
        ((refused(ContentFiltered, "content_policy_violation", "prompt"),), "content_filter",
         "prompt"),
    ],
)  # fmt: skip
def test_an_upstream_refusal_keeps_its_param_and_code(
    errors: tuple[ProviderError, ...], code: str, param: str | None
) -> None:
    reply = failures.from_failure(failed(*errors))
    assert reply.status == 400
    body = reply.body["error"]
    assert (body["code"], body["param"], body["type"]) == (code, param, "invalid_request_error")


URL = "http://10.1.2.3:8000/v1"


def located(error: ProviderError) -> ProviderError:
    error.endpoint = URL
    return error


def test_messages_name_the_provider_not_where_it_is() -> None:
    answered = located(ServerError(f"HTTP 500 from up ({URL}): boom", model="m", status=500))
    refused = located(ProviderConnectionError(f"cannot connect to up ({URL}): refused"))
    replies = [
        failures.from_failure(failed(answered, refused)),
        failures.from_failure(answered),
        failures.cannot_restart(Restart("m", "n", str(answered), answered)),
    ]
    for reply in replies:
        message = reply.body["error"]["message"]
        assert "10.1.2.3" not in message and "http" not in message, message
        assert "HTTP 500 from up: boom" in message
    assert "cannot connect to up: refused" in replies[0].body["error"]["message"]
    assert URL in str(answered)  # the operator's message (traces, the CLI) keeps it


@pytest.mark.parametrize(
    ("waits", "retry_after", "should_retry"),
    [
        ((20.2, 45), "21", "false"),  # the caller, told when, decides: the SDK fails fast
        ((60,), "60", "false"),
        ((90,), "90", "false"),
        ((None,), None, "false"),  # the breaker could not say
        ((20, None), None, "false"),
    ],
)
def test_an_open_breaker_says_when_to_come_back(
    waits: tuple[float | None, ...], retry_after: str | None, should_retry: str
) -> None:
    errors = [CircuitOpen("open", model=f"m{i}", retry_after=w) for i, w in enumerate(waits)]
    reply = failures.from_failure(failed(*errors))
    assert reply.status == 503
    assert reply.headers.get("retry-after") == retry_after
    assert reply.headers.get("x-should-retry") == should_retry


def test_a_provider_retry_after_reaches_the_client_when_every_failure_said() -> None:
    unavailable = ServerError("503", model="a", status=503, retry_after=120)
    reply = failures.from_failure(failed(unavailable))
    assert (reply.status, reply.headers["retry-after"]) == (502, "120")
    assert reply.headers["x-should-retry"] == "false"  # turnout already tried
    mixed = failures.from_failure(failed(unavailable, ServerError("500", model="b", status=500)))
    assert "retry-after" not in mixed.headers


def test_request_errors() -> None:
    reply = failures.bad_request(WireError("temperature must be a number", "temperature"))
    assert (reply.status, reply.body["error"]["param"]) == (400, "temperature")
    assert "x-should-retry" not in reply.headers
    assert (
        failures.model_not_found("gpt-9", ["rules", "haiku"]).body["error"]["code"]
        == "model_not_found"
    )
    assert failures.too_large(10).status == 413
    assert (
        failures.from_failure(RuntimeError("secret sk-123")).body["error"]["message"]
        == "The request failed."
    )


def test_a_request_is_counted_under_its_failure_however_many_attempts_it_made() -> None:
    limited = RateLimited("slow down", model="a", retry_after=2.2)
    assert failures.failure_class(limited) == "rate_limited"
    assert failures.failure_class(failed(limited, RateLimited("again", model="b"))) == (
        "rate_limited"
    )
    mixed = failed(limited, ServerError("503", model="b", status=503))
    assert failures.failure_class(mixed) == "all_attempts_failed"
    assert failures.failure_class(BudgetExceeded("over", scope="key")) == "budget"
