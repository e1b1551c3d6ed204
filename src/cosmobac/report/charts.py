"""The report's interactive charts: the live dashboard's ``charts.js`` (uPlot), inlined.

Each chart is one sensor's metric in the dashboard's series format (``docs/how-to/dashboard.md``:
``t``, ``v``, ``labels``, ``detections``), the line downsampled at render time with the
dashboard's MinMaxLTTB (:func:`cosmobac.downsample.downsample`) to at most ``points``, every
labelled event and every detection kept apart from the line. uPlot's JS and CSS and ``charts.js``
are read from the package's ``dashboard/static`` folder (package data; the dashboard package
itself is not imported) and written into the page with the series as JSON, so the file needs
nothing outside itself.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch import Batch
from ..downsample import downsample
from .plots import _spans, _trigger

__all__ = ["inline_assets", "sensor_series", "series_json"]

_STATIC = ("dashboard", "static")
_UPLOT = ("vendor", "uplot")


def _static(*parts: str) -> str:
    path = importlib.resources.files("cosmobac").joinpath(*_STATIC, *parts)
    return path.read_text(encoding="utf-8")


def _comment(text: str, opening: str, closing: str) -> str:
    return f"{opening}\n{text.replace(closing, '')}\n{closing}"


def inline_assets() -> tuple[str, str]:
    """(CSS, JS) to write into the page: uPlot's stylesheet, and uPlot's licence notice (a
    comment), uPlot and ``charts.js``."""
    css = _static(*_UPLOT, "uPlot.min.css")
    licence = _comment(
        "uPlot 1.6.32, vendored unchanged (https://github.com/leeoniya/uPlot):\n\n"
        + _static(*_UPLOT, "LICENSE").strip(),
        "/*",
        "*/",
    )
    js = "\n".join([licence, _static(*_UPLOT, "uPlot.iife.min.js"), _static("charts.js")])
    return css, js


def _numbers(values: np.ndarray) -> list[float | None]:
    """Values for JSON: ``None`` where missing, 7 significant digits (a chart's pixels need no
    more, and the file stays small)."""
    return [None if v != v else float(f"{v:.7g}") for v in values.tolist()]


def _detected(rows: Batch) -> tuple[np.ndarray, list[str]]:
    """The rows detected (the chain's ``detected``, else any ``<detector>_detected``) and the
    detectors' names."""
    names = [c[: -len("_detected")] for c in rows.columns if c.endswith("_detected")]
    hit: np.ndarray
    if "detected" in rows:
        hit = rows["detected"].astype(bool)
    elif names:
        flags = np.column_stack([rows[f"{n}_detected"].astype(bool) for n in names])
        hit = np.asarray(flags.any(axis=1))
    else:
        hit = np.zeros(len(rows), bool)
    return hit, names


def sensor_series(
    rows: Batch,
    metrics: Sequence[str],
    *,
    points: int,
    triggered_only: bool = True,
) -> list[dict[str, Any]]:
    """One series per metric of one sensor's time-ordered ``rows``: the line downsampled to at most
    ``points``, every labelled event (``labels``: first and last reading, type) and the detections:
    with ``triggered_only``, on each metric only those it most likely triggered (as
    :func:`~cosmobac.report.plot_sensor` marks them, so each detection is on at least one chart),
    else every detection of the sensor."""
    t = np.asarray(rows["timestamp"], dtype=np.int64)
    sensor = str(rows["sensor_id"][0])
    city = str(rows["city"][0]) if "city" in rows and rows["city"][0] is not None else None
    labels = [{"start": int(t[a]), "end": int(t[b]), "type": kind} for a, b, kind in _spans(rows)]
    hit, names = _detected(rows)
    hits = np.flatnonzero(hit)
    present = [m for m in metrics if m in rows]
    trigger = _trigger(rows, present)[:, hits] if len(hits) and triggered_only else None
    kinds = rows.get("anomaly_type", None)
    fired = {n: rows[f"{n}_detected"].astype(bool) for n in names}
    out = []
    for i, metric in enumerate(present):
        v = np.asarray(rows[metric], dtype=np.float64)
        keep = downsample(t, v, points)
        mine = hits if trigger is None else hits[trigger[i]]
        detections = [
            {
                "t": int(t[j]),
                "v": value,
                "detectors": [n for n in names if fired[n][j]],
                "anomaly_type": None if kinds is None or kinds[j] is None else str(kinds[j]),
            }
            for j, value in zip(mine.tolist(), _numbers(v[mine]), strict=True)
        ]
        out.append(
            {
                "sensor_id": sensor,
                "city": city,
                "metric": metric,
                "t": t[keep].tolist(),
                "v": _numbers(v[keep]),
                "rows": len(t),
                "source": "rows",
                "labels": labels,
                "detections": detections,
                "points": len(keep),
            }
        )
    return out


def series_json(series: Sequence[dict[str, Any]]) -> str:
    """The series as JSON safe inside ``<script type="application/json">``."""
    text = json.dumps(list(series), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")  # no "</script>" or "<!--" can end the element
