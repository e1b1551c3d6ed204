"""Visualisation: matplotlib plots of a run (for notebooks) and a self-contained HTML report whose
time series are the live dashboard's zoomable charts (``charts.js`` on uPlot, inlined: see
:mod:`.charts`).

matplotlib and tsdownsample are optional dependencies (``pip install 'cosmobac[report]'``); without
them the plotting functions and the report raise :class:`ReportError` saying so.
"""

from __future__ import annotations

from .html import render_report, write_report
from .plots import (
    MAX_POINTS,
    TYPE_COLORS,
    ReportError,
    figure_png,
    plot_city,
    plot_scores,
    plot_sensor,
)

__all__ = [
    "MAX_POINTS",
    "TYPE_COLORS",
    "ReportError",
    "figure_png",
    "plot_city",
    "plot_scores",
    "plot_sensor",
    "render_report",
    "write_report",
]
