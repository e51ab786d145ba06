"""Chat-completions request bodies, both directions.

Out (a client calling a provider): :func:`request_body` builds the JSON body for a
:class:`~turnout.types.ChatRequest`. ``tools``, ``tool_choice``, ``response_format``
and ``extra`` pass through untouched (``extra`` may override any field but
``stream``/``stream_options``); the cap goes out as ``max_tokens`` or
``max_completion_tokens``, as ``ChatRequest.max_tokens_param`` says.

In (a server receiving one): :func:`decode_request` turns a body into an
:class:`IncomingRequest` (the ChatRequest and the options the server acts on:
``stream``, ``stream_options.include_usage``, ``user``, ``metadata``), or raises
:class:`WireError` naming the field, the ``param`` of a 400. Fields the server does
not read itself (``presence_penalty``, ``logit_bias``, ``user``, ...) go on in
``extra``; ``metadata`` does not (OpenAI refuses it without ``store``). The token cap
keeps the name the client gave it (``max_completion_tokens`` or ``max_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.types import ChatRequest, MaxTokensParam, Message, ToolCall

# -- out -------------------------------------------------------------------------------


def message_to_wire(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    else:
        out["content"] = message.content if message.content is not None else ""
    if message.role == "tool" and message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def request_body(request: ChatRequest, *, model: str, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_to_wire(m) for m in request.messages],
    }
    if request.max_tokens is not None:
        body[request.max_tokens_param] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.tools:
        body["tools"] = [dict(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        body["response_format"] = dict(request.response_format)
    if request.extra:
        body.update(request.extra)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


# -- in --------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def prompt_text(body: Mapping[str, Any]) -> str:
    """The text of every message of a request body, concatenated."""
    messages = body.get("messages") or []
    return "".join(content_text(m.get("content")) for m in messages if isinstance(m, dict))


# -- in: a server decoding a client's body ----------------------------------------------

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_ROLES_ALL = frozenset({*_ROLES, "tool"})
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
# fields the server reads itself; everything else in the body is passed on as ``extra``
_CONSUMED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "n",
        "metadata",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
    }
)


class WireError(ValueError):
    """A request body that is not a valid chat-completions request; ``param`` names the
    field (OpenAI's ``error.param``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A decoded chat-completions body: the request and the options a server acts on."""

    model: str
    request: ChatRequest
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def decode_request(body: Any) -> IncomingRequest:
    """Decode a parsed JSON body, or raise :class:`WireError` naming the bad field."""
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise WireError(_missing_or_type(body, "model", "a non-empty string"), "model")
    n = body.get("n")
    if n is not None and (n != 1 or isinstance(n, bool)):
        raise WireError("n: only n=1 is supported", "n")
    stream = _opt_bool(body, "stream") or False
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise WireError("stream_options must be an object", "stream_options")
        include_usage = _opt_bool(options, "include_usage", "stream_options.") or False
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise WireError("user must be a string", "user")
    max_tokens, max_tokens_param = _max_tokens(body)
    request = ChatRequest(
        messages=_messages(body.get("messages")),
        max_tokens=max_tokens,
        max_tokens_param=max_tokens_param,
        temperature=_opt_number(body, "temperature", 0.0, 2.0),
        top_p=_opt_number(body, "top_p", 0.0, 1.0),
        stop=_stop(body.get("stop")),
        seed=_opt_int(body, "seed", None),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_opt_object(body, "response_format"),
        extra={k: v for k, v in body.items() if k not in _CONSUMED},
    )
    return IncomingRequest(
        model.strip(), request, stream, include_usage, user, _metadata(body.get("metadata"))
    )


def _missing_or_type(body: Mapping[str, Any], name: str, what: str) -> str:
    if name not in body or body[name] is None:
        return f"missing required parameter: {name!r}"
    return f"{name} must be {what}, not {_json_type(body[name])}"


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _opt_bool(body: Mapping[str, Any], name: str, prefix: str = "") -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise WireError(f"{prefix}{name} must be a boolean", prefix + name)
    return value


def _opt_int(body: Mapping[str, Any], name: str, minimum: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"{name} must be an integer, not {_json_type(value)}", name)
    if minimum is not None and value < minimum:
        raise WireError(f"{name} must be at least {minimum}", name)
    return value


def _opt_number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WireError(f"{name} must be a number, not {_json_type(value)}", name)
    if not low <= value <= high:
        raise WireError(f"{name} must be between {low:g} and {high:g}", name)
    return float(value)


def _opt_object(body: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise WireError(f"{name} must be an object, not {_json_type(value)}", name)
    return value


def _max_tokens(body: Mapping[str, Any]) -> tuple[int | None, MaxTokensParam]:
    """The cap and the name it came under (both given: ``max_completion_tokens``)."""
    new = _opt_int(body, "max_completion_tokens", 1)
    if new is not None:
        return new, "max_completion_tokens"
    return _opt_int(body, "max_tokens", 1), "max_tokens"


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value) and len(value) <= 4:
        return tuple(value)
    raise WireError("stop must be a string or an array of up to 4 strings", "stop")


def _tools(value: Any) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WireError(f"tools must be an array, not {_json_type(value)}", "tools")
    for i, tool in enumerate(value):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise WireError(f"tools[{i}].function.name is missing", f"tools[{i}].function.name")
    return tuple(value)


def _tool_choice(value: Any) -> Any:
    if value is None or value in _TOOL_CHOICES or isinstance(value, dict):
        return value
    raise WireError("tool_choice must be 'none', 'auto', 'required' or an object", "tool_choice")


def _metadata(value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise WireError("metadata must be an object of string values", "metadata")
    return dict(value)


def _messages(value: Any) -> tuple[Message, ...]:
    if value is None:
        raise WireError("missing required parameter: 'messages'", "messages")
    if not isinstance(value, list) or not value:
        raise WireError("messages must be a non-empty array", "messages")
    return tuple(_message(m, f"messages[{i}]") for i, m in enumerate(value))


def _message(value: Any, where: str) -> Message:
    if not isinstance(value, dict):
        raise WireError(f"{where} must be an object", where)
    role = value.get("role")
    if role not in _ROLES_ALL:
        raise WireError(
            f"{where}.role must be one of system, developer, user, assistant, tool", f"{where}.role"
        )
    content = _content(value.get("content"), f"{where}.content")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise WireError(f"{where}.name must be a string", f"{where}.name")
    if role == "tool":
        call_id = value.get("tool_call_id")
        if not isinstance(call_id, str):
            raise WireError(f"{where}.tool_call_id is missing", f"{where}.tool_call_id")
        return Message("tool", content or "", tool_call_id=call_id, name=name)
    calls = _tool_calls(value.get("tool_calls"), where) if role == "assistant" else ()
    if content is None and not calls and role != "assistant":
        raise WireError(f"{where}.content is missing", f"{where}.content")
    return Message(_ROLES[role], content, tool_calls=calls, name=name)  # type: ignore[arg-type]


def _content(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise WireError(f"{where} must be a string or an array of parts", where)
    for i, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise WireError(f"{where}[{i}]: only text parts are supported", f"{where}[{i}]")
        if not isinstance(part.get("text"), str):
            raise WireError(f"{where}[{i}].text must be a string", f"{where}[{i}].text")
    return content_text(value)


def _tool_calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WireError(f"{where}.tool_calls must be an array", f"{where}.tool_calls")
    calls = []
    for i, call in enumerate(value):
        at = f"{where}.tool_calls[{i}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise WireError(f"{at}.function.name is missing", f"{at}.function.name")
        if not isinstance(call.get("id"), str):
            raise WireError(f"{at}.id is missing", f"{at}.id")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            raise WireError(f"{at}.function.arguments must be a string", f"{at}.function.arguments")
        calls.append(ToolCall(call["id"], fn["name"], arguments))
    return tuple(calls)
