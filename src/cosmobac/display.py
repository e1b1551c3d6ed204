"""HTML for notebooks: what Jupyter shows for a :class:`~cosmobac.batch.Batch` and a
:class:`~cosmobac.interfaces.StoreStats` (their ``_repr_html_`` call these builders).

Kernel code: numpy and the standard library only (no pandas, no matplotlib). Every value shown is
escaped. A batch's summary reads only its first rows, the timestamp column's minimum and maximum,
and the sensor ids (one pass), so it stays fast for a batch of a million rows.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from .batch import Batch
    from .interfaces import StoreStats

__all__ = ["HEAD_ROWS", "batch_html", "format_utc", "html_table", "store_stats_html"]

HEAD_ROWS: Final = 5
"""Rows of a batch shown by default."""
_MAX_TEXT: Final = 40  # characters of one cell before it is cut with "…"

_STYLE: Final = (
    "<style>.cosmobac-repr table{border-collapse:collapse;font-size:12px}"
    ".cosmobac-repr th,.cosmobac-repr td{padding:2px 8px;text-align:left;"
    "border-bottom:1px solid #ddd;white-space:nowrap}"
    ".cosmobac-repr .muted{color:#777}</style>"
)


def format_utc(ms: int) -> str:
    """Epoch milliseconds as ``2024-05-01 12:00:00.000 UTC``."""
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d} UTC"


def _duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:g} s"
    parts = []
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    for value, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")):
        if value:
            parts.append(f"{value} {unit}")
    return " ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="muted">None</span>'
    if isinstance(value, float | np.floating) and math.isnan(value):
        return '<span class="muted">NaN</span>'
    text = f"{value:.6g}" if isinstance(value, float | np.floating) else str(value)
    if len(text) > _MAX_TEXT:
        text = text[: _MAX_TEXT - 1] + "…"
    return html.escape(text)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small HTML table; headers and cells are escaped (cells: ``None`` and NaN shown muted)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dtype_name(array: np.ndarray) -> str:
    return "str" if array.dtype.kind == "O" else str(array.dtype)


def batch_html(batch: Batch, *, head: int = HEAD_ROWS) -> str:
    """A batch in a notebook: rows × columns, the time span in UTC, how many sensors, each column
    with its dtype, and the first ``head`` rows (timestamps in UTC)."""
    n = len(batch)
    names = list(batch.columns)
    facts = [f"<b>Batch</b>: {n:,} rows × {len(names)} columns"]
    if "timestamp" in batch and n:
        ts = batch["timestamp"]
        first, last = int(ts.min()), int(ts.max())
        facts.append(
            f"{html.escape(format_utc(first))} → {html.escape(format_utc(last))}"
            f" ({html.escape(_duration(last - first))})"
        )
    if "sensor_id" in batch:
        sensors = len(set(batch["sensor_id"].tolist()))
        facts.append(f"{sensors:,} sensor{'s' if sensors != 1 else ''}")
    columns = ", ".join(
        f"{html.escape(name)} <span class='muted'>{html.escape(_dtype_name(batch[name]))}</span>"
        for name in names
    )
    shown = min(head, n)
    cells = []
    for i in range(shown):
        row = []
        for name in names:
            value = batch[name][i]
            if name == "timestamp":
                value = format_utc(int(value))
            row.append(value.item() if isinstance(value, np.generic) else value)
        cells.append(row)
    parts = [
        _STYLE,
        '<div class="cosmobac-repr">',
        "<p>" + "; ".join(facts) + "</p>",
        f"<p>columns: {columns}</p>" if names else "",
    ]
    if shown:
        parts.append(html_table(names, cells))
        if n > shown:
            parts.append(f'<p class="muted">first {shown} of {n:,} rows</p>')
    parts.append("</div>")
    return "".join(parts)


def store_stats_html(stats: StoreStats) -> str:
    """A store's state in a notebook: rows and file size, then per consumer its pending rows, how
    long its oldest pending row has waited in the store and its dead letters."""
    size = "" if stats.file_size is None else f"; {_bytes(stats.file_size)} on disk"
    consumers = sorted({*stats.pending, *stats.oldest_pending_age_s, *stats.dead_letters})
    rows = [
        (
            consumer,
            stats.pending.get(consumer, 0),
            _age(stats.oldest_pending_age_s.get(consumer)),
            stats.dead_letters.get(consumer, 0),
        )
        for consumer in consumers
    ]
    table = (
        html_table(["consumer", "pending rows", "oldest pending", "dead letters"], rows)
        if rows
        else '<p class="muted">no consumer has read yet</p>'
    )
    return (
        f'{_STYLE}<div class="cosmobac-repr"><p><b>Store</b>: {stats.rows:,} rows{size}</p>'
        f"{table}</div>"
    )


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return _duration(round(seconds * 1000)) if seconds >= 1 else f"{seconds:.3g} s"


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover
