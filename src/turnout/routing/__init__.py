"""Routing: policies (pure decisions) and the executor that carries them out."""

from turnout.routing.policy import HEALTHY, Policy, PoolHealth, RequestContext
from turnout.routing.registry import build_policy, register_policy

__all__ = ["HEALTHY", "Policy", "PoolHealth", "RequestContext", "build_policy", "register_policy"]
