"""The health tracker, the readiness judgement and the health file, on real pipelines in memory."""

from __future__ import annotations

import json
import os
import time

import attrs
import numpy as np
import pytest

from cosmobac import Batch, WriteResult
from cosmobac.config import RunConfig
from cosmobac.errors import CosmobacError
from cosmobac.interfaces import LaneOutcome, StoreStats
from cosmobac.monitoring import (
    Health,
    HealthRecorder,
    HealthTracker,
    ObserverGroup,
    health_path,
    problems,
    read_health,
)
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.testing import ListSink, MemoryStore

FAST = RunConfig(backoff=0.0, max_backoff=0.0, batch_size=4, max_attempts=2)


def filled(n: int) -> MemoryStore:
    store = MemoryStore()
    ts = np.arange(n, dtype=np.int64) * 1000
    flags = np.arange(n) % 3 == 0
    store.append(
        Batch.from_columns(
            timestamp=ts,
            sensor_id=["s"] * n,
            temperature=np.arange(n, dtype=float),
            z_detected=flags,
        )
    )
    return store


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """An observer keeping every outcome."""

    def __init__(self) -> None:
        self.outcomes: list[LaneOutcome] = []
        self.collected: list[tuple[int, int]] = []
        self.writes = 0

    def on_collect(self, rows_read: int, rows_added: int) -> None:
        self.collected.append((rows_read, rows_added))

    def on_write(self, consumer, rows, seconds, result) -> None:
        self.writes += 1

    def on_lane(self, outcome: LaneOutcome) -> None:
        self.outcomes.append(outcome)


def test_tracker_counts_what_a_pipeline_delivered_and_what_detectors_flagged():
    tracker = HealthTracker()
    sink = ListSink()
    Pipeline(store=filled(10), lanes=[Lane("out", sink)], run=FAST, observer=tracker).forward()
    [health] = tracker.snapshot().sinks
    assert (health.consumer, health.acked, health.failures, health.stopped) == ("out", 10, 0, False)
    assert health.anomalies == {"z": 4}  # rows 0, 3, 6, 9
    assert health.last_error is None and health.last_write_at is not None
    assert health.rows_per_second > 0


class Trap(CosmobacError):
    cause = "trap"


def failing_transform(batch: Batch) -> Batch:
    raise Trap("the module trapped")


def test_a_failing_transform_is_named_with_its_error_and_cause():
    seen = Recorder()
    pipeline = Pipeline(
        store=filled(4), lanes=[Lane("out", ListSink(), [failing_transform])], run=FAST,
        observer=seen,
    )  # fmt: skip
    report = pipeline.forward()
    assert report.lanes[0].dead_lettered == 4
    [outcome] = [o for o in seen.outcomes if o.dead_lettered]
    assert outcome.failed_transform == "function" and outcome.error_type == "Trap"
    assert outcome.error_cause == "trap"
    assert "the module trapped" in (outcome.error or "")


def test_a_transient_failure_then_success_reports_the_error_and_clears_nothing_else():
    seen, tracker = Recorder(), HealthTracker()
    sink = ListSink(fail=1)
    pipeline = Pipeline(
        store=filled(4), lanes=[Lane("out", sink)], run=FAST,
        observer=ObserverGroup(seen, tracker),
    )  # fmt: skip
    assert pipeline.forward().ok
    failed, written = seen.outcomes[0], next(o for o in seen.outcomes if o.acked)
    assert failed.failures == 1 and not failed.stopped and "ListSink told to fail" in failed.error
    assert written.acked == 4 and written.error is None
    [health] = tracker.snapshot().sinks
    assert health.failures == 1 and "ListSink told to fail" in (health.last_error or "")
    assert health.last_error_at is not None and not health.stopped
    assert tracker.stopped() == {}


def test_a_permanent_failure_stops_the_sink_until_it_writes_again():
    tracker = HealthTracker()
    Pipeline(
        store=filled(4), lanes=[Lane("out", ListSink(fail=1, permanent=True))], run=FAST,
        observer=tracker,
    ).forward()  # fmt: skip
    assert list(tracker.stopped()) == ["out"]
    assert "ListSink told to fail" in tracker.stopped()["out"]
    tracker.on_lane(LaneOutcome("out", acked=3))  # a new pipeline's sink of that name wrote
    assert tracker.stopped() == {}


def test_rows_per_second_is_measured_over_the_last_minute():
    clock = Clock()
    tracker = HealthTracker(clock=clock)
    for _ in range(120):  # 10 rows a second for two minutes
        clock.now += 1.0
        tracker.on_lane(LaneOutcome("out", acked=10))
    assert tracker.snapshot().sinks[0].rows_per_second == pytest.approx(10.0)
    clock.now += 30.0  # half a minute of silence
    assert tracker.snapshot().sinks[0].rows_per_second == pytest.approx(5.0, abs=0.2)
    clock.now += 60.0
    assert tracker.snapshot().sinks[0].rows_per_second == 0.0


def test_rows_per_second_right_after_start_divides_by_the_time_elapsed():
    clock = Clock()
    tracker = HealthTracker(clock=clock)
    clock.now += 2.0
    tracker.on_lane(LaneOutcome("out", acked=50))
    assert tracker.snapshot().sinks[0].rows_per_second == pytest.approx(25.0)


def stats(pending: dict[str, int], ages: dict[str, float | None]) -> StoreStats:
    return StoreStats(
        rows=100, pending=pending, oldest_pending_age_s=ages, dead_letters={}, file_size=None
    )


def test_problems_names_stopped_sinks_then_old_backlogs():
    found = problems(
        stopped={"b": "HTTP 401"},
        stats=stats({"a": 5, "b": 5, "c": 0}, {"a": 7200.0, "b": 10.0, "c": None}),
        consumers=["a", "b", "c"],
        max_backlog_age=3600.0,
    )
    assert [p.to_json() for p in found] == [
        {"sink": "b", "reason": "sink failed permanently", "error": "HTTP 401"},
        {
            "sink": "a",
            "reason": "backlog too old",
            "oldest_pending_age_s": 7200.0,
            "max_backlog_age_s": 3600.0,
        },
    ]


def test_problems_flags_a_sink_that_never_read_by_the_oldest_stored_row():
    """A sink whose forwarder never ran is not registered: every stored row is pending for it,
    and its oldest pending row is the oldest stored one."""
    never = attrs.evolve(
        stats({"a": 0}, {"a": None}), oldest_stored_age_s=7200.0, oldest_stored_timestamp=1e9
    )
    assert never.backlog_of("a") == (0, None, None)  # registered: its own entries
    assert never.backlog_of("up") == (100, 7200.0, 1e9)
    found = problems(stopped={}, stats=never, consumers=["a", "up"], max_backlog_age=3600.0)
    assert [p.to_json() for p in found] == [
        {
            "sink": "up",
            "reason": "backlog too old",
            "oldest_pending_age_s": 7200.0,
            "max_backlog_age_s": 3600.0,
        }
    ]
    young = attrs.evolve(never, oldest_stored_age_s=10.0)
    assert problems(stopped={}, stats=young, consumers=["up"], max_backlog_age=3600.0) == []
    # a store that does not report the oldest stored row: no age, no judgement
    unknown = stats({}, {})
    assert unknown.backlog_of("up") == (100, None, None)
    assert problems(stopped={}, stats=unknown, consumers=["up"], max_backlog_age=1.0) == []
    empty = StoreStats(rows=0, pending={}, oldest_pending_age_s={}, dead_letters={})
    assert empty.backlog_of("up") == (0, None, None)


def test_problems_flags_a_never_read_sink_of_a_real_store():
    store = filled(10)
    time.sleep(0.05)
    found = problems(stopped={}, stats=store.stats(), consumers=["up"], max_backlog_age=0.01)
    assert [(p.sink, p.reason) for p in found] == [("up", "backlog too old")]
    assert found[0].oldest_pending_age_s is not None and found[0].oldest_pending_age_s >= 0.04
    assert problems(stopped={}, stats=store.stats(), consumers=["up"], max_backlog_age=60) == []


def test_problems_ignores_backlog_age_without_a_limit_or_stats():
    assert problems(stopped={}, stats=None, consumers=["a"], max_backlog_age=1.0) == []
    assert (
        problems(
            stopped={}, stats=stats({"a": 5}, {"a": 1e9}), consumers=["a"], max_backlog_age=None
        )
        == []
    )


def test_health_round_trips_through_its_json():
    tracker = HealthTracker()
    tracker.on_lane(LaneOutcome("out", acked=3, failures=1, error="boom"))
    health = tracker.snapshot()
    again = Health.from_json(json.loads(json.dumps(health.to_json())))
    # times are recorded to the second
    assert attrs.evolve(again, time=health.time, started=health.started) == attrs.evolve(
        health,
        sinks=tuple(
            attrs.evolve(s, last_error_at=again.sinks[0].last_error_at,
                         last_write_at=again.sinks[0].last_write_at)
            for s in health.sinks
        ),
    )  # fmt: skip
    assert abs(again.sinks[0].last_error_at - health.sinks[0].last_error_at) < 1


def test_recorder_writes_the_file_while_running_and_marks_it_stopped_at_the_end(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("")
    tracker = HealthTracker()
    recorder = HealthRecorder(tracker, config, interval=0.05)
    with recorder.recording():
        time.sleep(0.2)
        assert read_health(config) is None  # nothing recorded before a pipeline runs
        recorder.activate()
        tracker.on_lane(LaneOutcome("out", acked=7))
        recorder.write()
        running = read_health(config)
    assert health_path(config) == tmp_path / ".edge.toml.health.json"
    assert running is not None and running.running and running.pid == os.getpid()
    assert running.sink("out") is not None and running.sink("out").acked == 7
    finished = read_health(config)
    assert finished is not None and not finished.running


def test_read_health_of_a_missing_or_torn_file_is_none(tmp_path):
    config = tmp_path / "edge.toml"
    assert read_health(config) is None
    health_path(config).write_text("{not json")
    assert read_health(config) is None


def test_recorder_that_cannot_write_warns_once_and_goes_on(tmp_path, caplog):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    recorder = HealthRecorder(HealthTracker(), not_a_folder / "edge.toml")
    recorder.write()
    recorder.write()
    assert sum("cannot record health" in r.message for r in caplog.records) == 1


def test_throttled_requests_and_request_units_are_counted_per_sink():
    pytest.importorskip("prometheus_client")
    from cosmobac.monitoring import Monitor

    def respond(batch: Batch) -> WriteResult:
        return WriteResult(stats={"request_charge": 5.0, "throttled": 2})

    store = filled(8)
    monitor = Monitor(store=lambda: store, consumers=lambda: ["out"])
    Pipeline(
        store=store, lanes=[Lane("out", ListSink(respond=respond), [failing_transform]),
                            Lane("ok", ListSink(respond=respond))],
        run=FAST, observer=monitor,
    ).forward()  # fmt: skip
    text = monitor.metrics_text().decode()
    ok = monitor.health.snapshot().sink("ok")
    assert ok is not None and (ok.request_units, ok.throttled) == (10.0, 4)
    assert 'cosmobac_sink_throttled_requests_total{sink="ok"} 4.0' in text
    assert 'cosmobac_sink_request_units_total{sink="ok"} 10.0' in text
    assert (
        'cosmobac_transform_errors_total{cause="trap",error="Trap",sink="out",'
        'transform="function"} 2.0'
    ) in text
    assert 'cosmobac_anomalies_total{detector="z",sink="ok",type="unknown"} 3.0' in text
    assert 'cosmobac_sink_up{sink="out"} 1.0' in text


def test_progress_lines_say_what_each_sink_did_since_the_last_line():
    from cosmobac.monitoring.progress import ProgressLog

    clock = Clock()
    tracker = HealthTracker(clock=clock)
    pending = {"out": 7}
    log = ProgressLog(
        tracker, print, clock=clock,
        stats=lambda: stats(pending, {"out": 1.0}),
    )  # fmt: skip
    assert log.lines() == []  # nothing happened: nothing to say
    clock.now += 60.0
    tracker.on_lane(LaneOutcome("out", acked=600))
    tracker.on_lane(LaneOutcome("out", dead_lettered=2, failures=1, error="HTTP 503"))
    [line] = log.lines()
    assert line.endswith(
        "out: 600 rows acknowledged (10.0/s), 2 dead-lettered, 1 failed writes, 7 pending; "
        "last error: HTTP 503"
    )
    clock.now += 60.0
    assert log.lines() == []  # idle
    tracker.on_lane(LaneOutcome("out", failures=1, error="HTTP 401", stopped=True))
    [line] = log.lines()
    assert "stopped: HTTP 401" in line


def test_progress_log_reports_from_its_thread_and_once_at_the_end():
    from cosmobac.monitoring.progress import ProgressLog

    tracker, printed = HealthTracker(), []
    with ProgressLog(tracker, printed.append, interval=0.01).running():
        tracker.on_lane(LaneOutcome("out", acked=5))
    assert len(printed) == 1 and "out: 5 rows acknowledged" in printed[0]
