"""One self-contained HTML file: tables, the detector scores (a PNG, embedded as a data URI) and
interactive charts of every time series: the live dashboard's ``charts.js`` on uPlot, inlined with
the series as JSON (:mod:`.charts`). Nothing outside the file is linked or fetched: it works
offline and from ``file://``."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..batch import Batch
from ..schema import METRICS

if TYPE_CHECKING:
    from ..evaluation.metrics import Evaluation
from .charts import inline_assets, sensor_series, series_json
from .plots import (
    _UNITS,
    MAX_POINTS,
    TYPE_COLORS,
    ReportError,
    _figure_class,
    figure_png,
    plot_scores,
)

__all__ = ["render_report", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; margin: 0.4em 0; }
.note { color: #666; font-size: 0.85em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.2em; }
.chart { width: 100%; min-height: 60px; }
.chart-title { font-size: 0.85em; margin: 0.5em 0 0; color: #333; }
.legend span { display: inline-block; margin-right: 1em; font-size: 0.85em; }
.swatch { display: inline-block; width: 1.4em; height: 0.8em; margin-right: 0.3em;
          vertical-align: middle; opacity: 0.45; }
.ring { display: inline-block; width: 0.6em; height: 0.6em; border: 2px solid #d00000;
        border-radius: 50%; margin-right: 0.3em; vertical-align: middle; }
"""

# Draws every <div class="chart" data-index="i"> with series i of the JSON, at the page's width.
_SCRIPT = """
(function () {
  "use strict";
  const series = JSON.parse(document.getElementById("cosmobac-series").textContent);
  const charts = [];
  for (const el of document.querySelectorAll("div.chart[data-index]")) {
    const s = series[Number(el.dataset.index)];
    const chart = cosmobacCharts.render(el, s, { height: Number(el.dataset.height) || 150 });
    charts.push({ el, chart });
  }
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      for (const c of charts) c.chart.resize(Math.max(c.el.clientWidth, 200));
    }, 100);
  });
  window.cosmobacReport = { charts, series };
})();
"""


def _table(rows: Sequence[Mapping[str, object]]) -> str:
    if not rows:
        return '<p class="note">(nothing)</p>'
    headers = list(rows[0])
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(h, '')))}</td>" for h in headers) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _city_rows(batch: Batch) -> list[dict[str, object]]:
    cities = batch["city"] if "city" in batch else np.full(len(batch), None, object)
    flags = batch["anomaly_flag"].astype(bool) if "anomaly_flag" in batch else None
    detected = batch["detected"].astype(bool) if "detected" in batch else None
    out = []
    for city in sorted({str(c) for c in cities.tolist()}):
        mine = cities.astype(str) == city
        row: dict[str, object] = {
            "city": city,
            "rows": int(mine.sum()),
            "sensors": len(set(batch["sensor_id"][mine].tolist())),
        }
        if flags is not None:
            row["labelled anomalous rows"] = int((flags & mine).sum())
        if detected is not None:
            row["detected rows"] = int((detected & mine).sum())
        out.append(row)
    return out


def _type_rows(batch: Batch, evaluation: Evaluation | None) -> list[dict[str, object]]:
    if "anomaly_flag" not in batch:
        return []
    flags = batch["anomaly_flag"].astype(bool)
    kinds = batch["anomaly_type"][flags] if "anomaly_type" in batch else np.full(flags.sum(), None)
    rows_by_type = collections.Counter(str(k) for k in kinds.tolist())
    events: Mapping[str, int] = {} if evaluation is None else evaluation.events_by_type
    combined = None if evaluation is None else evaluation.detectors.get("all")
    out = []
    for kind in sorted(set(rows_by_type) | set(events)):
        row: dict[str, object] = {
            "anomaly type": kind,
            "events": events.get(kind, "-"),
            "rows": rows_by_type.get(kind, 0),
        }
        if combined is not None and kind in combined.by_type:
            figures = combined.by_type[kind]
            row["events detected (all detectors)"] = f"{figures.detected_events}/{figures.events}"
            row["rows detected"] = f"{figures.point_recall:.2f}"
        out.append(row)
    return out


class _Charts:
    """The page's charts: each a ``<div>`` naming its series, the series kept for the JSON."""

    def __init__(self) -> None:
        self.series: list[dict[str, object]] = []

    def div(self, series: dict[str, object], height: int) -> str:
        self.series.append(series)
        return (
            f'<div class="chart" data-index="{len(self.series) - 1}" data-height="{height}"></div>'
        )


def _legend(kinds: Sequence[str]) -> str:
    items = [
        f'<span><i class="swatch" style="background:{TYPE_COLORS.get(k, "#bcbd22")}"></i>'
        f"{html.escape(k)}</span>"
        for k in kinds
    ]
    items.append('<span><i class="ring"></i>detected</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def _groups(batch: Batch, *keys: str) -> dict[tuple[str, ...], Batch]:
    """The rows of each distinct value of ``keys`` (as text), in time order: one sort for all
    (a day of a dozen sensors at 1 Hz is a million rows)."""
    columns = [batch[k].astype(str) for k in keys]
    order = np.lexsort((batch["timestamp"], *reversed(columns)))
    change = np.zeros(len(order), bool)
    change[0] = True
    for column in columns:
        change[1:] |= column[order][1:] != column[order][:-1]
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:], len(order)]
    return {
        tuple(str(c[order[a]]) for c in columns): batch.select(order[a:z])
        for a, z in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def render_report(
    batch: Batch,
    *,
    title: str = "cosmobac report",
    sensors: int = 4,
    column: str = "temperature",
    points: int = MAX_POINTS,
) -> str:
    """The report as HTML text: rows per city, anomalies by type, detector scores (when the rows
    are labelled and carry detections), a fleet overview per city (each sensor's ``column``) and
    per-sensor charts of every metric for ``sensors`` sensors (those with the most labelled
    events). The charts are interactive (drag to zoom, double-click to reset); each line holds at
    most ``points`` points (MinMaxLTTB), every labelled event and every detection."""
    _figure_class()  # fail early, with the install hint, if matplotlib is missing
    if not len(batch) or "sensor_id" not in batch or "timestamp" not in batch:
        raise ReportError("nothing to report: the rows are empty or lack sensor_id/timestamp")
    evaluation = None
    if "anomaly_flag" in batch:
        from ..evaluation.metrics import detector_names, evaluate

        if detector_names(batch):
            evaluation = evaluate(batch)
    ts = batch["timestamp"]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(batch)} rows from {len(set(batch['sensor_id'].tolist()))} sensors, "
        f"{_iso(int(ts.min()))} to {_iso(int(ts.max()))}.</p>",
        "<h2>Rows per city</h2>",
        _table(_city_rows(batch)),
        "<h2>Anomalies by type</h2>",
        _table(_type_rows(batch, evaluation))
        if "anomaly_flag" in batch
        else '<p class="note">The rows carry no labels (anomaly_flag).</p>',
    ]
    if evaluation is not None:
        parts += [
            "<h2>Detector scores</h2>",
            '<p class="note">P/R/F1: point-wise; PA: point-adjusted (an event counts as '
            "detected in full once any of its rows is); events: detected/labelled; false alarms: "
            "runs of detected rows outside events; delay: mean rows from an event's start to its "
            "first detection; NAB: normalised NAB score with each sensor a series and each event "
            "a window (for comparing detectors, not NAB's board).</p>",
            _table(evaluation.summary_rows()),
            "<p>Event recall by anomaly type:</p>",
            _table(evaluation.type_rows()),
            _image(figure_png(plot_scores(evaluation)), "detector scores"),
        ]
    elif "anomaly_flag" in batch:
        parts.append(
            '<p class="note">No detector columns: add detectors to the transforms to '
            "score them.</p>"
        )
    charts = _Charts()
    kinds = sorted(
        {str(k) for k in batch["anomaly_type"][batch["anomaly_flag"].astype(bool)].tolist()}
        if "anomaly_flag" in batch and "anomaly_type" in batch
        else set()
    )
    if "city" in batch and column in batch:
        unit = f" ({_UNITS[column]})" if column in _UNITS else ""
        parts += [
            "<h2>Fleet overview per city</h2>",
            f'<p class="note">Each sensor\'s {html.escape(column)}{unit}, at most {points} points '
            "a line (MinMaxLTTB, which keeps peaks, dips and gaps). Shaded: labelled anomaly "
            "events, by type; rings: every detection of the sensor, at its "
            f"{html.escape(column)}. Drag across a chart to zoom in, double-click to zoom "
            "out.</p>",
            _legend(kinds),
        ]
        by_city = _groups(batch, "city", "sensor_id")
        for city in sorted({str(c) for c in batch["city"].tolist() if c is not None}):
            names = sorted(sensor for (place, sensor) in by_city if place == city)
            parts.append(f"<h3>{html.escape(city)}: {len(names)} sensors</h3>")
            for sensor in names:
                (one,) = sensor_series(
                    by_city[city, sensor], [column], points=points, triggered_only=False
                )
                parts.append(_chart_title(sensor, one))
                parts.append(charts.div(one, 150))
    chosen = _busiest_sensors(batch, sensors)
    if chosen:
        parts += [
            "<h2>Sensors</h2>",
            '<p class="note">Every metric of the sensors with the most labelled events. Shaded: '
            "labelled anomaly events, by type; rings: detections, on the metric that most likely "
            "triggered each (the metric missing at that row, else the one furthest from its "
            "median). Drag to zoom, double-click to zoom out.</p>",
            _legend(kinds),
        ]
        by_sensor = _groups(batch, "sensor_id")
        for sensor in chosen:
            rows = by_sensor[(sensor,)]
            place = rows["city"][0] if "city" in rows else None
            parts.append(
                f"<h3>{html.escape(sensor)}"
                + (f" ({html.escape(str(place))})" if place else "")
                + "</h3>"
            )
            for one in sensor_series(rows, METRICS, points=points):
                parts.append(charts.div(one, 160))
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f'<p class="note">Generated by cosmobac on {generated}.</p>')
    if charts.series:
        css, js = inline_assets()
        parts += [
            "<noscript><p>The charts need JavaScript.</p></noscript>",
            '<script type="application/json" id="cosmobac-series">'
            f"{series_json(charts.series)}</script>",
            f"<script>\n{js}\n</script>",
            f"<script>{_SCRIPT}</script>",
        ]
    else:
        css = ""
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}{css}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _chart_title(sensor: str, series: dict[str, object]) -> str:
    labels = series["labels"]
    detections = series["detections"]
    assert isinstance(labels, list) and isinstance(detections, list)
    return (
        f'<p class="chart-title"><b>{html.escape(sensor)}</b>: {series["rows"]} rows, '
        f"{len(labels)} labelled events, {len(detections)} detections</p>"
    )


def _busiest_sensors(batch: Batch, count: int) -> list[str]:
    ids = batch["sensor_id"].astype(str)
    names = sorted(set(ids.tolist()))
    if count <= 0 or not names:
        return []
    if "anomaly_flag" not in batch:
        return names[:count]
    flags = batch["anomaly_flag"].astype(bool)
    order = np.lexsort((batch["timestamp"], ids))
    f, s = flags[order], ids[order]
    starts = f.copy()
    starts[1:] &= ~(f[:-1] & (s[1:] == s[:-1]))
    events = collections.Counter(s[starts].tolist())
    return sorted(names, key=lambda n: (-events.get(n, 0), n))[:count]


def write_report(
    batch: Batch,
    out: str | os.PathLike[str],
    *,
    title: str = "cosmobac report",
    sensors: int = 4,
    column: str = "temperature",
    points: int = MAX_POINTS,
) -> Path:
    """Write :func:`render_report` to ``out`` (folders created); returns the path."""
    path = Path(out)
    text = render_report(batch, title=title, sensors=sensors, column=column, points=points)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
