"""The turnout exception tree.

::

    TurnoutError
    ├── ConfigError                 bad turnout.yaml / workflow / CLI input (names file, field)
    │   ├── WorkflowError           a workflow that cannot run: cycle, unknown input (names step)
    │   └── TemplateError           a prompt placeholder with no value (names step, variable)
    ├── ModelPackageMissing         a local model's package is not installed (says what to install)
    ├── ProviderError               one call to a provider failed (names model; never secrets)
    │   ├── RateLimited             429
    │   ├── ProviderTimeout         connect / read / total timeout
    │   ├── ProviderConnectionError refused, reset, DNS, cut stream
    │   ├── ServerError             5xx
    │   ├── ContextLengthExceeded   the prompt does not fit the model's window
    │   ├── ContentFiltered         the provider refused on content grounds
    │   ├── AuthenticationError     401 / 403, or the API key env var is unset
    │   ├── BadRequest              other 4xx
    │   ├── MalformedResponse       a body or SSE chunk that is not what the API promises
    │   ├── CircuitOpen             the model's circuit breaker is open: not called at all
    │   └── StreamAbandoned         the caller stopped waiting (closed the stream, was cancelled)
    ├── AllAttemptsFailed           every attempt of a decision failed; lists each attempt
    ├── BudgetExceeded              the next call would pass a run or step cost cap (none spent)
    ├── CheckError                  a check that could not be evaluated (e.g. a python check raised)
    └── StoreError                  the trace store could not be opened, migrated or written
        └── CommitUnknown           a write's COMMIT went unanswered: it may have been written

``ProviderError.retryable`` says whether the executor may retry or fall back;
``ProviderError.retry_after`` how long the provider asked to be left alone (its
``Retry-After``), whatever the error's class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turnout.types import Usage


class TurnoutError(Exception):
    """Base of every error turnout raises on purpose."""


class ConfigError(TurnoutError):
    """Invalid configuration. The message names the file and the field."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        self.file = file
        self.field = field
        self.detail = message
        """The message without the file and field."""
        where = ": ".join(p for p in (file, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ModelNotAllowed(ConfigError):
    """Every model a request's policy chose is one the caller may not use (a gateway
    key's ``models``); nothing was called."""


class WorkflowError(ConfigError):
    """A workflow that cannot run as written."""

    def __init__(self, message: str, *, file: str | None = None, step: str | None = None) -> None:
        self.step = step
        super().__init__(message, file=file, field=f"step {step!r}" if step else None)


class TemplateError(WorkflowError):
    """A prompt template refers to a value that the step was not given."""


class ModelPackageMissing(TurnoutError):
    """A local model is not installed; the message says exactly what to install."""


class ProviderError(TurnoutError):
    """One call to a provider failed."""

    retryable: bool = False
    """Worth asking the same model again (after a pause)."""
    model_fault: bool = False
    """A fault of this model's set-up (its provider's key, its endpoint or id), not of
    the request: not worth asking it again, but a fallback moves on to its next model."""
    error_class: str = "provider_error"
    usage: Usage | None = None
    """What the failed call consumed, when the provider said (e.g. an answer stopped by
    its content filter still bills its tokens); the executor charges it."""
    provider_code: str | None = None
    """The provider's own error ``code`` when its error object gave one (an HTTP error's
    body, an error object in a 200 body, an error event in a stream), kept apart from the
    HTTP ``status``."""
    provider_type: str | None = None
    """The ``type`` of the provider's error object (a 429's ``requests`` or ``tokens``)."""
    provider_param: str | None = None
    """The ``param`` of the provider's error object: the request field it blamed."""
    endpoint: str | None = None
    """Where the call went (the provider's URL, without credentials), when the message
    names it: the operator's to see (traces, the CLI), never a gateway client's."""
    attempt: int | None = None
    """The number of the traced attempt (``AttemptRecord.attempt``) that failed with this
    error; None when no call was made (a model skipped for its open breaker)."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.model = model
        self.status = status
        self.retry_after = retry_after
        """Seconds the provider asked to be left alone for (``Retry-After`` or
        ``retry-after-ms`` on any status: a 429, a 503, a 529), None when it did not say;
        for :class:`CircuitOpen`, until the breaker may let a call through again."""
        self.detail = message
        prefix = f"{model}: " if model else ""
        super().__init__(f"{prefix}{message}")

    def name_model(self, model: str) -> None:
        """Say the pool model ``model`` failed (a provider names its own model id: kept in
        brackets when it differs), in :attr:`model` and the message."""
        said = self.model
        self.model = model
        named = f"{model} ({said})" if said and said != model else model
        self.args = (f"{named}: {self.detail}",)


class RateLimited(ProviderError):
    retryable = True
    error_class = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, model=model, status=status, retry_after=retry_after)


class ProviderTimeout(ProviderError):
    retryable = True
    error_class = "timeout"
    sent: bool = True
    """The provider had the request when the wait ran out (it bills the prompt); False
    for a connection that was never made, or a request it never read (408)."""


class ProviderConnectionError(ProviderError):
    retryable = True
    error_class = "connection"


class ServerError(ProviderError):
    retryable = True
    error_class = "server_error"


class ContextLengthExceeded(ProviderError):
    error_class = "context_length"


class ContentFiltered(ProviderError):
    error_class = "content_filter"


class AuthenticationError(ProviderError):
    model_fault = True
    error_class = "auth"


class BadRequest(ProviderError):
    error_class = "bad_request"


class EndpointNotFound(ProviderError):
    """The provider has no such endpoint or model (HTTP 404): turnout's configuration
    (its ``base_url`` or a model's ``id``) is wrong, not the caller's request, so the
    next model is tried and the caller hears 502, not 400."""

    model_fault = True
    error_class = "not_found"


class MalformedResponse(ProviderError):
    retryable = True
    error_class = "malformed_response"


class CircuitOpen(ProviderError):
    """The model's breaker is open (or its half-open probe is taken): skipped, not called."""

    retryable = True
    error_class = "circuit_open"


class StreamAbandoned(ProviderError):
    """The caller stopped waiting for an answer (closed its stream, or was cancelled).

    Only recorded, never raised: the attempt is charged for what it streamed so far."""

    error_class = "abandoned"


class AllAttemptsFailed(TurnoutError):
    """Every attempt of a decision failed. ``errors`` holds one entry per attempt."""

    def __init__(self, step: str | None, errors: Sequence[ProviderError]) -> None:
        self.step = step
        self.errors = tuple(errors)
        listed = "; ".join(f"[{i + 1}] {e.error_class}: {e}" for i, e in enumerate(self.errors))
        where = f"step {step!r}: " if step else ""
        super().__init__(f"{where}all {len(self.errors)} attempt(s) failed: {listed}")


class BudgetExceeded(TurnoutError):
    """A cost cap would be passed by the next call; raised before spending."""

    error_class = "budget"

    def __init__(self, message: str, *, scope: str = "run") -> None:
        self.scope = scope
        super().__init__(message)


class CheckError(TurnoutError):
    """A check could not be evaluated."""


class StoreError(TurnoutError):
    """The trace store failed."""


class CommitUnknown(StoreError):
    """A write failed after its COMMIT was sent (the connection was cut, or the answer did
    not come in time): the server may have committed it. ``transaction`` names the
    write's transaction for the store to ask about later
    (:meth:`~turnout.tracing.store.CommitStatus.committed`), or is None when the store
    cannot say (then writing it again may write it twice)."""

    def __init__(self, message: str, *, transaction: str | None) -> None:
        self.transaction = transaction
        super().__init__(message)


def error_class_of(exc: BaseException) -> str:
    """A short, stable name for an exception, as stored in traces."""
    if isinstance(exc, ProviderError):
        return exc.error_class
    if isinstance(exc, AllAttemptsFailed):
        return "all_attempts_failed"
    if isinstance(exc, BudgetExceeded):
        return "budget"
    if isinstance(exc, TemplateError):
        return "template"
    if isinstance(exc, ModelNotAllowed):
        return "model_not_allowed"
    if isinstance(exc, ConfigError):
        return "config"
    return type(exc).__name__
