"""What a notebook shows for an :class:`~cosmobac.evaluation.metrics.Evaluation`: the run's size
and events, the scores per detector, event recall and event F1 per anomaly type, as escaped HTML tables."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..display import html_table

if TYPE_CHECKING:
    from .metrics import Evaluation

__all__ = ["evaluation_html"]

_STYLE = (
    "<style>.cosmobac-repr table{border-collapse:collapse;font-size:12px;margin-bottom:6px}"
    ".cosmobac-repr th,.cosmobac-repr td{padding:2px 8px;text-align:right;"
    "border-bottom:1px solid #ddd;white-space:nowrap}"
    ".cosmobac-repr td:first-child,.cosmobac-repr th:first-child{text-align:left}</style>"
)


def evaluation_html(evaluation: Evaluation) -> str:
    """The evaluation as HTML: a line about the run, the per-detector scores (the rows of
    :meth:`Evaluation.summary_rows`), event recall and event F1 by anomaly type."""
    events = sum(evaluation.events_by_type.values())
    kinds = ", ".join(f"{t} {n}" for t, n in sorted(evaluation.events_by_type.items()))
    head = (
        f"<p><b>Evaluation</b>: {evaluation.rows:,} rows from {evaluation.sensors:,} sensors; "
        f"{evaluation.labelled_rows:,} labelled anomalous in {events:,} events"
        + (f" ({html.escape(kinds)})" if kinds else "")
        + "</p>"
    )
    parts = [_STYLE, '<div class="cosmobac-repr">', head]
    for title, rows in (
        ("scores per detector", evaluation.summary_rows()),
        ("event recall by anomaly type", evaluation.type_rows()),
        (
            "event F1 by anomaly type (precision: the detector's, over all types)",
            evaluation.type_f1_rows(),
        ),
    ):
        if rows:
            headers = list(rows[0])
            parts.append(f"<p>{title}</p>")
            parts.append(html_table(headers, [[r.get(h, "") for h in headers] for r in rows]))
    parts.append("</div>")
    return "".join(parts)
