"""From an HTTP request to what the façade is asked: which policy or model, and the
routing context a policy sees.

``model`` names a policy (``rules`` or ``turnout/rules``) or a pool model; ``auto``
(and, with ``unknown_models: default_policy``, any other name) takes the gateway's
default policy. The context comes from the request: headers ``x-turnout-workflow``,
``x-turnout-step``, ``x-turnout-session``, ``x-turnout-annotation``
(``scope=…; domain=…; ambiguity=…``), ``x-turnout-tags`` (``k=v, k=v``) and
``x-turnout-latency`` (``sensitive``), and the body's ``user`` (tag ``user``) and
``metadata`` (tags). Bad header values raise :class:`WireError` naming the header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from turnout.config.settings import Settings
from turnout.gateway.config import GatewayConfig
from turnout.types import Annotation
from turnout.wire.requests import IncomingRequest, WireError

WORKFLOW = "gateway"
STEP = "chat"
PREFIX = "turnout/"
_ANNOTATION_KEYS = ("scope", "domain", "ambiguity")
_MAX_HEADER = 1024


class ModelNotFound(LookupError):
    """``model`` is neither a policy nor a pool model (a 404 ``model_not_found``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class Route:
    """What ``model`` resolved to: exactly one of ``policy`` and ``model``."""

    policy: str | None = None
    model: str | None = None

    @property
    def label(self) -> str:
        return self.policy or self.model or ""


@dataclass(frozen=True, slots=True)
class CallContext:
    """The routing context of one gateway request, as the façade takes it."""

    workflow: str = WORKFLOW
    step: str = STEP
    session: str | None = None
    annotation: Annotation | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    latency: Literal["sensitive"] | None = None


def resolve(name: str, settings: Settings, config: GatewayConfig) -> Route:
    """The policy or pool model ``name`` asks for; :class:`ModelNotFound` if none."""
    bare = name.removeprefix(PREFIX)
    if bare in settings.policies:
        return Route(policy=bare)
    if bare in settings.models:
        return Route(model=bare)
    wants_default = bare == "auto" or config.unknown_models == "default_policy"
    if wants_default and config.default_policy is not None:
        return Route(policy=config.default_policy)
    raise ModelNotFound(name)


def call_context(headers: Mapping[str, str], incoming: IncomingRequest) -> CallContext:
    """The context from ``x-turnout-*`` headers and the body's ``user`` and ``metadata``."""
    tags: dict[str, str] = dict(incoming.metadata)
    tags.update(parse_tags(_header(headers, "x-turnout-tags") or ""))
    if incoming.user:
        tags["user"] = incoming.user
    latency = _header(headers, "x-turnout-latency")
    if latency not in (None, "", "normal", "sensitive"):
        raise WireError(
            "x-turnout-latency must be 'sensitive' or 'normal'", "header:x-turnout-latency"
        )
    annotation = _header(headers, "x-turnout-annotation")
    return CallContext(
        workflow=_header(headers, "x-turnout-workflow") or WORKFLOW,
        step=_header(headers, "x-turnout-step") or STEP,
        session=_header(headers, "x-turnout-session") or None,
        annotation=parse_annotation(annotation) if annotation else None,
        tags=tags,
        latency="sensitive" if latency == "sensitive" else None,
    )


def parse_annotation(text: str) -> Annotation:
    """``scope=single-file; domain=docs; ambiguity=low`` (``;`` or ``,`` between pairs)."""
    values = _pairs(text, "x-turnout-annotation")
    unknown = sorted(set(values) - set(_ANNOTATION_KEYS))
    if unknown:
        raise WireError(
            f"x-turnout-annotation: unknown key {unknown[0]!r} (expected scope, domain, ambiguity)",
            "header:x-turnout-annotation",
        )
    return Annotation(**{k: v.lower() for k, v in values.items()})


def parse_tags(text: str) -> dict[str, str]:
    """``k=v, k=v`` (``;`` also separates pairs)."""
    return _pairs(text, "x-turnout-tags")


def _pairs(text: str, header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise WireError(
                f"{header}: expected key=value, got {part.strip()!r}", f"header:{header}"
            )
        out[key.strip()] = value.strip()
    return out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if len(value) > _MAX_HEADER:
        raise WireError(f"{name} is longer than {_MAX_HEADER} characters", f"header:{name}")
    return value.strip()
