"""Reports for people: a bench as a self-contained HTML page with SVG charts (and PNGs).

The chart kit (:mod:`~turnout.reports.svg`, :mod:`~turnout.reports.charts`) draws
plain SVG from Python; :mod:`~turnout.reports.bench_html` assembles the page from
:func:`turnout.bench.analysis.analyze`; :mod:`~turnout.reports.png` renders the same
charts to PNG when CairoSVG is installed.

Over the trace store: :mod:`~turnout.reports.weekly` (spend, cost per run and per
session, the routing-efficiency ratio), :mod:`~turnout.reports.whatif` (recorded
steps re-decided under another policy and re-priced: an estimate) and
:mod:`~turnout.reports.suggest` (a ``per_step`` policy learned from a bench).
"""

from __future__ import annotations

from turnout.reports.bench_html import ReportFiles, render_bench_html, write_bench_report
from turnout.reports.prices import Pricing, load_pricing, pricing_of
from turnout.reports.suggest import Suggestion, suggest
from turnout.reports.weekly import WeeklyReport, weekly_report
from turnout.reports.whatif import WhatIfReport, whatif

__all__ = [
    "Pricing", "ReportFiles", "Suggestion", "WeeklyReport", "WhatIfReport", "load_pricing",
    "pricing_of", "render_bench_html", "suggest", "weekly_report", "whatif", "write_bench_report",
]  # fmt: skip
