"""Collecting from a live sensor (MQTT, Modbus, growing files): real time, not the loop's clock.

Guarantees:

* what the sensor received is stored at least every ``run.flush_interval``, and as soon as
  ``run.batch_size`` readings wait;
* each store is one transaction holding the rows, the input the sensor rejected and its state (an
  :class:`~cosmobac.interfaces.InputStore`); only after it returns is the sensor told to let go of
  that input (:meth:`~cosmobac.interfaces.CommittingSensor.commit`), so a collector killed at any
  point loses nothing: the source gives the uncommitted input again and the store's dedupe keeps
  each reading once;
* stopping (the ``stop`` event, the wall-clock ``duration``, or a finished sensor) stores once
  more before returning: nothing received is left behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import attrs

from .config import RunConfig
from .interfaces import (
    CommittingSensor,
    InputObserver,
    InputReject,
    InputStore,
    LiveSensor,
    PipelineObserver,
    RejectingSensor,
    SourceObserver,
    SourceReportingSensor,
    StatefulSensor,
    Store,
)

__all__ = ["LIVE_WAIT_S", "LiveCollector"]

log = logging.getLogger("cosmobac.pipeline")

LIVE_WAIT_S = 0.2
"""The longest a live collector waits on its sensor before looking at its stop flag again."""


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@attrs.define
class LiveCollector:
    """Reads one live sensor into one store until stopped; ``name`` is what the sensor's state
    and rejects are kept under (its plugin name). ``on_stored`` runs after each store that held
    rows (``run`` forwards then); ``on_progress(done_ms, total_ms)`` reports wall-clock time."""

    sensor: LiveSensor
    store: Store
    name: str
    run: RunConfig
    stop: threading.Event
    observer: PipelineObserver | None = None
    on_progress: Callable[[int, int | None], None] | None = None
    on_stored: Callable[[], object] | None = None
    _state: str | None = attrs.field(init=False, default=None)  # the sensor state last stored

    def run_for(self, duration: float | None) -> tuple[int, int, int, int]:
        """Collect for ``duration`` seconds of wall-clock time (default ``run.duration``; unset:
        until stopped or the sensor is finished). Returns rows read, rows new to the store, and
        when it began and ended (epoch ms)."""
        cfg = self.run
        duration = cfg.duration if duration is None else duration
        self._restore()
        start = now_ms()
        began = time.monotonic()
        end = None if duration is None else began + duration
        total = None if duration is None else int(duration * 1000)
        read = added = 0
        flush_at = began + cfg.flush_interval
        while True:
            now = time.monotonic()
            ending = self.stop.is_set() or self.sensor.finished or (end is not None and now >= end)
            if not ending and now < flush_at:
                wait = min(LIVE_WAIT_S, flush_at - now)
                if end is not None:
                    wait = min(wait, max(0.0, end - now))
                if not self.sensor.wait(wait, cfg.batch_size):
                    continue
            rows, new = self.store_once()
            read, added = read + rows, added + new
            flush_at = time.monotonic() + cfg.flush_interval
            if self.on_progress is not None:
                self.on_progress(int((time.monotonic() - began) * 1000), total)
            if rows and self.on_stored is not None:
                self.on_stored()
            if ending:
                break
        return read, added, start, now_ms()

    def _restore(self) -> None:
        """Give a :class:`StatefulSensor` the state an :class:`InputStore` saved for it."""
        if isinstance(self.sensor, StatefulSensor) and isinstance(self.store, InputStore):
            state = self.store.load_sensor_state(self.name)
            if state is not None:
                self.sensor.set_state(state)
                self._state = state
                log.info("%s: resuming where the store says it stood", self.name)

    def store_once(self) -> tuple[int, int]:
        """One read of the sensor stored with its rejects and state, then the sensor told
        (:class:`CommittingSensor`). Returns rows read and how many were new to the store."""
        sensor, store = self.sensor, self.store
        batch = sensor.read(now_ms())
        rejects: list[InputReject] = []
        if isinstance(sensor, RejectingSensor):
            rejects = [attrs.evolve(r, sensor=self.name) for r in sensor.take_rejects()]
        state = sensor.get_state() if isinstance(sensor, StatefulSensor) else None
        new = 0
        if isinstance(store, InputStore):
            if len(batch) or rejects or state != self._state:
                new = store.append_input(batch, sensor=self.name, state=state, rejects=rejects)
        else:
            new = store.append(batch) if len(batch) else 0
            for reject in rejects:
                log.warning(
                    "%s: could not read %s: %s (this store does not keep input rejects)",
                    self.name,
                    reject.origin,
                    reject.reason,
                )
        self._state = state
        if rejects:
            log.info("%s: %d input(s) set aside as rejects", self.name, len(rejects))
            if isinstance(self.observer, InputObserver):
                self.observer.on_input_rejects(self.name, len(rejects))
        if isinstance(sensor, CommittingSensor):
            sensor.commit()
        if isinstance(sensor, SourceReportingSensor) and isinstance(self.observer, SourceObserver):
            self.observer.on_sources(self.name, sensor.sources())
        if len(batch) and self.observer is not None:
            self.observer.on_collect(len(batch), new)
        return len(batch), new
