"""Reports for people: a bench as a self-contained HTML page with SVG charts (and PNGs).

The chart kit (:mod:`~turnout.reports.svg`, :mod:`~turnout.reports.charts`) draws
plain SVG from Python; :mod:`~turnout.reports.bench_html` assembles the page from
:func:`turnout.bench.analysis.analyze`; :mod:`~turnout.reports.png` renders the same
charts to PNG when CairoSVG is installed.
"""

from __future__ import annotations

from turnout.reports.bench_html import ReportFiles, render_bench_html, write_bench_report
from turnout.reports.prices import Pricing, load_pricing, pricing_of

__all__ = ["Pricing", "ReportFiles", "load_pricing", "pricing_of", "render_bench_html",
           "write_bench_report"]  # fmt: skip
