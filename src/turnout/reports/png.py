"""Charts as PNG files: the same SVG documents, rendered by CairoSVG.

PNG output is optional (``pip install 'turnout[report]'``, which brings CairoSVG;
CairoSVG needs the system library libcairo2). Without it the HTML report is
still written and :func:`unavailable` says what to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from turnout.errors import TurnoutError

INSTALL = (
    "pip install 'turnout[report]' (CairoSVG), with the system library libcairo2 "
    "(apt-get install libcairo2)"
)


class PngUnavailable(TurnoutError):
    """PNG charts were asked for but CairoSVG (or libcairo2) is not installed."""


def _cairosvg() -> Any:
    try:
        return importlib.import_module("cairosvg")
    except ImportError:
        raise PngUnavailable(f"PNG charts need CairoSVG: {INSTALL}") from None
    except OSError:  # cairocffi is there but libcairo2 is not
        raise PngUnavailable(f"PNG charts need the cairo library: {INSTALL}") from None


def unavailable() -> str | None:
    """Why PNGs cannot be written here, or None when they can."""
    try:
        _cairosvg()
    except PngUnavailable as exc:
        return str(exc)
    return None


def svg_to_png(svg: str, path: Path, *, scale: float = 2.0) -> Path:
    """Render a standalone SVG document to ``path`` (``scale`` 2: crisp on any screen)."""
    cairosvg = _cairosvg()
    path.parent.mkdir(parents=True, exist_ok=True)
    cairosvg.svg2png(bytestring=svg.encode("utf-8"), write_to=str(path), scale=scale)
    return path
