"""What each sink of a running pipeline is doing, without Prometheus: a tracker, problems, a file.

* :class:`HealthTracker` is a :class:`~cosmobac.interfaces.PipelineObserver` that keeps, per sink,
  its totals, its rows/s over the last minute, its last error and when, whether it failed
  permanently, the rows each detector flagged, and the request units and throttled requests its
  writes reported (Cosmos DB). :meth:`HealthTracker.snapshot` reads it all at
  once as a :class:`Health` record.
* :func:`problems` is the one judgement of readiness: a sink that failed permanently (and has not
  written since), or a backlog older than ``max_backlog_age``. ``/readyz``, ``cosmobac status``
  and ``[[alerts]]`` all ask it.
* :class:`HealthRecorder` writes the tracker's snapshot next to the pipeline file (or to
  ``[monitoring] health_file``) every two seconds while a forwarder runs (see :func:`health_path`), so ``cosmobac status`` in another process can
  show rates and last errors.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

from ..batch import Batch
from ..files import write_atomic
from ..interfaces import LaneOutcome, StoreStats, WriteResult

__all__ = [
    "DETECTED",
    "RATE_WINDOW_S",
    "Health",
    "HealthRecorder",
    "HealthTracker",
    "Problem",
    "SinkHealth",
    "flagged_by_detector",
    "health_path",
    "problems",
    "read_health",
]

log = logging.getLogger("cosmobac.monitoring")

DETECTED: Final = "_detected"
"""Detectors write a boolean ``<name>_detected`` column; rows where it is true are anomalies."""

RATE_WINDOW_S: Final = 60.0
"""``rows_per_second`` is measured over this many seconds (or since the tracker started)."""

FAILED_PERMANENTLY: Final = "sink failed permanently"
BACKLOG_TOO_OLD: Final = "backlog too old"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def flagged_by_detector(rows: Batch) -> dict[str, int]:
    """Rows each detector flagged in ``rows`` (its ``<name>_detected`` column), zeros left out."""
    counts: dict[str, int] = {}
    for column in rows.columns:
        if column.endswith(DETECTED) and len(column) > len(DETECTED):
            flagged = int(rows[column].astype(bool, copy=False).sum())
            if flagged:
                counts[column[: -len(DETECTED)]] = flagged
    return counts


@attrs.frozen
class SinkHealth:
    """One sink (by consumer name) as its forwarder saw it. Times are epoch seconds."""

    consumer: str
    acked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    failures: int = 0
    rows_per_second: float = 0.0
    last_error: str | None = None
    last_error_at: float | None = None
    last_write_at: float | None = None
    stopped: bool = False
    anomalies: Mapping[str, int] = attrs.field(factory=dict)  # detector → rows flagged
    request_units: float = 0.0  # Cosmos DB request units the sink reported (request_charge)
    throttled: int = 0  # requests the destination throttled (Cosmos DB HTTP 429)

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["anomalies"] = dict(self.anomalies)
        data["last_error_at"] = _iso(self.last_error_at)
        data["last_write_at"] = _iso(self.last_write_at)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SinkHealth:
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        for key in ("last_error_at", "last_write_at"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key]).timestamp()
        return cls(**values)


@attrs.frozen
class Health:
    """A tracker's snapshot: when it was taken, by which process, since when, and every sink."""

    time: float
    started: float
    pid: int
    running: bool
    sinks: tuple[SinkHealth, ...]

    def sink(self, consumer: str) -> SinkHealth | None:
        return next((s for s in self.sinks if s.consumer == consumer), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": _iso(self.time),
            "started": _iso(self.started),
            "pid": self.pid,
            "running": self.running,
            "sinks": [s.to_json() for s in self.sinks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Health:
        return cls(
            time=datetime.fromisoformat(data["time"]).timestamp(),
            started=datetime.fromisoformat(data["started"]).timestamp(),
            pid=int(data["pid"]),
            running=bool(data["running"]),
            sinks=tuple(SinkHealth.from_json(s) for s in data.get("sinks", ())),
        )


@attrs.define
class _Sink:
    consumer: str
    acked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_write_at: float | None = None
    stopped: bool = False
    anomalies: dict[str, int] = attrs.field(factory=dict)
    request_units: float = 0.0
    throttled: int = 0
    # (time, acked total): one sample per second at most, kept for RATE_WINDOW_S and one more
    samples: collections.deque[tuple[float, int]] = attrs.field(factory=collections.deque)


class HealthTracker:
    """A :class:`~cosmobac.interfaces.PipelineObserver` keeping each sink's health in memory.

    Thread-safe: the pipeline's loops report, and a server or recorder thread reads
    :meth:`snapshot`. ``clock`` (epoch seconds) is injectable for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._sinks: dict[str, _Sink] = {}

    def _sink(self, consumer: str) -> _Sink:
        sink = self._sinks.get(consumer)
        if sink is None:
            sink = self._sinks[consumer] = _Sink(consumer)
        return sink

    # -- the observer ------------------------------------------------------------------------
    def on_collect(self, rows_read: int, rows_added: int) -> None:
        pass

    def on_write(
        self, consumer: str, rows: Batch, seconds: float, result: WriteResult | None
    ) -> None:
        flagged = flagged_by_detector(rows)
        stats = {} if result is None else result.stats
        charge, throttled = stats.get("request_charge"), stats.get("throttled")
        if flagged or charge or throttled:
            with self._lock:
                sink = self._sink(consumer)
                for detector, n in flagged.items():
                    sink.anomalies[detector] = sink.anomalies.get(detector, 0) + n
                if isinstance(charge, int | float):
                    sink.request_units += float(charge)
                if isinstance(throttled, int | float):
                    sink.throttled += int(throttled)

    def on_lane(self, outcome: LaneOutcome) -> None:
        now = self._clock()
        with self._lock:
            sink = self._sink(outcome.consumer)
            sink.acked += outcome.acked
            sink.dead_lettered += outcome.dead_lettered
            sink.retried += outcome.retried
            sink.failures += outcome.failures
            if outcome.error is not None:
                sink.last_error, sink.last_error_at = outcome.error, now
            if outcome.stopped:
                sink.stopped = True
            elif outcome.acked:
                sink.stopped = False  # a new pipeline's sink of that name wrote again
                sink.last_write_at = now
            samples = sink.samples
            if outcome.acked:
                if samples and now - samples[-1][0] < 1.0:
                    samples[-1] = (samples[-1][0], sink.acked)
                else:
                    samples.append((now, sink.acked))
            while len(samples) > 1 and samples[1][0] <= now - RATE_WINDOW_S:
                samples.popleft()

    # -- reading -----------------------------------------------------------------------------
    def stopped(self) -> dict[str, str]:
        """Sinks that failed permanently and have not written since, with their error."""
        with self._lock:
            return {c: s.last_error or "" for c, s in self._sinks.items() if s.stopped}

    def snapshot(self, *, running: bool = True) -> Health:
        now = self._clock()
        with self._lock:
            sinks = tuple(
                SinkHealth(
                    consumer=s.consumer,
                    acked=s.acked,
                    dead_lettered=s.dead_lettered,
                    retried=s.retried,
                    failures=s.failures,
                    rows_per_second=self._rate(s, now),
                    last_error=s.last_error,
                    last_error_at=s.last_error_at,
                    last_write_at=s.last_write_at,
                    stopped=s.stopped,
                    anomalies=dict(s.anomalies),
                    request_units=round(s.request_units, 3),
                    throttled=s.throttled,
                )
                for s in sorted(self._sinks.values(), key=lambda s: s.consumer)
            )
        return Health(now, self.started, os.getpid(), running, sinks)

    def _rate(self, sink: _Sink, now: float) -> float:
        """Rows acknowledged per second over the last minute (or since the tracker started)."""
        since = now - RATE_WINDOW_S
        base = 0
        for at, total in sink.samples:  # the last total reached at or before the window began
            if at > since:
                break
            base = total
        span = min(RATE_WINDOW_S, now - self.started)
        return 0.0 if span <= 0 else round((sink.acked - base) / span, 3)


@attrs.frozen
class Problem:
    """Why a pipeline is not ready: ``reason`` is ``"sink failed permanently"`` (with ``error``)
    or ``"backlog too old"`` (with the age and the limit)."""

    sink: str
    reason: str
    error: str | None = None
    oldest_pending_age_s: float | None = None
    max_backlog_age_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


def problems(
    *,
    stopped: Mapping[str, str],
    stats: StoreStats | None,
    consumers: list[str] | tuple[str, ...],
    max_backlog_age: float | None,
) -> list[Problem]:
    """The one readiness judgement: every sink in ``stopped`` (consumer → its error), then every
    sink of ``consumers`` with pending rows whose oldest has waited longer than
    ``max_backlog_age`` seconds (``stats`` is the store's, ``None`` when unread). A sink that has
    never read the store has every stored row pending, the oldest stored row first
    (:meth:`~cosmobac.interfaces.StoreStats.backlog_of`)."""
    found = [Problem(c, FAILED_PERMANENTLY, error=e) for c, e in sorted(stopped.items())]
    if max_backlog_age is None or stats is None:
        return found
    for consumer in sorted(consumers):
        pending, age, _ = stats.backlog_of(consumer)  # never read: its oldest is the oldest stored
        if pending and age is not None and age > max_backlog_age:
            found.append(
                Problem(
                    consumer,
                    BACKLOG_TOO_OLD,
                    oldest_pending_age_s=round(age, 3),
                    max_backlog_age_s=max_backlog_age,
                )
            )
    return found


def health_path(
    config: str | os.PathLike[str], health_file: str | os.PathLike[str] | None = None
) -> Path:
    """Where a forwarder of ``config`` records its health: ``health_file`` (the ``[monitoring]
    health_file`` key; a relative path is relative to the working directory) when given, else
    ``.<name>.health.json`` beside the pipeline file."""
    if health_file is not None:
        return Path(health_file)
    path = Path(config)
    return path.with_name(f".{path.name}.health.json")


def read_health(
    config: str | os.PathLike[str], health_file: str | os.PathLike[str] | None = None
) -> Health | None:
    """The health a forwarder of ``config`` last recorded (in ``health_file`` when given, see
    :func:`health_path`), or ``None`` (none, or unreadable)."""
    path = health_path(config, health_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Health.from_json(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("cannot read %s: %s", path, exc)
        return None


class HealthRecorder:
    """Writes ``tracker``'s snapshot to :func:`health_path` every ``interval`` seconds from a
    background thread while the block of :meth:`recording` runs, once :meth:`activate` was
    called (when a pipeline is running: a command refused before that leaves no file), and once
    more (``running`` false) when it ends. A folder that cannot be written is logged once, never
    fatal."""

    def __init__(
        self,
        tracker: HealthTracker,
        config: str | os.PathLike[str],
        *,
        interval: float = 2.0,
        health_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.tracker = tracker
        self.path = health_path(config, health_file)
        self.interval = interval
        self._warned = False
        self._active = threading.Event()

    def activate(self) -> None:
        """Start recording (the first snapshot is written at once)."""
        if not self._active.is_set():
            self._active.set()
            self.write()

    def write(self, *, running: bool = True) -> None:
        text = json.dumps(self.tracker.snapshot(running=running).to_json()) + "\n"
        try:
            write_atomic(self.path, text, durable=False)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot record health in %s: %s", self.path, exc)

    @contextlib.contextmanager
    def recording(self) -> Iterator[HealthRecorder]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.interval):
                if self._active.is_set():
                    self.write()

        thread = threading.Thread(target=loop, name="cosmobac-health", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
            if self._active.is_set():
                self.write(running=False)
