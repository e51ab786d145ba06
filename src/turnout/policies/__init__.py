"""Policies: pure decisions (no I/O) from a request context and the pool's health.

One policy kind a module; :mod:`turnout.policies.registry` builds them from
``turnout.yaml``. The executor (:mod:`turnout.execution`) carries decisions out.
"""

from turnout.policies.base import HEALTHY, Policy, PoolHealth, RequestContext
from turnout.policies.registry import build_policy, register_policy
from turnout.policies.speed import FastestRule, SpeedEstimate, SpeedSnapshot

__all__ = [
    "HEALTHY",
    "FastestRule",
    "Policy",
    "PoolHealth",
    "RequestContext",
    "SpeedEstimate",
    "SpeedSnapshot",
    "build_policy",
    "register_policy",
]
