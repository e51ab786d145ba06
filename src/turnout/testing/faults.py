"""What the fake OpenAI server does with one request: answer, or fail in a given way.

A :class:`Fault` is plain data. Build one with a constructor
(``Fault.error(503)``, ``Fault.rate_limited(retry_after="2")``, ``Fault.stall(1.0)``)
or parse it from a short spec string, the form used by the ``x-fake-fault``
header, by a ``fault:<spec>`` model name and by the CLI's ``--fault`` option:

=================================  ==================================================
spec                               behaviour
=================================  ==================================================
``ok``                             a normal answer
``400`` ``401`` ``403`` ``500``..  that HTTP status with an OpenAI-shaped error body
                                   (``502`` answers with an HTML page, like a proxy)
``401:echo``                       401 whose message echoes the Authorization header
``429``                            429 without Retry-After
``429:retry-after=2``              429 with ``Retry-After: 2`` (for an HTTP date, which
                                   holds colons, use ``Fault.rate_limited(retry_after=...)``)
``429:retry-after-ms=150``         429 with ``retry-after-ms: 150``
``503:retry-after=2``              any status with ``Retry-After`` (or ``retry-after-ms``)
``context_length``                 400, code ``context_length_exceeded``, param ``messages``
``content_filter``                 200 with ``finish_reason: "content_filter"``
``content_filter_error``           400, code ``content_filter``
``content_policy``                 400, code ``content_policy_violation``
``stall:2.5``                      sleep 2.5 s before answering (a read timeout)
``stall:2.5:after=1``              when streaming: send 1 chunk, then sleep
``malformed_json``                 200 with a truncated JSON body
``malformed_sse:after=1``          a stream whose chunk number 2 is not JSON
``cut:after=2``                    close the connection after 2 chunks (or half a body)
``tool_calls``                     answer with a tool call (to the first tool offered)
``error_in_200:after=N``            status 200 with an error object for a body; streamed:
                                   N chunks, then an error event (no ``[DONE]``)
=================================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

FaultKind = Literal[
    "ok",
    "error",
    "stall",
    "malformed_json",
    "malformed_sse",
    "cut",
    "tool_calls",
    "content_filter",
    "error_in_200",
]

_CODE_ERRORS: dict[str, tuple[str, str]] = {
    "context_length": (
        "context_length_exceeded",
        "This model's maximum context length is 128 tokens. However, your messages "
        "resulted in 4096 tokens. Please reduce the length of the messages.",
    ),
    "content_filter_error": (
        "content_filter",
        "The response was filtered due to the prompt triggering the content management policy.",
    ),
    "content_policy": (
        "content_policy_violation",
        "Your request was rejected as a result of our safety system.",
    ),
}


_KNOWN = (
    "ok, <status>[:retry-after=S][:retry-after-ms=MS], 401:echo, context_length, "
    "content_filter, content_filter_error, content_policy, stall:S[:after=N], malformed_json, "
    "malformed_sse[:after=N], cut[:after=N], tool_calls, error_in_200[:after=N]"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted behaviour. ``after_chunks`` counts SSE frames already sent."""

    kind: FaultKind = "ok"
    status: int = 200
    message: str | None = None
    code: str | None = None
    error_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    after_chunks: int = 0
    tool_calls: tuple[tuple[str, str], ...] = field(default=())
    echo_auth: bool = False
    param: str | None = None

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def ok(cls) -> Fault:
        return cls()

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        error_type: str | None = None,
        echo_auth: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
        param: str | None = None,
    ) -> Fault:
        """An HTTP error with OpenAI's body shape ``{"error": {message, type, param,
        code}}``."""
        return cls(
            "error",
            status,
            message,
            code,
            error_type,
            headers=headers,
            echo_auth=echo_auth,
            param=param,
        )

    @classmethod
    def rate_limited(
        cls, *, retry_after: str | float | None = None, retry_after_ms: int | None = None
    ) -> Fault:
        """429, optionally with ``Retry-After`` (seconds or an HTTP date) / ``retry-after-ms``."""
        headers = _waits(retry_after, retry_after_ms)
        return cls.error(429, code="rate_limit_exceeded", headers=headers)

    @classmethod
    def context_length(cls) -> Fault:
        code, message = _CODE_ERRORS["context_length"]
        return cls.error(
            400, message, code=code, error_type="invalid_request_error", param="messages"
        )

    @classmethod
    def content_filter(cls) -> Fault:
        """A 200 answer cut short with ``finish_reason: "content_filter"``."""
        return cls("content_filter")

    @classmethod
    def content_policy_error(cls, code: str = "content_policy_violation") -> Fault:
        """A 400 refusal with ``code`` ``content_policy_violation`` or ``content_filter``."""
        key = "content_filter_error" if code == "content_filter" else "content_policy"
        return cls.error(400, _CODE_ERRORS[key][1], code=code, error_type="invalid_request_error")

    @classmethod
    def stall(cls, seconds: float, *, after_chunks: int = 0) -> Fault:
        return cls("stall", seconds=seconds, after_chunks=after_chunks)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("malformed_json")

    @classmethod
    def malformed_sse(cls, *, after_chunks: int = 1) -> Fault:
        return cls("malformed_sse", after_chunks=after_chunks)

    @classmethod
    def cut(cls, *, after_chunks: int = 2) -> Fault:
        return cls("cut", after_chunks=after_chunks)

    @classmethod
    def error_in_200(
        cls, *, after_chunks: int = 0, code: str | None = None, message: str | None = None
    ) -> Fault:
        """A 200 whose body (or, streamed, whose event after ``after_chunks`` chunks) is an
        error object, as some providers and proxies send them. ``code`` / ``message``
        replace the object's (e.g. ``"529"``, the code Anthropic gives "overloaded")."""
        return cls("error_in_200", message=message, code=code, after_chunks=after_chunks)

    @classmethod
    def with_tool_calls(cls, *calls: tuple[str, str]) -> Fault:
        """Answer with tool calls ``(name, arguments_json)``; none given: call the first tool."""
        return cls("tool_calls", tool_calls=tuple(calls))

    # -- spec strings ------------------------------------------------------------------

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse a spec such as ``503``, ``429:retry-after=2`` or ``stall:1.5:after=2``."""
        head, *args = [p.strip() for p in spec.strip().split(":")]
        positional = [a for a in args if "=" not in a]
        named = dict(a.split("=", 1) for a in args if "=" in a)
        try:
            fault = _parse_head(head.lower(), positional, named)
            if "after" in named:
                fault = replace(fault, after_chunks=int(named["after"]))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from None
        return fault


def _waits(
    retry_after: str | float | None, retry_after_ms: int | None
) -> tuple[tuple[str, str], ...]:
    """The headers asking a client to wait: ``Retry-After`` and / or ``retry-after-ms``."""
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", str(retry_after_ms)))
    return tuple(headers)


def _parse_head(head: str, positional: list[str], named: dict[str, str]) -> Fault:
    if head.isdigit():
        status = int(head)
        ms = named.get("retry-after-ms")
        if status == 429:
            return Fault.rate_limited(
                retry_after=named.get("retry-after"), retry_after_ms=int(ms) if ms else None
            )
        waits = _waits(named.get("retry-after"), int(ms) if ms else None)
        return Fault.error(status, echo_auth="echo" in positional, headers=waits)
    if head in ("context_length", "content_filter_error", "content_policy"):
        code = _CODE_ERRORS[head][0]
        if head == "context_length":
            return Fault.context_length()
        return Fault.content_policy_error(code)
    if head == "stall":
        seconds = float(positional[0] if positional else named.get("seconds", "5"))
        return Fault.stall(seconds)
    simple: dict[str, Fault] = {
        "ok": Fault.ok(),
        "content_filter": Fault.content_filter(),
        "malformed_json": Fault.malformed_json(),
        "malformed_sse": Fault.malformed_sse(),
        "cut": Fault.cut(),
        "tool_calls": Fault.with_tool_calls(),
        "error_in_200": Fault.error_in_200(),
    }
    if head not in simple:
        raise ValueError(f"unknown fault {head!r} (known: {_KNOWN})")
    return simple[head]
