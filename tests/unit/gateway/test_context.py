"""Request headers and body fields to the routing context; `model` to a policy or a model."""

from __future__ import annotations

import pytest

from turnout.config import Settings
from turnout.gateway.config import GatewayConfig
from turnout.gateway.context import (
    ModelNotFound,
    Route,
    call_context,
    parse_annotation,
    parse_tags,
    resolve,
)
from turnout.types import Annotation
from turnout.wire.requests import WireError, decode_request


def incoming(**fields: object):  # type: ignore[no-untyped-def]
    return decode_request(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_headers_and_body_make_the_context() -> None:
    headers = {
        "x-turnout-workflow": "support",
        "x-turnout-step": "triage",
        "x-turnout-session": "s-1",
        "x-turnout-annotation": "scope=single-file; domain=Docs; ambiguity=low",
        "x-turnout-tags": "team=web, env=prod",
        "x-turnout-latency": "sensitive",
    }
    ctx = call_context(headers, incoming(user="u-7", metadata={"team": "api", "tier": "gold"}))
    assert (ctx.workflow, ctx.step, ctx.session, ctx.latency) == (
        "support",
        "triage",
        "s-1",
        "sensitive",
    )
    assert ctx.annotation == Annotation("single-file", "docs", "low")
    # header tags win over metadata; the body's user is the tag `user`
    assert dict(ctx.tags) == {"team": "web", "tier": "gold", "env": "prod", "user": "u-7"}


def test_defaults_without_headers() -> None:
    ctx = call_context({}, incoming())
    assert (ctx.workflow, ctx.step, ctx.session, ctx.annotation, ctx.latency) == (
        "gateway",
        "chat",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x-turnout-annotation": "domain"}, "header:x-turnout-annotation"),
        ({"x-turnout-annotation": "color=red"}, "header:x-turnout-annotation"),
        ({"x-turnout-tags": "a=1, b"}, "header:x-turnout-tags"),
        ({"x-turnout-latency": "fast"}, "header:x-turnout-latency"),
        ({"x-turnout-step": "x" * 2000}, "header:x-turnout-step"),
    ],
)
def test_bad_headers_name_the_header(headers: dict[str, str], param: str) -> None:
    with pytest.raises(WireError) as caught:
        call_context(headers, incoming())
    assert caught.value.param == param
    assert param.removeprefix("header:") in str(caught.value)


def test_pairs() -> None:
    assert parse_tags("") == {}
    assert parse_tags("a=1;b = 2 ,") == {"a": "1", "b": "2"}
    assert parse_annotation("domain=security") == Annotation(domain="security")


def test_resolve(settings: Settings) -> None:
    config = GatewayConfig(default_policy="cheap")
    policy = next(iter(settings.policies))
    assert resolve(policy, settings, config) == Route(policy=policy)
    assert resolve(f"turnout/{policy}", settings, config) == Route(policy=policy)
    assert resolve("haiku", settings, config) == Route(model="haiku")
    assert resolve("auto", settings, config) == Route(policy="cheap")
    with pytest.raises(ModelNotFound):
        resolve("gpt-17", settings, config)
    lenient = GatewayConfig(default_policy="cheap", unknown_models="default_policy")
    assert resolve("gpt-17", settings, lenient) == Route(policy="cheap")
    with pytest.raises(ModelNotFound):
        resolve("auto", settings, GatewayConfig())
