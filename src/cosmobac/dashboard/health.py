"""The dashboard's health figures: ``cosmobac status``'s :class:`~cosmobac.monitoring.status.Status`
(read with :func:`~cosmobac.monitoring.status.read_status`, never recomputed), plus request units
and throttled requests per second derived from two snapshots of the forwarder's health file."""

from __future__ import annotations

import threading
from typing import Any

import attrs

from ..monitoring.status import Status, read_status

__all__ = ["HealthReader"]


@attrs.define
class _Rates:
    time: float  # the health file's time of the snapshot the totals come from
    request_units: float
    throttled: int
    ru_per_second: float | None = None
    throttled_per_second: float | None = None


class HealthReader:
    """Reads one pipeline file's status and keeps, per sink, the last two health snapshots'
    totals of request units and throttled requests, so the rate between them can be given."""

    def __init__(self, config: str) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._rates: dict[str, _Rates] = {}

    def read(self) -> Status:
        return read_status(self.config, missing_store_ok=True)

    def to_json(self, status: Status) -> dict[str, Any]:
        """``status.to_json()`` (the ``cosmobac status --json`` form), each sink extended with
        ``request_units`` and ``throttled`` (totals since the forwarder started; ``None`` without
        health), ``ru_per_second`` and ``throttled_per_second`` (between the last two snapshots
        that differed; ``None`` until there are two), and the ``node`` summary fields."""
        data = status.to_json()
        health = status.forwarder.health
        by_consumer = {s.consumer: s for s in status.sinks}
        with self._lock:
            for row in data["sinks"]:
                sink = by_consumer.get(row["consumer"])
                h = None if sink is None else sink.health
                row["request_units"] = None if h is None else h.request_units
                row["throttled"] = None if h is None else h.throttled
                row["ru_per_second"] = None
                row["throttled_per_second"] = None
                if h is None or health is None:
                    continue
                rates = self._rates.get(row["consumer"])
                if rates is None or health.time < rates.time:
                    rates = self._rates[row["consumer"]] = _Rates(
                        health.time, h.request_units, h.throttled
                    )
                elif health.time > rates.time:
                    span = health.time - rates.time
                    rates.ru_per_second = max(h.request_units - rates.request_units, 0.0) / span
                    rates.throttled_per_second = max(h.throttled - rates.throttled, 0) / span
                    rates.time, rates.request_units, rates.throttled = (
                        health.time,
                        h.request_units,
                        h.throttled,
                    )
                if not status.forwarder.running:
                    rates.ru_per_second = rates.throttled_per_second = 0.0
                row["ru_per_second"] = rates.ru_per_second
                row["throttled_per_second"] = rates.throttled_per_second
        data["config"] = status.config
        data["time"] = status.time
        return data
