"""Metrics and health for the long-running commands (``run``, ``collect``, ``forward --follow``).

:class:`Monitor` is a :class:`~cosmobac.interfaces.PipelineObserver`: the pipeline calls it once
per collected step and per forwarded batch (never per row), and it counts into a
prometheus-client registry of its own. What needs the store (backlog rows, how long the oldest
pending row has waited in the store) is read from ``store.stats()`` when ``/metrics`` or ``/readyz`` is asked for, never on
the loops' path. :func:`serve` runs one small HTTP server on a background thread:

* ``/metrics``: the Prometheus text format, every name prefixed ``cosmobac_``;
* ``/healthz``: 200 while the process is alive;
* ``/readyz``: 200, or 503 with a JSON reason when a sink has failed permanently (and has not
  written since) or a sink's oldest pending row has waited in the store longer than
  ``[monitoring] max_backlog_age``.

prometheus-client is the ``monitoring`` extra (``pip install 'cosmobac[monitoring]'``); it is
imported only when monitoring is asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .batch import Batch
from .errors import ConfigError
from .interfaces import Store, WriteResult

__all__ = ["LATENCY_BUCKETS", "Monitor", "serve"]

log = logging.getLogger("cosmobac.monitoring")

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the write-latency histogram's buckets."""

DETECTED = "_detected"


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


class Monitor:
    """Counts what a pipeline does into Prometheus metrics and answers readiness.

    ``store`` returns the store to read backlog figures from (or ``None`` while there is none);
    ``consumers`` returns the sinks' consumer names whose backlog counts. Both are asked at
    scrape time, so a forwarder that switches to a new pipeline file is followed."""

    def __init__(
        self,
        *,
        store: Callable[[], Store | None],
        consumers: Callable[[], Sequence[str]],
        max_backlog_age: float | None = None,
    ) -> None:
        prom = _prometheus()
        self._store = store
        self._consumers = consumers
        self.max_backlog_age = max_backlog_age
        self._lock = threading.Lock()
        self._stopped: dict[str, str] = {}  # consumer → why its sink failed permanently
        self._children: dict[str, tuple[Any, ...]] = {}  # consumer → its per-sink counters
        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        counter, gauge = prom.Counter, prom.Gauge
        sink = ("sink",)
        self.collected = counter(
            "cosmobac_rows_collected", "Rows read from the sensor.", registry=registry
        )
        self.stored = counter(
            "cosmobac_rows_stored", "Collected rows new to the store.", registry=registry
        )
        self.acked = counter(
            "cosmobac_sink_rows_acked",
            "Rows a sink wrote and acknowledged.",
            sink,
            registry=registry,
        )
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
        self.anomalies = counter(
            "cosmobac_anomalies",
            "Rows flagged by a detector (its <detector>_detected column) in batches a sink wrote.",
            ("sink", "detector"),
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
        registry.register(_BacklogCollector(self, prom))

    # -- the observer ------------------------------------------------------------------------
    def on_collect(self, rows_read: int, rows_added: int) -> None:
        self.collected.inc(rows_read)
        self.stored.inc(rows_added)

    def on_write(
        self, consumer: str, rows: Batch, seconds: float, result: WriteResult | None
    ) -> None:
        self.latency.labels(consumer).observe(seconds)
        if result is not None:
            charge = result.stats.get("request_charge")
            if isinstance(charge, int | float) and charge:
                self.request_units.labels(consumer).inc(float(charge))
        for column in rows.columns:
            if column.endswith(DETECTED) and len(column) > len(DETECTED):
                flagged = int(rows[column].astype(bool, copy=False).sum())
                if flagged:
                    self.anomalies.labels(consumer, column[: -len(DETECTED)]).inc(flagged)

    def on_lane(
        self,
        consumer: str,
        *,
        acked: int,
        dead_lettered: int,
        retried: int,
        failures: int,
        stopped: str | None,
    ) -> None:
        if stopped is not None and not failures:
            failures = 1  # the write that failed permanently (the pipeline counts retried ones)
        children = self._children.get(consumer)
        if children is None:  # every series of a sink shows from its first batch, zeros too
            children = self._children[consumer] = tuple(
                metric.labels(consumer)
                for metric in (self.acked, self.dead_lettered, self.retried, self.failures)
            )
        for child, amount in zip(children, (acked, dead_lettered, retried, failures), strict=True):
            if amount:
                child.inc(amount)
        with self._lock:
            if stopped is not None:
                self._stopped[consumer] = stopped
            elif acked:  # a new pipeline's sink of that name wrote again
                self._stopped.pop(consumer, None)

    # -- reading -----------------------------------------------------------------------------
    def backlog(self) -> dict[str, tuple[int, float | None]]:
        """Per consumer: pending rows and how long, in seconds, the oldest pending row has waited
        in the store (``StoreStats.oldest_pending_age_s``: not judged by its reading's
        timestamp)."""
        store = self._store()
        if store is None:
            return {}
        stats = store.stats()
        return {
            c: (stats.pending.get(c, stats.rows), stats.oldest_pending_age_s.get(c))
            for c in self._consumers()
        }

    def readiness(self) -> dict[str, Any]:
        """``{"ready": True}``, or ``{"ready": False, "reasons": [...]}`` saying which sink
        failed permanently or has a backlog older than ``max_backlog_age``."""
        reasons: list[dict[str, Any]] = []
        with self._lock:
            stopped = dict(self._stopped)
        for consumer, error in sorted(stopped.items()):
            reasons.append({"sink": consumer, "reason": "sink failed permanently", "error": error})
        if self.max_backlog_age is not None:
            try:
                backlog = self.backlog()
            except Exception as exc:
                reasons.append({"reason": f"store stats unavailable: {type(exc).__name__}: {exc}"})
                backlog = {}
            for consumer, (pending, age) in sorted(backlog.items()):
                if pending and age is not None and age > self.max_backlog_age:
                    reasons.append(
                        {
                            "sink": consumer,
                            "reason": "backlog too old",
                            "oldest_pending_age_s": round(age, 3),
                            "max_backlog_age_s": self.max_backlog_age,
                        }
                    )
        return {"ready": True} if not reasons else {"ready": False, "reasons": reasons}

    def metrics_text(self) -> bytes:
        """``/metrics``: the registry in the Prometheus text format."""
        prom = _prometheus()
        data: bytes = prom.generate_latest(self.registry)
        return data


class _BacklogCollector:
    """Backlog rows and oldest pending age per sink, read from ``store.stats()`` at scrape time."""

    def __init__(self, monitor: Monitor, prom: Any) -> None:
        self.monitor = monitor
        self.gauge_family = importlib.import_module("prometheus_client.core").GaugeMetricFamily

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
        try:
            backlog = self.monitor.backlog()
        except Exception as exc:  # a busy store must not break the whole scrape
            log.warning("backlog metrics unavailable: %s: %s", type(exc).__name__, exc)
            backlog = {}
        for consumer, (pending, oldest) in sorted(backlog.items()):
            rows.add_metric([consumer], pending)
            age.add_metric([consumer], 0.0 if oldest is None else oldest)
        yield rows
        yield age


def _handler(monitor: Monitor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                content_type = "text/plain; version=0.0.4; charset=utf-8"
                self._send(200, monitor.metrics_text(), content_type)
            elif path == "/healthz":
                self._json(200, {"alive": True})
            elif path == "/readyz":
                ready = monitor.readiness()
                self._json(200 if ready["ready"] else 503, ready)
            else:
                self._json(404, {"error": "not found; try /metrics, /healthz or /readyz"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serve(monitor: Monitor, host: str, port: int) -> Iterator[tuple[str, int]]:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a background thread
    until the block ends; yields the address bound. A port in use is a ConfigError."""
    server_class = _Server6 if ":" in host else _Server
    try:
        server = server_class((host, port), _handler(monitor))
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="cosmobac-metrics"
    )
    thread.daemon = True
    thread.start()
    bound = server.server_address
    log.info("metrics and health on http://%s:%d/metrics", bound[0], bound[1])
    try:
        yield str(bound[0]), int(bound[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
