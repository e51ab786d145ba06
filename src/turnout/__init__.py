"""turnout: route every step of an agent workflow to the model it needs.

The public API is listed in ``__all__``; names are imported on first use, so
``import turnout`` stays fast and opens no connection, thread or file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Turnout": "turnout.facade",
    "Answer": "turnout.facade",
    "ChatStream": "turnout.facade",
    "AllAttemptsFailed": "turnout.errors",
    "AuthenticationError": "turnout.errors",
    "BadRequest": "turnout.errors",
    "BudgetExceeded": "turnout.errors",
    "CheckError": "turnout.errors",
    "CircuitOpen": "turnout.errors",
    "ConfigError": "turnout.errors",
    "ContentFiltered": "turnout.errors",
    "ContextLengthExceeded": "turnout.errors",
    "MalformedResponse": "turnout.errors",
    "ModelPackageMissing": "turnout.errors",
    "ProviderConnectionError": "turnout.errors",
    "ProviderError": "turnout.errors",
    "ProviderTimeout": "turnout.errors",
    "RateLimited": "turnout.errors",
    "ServerError": "turnout.errors",
    "StoreError": "turnout.errors",
    "StreamAbandoned": "turnout.errors",
    "TemplateError": "turnout.errors",
    "TurnoutError": "turnout.errors",
    "WorkflowError": "turnout.errors",
    "Annotation": "turnout.types",
    "ChatRequest": "turnout.types",
    "ChatResponse": "turnout.types",
    "CheckResult": "turnout.types",
    "Decision": "turnout.types",
    "Message": "turnout.types",
    "Tier": "turnout.types",
    "Usage": "turnout.types",
    "Settings": "turnout.config",
    "load_settings": "turnout.config",
    "settings_from_dict": "turnout.config",
    "Price": "turnout.pricing",
    "Provider": "turnout.providers",
    "FunctionProvider": "turnout.providers",
    "ModelPool": "turnout.providers.pool",
    "Policy": "turnout.policies",
    "PoolHealth": "turnout.policies",
    "RequestContext": "turnout.policies",
    "build_policy": "turnout.policies",
    "register_policy": "turnout.policies",
    "Executor": "turnout.execution.executor",
    "RetryPolicy": "turnout.execution.retry",
    "Workflow": "turnout.workflows.spec",
    "Step": "turnout.workflows.spec",
    "load_workflow": "turnout.workflows.loader",
    "Runner": "turnout.workflows.runner",
    "RunResult": "turnout.workflows.results",
    "StepResult": "turnout.workflows.results",
    "run_bench": "turnout.bench",
    "load_cases": "turnout.bench",
    "open_store": "turnout.tracing",
    "TraceWriter": "turnout.tracing",
}

__all__ = [
    "AllAttemptsFailed",
    "Annotation",
    "Answer",
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "CheckError",
    "CheckResult",
    "CircuitOpen",
    "ConfigError",
    "ContentFiltered",
    "ContextLengthExceeded",
    "Decision",
    "Executor",
    "FunctionProvider",
    "MalformedResponse",
    "Message",
    "ModelPackageMissing",
    "ModelPool",
    "Policy",
    "PoolHealth",
    "Price",
    "Provider",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RequestContext",
    "RetryPolicy",
    "RunResult",
    "Runner",
    "ServerError",
    "Settings",
    "Step",
    "StepResult",
    "StoreError",
    "StreamAbandoned",
    "TemplateError",
    "Tier",
    "TraceWriter",
    "Turnout",
    "TurnoutError",
    "Usage",
    "Workflow",
    "WorkflowError",
    "build_policy",
    "load_cases",
    "load_settings",
    "load_workflow",
    "open_store",
    "register_policy",
    "run_bench",
    "settings_from_dict",
]

if TYPE_CHECKING:
    from turnout.bench import load_cases, run_bench
    from turnout.config import Settings, load_settings, settings_from_dict
    from turnout.errors import (
        AllAttemptsFailed,
        AuthenticationError,
        BadRequest,
        BudgetExceeded,
        CheckError,
        CircuitOpen,
        ConfigError,
        ContentFiltered,
        ContextLengthExceeded,
        MalformedResponse,
        ModelPackageMissing,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeout,
        RateLimited,
        ServerError,
        StoreError,
        StreamAbandoned,
        TemplateError,
        TurnoutError,
        WorkflowError,
    )
    from turnout.execution.executor import Executor
    from turnout.execution.retry import RetryPolicy
    from turnout.facade import Answer, ChatStream, Turnout
    from turnout.policies import Policy, PoolHealth, RequestContext, build_policy, register_policy
    from turnout.pricing import Price
    from turnout.providers import FunctionProvider, Provider
    from turnout.providers.pool import ModelPool
    from turnout.tracing import TraceWriter, open_store
    from turnout.types import (
        Annotation,
        ChatRequest,
        ChatResponse,
        CheckResult,
        Decision,
        Message,
        Tier,
        Usage,
    )
    from turnout.workflows.loader import load_workflow
    from turnout.workflows.results import RunResult, StepResult
    from turnout.workflows.runner import Runner
    from turnout.workflows.spec import Step, Workflow


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'turnout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
