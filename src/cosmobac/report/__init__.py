"""Visualisation: matplotlib plots of a run and a self-contained HTML report.

matplotlib is an optional dependency (``pip install 'cosmobac[report]'``); without it the plotting
functions raise :class:`ReportError` saying so.
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
