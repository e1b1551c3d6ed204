"""Metrics, health, status and alerts of the long-running commands (``run``, ``collect``, ``forward``).

* :mod:`.health`: a :class:`HealthTracker` observing a pipeline, the one readiness judgement
  (:func:`problems`), and the health file ``cosmobac status`` reads;
* :mod:`.metrics`: :class:`Monitor`, Prometheus metrics (needs the ``monitoring`` extra,
  prometheus-client, imported only when a Monitor is made);
* :mod:`.server`: :func:`serve`, ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP;
* :mod:`.alerts`: :class:`~.alerts.AlertEvaluator`, the ``[[alerts]]`` notifications (the
  conditions of ``/readyz`` and anomaly bursts, posted to Slack, Teams or JSON webhooks);
* :mod:`.status`: what ``cosmobac status`` shows (``read_status``), as JSON and as a rich view;
* :class:`ObserverGroup` hands a pipeline's reports to several observers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..batch import Batch
from ..interfaces import (
    InputObserver,
    LaneOutcome,
    PipelineObserver,
    SourceObserver,
    SourceStatus,
    WriteResult,
)
from .health import (
    Health,
    HealthRecorder,
    HealthTracker,
    Problem,
    SinkHealth,
    health_path,
    problems,
    read_health,
)

__all__ = [
    "LATENCY_BUCKETS",
    "Health",
    "HealthRecorder",
    "HealthTracker",
    "Monitor",
    "ObserverGroup",
    "Problem",
    "SinkHealth",
    "health_path",
    "problems",
    "read_health",
    "serve",
]


class ObserverGroup:
    """One :class:`~cosmobac.interfaces.PipelineObserver` that reports to each of ``observers``
    in order."""

    def __init__(self, *observers: PipelineObserver) -> None:
        self.observers = observers

    def on_collect(self, rows_read: int, rows_added: int) -> None:
        for observer in self.observers:
            observer.on_collect(rows_read, rows_added)

    def on_write(
        self, consumer: str, rows: Batch, seconds: float, result: WriteResult | None
    ) -> None:
        for observer in self.observers:
            observer.on_write(consumer, rows, seconds, result)

    def on_lane(self, outcome: LaneOutcome) -> None:
        for observer in self.observers:
            observer.on_lane(outcome)

    def on_input_rejects(self, sensor: str, count: int) -> None:
        for observer in self.observers:
            if isinstance(observer, InputObserver):
                observer.on_input_rejects(sensor, count)

    def on_sources(self, sensor: str, sources: Sequence[SourceStatus]) -> None:
        for observer in self.observers:
            if isinstance(observer, SourceObserver):
                observer.on_sources(sensor, sources)


def __getattr__(name: str) -> Any:
    """``Monitor``, ``LATENCY_BUCKETS`` and ``serve`` load on first use (they need
    prometheus-client only when a Monitor is made, but keep the import cheap)."""
    if name in ("Monitor", "LATENCY_BUCKETS"):
        from . import metrics

        return getattr(metrics, name)
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
