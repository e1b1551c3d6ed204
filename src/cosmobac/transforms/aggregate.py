"""Built-in transform ``aggregate``: tumbling windows per sensor (count, min, max, mean and
anomaly counts), each emitted once, when closed, correct across batches and restarts."""

from __future__ import annotations

import json
from typing import Any

import attrs
import numpy as np

from ..batch import Batch
from ..detectors._series import Groups, Slots, decode_arrays, encode_arrays
from ..detectors.base import columns_converter
from ..errors import ConfigError
from ..hookspecs import Register, hookimpl
from ..schema import METRICS
from ..values import duration

__all__ = ["Aggregate"]

_NO_TIME = np.iinfo(np.int64).min
_STATE_VERSION = 1


def _to_window_ms(value: Any) -> int:
    seconds = duration("window", value)
    ms = round(seconds * 1000)
    if ms < 1 or abs(seconds * 1000 - ms) > 1e-6:
        raise ValueError(f"window must be a whole number of milliseconds ≥ 1ms, got {value!r}")
    return ms


def _to_lateness_ms(value: Any) -> int:
    return round(duration("lateness", value) * 1000)


def _empty(width: int) -> dict[str, np.ndarray]:
    return {
        "slot": np.empty(0, np.int64),
        "start": np.empty(0, np.int64),
        "count": np.empty(0, np.int64),
        "n": np.empty((0, width), np.int64),
        "sum": np.empty((0, width)),
        "min": np.empty((0, width)),
        "max": np.empty((0, width)),
        "anomalies": np.empty(0, np.int64),
        "detected": np.empty(0, np.int64),
        "late": np.empty(0, np.int64),
    }


def _flag(batch: Batch, name: str) -> np.ndarray:
    column = batch.get(name)
    if column is None or column.dtype.kind != "b":
        return np.zeros(len(batch), dtype=np.int64)
    return column.astype(np.int64)


@attrs.define(eq=False, kw_only=True)
class Aggregate:
    """Tumbling windows per sensor: one row per sensor and window with the count of readings and,
    per column, the count of values present, min, max and mean (missing values are left out, never
    counted as 0), plus how many readings were labelled anomalous and how many were detected.

    Windows are aligned to the epoch (``window = "1m"``: each minute, UTC) and keyed by
    ``sensor_id`` and ``timestamp`` (the window's start), so a window's document id is stable.

    When is a window emitted? Once, when the sensor's *watermark* (the latest timestamp seen from
    it) reaches the window's end plus ``lateness``. Rows are taken in the order the store gives
    them, so the result does not depend on how they are cut into batches, nor on a restart (the
    open windows and watermarks are the transform's checkpointed state).

    Late rows (policy): a row whose window was already closed when it arrived is not added to any
    window (that would change a window already sent); it is counted in ``late_rows`` of the
    window its sensor is currently in (the one holding the watermark). A sensor that stops
    reporting keeps its last window open until it reports again.

    Output columns: ``timestamp`` (window start), ``window_end``, ``sensor_id``, ``city``,
    ``count``; for each column ``<c>_count``, ``<c>_min``, ``<c>_max``, ``<c>_mean``; then
    ``anomaly_count`` (rows with ``anomaly_flag``), ``detected_count`` (rows with ``detected``)
    and ``late_rows``. Input rows are not passed on: the forwarder acknowledges a batch whole
    when its windows (if any closed) are written.

    Keys: ``window`` (a duration, default ``"1m"``), ``columns`` (default the five metrics),
    ``lateness`` (a duration, default 0).
    """

    window: str | float = attrs.field(default="1m")
    columns: tuple[str, ...] = attrs.field(default=METRICS, converter=columns_converter)
    lateness: str | float = attrs.field(default=0)

    _window_ms: int = attrs.field(init=False, repr=False)
    _lateness_ms: int = attrs.field(init=False, repr=False)
    _slots: Slots = attrs.field(init=False, factory=Slots, repr=False)
    _cities: list[str | None] = attrs.field(init=False, factory=list, repr=False)
    _watermark: np.ndarray = attrs.field(
        init=False, factory=lambda: np.empty(0, np.int64), repr=False
    )
    _open: dict[str, np.ndarray] = attrs.field(init=False, repr=False)
    _version: int = attrs.field(init=False, default=0, repr=False)
    _cached: tuple[int, str] | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        self._window_ms = _to_window_ms(self.window)
        self._lateness_ms = _to_lateness_ms(self.lateness)
        self._open = _empty(len(self.columns))

    # -- the transform ------------------------------------------------------------------------
    def __call__(self, batch: Batch) -> Batch:
        self._version += 1
        n = len(batch)
        if not n:
            return self._output(_empty(len(self.columns)))
        codes = self._slots.codes(batch["sensor_id"])
        grow = len(self._slots) - len(self._watermark)
        if grow:
            self._watermark = np.concatenate([self._watermark, np.full(grow, _NO_TIME)])
            self._cities.extend([None] * grow)
        ts = batch["timestamp"].astype(np.int64)
        win = self._window_ms
        starts = ts // win * win
        # watermark of the row's sensor just before the row arrived
        before = np.empty(n, dtype=np.int64)
        for part in Groups(codes).parts():
            grid = np.empty((len(part.slots), part.width + 1), dtype=np.int64)
            grid[:, 0] = self._watermark[part.slots]
            grid[:, 1:] = part.gather1(ts, fill=_NO_TIME)
            np.maximum.accumulate(grid, axis=1, out=grid)
            before[part.members] = grid[:, :-1].reshape(-1)[part.flat]
            self._watermark[part.slots] = grid[:, -1]
        late = (before != _NO_TIME) & (starts + win + self._lateness_ms <= before)
        cities = batch.get("city")
        if cities is not None:
            last_rows = np.zeros(len(self._slots), dtype=np.int64) - 1
            last_rows[codes] = np.arange(n)  # the last assignment wins: each sensor's last row
            for slot in np.flatnonzero(last_rows >= 0).tolist():
                city = cities[last_rows[slot]]
                if city is not None:
                    self._cities[slot] = city
        current = before // win * win  # late rows count on their sensor's current window
        old = self._open
        slots = np.concatenate([old["slot"], codes])
        window_starts = np.concatenate([old["start"], np.where(late, current, starts)])
        keys, inverse = np.unique(np.stack([slots, window_starts]), axis=1, return_inverse=True)
        inverse = inverse.reshape(-1)
        held = len(old["slot"])
        merged = self._accumulate(batch, keys, inverse[:held], inverse[held:], late)
        ends = merged["start"] + win + self._lateness_ms
        closed = ends <= self._watermark[merged["slot"]]
        self._open = {k: v[~closed] for k, v in merged.items()}
        return self._output({k: v[closed] for k, v in merged.items()})

    def _accumulate(
        self,
        batch: Batch,
        keys: np.ndarray,
        old_at: np.ndarray,
        row_at: np.ndarray,
        late: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Open windows (``keys``: slot and start of each) with the batch added: the windows in
        progress (at ``old_at``) and each row's contribution (at ``row_at``)."""
        width, k = len(self.columns), keys.shape[1]
        old = self._open
        out = {
            "slot": keys[0],
            "start": keys[1],
            "count": np.zeros(k, np.int64),
            "n": np.zeros((k, width), np.int64),
            "sum": np.zeros((k, width)),
            "min": np.full((k, width), np.nan),
            "max": np.full((k, width), np.nan),
            "anomalies": np.zeros(k, np.int64),
            "detected": np.zeros(k, np.int64),
            "late": np.zeros(k, np.int64),
        }
        for key in ("count", "n", "sum", "min", "max", "anomalies", "detected", "late"):
            out[key][old_at] = old[key]
        on_time = ~late
        at = row_at[on_time]
        out["count"] += np.bincount(at, minlength=k)
        out["late"] += np.bincount(row_at[late], minlength=k)
        for name, key in (("anomaly_flag", "anomalies"), ("detected", "detected")):
            flags = _flag(batch, name)[on_time]
            out[key] += np.bincount(at, weights=flags, minlength=k).astype(np.int64)
        if not len(at):
            return out
        groups = Groups(at)
        for i, column in enumerate(self.columns):
            raw = batch.get(column)
            if raw is None or raw.dtype.kind not in "fiu":
                continue
            values = raw[on_time].astype(np.float64)
            ok = np.isfinite(values)
            out["n"][:, i] += np.bincount(at, weights=ok, minlength=k).astype(np.int64)
            present = np.where(ok, values, np.nan)
            np.fmin.at(out["min"][:, i], at, present)
            np.fmax.at(out["max"][:, i], at, present)
            # sums accumulate value by value in arrival order, continuing the window's sum: the
            # same additions in the same order however the rows are cut into batches
            addends = np.where(ok, values, 0.0)
            column_sum = out["sum"][:, i]
            for part in groups.parts():
                grid = np.empty((len(part.slots), part.width + 1))
                grid[:, 0] = column_sum[part.slots]
                grid[:, 1:] = part.gather1(addends, fill=0.0)
                np.cumsum(grid, axis=1, out=grid)
                column_sum[part.slots] = grid[:, -1]
        return out

    def _output(self, closed: dict[str, np.ndarray]) -> Batch:
        names = np.array([self._slots.ids[s] for s in closed["slot"].tolist()], dtype=str)
        order = np.lexsort((names, closed["start"]))  # by window start, then sensor_id
        data = {k: v[order] for k, v in closed.items()}
        slots = data["slot"].tolist()
        sensor_ids = np.empty(len(slots), dtype=object)
        sensor_ids[:] = [self._slots.ids[s] for s in slots]
        cities = np.empty(len(slots), dtype=object)
        cities[:] = [self._cities[s] for s in slots]
        columns: dict[str, Any] = {
            "timestamp": data["start"],
            "sensor_id": sensor_ids,
            "city": cities,
            "window_end": data["start"] + self._window_ms,
            "count": data["count"],
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            means = data["sum"] / data["n"]
        for i, column in enumerate(self.columns):
            columns[f"{column}_count"] = data["n"][:, i]
            columns[f"{column}_min"] = data["min"][:, i]
            columns[f"{column}_max"] = data["max"][:, i]
            columns[f"{column}_mean"] = means[:, i]
        columns["anomaly_count"] = data["anomalies"]
        columns["detected_count"] = data["detected"]
        columns["late_rows"] = data["late"]
        return Batch.from_columns(columns)

    # -- state ----------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {
            "window": self._window_ms,
            "columns": list(self.columns),
            "lateness": self._lateness_ms,
        }

    def get_state(self) -> str:
        if self._cached is not None and self._cached[0] == self._version:
            return self._cached[1]
        text = json.dumps(
            {
                "version": _STATE_VERSION,
                "params": self._params(),
                "sensors": self._slots.ids,
                "cities": self._cities,
                "arrays": encode_arrays({"watermark": self._watermark, **self._open}),
            },
            separators=(",", ":"),
        )
        self._cached = (self._version, text)
        return text

    def set_state(self, state: str) -> None:
        self._version += 1
        data = json.loads(state)
        if data.get("version") != _STATE_VERSION or data.get("params") != self._params():
            raise ConfigError(
                "aggregate: the saved state was made with other settings "
                f"({data.get('params')}); windows in progress cannot be carried over. Use a new "
                "sink name (a new checkpoint) to start over with the new settings"
            )
        self._slots = Slots(data["sensors"])
        self._cities = list(data["cities"])
        arrays = decode_arrays(data["arrays"])
        self._watermark = arrays.pop("watermark")
        self._open = arrays
        self._cached = (self._version, state)

    @property
    def open_windows(self) -> int:
        """How many windows are open (waiting for their sensor's watermark to pass them)."""
        return len(self._open["slot"])


@hookimpl
def register_transforms(register: Register) -> None:
    register("aggregate", Aggregate)
