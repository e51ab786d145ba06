"""Providers: things that answer chat requests."""

from turnout.providers.base import Provider
from turnout.providers.function import FunctionProvider
from turnout.providers.registry import build_provider, register_provider

__all__ = ["FunctionProvider", "Provider", "build_provider", "register_provider"]
