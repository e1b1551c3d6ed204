"""What the dashboard keeps of a store in memory, and how it answers a chart.

Keeping every row is out of the question (a day of 100 sensors at 1 Hz is 8.6 M rows), so a
:class:`SeriesCache` keeps, per sensor, a *bucket summary*: for each :data:`BUCKET_MS` of sensor
time and each metric, the lowest and the highest value and when they occurred, and how many rows
fell in it (about 30 MB for that day). It is filled by ``scan(after=last_seq)`` of a
:class:`~cosmobac.interfaces.ScannableStore`, chunk by chunk, so it never registers a consumer and
only ever reads rows it has not seen.

Anomaly labels (the rows' ``anomaly_type``) are kept exactly, as runs of one type, and detections
exactly too, as points: the rows pass through fresh instances of the pipeline's ``[[transforms]]``
(``aggregate`` left out, as ``cosmobac report`` does), and a row whose ``<detector>_detected``
column is true is a detection. Charts show the stored values; transforms only decide detections.

A chart's span (:meth:`SeriesCache.series`) is drawn from the store's own rows, through
:meth:`~cosmobac.interfaces.SensorRangeStore.scan_sensor`, when the store has it and the span holds
at most :data:`RAW_LIMIT` rows of that sensor; otherwise from the bucket summary. Either way the
points are downsampled with tsdownsample's MinMaxLTTB to at most ``points``; labels and detections
are sent apart from the line, all of them, so no downsampling drops one.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import numpy as np

from ..batch import Batch
from ..downsample import downsample
from ..errors import StoreMissingError
from ..interfaces import ScannableStore, SensorRangeStore, Store
from ..schema import METRICS, STORE_SEQ

__all__ = ["BUCKET_MS", "CHUNK_ROWS", "RAW_LIMIT", "Series", "SeriesCache", "downsample"]

log = logging.getLogger("cosmobac.dashboard")

BUCKET_MS: Final = 60_000
"""Sensor time each bucket of the summary covers (1 min: 1,440 buckets a day per sensor)."""
CHUNK_ROWS: Final = 100_000
"""Rows read per ``scan`` while the cache catches up."""
RAW_LIMIT: Final = 25_000
"""A chart span holding at most this many rows of its sensor is drawn from the store's rows."""
LATEST: Final = 1_000
"""Detections kept for the latest-detections table."""
DETECTED: Final = "_detected"


@attrs.define
class _Summary:
    """One sensor's buckets, in bucket order: ``b`` the bucket, ``n`` rows in it, and per metric
    (columns) the lowest value ``lv`` at time ``lt`` and the highest ``hv`` at ``ht``."""

    b: np.ndarray
    n: np.ndarray
    lt: np.ndarray
    lv: np.ndarray
    ht: np.ndarray
    hv: np.ndarray

    @classmethod
    def empty(cls, metrics: int) -> _Summary:
        z = np.zeros((0, metrics))
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            z.astype(np.int64),
            z,
            z.astype(np.int64),
            z,
        )

    def concat(self, other: _Summary) -> _Summary:
        return _Summary(
            *(
                np.concatenate([a, b])
                for a, b in zip(
                    attrs.astuple(self, recurse=False),
                    attrs.astuple(other, recurse=False),
                    strict=True,
                )
            )
        )


def _reduce(s: _Summary) -> _Summary:
    """The same points with each bucket once: counts added, the lowest of lows, highest of highs
    (the earliest of equal ones). Linear once sorted: group extremes by ``reduceat``, then the
    first position in each group holding that extreme."""
    if not len(s.b):
        return s
    if np.any(s.b[1:] < s.b[:-1]):
        order = np.argsort(s.b, kind="stable")
        s = _Summary(s.b[order], s.n[order], s.lt[order], s.lv[order], s.ht[order], s.hv[order])
    starts = np.flatnonzero(np.r_[True, s.b[1:] != s.b[:-1]])
    if len(starts) == len(s.b):
        return s
    counts = np.diff(np.r_[starts, len(s.b)])
    index = np.arange(len(s.b))[:, None]
    out = [s.b[starts], np.add.reduceat(s.n, starts)]
    for times, values, fill, pick in (
        (s.lt, s.lv, np.inf, np.minimum),
        (s.ht, s.hv, -np.inf, np.maximum),
    ):
        filled = np.where(np.isnan(values), fill, values)
        best = pick.reduceat(filled, starts, axis=0)
        at = np.where(filled == np.repeat(best, counts, axis=0), index, len(s.b))
        first = np.minimum.reduceat(at, starts, axis=0)
        out += [np.take_along_axis(times, first, 0), np.take_along_axis(values, first, 0)]
    return _Summary(*out)


@attrs.define
class Series:
    """One sensor's metric over a span, ready for a chart: times ``t`` (epoch ms) and values
    ``v`` (``None`` where missing), how many stored ``rows`` the span holds, whether the points are
    the store's own rows (``"rows"``) or the bucket summary's (``"buckets"``), the label runs
    and every detection in the span."""

    sensor_id: str
    city: str | None
    metric: str
    t: list[int]
    v: list[float | None]
    rows: int
    source: str
    labels: list[dict[str, Any]]
    detections: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["points"] = len(self.t)
        return data


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]


class SeriesCache:
    """The dashboard's incremental view of one store (see the module's docstring).

    ``open_store`` opens the store (twice: one for the thread that catches up with ``scan``, one
    for the charts' ``scan_sensor``); ``transforms`` builds fresh transforms whose
    ``<detector>_detected`` columns are the detections. :meth:`refresh` reads what is new;
    :meth:`start` does it in a thread every ``interval`` seconds."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        transforms: Callable[[], Sequence[Any]] = tuple,
        *,
        chunk: int = CHUNK_ROWS,
        raw_limit: int = RAW_LIMIT,
    ) -> None:
        self._open_store = open_store
        self._transforms = list(transforms())
        self._chunk = chunk
        self._raw_limit = raw_limit
        self._lock = threading.RLock()
        self._reader: Store | None = None
        self._charts: Store | None = None
        self._charts_lock = threading.Lock()
        self.last_seq = 0
        self.rows_read = 0
        self.caught_up = False
        self.caught_up_at: float | None = None
        self.error: str | None = None
        self.metrics = METRICS
        self._sensors: dict[str, _Summary] = {}
        self._city: dict[str, str | None] = {}
        self._step: dict[str, int] = {}
        self._labels: dict[str, list[list[Any]]] = {}
        # per sensor: detection times, values (one per metric), detectors, label
        self._detections: dict[
            str, list[tuple[int, tuple[float, ...], tuple[str, ...], str | None]]
        ] = {}
        self._latest: collections.deque[dict[str, Any]] = collections.deque(maxlen=LATEST)
        self.by_detector: collections.Counter[str] = collections.Counter()
        self.by_type: collections.Counter[str] = collections.Counter()
        self.by_city: collections.Counter[str] = collections.Counter()
        self.detections = 0
        self.first_t: int | None = None
        self.last_t: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._detected_seqs = np.zeros(0, np.int64)

    # -- reading the store ----------------------------------------------------------------------
    def _reader_store(self) -> ScannableStore:
        if self._reader is None:
            self._reader = self._open_store()
        store = self._reader
        if not isinstance(store, ScannableStore):
            raise TypeError(
                f"the dashboard needs a store that can scan (ScannableStore); {type(store).__name__} cannot"
            )
        return store

    def refresh(self, *, max_chunks: int | None = None) -> int:
        """Read the rows stored since the last refresh (at most ``max_chunks`` scans); returns
        how many were read."""
        store = self._reader_store()
        total = 0
        chunks = 0
        while max_chunks is None or chunks < max_chunks:
            rows = store.scan(after=self.last_seq, limit=self._chunk)
            chunks += 1
            if not len(rows):
                break
            self._add(rows)
            total += len(rows)
            if len(rows) < self._chunk:
                break
        if max_chunks is None or total == 0 or chunks < max_chunks:
            with self._lock:
                if not self.caught_up:
                    self.caught_up_at = time.time()
                self.caught_up = True
        return total

    def start(self, interval: float = 1.0) -> None:
        """Catch up and follow the store in a daemon thread (errors are kept in ``error``)."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    read = self.refresh(max_chunks=1)
                    self.error = None
                except StoreMissingError as exc:  # not collected yet: wait for it, quietly
                    self.error = str(exc)
                    with self._lock:
                        self.caught_up = True  # nothing stored to read
                    self._stop.wait(interval)
                    continue
                except Exception as exc:  # a store caught mid-replace: say so, try again
                    log.warning("dashboard: reading the store failed: %s", exc)
                    self.error = str(exc)
                    read = 0
                if read < self._chunk:
                    with self._lock:
                        if not self.caught_up:
                            self.caught_up_at = time.time()
                        self.caught_up = True
                    self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="cosmobac-dashboard-cache", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for store in (self._reader, self._charts):
            if store is not None:
                store.close()
        self._reader = self._charts = None

    # -- taking rows in ---------------------------------------------------------------------------
    def _add(self, rows: Batch) -> None:
        seqs = np.asarray(rows[STORE_SEQ], dtype=np.int64)
        detected = self._detected(rows)
        t = np.asarray(rows["timestamp"], dtype=np.int64)
        sensors = rows["sensor_id"]
        cities = rows.get("city", None)
        labels = rows.get("anomaly_type", None)
        values = np.column_stack(
            [
                np.asarray(rows[m], dtype=np.float64) if m in rows else np.full(len(rows), np.nan)
                for m in self.metrics
            ]
        )
        self._detected_seqs = np.fromiter(detected, np.int64, len(detected))
        order = np.lexsort((t, sensors.astype(str)))
        sorted_sensors = sensors[order]
        starts = np.flatnonzero(np.r_[True, sorted_sensors[1:] != sorted_sensors[:-1]])
        ends = np.r_[starts[1:], len(order)]
        with self._lock:
            for a, z in zip(starts.tolist(), ends.tolist(), strict=True):
                at = order[a:z]
                sensor = str(sensors[at[0]])
                if sensor not in self._sensors:
                    self._sensors[sensor] = _Summary.empty(len(self.metrics))
                    self._city[sensor] = None if cities is None else cities[at[0]]
                    self._labels[sensor] = []
                    self._detections[sensor] = []
                    if len(at) > 1:
                        self._step[sensor] = max(int(np.median(np.diff(t[at]))), 1)
                self._add_sensor(sensor, t[at], values[at])
                if labels is not None:
                    self._add_labels(sensor, t[at], labels[at])
                if detected:
                    self._add_detections(sensor, t[at], values[at], seqs[at], detected, labels, at)
            self.last_seq = max(self.last_seq, int(seqs.max()))
            self.rows_read += len(rows)
            low, high = int(t.min()), int(t.max())
            self.first_t = low if self.first_t is None else min(self.first_t, low)
            self.last_t = high if self.last_t is None else max(self.last_t, high)

    def _add_sensor(self, sensor: str, t: np.ndarray, values: np.ndarray) -> None:
        tt = np.repeat(t[:, None], values.shape[1], axis=1)
        new = _reduce(_Summary(t // BUCKET_MS, np.ones(len(t), np.int64), tt, values, tt, values))
        old = self._sensors[sensor]
        if len(old.b) and new.b[0] <= old.b[-1]:  # overlaps what is kept: reduce the tail again
            keep = np.searchsorted(old.b, new.b[0])
            head = _Summary(*(a[:keep] for a in attrs.astuple(old, recurse=False)))
            tail = _Summary(*(a[keep:] for a in attrs.astuple(old, recurse=False)))
            self._sensors[sensor] = head.concat(_reduce(tail.concat(new)))
        else:
            self._sensors[sensor] = old.concat(new)

    def _add_labels(self, sensor: str, t: np.ndarray, labels: np.ndarray) -> None:
        runs = self._labels[sensor]
        step = self._step.get(sensor, 1000)
        present = np.array([kind is not None and kind != "" for kind in labels.tolist()], bool)
        marked = np.flatnonzero(present)
        for ts, kind in zip(t[marked].tolist(), labels[marked].tolist(), strict=True):
            if runs and runs[-1][2] == kind and 0 <= ts - runs[-1][1] <= step * 3 // 2:
                runs[-1][1] = ts
            else:
                runs.append([ts, ts, kind])

    def _detected(self, rows: Batch) -> dict[int, tuple[str, ...]]:
        """seq → the detectors that flagged it, from the transforms (or columns already there)."""
        out_rows = rows
        if self._transforms:
            try:
                for transform in self._transforms:
                    out_rows = transform(out_rows)
            except Exception as exc:
                log.warning("dashboard: the transforms failed (%s); no more detections", exc)
                self.error = f"transforms failed: {exc}"
                self._transforms = []
                out_rows = rows
        columns = [c for c in out_rows.columns if c.endswith(DETECTED) and len(c) > len(DETECTED)]
        if not columns or STORE_SEQ not in out_rows:
            return {}
        flags = np.column_stack([np.asarray(out_rows[c]).astype(bool) for c in columns])
        hit = np.flatnonzero(flags.any(axis=1))
        names = [c[: -len(DETECTED)] for c in columns]
        seqs = out_rows[STORE_SEQ]
        return {
            int(seqs[i]): tuple(n for n, f in zip(names, flags[i].tolist(), strict=True) if f)
            for i in hit.tolist()
        }

    def _add_detections(
        self,
        sensor: str,
        t: np.ndarray,
        values: np.ndarray,
        seqs: np.ndarray,
        detected: dict[int, tuple[str, ...]],
        labels: np.ndarray | None,
        at: np.ndarray,
    ) -> None:
        city = self._city.get(sensor)
        found = self._detections[sensor]
        hits = np.flatnonzero(np.isin(seqs, self._detected_seqs))
        for i, seq in zip(hits.tolist(), seqs[hits].tolist(), strict=True):
            names = detected[seq]
            label = None if labels is None else labels[at[i]]
            ts = int(t[i])
            found.append((ts, tuple(values[i].tolist()), names, label))
            self._latest.append(
                {
                    "time": ts,
                    "sensor_id": sensor,
                    "city": city,
                    "detectors": list(names),
                    "anomaly_type": label,
                    "seq": seq,
                }
            )
            self.detections += 1
            for name in names:
                self.by_detector[name] += 1
            self.by_type[label or "none"] += 1
            self.by_city[city or "none"] += 1

    # -- answering --------------------------------------------------------------------------------
    def sensors(self) -> dict[str, list[str]]:
        """City → its sensors, sorted (sensors without a city under ``""``)."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for sensor in sorted(self._sensors):
                out.setdefault(self._city.get(sensor) or "", []).append(sensor)
            return dict(sorted(out.items()))

    def has_sensor(self, sensor: str) -> bool:
        with self._lock:
            return sensor in self._sensors

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest detections by reading time, newest first."""
        with self._lock:
            found = sorted(self._latest, key=lambda d: (d["time"], d["seq"]), reverse=True)
        return found[:limit]

    def rows_in(self, sensor: str, start: int, end: int) -> int:
        with self._lock:
            s = self._sensors.get(sensor)
            if s is None:
                return 0
            first, last = start // BUCKET_MS, (end - 1) // BUCKET_MS
            keep = (s.b >= first) & (s.b <= last)
            return int(s.n[keep].sum())

    def series(self, sensor: str, metric: str, start: int, end: int, points: int) -> Series:
        """``metric`` of ``sensor`` with ``start <= t < end`` (epoch ms), at most ``points``."""
        m = self.metrics.index(metric)
        rows = self.rows_in(sensor, start, end)
        t: np.ndarray | None = None
        source = "buckets"
        if rows <= self._raw_limit:
            found = self._scan_sensor(sensor, start, end)
            if found is not None and metric in found:
                t = np.asarray(found["timestamp"], dtype=np.int64)
                v = np.asarray(found[metric], dtype=np.float64)
                rows, source = len(t), "rows"
        if t is None:
            t, v = self._bucket_points(sensor, m, start, end)
        keep = downsample(t, v, points)
        with self._lock:
            runs = [
                {"start": a, "end": b, "type": kind}
                for a, b, kind in self._labels.get(sensor, ())
                if b >= start and a < end
            ]
            hits = [
                {
                    "t": ts,
                    "v": None if vals[m] != vals[m] else vals[m],
                    "detectors": list(names),
                    "anomaly_type": label,
                }
                for ts, vals, names, label in self._detections.get(sensor, ())
                if start <= ts < end
            ]
            city = self._city.get(sensor)
        return Series(
            sensor, city, metric, t[keep].tolist(), _nan_to_none(v[keep]), rows, source, runs, hits
        )

    def _scan_sensor(self, sensor: str, start: int, end: int) -> Batch | None:
        with self._charts_lock:
            if self._charts is None:
                self._charts = self._open_store()
            store = self._charts
            if not isinstance(store, SensorRangeStore):
                return None
            return store.scan_sensor(sensor, start, end, limit=self._raw_limit)

    def _bucket_points(
        self, sensor: str, m: int, start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            s = self._sensors.get(sensor)
            if s is None:
                return np.zeros(0, np.int64), np.zeros(0)
            lt, lv, ht, hv = s.lt[:, m], s.lv[:, m], s.ht[:, m], s.hv[:, m]
        t = np.concatenate([lt, ht])
        v = np.concatenate([lv, hv])
        t, first = np.unique(t, return_index=True)  # sorted by time; a bucket of one row once
        v = v[first]
        keep = (t >= start) & (t < end)
        return t[keep], v[keep]
