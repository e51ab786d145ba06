"""Writing a plugin: policy, provider and check kinds from another package.

A plugin package declares each kind as an entry point whose value names a
:class:`Kind` (the builder and the schema of its options)::

    # pyproject.toml of the plugin
    [project.entry-points."turnout.policies"]
    shout = "turnout_shout.kinds:SHOUT_POLICY"

    # turnout_shout/kinds.py
    from pydantic import BaseModel, ConfigDict
    from turnout.plugins import Kind

    class ShoutOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str
        volume: int = 3

    SHOUT_POLICY = Kind("turnout_shout.policy:ShoutPolicy.from_options", ShoutOptions)

after which ``kind: shout`` works in ``turnout.yaml`` exactly like a built-in kind:
its options are validated by its schema (a bad one is a one-line error naming the
file and the field) and it is built by its builder. Builders: a policy's
``build(name, options, settings)``, a provider's ``build(config, models)``, a
check's ``build(spec: CheckSpec)``. See :mod:`turnout.config.kinds`.
"""

from turnout.checks.registry import CheckSpec, register_check
from turnout.config.kinds import CHECKS, GROUPS, POLICIES, PROVIDERS, Kind, Registry
from turnout.policies.registry import register_policy
from turnout.providers.registry import register_provider

__all__ = [
    "CHECKS",
    "GROUPS",
    "POLICIES",
    "PROVIDERS",
    "CheckSpec",
    "Kind",
    "Registry",
    "register_check",
    "register_policy",
    "register_provider",
]
