"""The two loops: collect (sensor → store) and forward (store → transforms → sink → ack).

Guarantees:

* a row is acknowledged for a sink only after that sink reported it durably written; rows the sink
  asks to retry stay pending, rows it rejects go to the dead letters with the reason;
* each sink has its own checkpoint (its *consumer* name), so sinks progress independently;
* setting :attr:`Pipeline.stop` (the CLI does on SIGINT/SIGTERM) ends the loops after the current
  batch: nothing read is lost, nothing unwritten is acknowledged;
* a live sensor's readings are stored at least every ``run.flush_interval``, with its rejected
  input and its state in the same transaction (an :class:`~cosmobac.interfaces.InputStore`), and
  only then is the sensor told to let go of them (``commit``: an MQTT broker's acknowledgement);
* transient sink failures back off exponentially with full jitter; a failure marked permanent stops
  that sink at once;
* with a :class:`~cosmobac.interfaces.ReadAheadStore` (the SQLite store and ``MemoryStore`` are),
  the next batch is read on a background thread while the sink writes a full one, so the sink does not wait
  for the store between batches; a batch read ahead is used only when the one before it was
  settled completely, and is dropped (its rows stay pending) otherwise, and before ``forward``
  returns.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from .assembly import (
    Checkpoint,
    Lane,
    Spec,
    build_store,
    checkpoints,
    close_quietly,
    describe_component,
    fuse_transforms,
    lanes_from,
    make_component,
    require_protocol,
    sink_consumers,
    sink_lanes,
    store_config,
    wait_for_store,
)
from .batch import Batch
from .config import PipelineConfig, RunConfig, load_config
from .errors import ConfigError, CosmobacError, SinkError
from .interfaces import (
    Closeable,
    FixedStartSensor,
    LaneOutcome,
    LiveSensor,
    PipelineObserver,
    PrunableStore,
    ReadAheadStore,
    ResumableStore,
    SeekableSensor,
    Sensor,
    Sink,
    StatefulStore,
    StatefulTransform,
    Store,
    Transform,
    WriteResult,
)
from .live_collect import LiveCollector
from .pacing import FIRST_STEP_MS, backoff_delay, next_poll_interval, next_step
from .plugins import Plugins, get_plugins
from .reports import CollectReport, ForwardReport, LaneReport, Progress
from .schema import STORE_SEQ

__all__ = [
    "Checkpoint",
    "CollectReport",
    "ForwardReport",
    "Lane",
    "LaneReport",
    "Pipeline",
    "Progress",
    "backoff_delay",
    "build_store",
    "checkpoints",
    "lanes_from",
    "next_poll_interval",
    "next_step",
    "sink_consumers",
    "wait_for_store",
]

log = logging.getLogger("cosmobac.pipeline")

PRUNE_EVERY_S = 60.0
"""How often a long-running forwarder applies the store's retention."""


@attrs.frozen
class _Failure:
    """What failed while a lane handled a batch (see :class:`LaneOutcome`)."""

    error: str
    transform: str | None = None
    error_type: str | None = None
    cause: str | None = None

    @classmethod
    def of(cls, error: str, exc: BaseException | None, transform: str | None = None) -> _Failure:
        if exc is None:
            return cls(error, transform)
        cause = exc.cause if isinstance(exc, CosmobacError) else None
        return cls(error, transform, type(exc).__name__, cause)


@attrs.define(eq=False)
class _LaneState:
    lane: Lane
    report: LaneReport
    attempts: int = 0
    ready_at: float = 0.0
    poll: float | None = None  # the adapted poll interval (run.min_interval set), once known
    found: int = 0  # rows read since the lane last caught up
    done: bool = False
    permanent: bool = False  # the sink failed for good: it stays stopped for this pipeline's life
    stateful: dict[str, StatefulTransform] = attrs.field(factory=dict)
    chain: Sequence[Transform] = ()  # lane.transforms with fusable runs merged: what runs
    ahead: cf.Future[Batch] | None = None  # the next batch, being read while this one is written
    failure: _Failure | None = None  # what failed in the batch being handled, for the observer

    def snapshot(self) -> dict[str, str]:
        return {key: t.get_state() for key, t in self.stateful.items()}

    def restore(self, saved: Mapping[str, str]) -> None:
        for key, transform in self.stateful.items():
            if key in saved:
                transform.set_state(saved[key])


def _sensor_name(spec: Any, sensor: Sensor | None) -> str:
    """The name a sensor's state and rejects are kept under: its table's ``name``, else its plugin
    name, or for an object its class's."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        for key in ("name", "plugin"):
            if isinstance(spec.get(key), str):
                return str(spec[key])
    return type(sensor).__name__ if sensor is not None else ""


def state_key(position: int, transform: Transform) -> str:
    """The key a stateful transform's state is saved under: its place in the chain and its type."""
    return f"transform.{position}.{type(transform).__name__}"


class Pipeline:
    """A store with an optional sensor and any number of sink lanes.

    Compose one in code or from a pipeline file (:meth:`from_config`). In code, each of
    ``store``, ``sensor``, the items of ``sinks`` and ``transforms`` is a component object, a
    plugin name (``"memory"``) or a table as in a pipeline file
    (``{"plugin": "jsonl", "path": "out.jsonl"}``; a sink's may hold ``name``, its consumer name).
    ``sinks`` get a lane each, with ``transforms`` (tables are built once per sink); ``lanes``
    (``Lane(consumer, sink, transforms)``) gives full control. ``run`` is a :class:`RunConfig` or
    a ``[run]`` table (``{"duration": "1h", "speed": "max"}``). Components made from names or
    tables are closed by :meth:`close`; objects you pass are yours to close.

    Everything is checked here, before anything runs: each component against its Protocol (a
    ``TypeError`` naming it), unknown plugins and keys (a ``ConfigError``), and two lanes sharing
    a consumer name (a ``ValueError`` naming both).
    """

    def __init__(
        self,
        *,
        store: Store | Spec,
        sensor: Sensor | Spec | None = None,
        lanes: Sequence[Lane] = (),
        sinks: Sequence[Sink | Spec] = (),
        transforms: Sequence[Transform | Spec] = (),
        run: RunConfig | Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        seed: int | None = None,
        plugins: Plugins | None = None,
        observer: PipelineObserver | None = None,
    ) -> None:
        owned: list[Closeable] = []
        try:
            the_store: Store = make_component("store", store, owned, plugins)
            require_protocol(the_store, Store, "store")
            the_sensor: Sensor | None = None
            if sensor is not None:
                the_sensor = make_component("sensor", sensor, owned, plugins)
                require_protocol(the_sensor, Sensor, "sensor")
            if transforms and not sinks:
                raise ValueError(
                    "transforms= applies to the sinks= given beside it; with lanes=, give each "
                    "Lane its transforms"
                )
            lanes = [*lanes, *sink_lanes(sinks, transforms, the_store, owned, plugins)]
            consumers: dict[str, int] = {}
            for i, lane in enumerate(lanes):
                if not isinstance(lane, Lane):
                    raise TypeError(f"lanes[{i}] is a {type(lane).__name__}, not a Lane")
                require_protocol(lane.sink, Sink, f"sink of lane {lane.consumer!r}")
                for transform in lane.transforms:
                    require_protocol(transform, Transform, f"transform of lane {lane.consumer!r}")
                if lane.consumer in consumers:
                    first = lanes[consumers[lane.consumer]].sink
                    raise ValueError(
                        f"two sinks would keep their checkpoint under the consumer name "
                        f"{lane.consumer!r}: {describe_component(first)} and {describe_component(lane.sink)}; "
                        "give each its own name"
                    )
                consumers[lane.consumer] = i
            run_config = run if isinstance(run, RunConfig) else RunConfig.from_table(run or {})
        except BaseException:
            for component in reversed(owned):
                close_quietly(component)
            raise
        self.store: Store = the_store
        self.sensor: Sensor | None = the_sensor
        self.sensor_name = _sensor_name(sensor, the_sensor)
        self.lanes = list(lanes)
        self.run_config = run_config
        self.progress = progress
        self.observer = observer
        self.stop = threading.Event()
        self._owned: list[Closeable] = owned
        self._rng = random.Random(seed)
        self._states: dict[int, _LaneState] = {}
        self._pruned_at = float("-inf")
        self._reads_after = isinstance(the_store, ReadAheadStore)
        self._reader: cf.ThreadPoolExecutor | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: PipelineConfig | str | Any,
        *,
        plugins: Plugins | None = None,
        need_sensor: bool = False,
        need_sinks: bool = False,
        progress: Progress | None = None,
        create_store: bool = True,
        observer: PipelineObserver | None = None,
    ) -> Pipeline:
        """A pipeline built from a :class:`PipelineConfig` or the path of a pipeline file.

        ``create_store=False`` opens the store without creating it (see :func:`build_store`):
        what reads a store (forward, status, evaluate) passes it, so a wrong path is an error,
        not a new empty store."""
        plugins = plugins or get_plugins()
        if not isinstance(config, PipelineConfig):
            config = load_config(config, plugins=plugins)
        store_config(config)
        if need_sensor and config.sensor is None:
            raise ConfigError(f"{config.source}: missing [sensor] section, needed to collect")
        if need_sinks and not config.sinks:
            raise ConfigError(f"{config.source}: no [[sinks]] table, needed to forward")
        owned: list[Closeable] = []
        try:
            store = build_store(config, plugins=plugins, create=create_store)
            owned.append(store)
            sensor = config.sensor.build(plugins) if config.sensor and need_sensor else None
            if isinstance(sensor, Closeable):
                owned.append(sensor)
            lanes = []
            if need_sinks:
                names = sink_consumers(config.sinks, store, plugins)
                for sink_cfg, consumer in zip(config.sinks, names, strict=True):
                    sink = sink_cfg.build(plugins)
                    owned.append(sink)
                    transforms = [t.build(plugins) for t in config.transforms]
                    owned.extend(t for t in transforms if isinstance(t, Closeable))
                    lanes.append(Lane(consumer, sink, transforms))
            pipeline = cls(
                store=store,
                sensor=sensor,
                lanes=lanes,
                run=config.run,
                progress=progress,
                observer=observer,
            )
        except BaseException:
            for component in reversed(owned):
                close_quietly(component)
            raise
        pipeline._owned = [*owned, *pipeline._owned]
        if config.sensor is not None:
            pipeline.sensor_name = config.sensor.name or config.sensor.plugin
        return pipeline

    def checkpoints(self) -> list[Checkpoint]:
        """Where each lane's consumer stands in the store: a new checkpoint, or resuming after
        the rows it already settled (the ``run`` and ``forward`` commands print it per lane)."""
        return checkpoints(self.store, [lane.consumer for lane in self.lanes])

    def close(self) -> None:
        """Close the components this pipeline made (transforms and sinks first, then the sensor,
        then the store)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.shutdown(wait=True)
        for component in reversed(self._owned):
            close_quietly(component)
        self._owned = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collect ------------------------------------------------------------------------------
    def _sensor(self) -> Sensor:
        if self.sensor is None:
            raise ConfigError("this pipeline has no sensor; add a [sensor] section to collect")
        return self.sensor

    def _span(self, duration: float | None) -> tuple[int, int | None]:
        sensor = self._sensor()
        start = sensor.start if isinstance(sensor, FixedStartSensor) else None
        if start is None:
            start = int(time.time() * 1000)
        duration = self.run_config.duration if duration is None else duration
        end = None if duration is None else int(start) + int(duration * 1000)
        return int(start), end

    def collect(self, *, duration: float | None = None, forward: bool = False) -> CollectReport:
        """Read the sensor into the store over ``duration`` seconds of sensor time (default
        ``run.duration``). At ``speed = "max"`` sensor time runs as fast as the machine allows; at a
        factor, it follows the wall clock. With ``forward=True`` each collected step is forwarded
        before the next (the ``run`` command). A restarted collector resumes after the newest
        stored reading where store and sensor can (see :meth:`_resume_point`).

        A :class:`~cosmobac.interfaces.LiveSensor` (MQTT, Modbus, files) is read in real time
        instead (see :meth:`_collect_live`): ``duration`` is then wall-clock time, and unset means
        until stopped or until the sensor is finished."""
        sensor = self._sensor()
        if isinstance(sensor, LiveSensor):
            return self._collect_live(sensor, duration=duration, forward=forward)
        cfg = self.run_config
        start, end = self._span(duration)
        if cfg.speed is None and end is None:
            raise ConfigError('run.duration is required at speed = "max" (or give a speed factor)')
        max_step_ms = max(1, int(cfg.step * 1000))
        step_ms = min(max_step_ms, FIRST_STEP_MS)  # learn the sensor's rate on a short step first
        read = added = 0
        until = self._resume_point(sensor, start)
        origin = until
        wall0 = time.monotonic()
        while not self.stop.is_set() and (end is None or until < end):
            if cfg.speed is None:
                target = until + step_ms
            else:
                target = origin + int((time.monotonic() - wall0) * cfg.speed * 1000)
            if end is not None:
                target = min(target, end)
            if target > until:
                span, until = target - until, target
                batch = sensor.read(until)
                if cfg.speed is None:
                    step_ms = next_step(span, len(batch), cfg.batch_size, max_step_ms)
                if len(batch):
                    read += len(batch)
                    new = self.store.append(batch)
                    added += new
                    if self.observer is not None:
                        self.observer.on_collect(len(batch), new)
                self._report("collect", until - start, None if end is None else end - start)
                if forward:
                    self._deliver(follow=False, backlog=None)
            if cfg.speed is not None and (end is None or until < end):
                self.stop.wait(self._jittered(cfg.interval))
        return CollectReport(rows_read=read, rows_added=added, start=origin, end=until)

    def _collect_live(
        self, sensor: LiveSensor, *, duration: float | None, forward: bool
    ) -> CollectReport:
        """Collect from a :class:`LiveSensor` in real time (see :class:`LiveCollector`)."""
        collector = LiveCollector(
            sensor=sensor,
            store=self.store,
            name=self.sensor_name,
            run=self.run_config,
            stop=self.stop,
            observer=self.observer,
            on_progress=lambda done, total: self._report("collect", done, total),
            on_stored=(lambda: self._deliver(follow=False, backlog=None)) if forward else None,
        )
        read, added, start, end = collector.run_for(duration)
        return CollectReport(rows_read=read, rows_added=added, start=start, end=end)

    def _resume_point(self, sensor: Sensor, start: int) -> int:
        """Where collecting starts: after the newest stored reading when the store can say which it
        is (a :class:`ResumableStore`) and the sensor can skip ahead (a :class:`SeekableSensor`);
        else ``start``.

        Safe because each collected batch holds every reading below its ``until`` and is stored
        in one transaction: nothing below the newest stored reading is missing."""
        store = self.store
        if not isinstance(store, ResumableStore) or not isinstance(sensor, SeekableSensor):
            return start
        newest = store.last_timestamp()
        if newest is None or newest < start:
            return start
        sensor.seek(int(newest) + 1)
        log.info("resuming collection after the newest stored reading (%d)", newest)
        return int(newest) + 1

    # -- forward ------------------------------------------------------------------------------
    def forward(self, *, follow: bool = False) -> ForwardReport:
        """Deliver pending rows to every sink until none is pending (or, with ``follow``, until
        :attr:`stop` is set). A sink that keeps failing gives up after ``run.max_attempts`` tries
        in a row when not following; its error is in the report and its rows stay pending.

        The report's counts are totals over this pipeline's life; ``error`` is from this call,
        except that a sink that failed permanently stays stopped (and reported) from then on.
        Without ``follow``, progress is reported as rows handled out of the backlog at the start."""
        backlog = None
        if not follow and self.progress is not None:
            stats = self.store.stats()
            # a sink the store has not seen yet has everything stored pending
            backlog = sum(stats.backlog_of(lane.consumer)[0] for lane in self.lanes)
        return self._deliver(follow=follow, backlog=backlog)

    def _deliver(self, *, follow: bool, backlog: int | None) -> ForwardReport:
        if not self.lanes:
            raise ConfigError("this pipeline has no sinks; add a [[sinks]] table to forward")
        states = [self._lane_state(lane) for lane in self.lanes]
        for state in states:
            if state.permanent:
                continue  # e.g. wrong credentials: retrying every collect step would not help
            if state.done:
                state.ready_at = 0.0  # it had caught up: new rows may be waiting now
            state.done = False
            state.attempts = 0
            state.report.error = None
        try:
            return self._deliver_loop(states, follow=follow, backlog=backlog)
        finally:
            for state in states:  # nothing reads the store once forward() has returned
                self._drop_ahead(state)

    def _deliver_loop(
        self, states: list[_LaneState], *, follow: bool, backlog: int | None
    ) -> ForwardReport:
        handled = lambda: sum(s.report.acked + s.report.dead_lettered for s in states)  # noqa: E731
        baseline = handled()
        while not self.stop.is_set():
            now = time.monotonic()
            # Following, a lane that caught up looks again once its poll interval has passed,
            # whatever the other lanes do (one sink retrying must not hold the others back).
            idle = [s for s in states if s.done and s.report.error is None] if follow else []
            for s in idle:
                if s.ready_at <= now:
                    s.done = False
            active = [s for s in states if not s.done]
            if not active:
                self._maybe_prune(force=not follow)
                if not follow or all(s.report.error is not None for s in states):
                    break  # nothing pending, or (following) every sink has given up
                self.stop.wait(max(0.0, min(s.ready_at for s in idle) - now))
                continue
            ready = [s for s in active if s.ready_at <= now]
            if not ready:
                wake = min(s.ready_at for s in (*active, *(s for s in idle if s.done)))
                self.stop.wait(wake - now)
                continue
            for state in ready:
                if self.stop.is_set():
                    break
                if self.observer is None:
                    self._forward_once(state, follow)
                else:
                    self._forward_observed(state, follow, self.observer)
                if backlog is not None:
                    self._report("forward", handled() - baseline, backlog)
        return ForwardReport(tuple(s.report for s in states))

    # -- reading ahead --------------------------------------------------------------------------
    def _read(self, state: _LaneState) -> Batch:
        """The lane's next batch: the one read ahead when there is one, else read now."""
        ahead, state.ahead = state.ahead, None
        if ahead is not None:
            try:
                return ahead.result()
            except Exception as exc:  # e.g. the store was busy: read again, in the foreground
                log.debug("%s: reading ahead failed (%s); reading again", state.lane.consumer, exc)
        return self.store.read(state.lane.consumer, self.run_config.batch_size)

    def _read_ahead(self, state: _LaneState, *, after: int) -> None:
        store = self.store
        if not isinstance(store, ReadAheadStore):  # pragma: no cover - checked by the caller
            raise AssertionError("reading ahead needs a ReadAheadStore")
        if self._reader is None:
            self._reader = cf.ThreadPoolExecutor(1, thread_name_prefix="cosmobac-read-ahead")
        state.ahead = self._reader.submit(
            store.read_after, state.lane.consumer, self.run_config.batch_size, after
        )

    def _drop_ahead(self, state: _LaneState) -> None:
        """Forget the batch read ahead (its rows stay pending), once its read has finished."""
        ahead, state.ahead = state.ahead, None
        if ahead is not None and not ahead.cancel():
            cf.wait([ahead])

    def _maybe_prune(self, *, force: bool = False) -> None:
        """Apply the retention of a :class:`PrunableStore` at most once a minute."""
        store = self.store
        now = time.monotonic()
        if not isinstance(store, PrunableStore) or (
            not force and now - self._pruned_at < PRUNE_EVERY_S
        ):
            return
        self._pruned_at = now
        removed = store.prune()
        if removed:
            log.info("retention pruned %d acknowledged rows", removed)

    def _lane_state(self, lane: Lane) -> _LaneState:
        state = self._states.get(id(lane))
        if state is None:
            state = self._states[id(lane)] = _LaneState(lane, LaneReport(lane.consumer))
            state.chain = fuse_transforms(lane.transforms)
            state.stateful = {
                state_key(i, t): t
                for i, t in enumerate(lane.transforms)
                if isinstance(t, StatefulTransform)
            }
            store = self.store
            if state.stateful and isinstance(store, StatefulStore):
                # warm state from the last acknowledged batch
                state.restore(store.load_state(lane.consumer))
        return state

    def _forward_observed(
        self, state: _LaneState, follow: bool, observer: PipelineObserver
    ) -> None:
        """:meth:`_forward_once`, telling ``observer`` what the batch changed."""
        report = state.report
        before = (report.acked, report.dead_lettered, report.retried, report.failures)
        state.failure = None
        try:
            self._forward_once(state, follow)
        finally:
            failure = state.failure
            observer.on_lane(
                LaneOutcome(
                    state.lane.consumer,
                    acked=report.acked - before[0],
                    dead_lettered=report.dead_lettered - before[1],
                    retried=report.retried - before[2],
                    failures=report.failures - before[3],
                    error=None if failure is None else failure.error,
                    stopped=state.permanent and failure is not None,
                    failed_transform=None if failure is None else failure.transform,
                    error_type=None if failure is None else failure.error_type,
                    error_cause=None if failure is None else failure.cause,
                )
            )

    def _write(self, lane: Lane, out: Batch) -> WriteResult | None:
        """``lane.sink.write(out)``, timed for the observer when there is one."""
        observer = self.observer
        if observer is None:
            return lane.sink.write(out)
        began = time.perf_counter()
        result = lane.sink.write(out)
        observer.on_write(lane.consumer, out, time.perf_counter() - began, result)
        return result

    def _forward_once(self, state: _LaneState, follow: bool) -> None:
        lane, report, cfg = state.lane, state.report, self.run_config
        batch = self._read(state)
        if not len(batch):
            state.done = True  # caught up: following, look again after the poll interval
            state.ready_at = time.monotonic() + self._jittered(self._poll_interval(state))
            return
        state.found += len(batch)
        if self._reads_after and len(batch) >= cfg.batch_size:  # a full batch: more may follow
            self._read_ahead(state, after=int(batch[STORE_SEQ].max()))
        before = state.snapshot()
        try:
            out = batch
            for transform in state.chain:
                out = transform(out)
        except Exception as exc:
            state.restore(before)
            reason = f"transform {type(transform).__name__} failed: {type(exc).__name__}: {exc}"
            state.failure = _Failure.of(reason, exc, type(transform).__name__)
            if cfg.on_transform_error == "stop":
                raise
            log.warning("%s: %s; %d rows dead-lettered", lane.consumer, reason, len(batch))
            self.store.dead_letter(lane.consumer, batch, reason)
            report.dead_lettered += len(batch)
            return
        try:
            result = self._write(lane, out) if len(out) else None
        except SinkError as exc:
            state.restore(before)
            if not exc.transient:
                self._drop_ahead(state)
                report.error = str(exc)
                state.failure = _Failure.of(str(exc), exc)
                state.done = state.permanent = True
                log.error("%s: %s (giving up; nothing acknowledged)", lane.consumer, exc)
                return
            self._failed(state, exc, follow)
            return
        except Exception as exc:
            state.restore(before)
            self._failed(state, exc, follow)
            return
        if state.stateful and result is not None and result.retry:
            # Stateful transforms saw every row: retrying only some would feed them twice, so
            # nothing is acknowledged and the whole batch is retried from the state it started
            # with (sinks write idempotently).
            state.restore(before)
            report.retried += len(result.retry)
            self._failed(state, None, follow)
            return
        handled = report.acked + report.dead_lettered
        retry = self._settle(lane.consumer, batch, out, result, report, state.snapshot())
        if retry and report.acked + report.dead_lettered == handled:
            report.retried += retry
            self._failed(state, None, follow)  # nothing settled: back off
            return
        if retry:  # some rows settled (e.g. a rate budget let part through): not a failure
            report.retried += retry
            self._drop_ahead(state)  # the rows to retry come first again
        state.attempts = 0
        state.ready_at = 0.0

    def _failed(self, state: _LaneState, exc: BaseException | None, follow: bool) -> None:
        self._drop_ahead(state)  # the rows to retry come first again
        cfg = self.run_config
        state.report.failures += 1
        state.attempts += 1
        if exc is not None:
            log.warning("%s: write failed (%s); will retry", state.lane.consumer, exc)
            state.failure = _Failure.of(f"{type(exc).__name__}: {exc}", exc)
        else:
            state.failure = _Failure.of("the sink asked to send rows again", None)
        if not follow and state.attempts >= cfg.max_attempts:
            state.report.error = f"gave up after {state.attempts} failed attempts in a row" + (
                f": {type(exc).__name__}: {exc}" if exc is not None else " (rows to retry)"
            )
            state.done = True
            return
        delay = backoff_delay(state.attempts - 1, cfg.backoff, cfg.max_backoff, self._rng)
        state.ready_at = time.monotonic() + delay

    def _settle(
        self,
        consumer: str,
        batch: Batch,
        out: Batch,
        result: WriteResult | None,
        report: LaneReport,
        transform_state: Mapping[str, str],
    ) -> int:
        """Acknowledge what was written, dead-letter what was rejected; return rows to retry.

        ``transform_state`` is saved with the acknowledgement, in the same transaction."""
        state = dict(transform_state) or None
        if result is not None:
            for key, value in result.stats.items():
                if isinstance(value, int | float):
                    report.stats[key] = report.stats.get(key, 0.0) + float(value)
        if result is None or result.complete:
            self._ack(consumer, batch, state)
            report.written += len(out)
            report.acked += len(batch)
            return 0
        seq_out = out.get(STORE_SEQ)
        if seq_out is None:
            # The transforms made new rows: rows can't be traced back, so settle the batch whole.
            if result.retry:
                return len(batch)
            reason = "; ".join(sorted(set(result.rejected.values())))
            self.store.dead_letter(consumer, batch, reason)
            if state:
                self._ack(consumer, batch.select(slice(0, 0)), state)
            report.dead_lettered += len(batch)
            return 0
        seqs = batch[STORE_SEQ]
        retry = seq_out[list(result.retry)] if result.retry else np.empty(0, dtype=np.int64)
        by_reason: dict[str, list[int]] = {}
        for pos, reason in result.rejected.items():
            by_reason.setdefault(reason, []).append(int(seq_out[pos]))
        for reason, rejected in by_reason.items():
            self.store.dead_letter(consumer, batch.select(np.isin(seqs, rejected)), reason)
            report.dead_lettered += len(rejected)
        rejected_all = [s for group in by_reason.values() for s in group]
        done = ~np.isin(seqs, retry) & ~np.isin(seqs, rejected_all)
        if done.any() or state:
            self._ack(consumer, batch.select(done), state)
        report.acked += int(done.sum())
        report.written += len(out) - len(retry) - len(rejected_all)
        return len(retry)

    def _ack(self, consumer: str, rows: Batch, state: dict[str, str] | None) -> None:
        if state is None:
            self.store.ack(consumer, rows)
        else:
            self.store.ack(consumer, rows, state=state)

    # -- both ---------------------------------------------------------------------------------
    def run(self, *, duration: float | None = None) -> tuple[CollectReport, ForwardReport]:
        """Collect and forward in one process: each collected step is forwarded before the next,
        then everything still pending is forwarded."""
        collected = self.collect(duration=duration, forward=bool(self.lanes))
        forwarded = self.forward(follow=False) if self.lanes else ForwardReport(())
        return collected, forwarded

    # -- helpers ------------------------------------------------------------------------------
    def _poll_interval(self, state: _LaneState) -> float:
        """``run.interval``, or with ``run.min_interval`` the lane's adapted interval."""
        cfg = self.run_config
        if cfg.min_interval is None:
            return cfg.interval
        current = cfg.interval if state.poll is None else state.poll
        state.poll = next_poll_interval(
            state.found, cfg.batch_size, current, cfg.min_interval, cfg.interval
        )
        if state.poll != current:
            log.debug(
                "%s: poll interval %gs -> %gs (%d rows since the last poll)",
                state.lane.consumer,
                current,
                state.poll,
                state.found,
            )
        state.found = 0
        return state.poll

    def _jittered(self, seconds: float) -> float:
        jitter = self.run_config.jitter
        return max(0.0, seconds * (1.0 + self._rng.uniform(-jitter, jitter)))

    def _report(self, stage: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)
