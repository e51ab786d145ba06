"""Configuration: ``turnout.yaml`` and workflow YAML loading."""

from turnout.config.loader import load_settings, settings_from_dict
from turnout.config.settings import ModelSpec, PolicyConfig, ProviderConfig, Settings, Timeouts

__all__ = [
    "ModelSpec",
    "PolicyConfig",
    "ProviderConfig",
    "Settings",
    "Timeouts",
    "load_settings",
    "settings_from_dict",
]
