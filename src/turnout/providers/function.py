"""A provider backed by a Python function: the test double for unit tests.

``FunctionProvider(lambda request: "hi")`` answers every request with "hi";
the function may also return a ChatResponse, raise a ProviderError to simulate
a failure, or be async. Usage is estimated (4 characters a token) when the
function returns plain text.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable

from turnout.pricing.tokens import estimate_tokens
from turnout.providers.base import Provider
from turnout.types import ChatRequest, ChatResponse, Usage

Responder = Callable[[ChatRequest], "str | ChatResponse | Awaitable[str | ChatResponse]"]


class FunctionProvider(Provider):
    def __init__(self, fn: Responder, *, name: str = "function") -> None:
        self.fn = fn
        self.name = name
        self.calls: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(request)
        start = time.perf_counter()
        result = self.fn(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, ChatResponse):
            return result
        prompt = "".join(m.content or "" for m in request.messages)
        usage = Usage(estimate_tokens(prompt), estimate_tokens(result))
        return ChatResponse(
            content=result,
            usage=usage,
            model=request.model,
            finish_reason="stop",
            latency_s=time.perf_counter() - start,
        )
