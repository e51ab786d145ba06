"""Strategies: how a decision's models are tried. One strategy a module, each serving
streamed and unstreamed calls through the same walk (:mod:`.chain`)."""

from turnout.execution.strategies.base import Route
from turnout.execution.strategies.cascade import CascadeRoute
from turnout.execution.strategies.fallback import FallbackRoute
from turnout.execution.strategies.single import SingleRoute

__all__ = ["CascadeRoute", "FallbackRoute", "Route", "SingleRoute"]
