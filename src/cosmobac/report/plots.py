"""Matplotlib figures of a run: one sensor's series with labelled anomalies and detections, a
city's fleet at a glance, detector scores. Figures are made without pyplot (no global state, no
display needed) and show themselves in a notebook (a fresh kernel, no ``%matplotlib inline``);
:func:`figure_png` renders one.

Readable at a fleet's scale: each line is downsampled to at most :data:`MAX_POINTS` points with
tsdownsample's MinMaxLTTB (the shape, peaks and dips kept; missing values stay gaps), detection
marks to one per :data:`MAX_POINTS`-th of the time axis; times are UTC dates on the axes.

A detection is marked on the metric that triggered it. Detectors record that a row fired, not on
which metric, so the plot infers it: the metric whose value is furthest from the sensor's median in
units of its spread (median absolute deviation), or the metrics missing at that row if any are."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..batch import Batch
from ..downsample import downsample
from ..errors import CosmobacError
from ..schema import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..evaluation.metrics import Evaluation

__all__ = [
    "MAX_POINTS",
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
MAX_POINTS: Final = 2000
"""At most this many points per line of a plot (about two per pixel of a 10-inch figure)."""
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
        import matplotlib.figure  # noqa: F401  (both checked here, so a missing one is named
        import tsdownsample  # noqa: F401  up front, not halfway through a plot)

        from ._figure import NotebookFigure
    except ImportError as exc:
        raise ReportError(
            "plots and reports need matplotlib and tsdownsample, optional dependencies: "
            "pip install 'cosmobac[report]' (or pip install matplotlib tsdownsample)"
        ) from exc
    return NotebookFigure


def _downsample(t: np.ndarray, values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Positions of at most ``limit`` rows (time-ordered ``t`` in ms) that keep the line's shape:
    MinMaxLTTB over the values, with each run of missing values kept as a gap (the dashboard's
    :func:`cosmobac.downsample.downsample`)."""
    return downsample(t, values, limit)


def _thin(t: np.ndarray, positions: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """At most one of ``positions`` (marks at times ``t``) per ``limit``-th of the time span."""
    if len(positions) <= limit:
        return positions
    first, last = int(t[0]), int(t[-1])
    bucket = ((t[positions] - first) * (limit - 1)) // max(last - first, 1)
    _, keep = np.unique(bucket, return_index=True)
    return positions[keep]


def _trigger(rows: Batch, columns: Sequence[str]) -> np.ndarray:
    """For each row, which of ``columns`` most likely triggered a detection (one sensor's rows):
    a boolean (column, row) array, true on every column missing at that row, or where none is
    missing, on the most unusual one (its distance from the column's median over its median
    absolute deviation)."""
    values = np.vstack([rows[c].astype(np.float64) for c in columns])
    missing = np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        median = np.nanmedian(np.where(missing.all(axis=1, keepdims=True), 0.0, values), axis=1)
        spread = np.nanmedian(np.abs(values - median[:, None]), axis=1)
        spread = np.where(spread > 0, spread, 1.0)
        distance = np.abs(values - median[:, None]) / spread[:, None]
    distance = np.where(missing, -np.inf, distance)
    best = np.zeros_like(missing)
    best[np.argmax(distance, axis=0), np.arange(values.shape[1])] = True
    return np.where(missing.any(axis=0), missing, best)


def _time_axis(ax: Any) -> None:
    import datetime as dt

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(tz=dt.UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=dt.UTC))


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
    fig = figure_class(figsize=(10, 1.5 * len(wanted) + 0.8), layout="constrained")
    axes = fig.subplots(len(wanted), 1, sharex=True, squeeze=False)[:, 0]
    ms = rows["timestamp"].astype(np.int64)
    t = _times(ms)
    step = np.median(np.diff(t)) if len(t) > 1 else np.timedelta64(1000, "ms")
    detected = _detected_column(rows, detector)
    hits = np.flatnonzero(detected) if detected is not None else np.zeros(0, dtype=np.int64)
    trigger = _trigger(rows, wanted)[:, hits] if len(hits) else None
    spans = _spans(rows)
    for i, (ax, column) in enumerate(zip(axes, wanted, strict=True)):
        values = rows[column].astype(np.float64)
        shown = _downsample(ms, values)
        ax.plot(t[shown], values[shown], lw=0.6, color="#333333")
        for first, last, kind in spans:
            ax.axvspan(
                t[first], t[last] + step, color=TYPE_COLORS.get(kind, _OTHER), alpha=0.3, lw=0
            )
        if trigger is not None:
            _mark(ax, t, values, _thin(ms, hits[trigger[i]]))
        unit = _UNITS.get(column)
        ax.set_ylabel(f"{column}\n({unit})" if unit else column, fontsize=8)
        ax.tick_params(labelsize=7)
        _time_axis(ax)
    axes[-1].set_xlabel("time (UTC)", fontsize=8)
    city = rows["city"][0] if "city" in rows else None
    axes[0].set_title(f"{sensor_id}" + (f" ({city})" if city else ""), fontsize=10)
    handles = _legend(fig, sorted({kind for _, _, kind in spans}), detected is not None)
    if handles:
        axes[0].legend(handles=handles, fontsize=7, ncol=len(handles), loc="upper right")
    return fig


def _mark(ax: Any, t: np.ndarray, values: np.ndarray, positions: np.ndarray) -> None:
    """Crosses at the detected rows; a missing value is marked at the bottom of the panel."""
    if not len(positions):
        return
    y = values[positions]
    present = ~np.isnan(y)
    if present.any():
        ax.plot(t[positions[present]], y[present], "x", color="black", ms=4, mew=1)
    if not present.all():
        ax.plot(
            t[positions[~present]],
            np.zeros(int((~present).sum())),
            "|",
            color="black",
            ms=6,
            transform=ax.get_xaxis_transform(),
        )


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
    fig = figure_class(figsize=(11, 5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    detected = _detected_column(rows, "all")
    metrics = [c for c in METRICS if c in rows]
    for sensor in sorted(set(rows["sensor_id"].tolist())):
        mine = rows.select(rows["sensor_id"] == sensor)
        mine = mine.select(np.argsort(mine["timestamp"], kind="stable"))
        ms = mine["timestamp"].astype(np.int64)
        t = _times(ms)
        values = mine[column].astype(np.float64) if column in mine else np.full(len(mine), np.nan)
        shown = _downsample(ms, values)
        (line,) = top.plot(t[shown], values[shown], lw=0.6, alpha=0.85, label=sensor)
        det = _detected_column(mine, "all")
        if det is not None and det.any():
            hits = np.flatnonzero(det)
            if column in metrics:  # only the detections this metric triggered
                hits = hits[_trigger(mine, metrics)[metrics.index(column), hits]]
            x, y = _xy(t, values, _thin(ms, hits))
            if len(x):
                top.plot(x, y, "x", color=line.get_color(), ms=4, mew=1)
    top.set_ylabel(f"{column} ({_UNITS.get(column, '')})", fontsize=8)
    top.set_title(
        f"{city}: {len(set(rows['sensor_id'].tolist()))} sensors (× detections on {column})",
        fontsize=10,
    )
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
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
        bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
        _time_axis(ax)
    bottom.set_xlabel("time (UTC)", fontsize=8)
    return fig


def _xy(t: np.ndarray, values: np.ndarray, positions: np.ndarray) -> tuple[Any, Any]:
    present = positions[~np.isnan(values[positions])]
    return t[present], values[present]


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
    fig = figure_class(figsize=(11, 0.5 * len(names) + 1.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    image = left.imshow(grid, vmin=0, vmax=1, cmap="Greens", aspect="auto")
    fig.colorbar(image, ax=left, fraction=0.04, pad=0.02).ax.tick_params(labelsize=7)
    left.set_xticks(range(len(kinds)), kinds, fontsize=9, rotation=30, ha="right")
    left.set_yticks(range(len(names)), names, fontsize=9)
    for i in range(len(names)):
        for j in range(len(kinds)):
            value = grid[i, j]
            left.text(
                j,
                i,
                "n/a" if np.isnan(value) else f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=9,
                color="#777777" if np.isnan(value) else ("white" if value > 0.6 else "black"),
            )
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
