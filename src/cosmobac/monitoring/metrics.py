"""Prometheus metrics of a running pipeline.

:class:`Monitor` is a :class:`~cosmobac.interfaces.PipelineObserver`: the pipeline calls it once
per collected step and per forwarded batch (never per row), and it counts into a
prometheus-client registry of its own. What needs the store (backlog rows, how long the oldest
pending row has waited in the store) is read from ``store.stats()`` when ``/metrics`` or
``/readyz`` is asked for, never on the loops' path. Readiness is
:func:`~cosmobac.monitoring.health.problems`, fed by a
:class:`~cosmobac.monitoring.health.HealthTracker` the same pipeline reports to.

prometheus-client is the ``monitoring`` extra (``pip install 'cosmobac[monitoring]'``); it is
imported only when metrics are asked for.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy as np

from ..batch import Batch
from ..errors import ConfigError
from ..interfaces import LaneOutcome, SourceStatus, Store, StoreStats, WriteResult
from .health import DETECTED, HealthTracker, problems

__all__ = ["LATENCY_BUCKETS", "Monitor"]

log = logging.getLogger("cosmobac.monitoring")

LATENCY_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds (seconds) of the write-latency histogram's buckets."""

ANOMALY_TYPE: Final = "anomaly_type"
NO_TYPE: Final = "none"  # a flagged row whose anomaly_type is empty (no label says why)
UNKNOWN_TYPE: Final = "unknown"  # the rows carry no anomaly_type column at all


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "metrics need prometheus-client: pip install 'cosmobac[monitoring]'"
        ) from None
    return prometheus_client


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cosmobac")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


def _by_type(rows: Batch, flagged: np.ndarray) -> dict[str, int]:
    """Flagged rows counted by their ``anomaly_type`` label."""
    if ANOMALY_TYPE not in rows.columns:
        return {UNKNOWN_TYPE: int(flagged.sum())}
    labels = np.asarray(rows[ANOMALY_TYPE])[flagged]
    names, counts = np.unique(labels.astype(str), return_counts=True)
    out: dict[str, int] = {}
    for name, count in zip(names.tolist(), counts.tolist(), strict=True):
        key = name if name and name not in ("None", "nan") else NO_TYPE
        out[key] = out.get(key, 0) + int(count)
    return out


class Monitor:
    """Counts what a pipeline does into Prometheus metrics and answers readiness.

    ``store`` returns the store to read backlog figures from (or ``None`` while there is none);
    ``consumers`` returns the sinks' consumer names whose backlog counts. Both are asked at
    scrape time, so a forwarder that switches to a new pipeline file is followed. ``health`` is
    the tracker the same pipeline reports to (one of its own when not given: then this monitor
    feeds it)."""

    def __init__(
        self,
        *,
        store: Callable[[], Store | None],
        consumers: Callable[[], Sequence[str]],
        max_backlog_age: float | None = None,
        health: HealthTracker | None = None,
    ) -> None:
        prom = _prometheus()
        self._store = store
        self._consumers = consumers
        self.max_backlog_age = max_backlog_age
        self._feeds_health = health is None
        self.health = HealthTracker() if health is None else health
        self._children: dict[str, tuple[Any, ...]] = {}  # consumer → its per-sink counters
        self._sources: dict[str, tuple[SourceStatus, ...]] = {}  # live sensor → its sources
        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        counter, gauge = prom.Counter, prom.Gauge
        sink = ("sink",)
        self.collected = counter(
            "cosmobac_rows_collected", "Rows read from the sensor.", registry=registry
        )
        self.stored = counter(
            "cosmobac_rows_stored", "Collected rows new to the store.", registry=registry
        )
        self.input_rejects = counter(
            "cosmobac_input_rejects", "Input a live sensor could not read (stored as rejects).",
            ("sensor",), registry=registry,
        )  # fmt: skip
        self.acked = counter(
            "cosmobac_sink_rows_acked", "Rows a sink wrote and acknowledged.", sink,
            registry=registry,
        )  # fmt: skip
        self.dead_lettered = counter(
            "cosmobac_sink_rows_dead_lettered", "Rows set aside as dead letters.", sink,
            registry=registry,
        )  # fmt: skip
        self.retried = counter(
            "cosmobac_sink_rows_retried", "Rows a sink asked to send again.", sink,
            registry=registry,
        )  # fmt: skip
        self.failures = counter(
            "cosmobac_sink_write_failures", "Failed writes (retried later, or permanent).", sink,
            registry=registry,
        )  # fmt: skip
        self.request_units = counter(
            "cosmobac_sink_request_units",
            "Cosmos DB request units consumed (request_charge of the sink's write results).",
            sink,
            registry=registry,
        )
        self.throttled = counter(
            "cosmobac_sink_throttled_requests",
            "Requests the destination throttled (Cosmos DB HTTP 429; `throttled` write stats).",
            sink,
            registry=registry,
        )
        self.transform_errors = counter(
            "cosmobac_transform_errors",
            "Batches a transform failed on, by its class, the error's class and cause (a "
            'WebAssembly trap is error="WasmError", cause="trap").',
            ("sink", "transform", "error", "cause"),
            registry=registry,
        )
        self.anomalies = counter(
            "cosmobac_anomalies",
            "Rows a detector flagged (its <detector>_detected column) in batches a sink wrote, "
            "by the rows' anomaly_type label.",
            ("sink", "detector", "type"),
            registry=registry,
        )
        self.latency = prom.Histogram(
            "cosmobac_sink_write_seconds",
            "Time a sink's write took, for writes that returned.",
            sink,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        start = gauge(
            "cosmobac_process_start_time_seconds",
            "When this process started monitoring, seconds since the epoch.",
            registry=registry,
        )
        start.set(time.time())
        info = gauge(
            "cosmobac_build_info", "cosmobac's version (the value is 1).", ("version",),
            registry=registry,
        )  # fmt: skip
        info.labels(version=_version()).set(1)
        registry.register(_ScrapeCollector(self))

    # -- the observer ------------------------------------------------------------------------
    def on_collect(self, rows_read: int, rows_added: int) -> None:
        self.collected.inc(rows_read)
        self.stored.inc(rows_added)

    def on_input_rejects(self, sensor: str, count: int) -> None:
        self.input_rejects.labels(sensor).inc(count)

    def on_sources(self, sensor: str, sources: Sequence[SourceStatus]) -> None:
        self._sources[sensor] = tuple(sources)  # one assignment: a scrape sees old or new

    def sources(self) -> dict[str, tuple[SourceStatus, ...]]:
        """The latest :class:`SourceStatus` es each live sensor reported, by sensor."""
        return dict(self._sources)

    def on_write(
        self, consumer: str, rows: Batch, seconds: float, result: WriteResult | None
    ) -> None:
        self.latency.labels(consumer).observe(seconds)
        if result is not None:
            stats = result.stats
            charge = stats.get("request_charge")
            if isinstance(charge, int | float) and charge:
                self.request_units.labels(consumer).inc(float(charge))
            throttled = stats.get("throttled")
            if isinstance(throttled, int | float) and throttled:
                self.throttled.labels(consumer).inc(float(throttled))
        for column in rows.columns:
            if column.endswith(DETECTED) and len(column) > len(DETECTED):
                flagged = np.asarray(rows[column]).astype(bool, copy=False)
                if flagged.any():
                    detector = column[: -len(DETECTED)]
                    for kind, n in _by_type(rows, flagged).items():
                        self.anomalies.labels(consumer, detector, kind).inc(n)
        if self._feeds_health:
            self.health.on_write(consumer, rows, seconds, result)

    def on_lane(self, outcome: LaneOutcome) -> None:
        consumer = outcome.consumer
        failures = outcome.failures
        if outcome.stopped and not failures:
            failures = 1  # the write that failed permanently (the pipeline counts retried ones)
        children = self._children.get(consumer)
        if children is None:  # every series of a sink shows from its first batch, zeros too
            counters = (self.acked, self.dead_lettered, self.retried, self.failures)
            children = self._children[consumer] = tuple(c.labels(consumer) for c in counters)
            self.throttled.labels(consumer)
        amounts = (outcome.acked, outcome.dead_lettered, outcome.retried, failures)
        for child, amount in zip(children, amounts, strict=True):
            if amount:
                child.inc(amount)
        if outcome.failed_transform is not None:
            self.transform_errors.labels(
                consumer,
                outcome.failed_transform,
                outcome.error_type or "",
                outcome.error_cause or "",
            ).inc()
        if self._feeds_health:
            self.health.on_lane(outcome)

    # -- reading -----------------------------------------------------------------------------
    def stats(self) -> StoreStats | None:
        store = self._store()
        return None if store is None else store.stats()

    def backlog(self) -> dict[str, tuple[int, float | None]]:
        """Per consumer: pending rows and how long, in seconds, the oldest pending row has waited
        in the store (``StoreStats.backlog_of``: not judged by its reading's timestamp; a sink that
        has never read the store has every stored row pending, the oldest stored row first)."""
        stats = self.stats()
        if stats is None:
            return {}
        return {c: stats.backlog_of(c)[:2] for c in self._consumers()}

    def readiness(self) -> dict[str, Any]:
        """``{"ready": True}``, or ``{"ready": False, "reasons": [...]}`` saying which sink
        failed permanently or has a backlog older than ``max_backlog_age``."""
        reasons: list[dict[str, Any]] = []
        stats = None
        if self.max_backlog_age is not None:
            try:
                stats = self.stats()
            except Exception as exc:
                reasons.append({"reason": f"store stats unavailable: {type(exc).__name__}: {exc}"})
        found = problems(
            stopped=self.health.stopped(),
            stats=stats,
            consumers=list(self._consumers()),
            max_backlog_age=self.max_backlog_age,
        )
        reasons[:0] = [p.to_json() for p in found]
        return {"ready": True} if not reasons else {"ready": False, "reasons": reasons}

    def metrics_text(self) -> bytes:
        """``/metrics``: the registry in the Prometheus text format."""
        prom = _prometheus()
        data: bytes = prom.generate_latest(self.registry)
        return data


class _ScrapeCollector:
    """Per sink, read at scrape time: backlog rows and oldest pending age (``store.stats()``),
    and whether the sink is up (it has not failed permanently)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        core = importlib.import_module("prometheus_client.core")
        self.gauge_family = core.GaugeMetricFamily
        self.counter_family = core.CounterMetricFamily

    def describe(self) -> list[Any]:
        return []  # the series depend on the store: nothing to check at registration

    def collect(self) -> Iterator[Any]:
        family = self.gauge_family
        rows = family("cosmobac_sink_backlog_rows", "Rows pending for a sink.", labels=["sink"])
        age = family(
            "cosmobac_sink_oldest_pending_age_seconds",
            "Seconds a sink's oldest pending row has waited in the store since it was stored.",
            labels=["sink"],
        )
        up = family(
            "cosmobac_sink_up",
            "1 while a sink accepts writes, 0 after it failed permanently (until it writes again).",
            labels=["sink"],
        )
        monitor = self.monitor
        try:
            consumers = list(monitor._consumers())
            backlog = monitor.backlog()
        except Exception as exc:  # a busy store must not break the whole scrape
            log.warning("backlog metrics unavailable: %s: %s", type(exc).__name__, exc)
            backlog = {}
        stopped = monitor.health.stopped()
        for consumer in sorted(set(consumers) | set(stopped)):
            up.add_metric([consumer], 0.0 if consumer in stopped else 1.0)
        for consumer, (pending, oldest) in sorted(backlog.items()):
            rows.add_metric([consumer], pending)
            age.add_metric([consumer], 0.0 if oldest is None else oldest)
        yield rows
        yield age
        yield up
        yield from self._sources()

    def _sources(self) -> Iterator[Any]:
        """Per source of a live sensor (a Modbus device, say): up, and its running totals."""
        reported = self.monitor.sources()  # the families are listed even with no series yet
        labels = ["sensor", "source"]
        up = self.gauge_family(
            "cosmobac_source_up",
            "1 while a live sensor's source (a device it polls) answers, 0 while it does not.",
            labels=labels,
        )
        counter = self.counter_family
        polls = counter(
            "cosmobac_source_polls", "Attempts to read a source (polls).", labels=labels
        )
        failures = counter(
            "cosmobac_source_failures", "Attempts that could not reach the source.", labels=labels
        )
        readings = counter("cosmobac_source_readings", "Readings a source gave.", labels=labels)
        for sensor, sources in sorted(reported.items()):
            for status in sources:
                key = [sensor, status.source]
                up.add_metric(key, 1.0 if status.up else 0.0)
                polls.add_metric(key, float(status.polls))
                failures.add_metric(key, float(status.failures))
                readings.add_metric(key, float(status.readings))
        yield from (up, polls, failures, readings)
