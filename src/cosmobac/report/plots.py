"""Matplotlib figures of a run: one sensor's series with labelled anomalies and detections, a
city's fleet at a glance, detector scores. Figures are made without pyplot (no global state, no
display needed); :func:`figure_png` renders one."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..batch import Batch
from ..errors import CosmobacError
from ..schema import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..evaluation.metrics import Evaluation

__all__ = [
    "TYPE_COLORS",
    "ReportError",
    "figure_png",
    "plot_city",
    "plot_scores",
    "plot_sensor",
]

TYPE_COLORS: Final = {
    "spike": "#d62728",
    "dip": "#9467bd",
    "drift": "#ff7f0e",
    "pattern": "#2ca02c",
    "stuck": "#7f7f7f",
    "dropout": "#17becf",
    "noise": "#e377c2",
}
_OTHER = "#bcbd22"
_UNITS: Final = {
    "temperature": "°C",
    "humidity": "%",
    "pressure": "hPa",
    "vibration": "mm/s",
    "voltage": "V",
}


class ReportError(CosmobacError):
    """A report or plot cannot be made (matplotlib missing, nothing to plot)."""


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ReportError(
            "plots and reports need matplotlib, an optional dependency: "
            "pip install 'cosmobac[report]' (or pip install matplotlib)"
        ) from exc
    return Figure


def figure_png(figure: Figure, *, dpi: int = 80) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _times(ms: np.ndarray) -> np.ndarray:
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def _detected_column(batch: Batch, detector: str) -> np.ndarray | None:
    name = "detected" if detector == "all" else f"{detector}_detected"
    column = batch.get(name)
    return None if column is None else column.astype(bool)


def _spans(rows: Batch) -> list[tuple[int, int, str]]:
    """(first row, last row, type) of each labelled event of one sensor's rows (time order)."""
    if "anomaly_flag" not in rows:
        return []
    flags = rows["anomaly_flag"].astype(bool)
    kinds = rows["anomaly_type"] if "anomaly_type" in rows else np.full(len(rows), None, object)
    spans = []
    i, n = 0, len(rows)
    while i < n:
        if not flags[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and flags[j + 1] and kinds[j + 1] == kinds[i]:
            j += 1
        spans.append((i, j, str(kinds[i]) if kinds[i] is not None else "unknown"))
        i = j + 1
    return spans


def plot_sensor(
    batch: Batch,
    sensor_id: str,
    *,
    columns: Sequence[str] | None = None,
    detector: str = "all",
) -> Figure:
    """One sensor's series, one panel per column, with labelled anomaly events shaded by type and
    detected rows marked (``detector``: ``"all"`` for the chain's combined ``detected``, or a
    detector's name)."""
    figure_class = _figure_class()
    ids = batch["sensor_id"]
    rows = batch.select(ids == sensor_id)
    if not len(rows):
        raise ReportError(f"no rows of sensor {sensor_id!r}")
    rows = rows.select(np.argsort(rows["timestamp"], kind="stable"))
    wanted = [c for c in (columns or METRICS) if c in rows]
    if not wanted:
        raise ReportError(f"none of the columns {list(columns or METRICS)} is in the rows")
    fig = figure_class(figsize=(10, 1.5 * len(wanted) + 0.8))
    axes = fig.subplots(len(wanted), 1, sharex=True, squeeze=False)[:, 0]
    t = _times(rows["timestamp"])
    step = np.median(np.diff(t)) if len(t) > 1 else np.timedelta64(1000, "ms")
    detected = _detected_column(rows, detector)
    spans = _spans(rows)
    for ax, column in zip(axes, wanted, strict=True):
        values = rows[column].astype(np.float64)
        ax.plot(t, values, lw=0.6, color="#333333")
        for first, last, kind in spans:
            ax.axvspan(
                t[first], t[last] + step, color=TYPE_COLORS.get(kind, _OTHER), alpha=0.3, lw=0
            )
        if detected is not None and detected.any():
            ax.plot(t[detected], values[detected], "x", color="black", ms=4, mew=1)
        unit = _UNITS.get(column)
        ax.set_ylabel(f"{column}\n({unit})" if unit else column, fontsize=8)
        ax.tick_params(labelsize=7)
    city = rows["city"][0] if "city" in rows else None
    axes[0].set_title(f"{sensor_id}" + (f" ({city})" if city else ""), fontsize=10)
    handles = _legend(fig, sorted({kind for _, _, kind in spans}), detected is not None)
    if handles:
        axes[0].legend(handles=handles, fontsize=7, ncol=len(handles), loc="upper right")
    fig.autofmt_xdate()
    return fig


def _legend(fig: Figure, kinds: Sequence[str], detections: bool) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(color=TYPE_COLORS.get(k, _OTHER), alpha=0.3, label=k) for k in kinds
    ]
    if detections:
        handles.append(Line2D([], [], marker="x", color="black", ls="", label="detected"))
    return handles


def plot_city(batch: Batch, city: str, *, column: str = "temperature", bins: int = 48) -> Figure:
    """A city's fleet at a glance: every sensor's ``column`` over time (detections marked), and
    below, labelled anomalous rows per time bin stacked by type, with detected rows as a line."""
    figure_class = _figure_class()
    rows = batch.select(batch["city"] == city) if "city" in batch else batch.select(slice(0, 0))
    if not len(rows):
        raise ReportError(f"no rows in city {city!r}")
    fig = figure_class(figsize=(10, 4.2))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    detected = _detected_column(rows, "all")
    for sensor in sorted(set(rows["sensor_id"].tolist())):
        mine = rows.select(rows["sensor_id"] == sensor)
        mine = mine.select(np.argsort(mine["timestamp"], kind="stable"))
        t = _times(mine["timestamp"])
        values = mine[column].astype(np.float64) if column in mine else np.full(len(mine), np.nan)
        top.plot(t, values, lw=0.5, alpha=0.8, label=sensor)
        det = _detected_column(mine, "all")
        if det is not None and det.any():
            top.plot(t[det], values[det], "x", color="black", ms=3)
    top.set_ylabel(f"{column} ({_UNITS.get(column, '')})", fontsize=8)
    top.set_title(f"{city}: {len(set(rows['sensor_id'].tolist()))} sensors", fontsize=10)
    top.legend(fontsize=6, ncol=4, loc="upper right")
    ts = rows["timestamp"].astype(np.int64)
    edges = np.linspace(ts.min(), ts.max() + 1, bins + 1)
    centres = _times(((edges[:-1] + edges[1:]) / 2).astype(np.int64))
    width = np.timedelta64(int((edges[1] - edges[0]) * 0.9), "ms")
    base = np.zeros(bins)
    if "anomaly_flag" in rows:
        flags = rows["anomaly_flag"].astype(bool)
        kinds = rows["anomaly_type"] if "anomaly_type" in rows else np.full(len(rows), None, object)
        for kind in sorted({k for k in kinds[flags].tolist() if k is not None}):
            counts, _ = np.histogram(ts[flags & (kinds == kind)], bins=edges)
            bottom.bar(
                centres,
                counts,
                width=width,
                bottom=base,
                label=kind,
                color=TYPE_COLORS.get(kind, _OTHER),
                alpha=0.8,
            )
            base += counts
    if detected is not None:
        counts, _ = np.histogram(ts[detected], bins=edges)
        bottom.plot(centres, counts, color="black", lw=1, label="detected")
    bottom.set_ylabel("rows", fontsize=8)
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(fontsize=6, ncol=4, loc="upper right")
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    return fig


def plot_scores(evaluation: Evaluation) -> Figure:
    """Detector scores: event recall per detector and anomaly type (a heat map), and point-adjusted
    and event-wise F1 per detector."""
    figure_class = _figure_class()
    names = list(evaluation.detectors)
    kinds = sorted(evaluation.events_by_type)
    grid = np.full((len(names), len(kinds)), np.nan)
    for i, name in enumerate(names):
        for j, kind in enumerate(kinds):
            figures = evaluation.detectors[name].by_type.get(kind)
            if figures is not None:
                grid[i, j] = figures.event_recall
    fig = figure_class(figsize=(10, 0.45 * len(names) + 1.6))
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    left.imshow(grid, vmin=0, vmax=1, cmap="Greens", aspect="auto")
    left.set_xticks(range(len(kinds)), kinds, fontsize=8, rotation=30)
    left.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(kinds)):
            if not np.isnan(grid[i, j]):
                left.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    left.set_title("event recall by anomaly type", fontsize=9)
    y = np.arange(len(names))
    pa = [evaluation.detectors[n].point_adjusted.f1 for n in names]
    ev = [evaluation.detectors[n].event.f1 for n in names]
    right.barh(y - 0.2, np.nan_to_num(pa), height=0.4, label="point-adjusted F1")
    right.barh(y + 0.2, np.nan_to_num(ev), height=0.4, label="event F1")
    right.set_yticks(y, names, fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.legend(fontsize=7, loc="lower right")
    right.tick_params(labelsize=7)
    right.set_title("F1", fontsize=9)
    return fig
