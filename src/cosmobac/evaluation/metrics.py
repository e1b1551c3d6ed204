"""Scoring detections against the simulator's labels: point-wise, point-adjusted and event-wise
precision, recall and F1, detection delay, and the NAB score, per detector and per anomaly type.

Definitions (rows are ordered by sensor, then timestamp):

* an **event** is a maximal run of consecutive labelled rows of one sensor with one
  ``anomaly_type`` (the simulator separates events by at least one normal reading);
* **point-wise**: each row is a prediction (``detected``) of its label (``anomaly_flag``);
* **point-adjusted** (Xu et al., 2018): when any row of an event is detected, every row of the
  event counts as detected; then point-wise;
* **event-wise**: recall is the share of events with at least one detected row; a *false alarm*
  is a run of consecutive detected rows of a sensor outside events; precision is detected events
  / (detected events + false alarms);
* **event-wise per type**: recall is the share of the type's events with a detected row;
  precision is the detector's event precision over all types, because a false alarm falls outside
  every event and so has no type: each type is charged with all of them. The type's event F1 is
  the harmonic mean of the two, so it is never better than the detector's precision allows;
* **delay**: for a detected event, rows (and milliseconds) from its first row to its first
  detected row;
* **NAB**: each sensor is a series, each event a window, the detector's ``<name>_score`` the
  anomaly score (see :mod:`cosmobac.evaluation.nab`). Simulated events are much shorter than NAB's
  windows, so NAB scores here are for comparing detectors with each other, not with NAB's board.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ..batch import Batch
from .nab import PROFILES, NabResult, NabSeries, PreparedCorpus

__all__ = [
    "Counts",
    "DetectorEvaluation",
    "Evaluation",
    "Events",
    "TypeFigures",
    "detector_names",
    "evaluate",
    "find_events",
]

COMBINED = "all"
"""The name the chain's combined ``detected``/``anomaly_score`` columns are reported under."""


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@attrs.frozen
class Counts:
    """True positives, false positives, false negatives, and the ratios they give (NaN when
    undefined, e.g. precision without any detection)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@attrs.frozen
class Events:
    """The labelled events of a run: for each, its sensor, type, first and last row (in sorted
    order) and their timestamps; ``row_event`` gives each row's event (-1 for normal rows)."""

    sensor: np.ndarray
    anomaly_type: np.ndarray
    first: np.ndarray
    last: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    row_event: np.ndarray = attrs.field(repr=False)

    def __len__(self) -> int:
        return len(self.first)


def find_events(
    sensor_ids: np.ndarray, flags: np.ndarray, types: np.ndarray, ts: np.ndarray
) -> Events:
    """Events of rows already ordered by sensor, then time."""
    n = len(flags)
    sensors = np.asarray(sensor_ids, dtype=object)
    kinds = np.asarray(types, dtype=object)
    flags = np.asarray(flags, dtype=bool)
    begins = flags.copy()
    if n > 1:
        same = (sensors[1:] == sensors[:-1]) & (kinds[1:] == kinds[:-1]) & flags[:-1]
        begins[1:] &= ~same
    first = np.flatnonzero(begins)
    event_no = np.cumsum(begins) - 1
    row_event = np.where(flags, event_no, -1)
    last = np.zeros(len(first), dtype=np.int64)
    if len(first):
        np.maximum.at(last, row_event[flags], np.flatnonzero(flags))
    return Events(
        sensor=sensors[first],
        anomaly_type=np.array(
            [t if t is not None else "unknown" for t in kinds[first]], dtype=object
        ),
        first=first,
        last=last,
        start_ms=ts[first],
        end_ms=ts[last],
        row_event=row_event,
    )


def _harmonic(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return _ratio(2 * a * b, a + b) if a + b else 0.0


@attrs.frozen
class TypeFigures:
    """How one detector did on one anomaly type. ``event_precision`` is the detector's event
    precision over all types (a false alarm has no type, so every type is charged with all of
    them); :attr:`event_f1` is its harmonic mean with the type's event recall."""

    anomaly_type: str
    events: int
    detected_events: int
    rows: int
    detected_rows: int
    mean_delay_rows: float
    mean_delay_s: float
    event_precision: float = math.nan

    @property
    def event_recall(self) -> float:
        return _ratio(self.detected_events, self.events)

    @property
    def event_f1(self) -> float:
        """``2·P·R / (P + R)`` with ``P`` the detector's event precision and ``R`` this type's
        event recall; 0 when both are 0, NaN when either is undefined."""
        return _harmonic(self.event_precision, self.event_recall)

    @property
    def point_recall(self) -> float:
        return _ratio(self.detected_rows, self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            **attrs.asdict(self),
            "event_recall": self.event_recall,
            "event_f1": self.event_f1,
            "point_recall": self.point_recall,
        }


@attrs.frozen
class DetectorEvaluation:
    """Everything measured for one detector (or the chain's combined columns, named ``all``)."""

    detector: str
    point: Counts
    point_adjusted: Counts
    event: Counts  # tp: detected events, fn: missed events, fp: false alarms
    mean_delay_rows: float
    median_delay_rows: float
    mean_delay_s: float
    by_type: Mapping[str, TypeFigures]
    nab: Mapping[str, NabResult]

    def as_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "point": self.point.as_dict(),
            "point_adjusted": self.point_adjusted.as_dict(),
            "event": self.event.as_dict(),
            "mean_delay_rows": self.mean_delay_rows,
            "median_delay_rows": self.median_delay_rows,
            "mean_delay_s": self.mean_delay_s,
            "by_type": {k: v.as_dict() for k, v in self.by_type.items()},
            "nab": {k: v.score for k, v in self.nab.items()},
        }


def _fmt(value: float, digits: int = 3) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


@attrs.frozen
class Evaluation:
    """A labelled run scored: the run's size, its events by type, and one
    :class:`DetectorEvaluation` per detector."""

    rows: int
    sensors: int
    labelled_rows: int
    events_by_type: Mapping[str, int]
    detectors: Mapping[str, DetectorEvaluation]

    def __repr__(self) -> str:
        events = sum(self.events_by_type.values())
        return (
            f"Evaluation(rows={self.rows}, sensors={self.sensors}, "
            f"labelled_rows={self.labelled_rows}, events={events}, "
            f"detectors={list(self.detectors)})"
        )

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """What a notebook shows: the run, the scores per detector, event recall and event F1 per
        anomaly type."""
        from .display import evaluation_html

        return evaluation_html(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "sensors": self.sensors,
            "labelled_rows": self.labelled_rows,
            "events_by_type": dict(self.events_by_type),
            "detectors": {k: v.as_dict() for k, v in self.detectors.items()},
        }

    def summary_rows(self) -> list[dict[str, str]]:
        """One row of text cells per detector (for tables)."""
        out = []
        for name, d in self.detectors.items():
            row = {
                "detector": name,
                "P": _fmt(d.point.precision),
                "R": _fmt(d.point.recall),
                "F1": _fmt(d.point.f1),
                "PA-P": _fmt(d.point_adjusted.precision),
                "PA-R": _fmt(d.point_adjusted.recall),
                "PA-F1": _fmt(d.point_adjusted.f1),
                "events": f"{d.event.tp}/{d.event.tp + d.event.fn}",
                "false alarms": str(d.event.fp),
                "event F1": _fmt(d.event.f1),
                "delay (rows)": _fmt(d.mean_delay_rows, 1),
            }
            for profile, result in d.nab.items():
                row[f"NAB {profile}"] = _fmt(result.score, 1)
            out.append(row)
        return out

    def type_rows(self) -> list[dict[str, str]]:
        """Event recall per detector (rows) and anomaly type (columns)."""
        types = sorted(self.events_by_type)
        out = []
        for name, d in self.detectors.items():
            row = {"detector": name}
            for t in types:
                f = d.by_type.get(t)
                row[t] = "-" if f is None else f"{f.event_recall:.2f}"
            out.append(row)
        return out

    def type_f1_rows(self) -> list[dict[str, str]]:
        """Event F1 per detector (rows) and anomaly type (columns, see :class:`TypeFigures`),
        and over all events (``all events``, the detector's event F1)."""
        types = sorted(self.events_by_type)
        out = []
        for name, d in self.detectors.items():
            row = {"detector": name}
            for t in types:
                f = d.by_type.get(t)
                row[t] = "-" if f is None else _fmt(f.event_f1, 2)
            row["all events"] = _fmt(d.event.f1, 2)
            out.append(row)
        return out

    def table(self) -> str:
        """The evaluation as text tables."""
        lines = [
            f"{self.rows} rows from {self.sensors} sensors; {self.labelled_rows} labelled "
            f"anomalous in {sum(self.events_by_type.values())} events ("
            + ", ".join(f"{t} {n}" for t, n in sorted(self.events_by_type.items()))
            + ")",
            "",
            text_table(self.summary_rows()),
            "",
            "event recall by anomaly type:",
            text_table(self.type_rows()),
            "",
            "event F1 by anomaly type (precision: the detector's, over all types):",
            text_table(self.type_f1_rows()),
        ]
        return "\n".join(lines)


def text_table(rows: Sequence[Mapping[str, str]]) -> str:
    """Rows of cells as an aligned text table."""
    if not rows:
        return "(nothing)"
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r.get(h, ""))) for r in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append(
            "  ".join(
                str(r.get(h, "")).ljust(w) for h, w in zip(headers, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def detector_names(batch: Batch) -> list[str]:
    """Detectors whose columns the batch has (``<name>_detected`` beside ``<name>_score``), and
    ``all`` for the combined ``detected``/``anomaly_score``."""
    names = [
        c[: -len("_detected")]
        for c in batch.columns
        if c.endswith("_detected") and f"{c[: -len('_detected')]}_score" in batch
    ]
    if "detected" in batch and "anomaly_score" in batch:
        names.append(COMBINED)
    return names


def _columns(name: str) -> tuple[str, str]:
    return (
        ("detected", "anomaly_score") if name == COMBINED else (f"{name}_detected", f"{name}_score")
    )


def _nab_series(
    events: Events, sensors: np.ndarray, ts: np.ndarray
) -> tuple[list[NabSeries], list[slice]]:
    """Each sensor as a NAB series (its events as windows), and its rows' slice."""
    series: list[NabSeries] = []
    spans: list[slice] = []
    if not len(sensors):
        return series, spans
    change = np.flatnonzero(sensors[1:] != sensors[:-1]) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [len(sensors)]))
    by_sensor: dict[str, list[tuple[int, int]]] = {}
    for s, a, b in zip(
        events.sensor.tolist(), events.start_ms.tolist(), events.end_ms.tolist(), strict=True
    ):
        by_sensor.setdefault(s, []).append((a, b))
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        name = str(sensors[a])
        series.append(
            NabSeries(
                name=name,
                timestamps=ts[a:b],
                values=np.empty(0),
                windows=tuple(by_sensor.get(name, ())),
            )
        )
        spans.append(slice(a, b))
    return series, spans


def evaluate(
    batch: Batch,
    *,
    detectors: Iterable[str] | None = None,
    profiles: Iterable[str] = tuple(PROFILES),
) -> Evaluation:
    """Score the detections in ``batch`` (rows with ``anomaly_flag``/``anomaly_type`` labels and
    detector columns) against the labels. ``detectors`` defaults to every detector found
    (:func:`detector_names`)."""
    for needed in ("anomaly_flag", "sensor_id", "timestamp"):
        if needed not in batch:
            raise ValueError(
                f"the rows have no {needed!r} column: evaluation needs labelled rows (the simulated "
                "sensor labels every anomaly)"
            )
    names = list(detectors) if detectors is not None else detector_names(batch)
    if not names:
        raise ValueError(
            "the rows carry no detections: add a detector to [[transforms]] (e.g. plugin = "
            '"zscore"), or pass rows with <name>_detected and <name>_score columns'
        )
    order = np.lexsort((batch["timestamp"], batch["sensor_id"].astype(str)))
    rows = batch.select(order)
    sensors = rows["sensor_id"].astype(object)
    ts = rows["timestamp"].astype(np.int64)
    flags = rows["anomaly_flag"].astype(bool)
    types = rows["anomaly_type"] if "anomaly_type" in rows else np.full(len(rows), None, object)
    events = find_events(sensors, flags, types, ts)
    kinds = sorted(set(events.anomaly_type.tolist()))
    nab_series, spans = _nab_series(events, sensors, ts)
    prepared = (
        [PreparedCorpus.make(nab_series, p) for p in profiles]
        if nab_series and any(s.windows for s in nab_series)
        else []
    )
    results = {}
    for name in names:
        det_col, score_col = _columns(name)
        if det_col not in rows:
            raise ValueError(f"no column {det_col!r} for detector {name!r}")
        detected = rows[det_col].astype(bool)
        scores = rows[score_col].astype(np.float64) if score_col in rows else None
        results[name] = _evaluate_one(
            name, detected, scores, flags, events, kinds, sensors, ts, prepared, spans
        )
    return Evaluation(
        rows=len(rows),
        sensors=len(nab_series),
        labelled_rows=int(flags.sum()),
        events_by_type={k: int((events.anomaly_type == k).sum()) for k in kinds},
        detectors=results,
    )


def _evaluate_one(
    name: str,
    detected: np.ndarray,
    scores: np.ndarray | None,
    flags: np.ndarray,
    events: Events,
    kinds: list[str],
    sensors: np.ndarray,
    ts: np.ndarray,
    prepared: list[PreparedCorpus],
    spans: list[slice],
) -> DetectorEvaluation:
    n_events = len(events)
    point = Counts(
        tp=int((detected & flags).sum()),
        fp=int((detected & ~flags).sum()),
        fn=int((~detected & flags).sum()),
    )
    hit_rows = detected & flags
    hits = np.zeros(n_events, dtype=bool)
    first_hit = np.full(n_events, np.iinfo(np.int64).max)
    if n_events and hit_rows.any():
        at = events.row_event[hit_rows]
        hits[at] = True
        np.minimum.at(first_hit, at, np.flatnonzero(hit_rows))
    adjusted = detected | (flags & hits[np.maximum(events.row_event, 0)] & (events.row_event >= 0))
    point_adjusted = Counts(
        tp=int((adjusted & flags).sum()),
        fp=int((adjusted & ~flags).sum()),
        fn=int((~adjusted & flags).sum()),
    )
    alarms = detected & ~flags
    starts = alarms.copy()
    if len(alarms) > 1:
        starts[1:] &= ~(alarms[:-1] & (sensors[1:] == sensors[:-1]))
    event = Counts(tp=int(hits.sum()), fp=int(starts.sum()), fn=int(n_events - hits.sum()))
    delay_rows = (first_hit - events.first)[hits].astype(np.float64)
    delay_ms = (ts[np.minimum(first_hit, len(ts) - 1)] - events.start_ms)[hits].astype(np.float64)
    by_type = {}
    for kind in kinds:
        mine = events.anomaly_type == kind
        rows_of_kind = flags & np.isin(events.row_event, np.flatnonzero(mine))
        kind_hits = hits & mine
        by_type[kind] = TypeFigures(
            anomaly_type=kind,
            events=int(mine.sum()),
            detected_events=int(kind_hits.sum()),
            rows=int(rows_of_kind.sum()),
            detected_rows=int((rows_of_kind & detected).sum()),
            mean_delay_rows=float(np.mean((first_hit - events.first)[kind_hits]))
            if kind_hits.any()
            else math.nan,
            mean_delay_s=float(
                np.mean((ts[np.minimum(first_hit, len(ts) - 1)] - events.start_ms)[kind_hits])
                / 1000
            )
            if kind_hits.any()
            else math.nan,
            event_precision=event.precision,
        )
    nab: dict[str, NabResult] = {}
    if scores is not None and prepared:
        per_series = [scores[span] for span in spans]
        for corpus in prepared:
            nab[corpus.profile.name] = corpus.score(per_series)
    return DetectorEvaluation(
        detector=name,
        point=point,
        point_adjusted=point_adjusted,
        event=event,
        mean_delay_rows=float(delay_rows.mean()) if len(delay_rows) else math.nan,
        median_delay_rows=float(np.median(delay_rows)) if len(delay_rows) else math.nan,
        mean_delay_s=float(delay_ms.mean() / 1000) if len(delay_ms) else math.nan,
        by_type=by_type,
        nab=nab,
    )
