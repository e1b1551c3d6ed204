"""Forwarding semantics: ack only after the sink confirmed, per-sink checkpoints, dead letters."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cosmobac import Batch, WriteResult
from cosmobac.config import RunConfig
from cosmobac.errors import ConfigError
from cosmobac.interfaces import ReadAheadStore, Store
from cosmobac.pacing import backoff_delay, next_step
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.testing import ListSensor, ListSink, MemoryStore

FAST = RunConfig(backoff=0.0, max_backoff=0.0, batch_size=4, max_attempts=3)


def readings(n: int, start: int = 0) -> Batch:
    ts = np.arange(start, start + n, dtype=np.int64) * 1000
    return Batch.from_columns(
        timestamp=ts, sensor_id=["s"] * n, temperature=np.arange(n, dtype=float)
    )


def filled(n: int) -> MemoryStore:
    store = MemoryStore()
    store.append(readings(n))
    return store


def test_forward_delivers_everything_once_and_acks_it():
    store, sink = filled(10), ListSink()
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert sorted(sink.written["timestamp"].tolist()) == list(range(0, 10_000, 1000))
    assert report.lanes[0].acked == 10 and report.ok
    assert len(store.read("out", 100)) == 0
    assert sink.calls == 3  # batches of 4, 4, 2


def test_each_sink_has_its_own_checkpoint():
    store = filled(6)
    good, bad = ListSink(), ListSink(fail=100)
    pipeline = Pipeline(store=store, lanes=[Lane("good", good), Lane("bad", bad)], run=FAST)
    report = pipeline.forward()
    assert len(good.written) == 6 and len(store.read("good", 100)) == 0
    assert len(store.read("bad", 100)) == 6  # nothing acked for the failing sink
    assert report.lanes[1].error is not None and "3 failed attempts" in report.lanes[1].error
    assert not report.ok


def test_transient_failures_are_retried_then_succeed():
    store, sink = filled(5), ListSink(fail=2)
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert report.ok and report.lanes[0].failures == 2 and len(sink.written) == 5


def test_permanent_failure_stops_at_once_with_nothing_acked():
    store, sink = filled(5), ListSink(fail=1, permanent=True)
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert report.lanes[0].error == "ListSink told to fail"
    assert sink.calls == 1 and len(store.read("out", 100)) == 5


def test_rows_to_retry_stay_pending_and_are_sent_again():
    store = filled(4)
    first = {"done": False}

    def respond(batch):
        if not first["done"]:
            first["done"] = True
            return WriteResult(retry=[1])
        return None

    sink = ListSink(respond=respond)
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert sorted(sink.written["timestamp"].tolist()) == [0, 1000, 2000, 3000]
    assert report.lanes[0].retried == 1 and report.lanes[0].acked == 4


def test_rejected_rows_are_dead_lettered_and_do_not_block_the_rest():
    store = filled(8)

    def respond(batch):
        bad = np.flatnonzero(batch["temperature"] == 2.0)
        return WriteResult(rejected={int(i): "too large" for i in bad}) if len(bad) else None

    sink = ListSink(respond=respond)
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert report.lanes[0].dead_lettered == 1 and report.lanes[0].acked == 7
    assert [d.reason for d in store.dead_letters("out")] == ["too large"]
    assert 2.0 not in sink.written["temperature"].tolist() and len(sink.written) == 7
    assert store.replay("out") == 1
    Pipeline(store=store, lanes=[Lane("out", ListSink())], run=FAST).forward()
    assert len(store.read("out", 100)) == 0


def test_rows_dropped_by_a_transform_count_as_handled():
    store, sink = filled(6), ListSink()
    keep_even = lambda b: b.select(b["temperature"] % 2 == 0)  # noqa: E731
    Pipeline(store=store, lanes=[Lane("out", sink, [keep_even])], run=FAST).forward()
    assert sink.written["temperature"].tolist() == [0.0, 2.0, 4.0]
    assert len(store.read("out", 100)) == 0


def test_failing_transform_dead_letters_the_batch_or_stops():
    def broken(batch):
        raise ValueError("bad calibration")

    store = filled(3)
    report = Pipeline(store=store, lanes=[Lane("out", ListSink(), [broken])], run=FAST).forward()
    assert report.lanes[0].dead_lettered == 3
    assert "bad calibration" in store.dead_letters("out")[0].reason
    stopping = RunConfig(on_transform_error="stop")
    with pytest.raises(ValueError, match="bad calibration"):
        Pipeline(store=filled(3), lanes=[Lane("out", ListSink(), [broken])], run=stopping).forward()


def test_aggregating_transform_without_seq_retries_the_whole_batch():
    store = filled(3)
    calls = {"n": 0}

    def summarise(batch):
        return Batch.from_columns(timestamp=[0], sensor_id=["s"], temperature=[1.0])

    def respond(batch):
        calls["n"] += 1
        return WriteResult(retry=[0]) if calls["n"] == 1 else None

    sink = ListSink(respond=respond)
    Pipeline(store=store, lanes=[Lane("out", sink, [summarise])], run=FAST).forward()
    assert calls["n"] == 2 and len(store.read("out", 100)) == 0


def test_stop_event_ends_follow_mode():
    store, sink = filled(2), ListSink()
    pipeline = Pipeline(store=store, lanes=[Lane("out", sink)], run=RunConfig(interval=0.01))
    timer = threading.Timer(0.2, pipeline.stop.set)
    timer.start()
    report = pipeline.forward(follow=True)
    timer.join()
    assert report.lanes[0].acked == 2


def test_collect_at_max_speed_reads_the_sensor_in_steps():
    sensor = ListSensor([readings(20)], start=0)
    store = MemoryStore()
    seen = []
    pipeline = Pipeline(
        store=store,
        sensor=sensor,
        run=RunConfig(duration=10.0, step=3.0),
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    report = pipeline.collect()
    assert report.rows_added == 10 and report.end == 10_000
    # a first step of 1 s learns the sensor's rate; then run.step, as the batches stay small
    assert [d for _, d, _ in seen] == [1000, 4000, 7000, 10_000]


def test_collect_at_max_speed_shrinks_its_step_to_hold_about_one_batch():
    """A fleet that makes more readings per step than run.batch_size is read in shorter steps,
    so a collect's memory follows batch_size, not fleet size × run.step."""

    sizes: list[int] = []

    class Counting(ListSensor):
        def read(self, until):
            batch = super().read(until)
            sizes.append(len(batch))
            return batch

    sensor = Counting([readings(5000)], start=0)  # one reading a second
    pipeline = Pipeline(
        store=MemoryStore(),
        sensor=sensor,
        run=RunConfig(duration=5000.0, step=600.0, batch_size=100),
    )
    assert pipeline.collect().rows_added == 5000
    assert max(sizes) <= 100  # 600 s steps would read 600 at a time
    assert sizes[-2] == 100  # and it settles on steps of about one batch


def test_next_step_aims_at_a_batch_and_stays_within_bounds():
    assert next_step(1000, 10_000, 20_000, 600_000) == 2000  # 10 rows/ms: 2 s holds a batch
    assert next_step(1000, 1, 20_000, 600_000) == 8000  # growth is at most 8× a step
    assert next_step(8000, 1, 20_000, 10_000) == 10_000  # never above run.step
    assert next_step(1000, 0, 20_000, 600_000) == 8000  # nothing read: grow
    assert next_step(1, 10**9, 20_000, 600_000) == 1  # never below 1 ms


def test_run_collects_and_forwards_everything():
    sensor = ListSensor([readings(12)], start=0)
    store, sink = MemoryStore(), ListSink()
    pipeline = Pipeline(
        store=store,
        sensor=sensor,
        lanes=[Lane("out", sink)],
        run=RunConfig(duration=12.0, step=5.0),
    )
    collected, forwarded = pipeline.run()
    assert collected.rows_added == 12 and forwarded.lanes[0].acked == 12
    assert len(sink.written) == 12


def test_collect_in_real_time_follows_the_wall_clock():
    sensor = ListSensor([readings(1000)], start=0)
    pipeline = Pipeline(
        store=MemoryStore(), sensor=sensor, run=RunConfig(duration=2.0, speed=20.0, interval=0.01)
    )
    report = pipeline.collect()  # 2 s of sensor time at 20x takes about 0.1 s
    assert report.rows_added == 2 and report.end == 2000


def test_max_speed_without_duration_is_refused():
    pipeline = Pipeline(store=MemoryStore(), sensor=ListSensor([], start=0))
    with pytest.raises(ConfigError, match="duration is required"):
        pipeline.collect()


def test_forward_without_sinks_is_refused():
    with pytest.raises(ConfigError, match="no sinks"):
        Pipeline(store=MemoryStore()).forward()


def test_backoff_is_full_jitter_and_capped():
    import random

    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 4.0, rng) for a in range(10) for _ in range(50)]
    assert min(delays) >= 0.0 and max(delays) <= 4.0
    assert max(backoff_delay(0, 0.5, 4.0, rng) for _ in range(100)) <= 0.5


def test_write_result_stats_are_summed():
    store = filled(8)
    sink = ListSink(respond=lambda b: WriteResult(stats={"request_charge": 1.5}))
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert report.lanes[0].stats == {"request_charge": 3.0}


class RunningCount:
    """A stateful transform: adds each sensor's running row count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, batch: Batch) -> Batch:
        out = []
        for sensor in batch["sensor_id"].tolist():
            self.counts[sensor] = self.counts.get(sensor, 0) + 1
            out.append(self.counts[sensor])
        return batch.with_columns(running=np.array(out, dtype=np.int64))

    def get_state(self) -> str:
        import json

        return json.dumps(self.counts)

    def set_state(self, state: str) -> None:
        import json

        self.counts = json.loads(state)


def test_stateful_transform_state_is_saved_with_the_ack_and_restored_on_restart():
    store = filled(10)
    first_sink = ListSink()
    first = Pipeline(store=store, lanes=[Lane("out", first_sink, [RunningCount()])], run=FAST)
    first.forward()
    store.append(readings(5, start=10))
    second_sink = ListSink()  # a new forwarder process: fresh transform, warm state from the store
    Pipeline(store=store, lanes=[Lane("out", second_sink, [RunningCount()])], run=FAST).forward()
    both = Batch.concat([first_sink.written, second_sink.written])
    assert both["running"].tolist() == list(range(1, 16))  # as if it had never stopped


def test_stateful_transform_state_is_rolled_back_when_a_batch_is_not_acked():
    store = filled(8)
    calls = {"n": 0}

    def respond(batch):
        calls["n"] += 1
        return WriteResult(retry=[0]) if calls["n"] == 2 else None

    sink = ListSink(respond=respond, fail=1)  # one failure, then one partial retry
    Pipeline(store=store, lanes=[Lane("out", sink, [RunningCount()])], run=FAST).forward()
    running = Batch.concat(sink.batches)
    # the partially written batch is written again in full, with the same running counts
    by_ts = {}
    for ts, n in zip(running["timestamp"].tolist(), running["running"].tolist(), strict=True):
        by_ts.setdefault(ts, set()).add(n)
    assert by_ts == {ts * 1000: {ts + 1} for ts in range(8)}
    assert len(store.read("out", 100)) == 0


def test_a_restarted_collector_resumes_after_the_newest_stored_reading():
    store = MemoryStore()
    first = Pipeline(
        store=store,
        sensor=ListSensor([readings(20)], start=0),
        run=RunConfig(duration=8.0, step=3.0),
    )
    assert first.collect().rows_added == 8
    sensor = ListSensor([readings(20)], start=0)  # a new process: the sensor starts over
    second = Pipeline(store=store, sensor=sensor, run=RunConfig(duration=20.0, step=3.0))
    report = second.collect()
    assert report.start == 7001 and report.rows_read == 12 and report.rows_added == 12


def test_follow_ends_when_every_sink_has_given_up():
    store, sink = filled(3), ListSink(fail=1, permanent=True)
    pipeline = Pipeline(store=store, lanes=[Lane("out", sink)], run=RunConfig(interval=0.01))
    report = pipeline.forward(follow=True)  # returns by itself: nothing left that could work
    assert report.lanes[0].error == "ListSink told to fail" and not report.ok


class PruningStore(MemoryStore):
    pruned = 0

    def prune(self) -> int:
        self.pruned += 1
        return 0


def test_forward_applies_the_store_retention():
    store = PruningStore()
    store.append(readings(3))
    Pipeline(store=store, lanes=[Lane("out", ListSink())], run=FAST).forward()
    assert store.pruned == 1


def test_forward_reports_progress_against_the_backlog():
    store = filled(10)
    seen = []
    pipeline = Pipeline(
        store=store,
        lanes=[Lane("a", ListSink()), Lane("b", ListSink())],
        run=FAST,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    pipeline.forward()
    assert {total for _, _, total in seen} == {20}  # two new sinks, 10 rows each
    assert seen[-1] == ("forward", 20, 20)
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)


def test_a_permanent_failure_stops_the_sink_for_the_rest_of_the_run():
    sensor = ListSensor([readings(12)], start=0)
    sink = ListSink(fail=1, permanent=True)
    pipeline = Pipeline(
        store=MemoryStore(), sensor=sensor, lanes=[Lane("out", sink)],
        run=RunConfig(duration=12.0, step=3.0),
    )  # fmt: skip
    _, forwarded = pipeline.run()
    assert sink.calls == 1  # not tried again at each collect step
    assert forwarded.lanes[0].error == "ListSink told to fail" and not forwarded.ok


# -- reading ahead ----------------------------------------------------------------------------------
class RecordingStore(MemoryStore):
    """A MemoryStore that records each read: the thread it ran on and its ``after`` (None for
    ``read``, the seq for ``read_after``)."""

    def __init__(self, *, slow_ahead: float = 0.0) -> None:
        super().__init__()
        self.reads: list[tuple[str, int | None]] = []
        self.active = 0
        self.slow_ahead = slow_ahead

    def _record(self, after, read):
        self.active += 1
        try:
            if after is not None and self.slow_ahead:
                threading.Event().wait(self.slow_ahead)
            self.reads.append((threading.current_thread().name.split("_")[0], after))
            return read()
        finally:
            self.active -= 1

    def read(self, consumer, limit):
        return self._record(None, lambda: super(RecordingStore, self).read(consumer, limit))

    def read_after(self, consumer, limit, after):
        return self._record(
            after, lambda: super(RecordingStore, self).read_after(consumer, limit, after)
        )


def test_the_next_full_batch_is_read_ahead_on_another_thread():
    store = RecordingStore()
    store.append(readings(10))
    sink = ListSink()
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert report.ok and report.lanes[0].acked == 10
    assert [b["timestamp"].tolist() for b in sink.batches] == [
        [0, 1000, 2000, 3000],
        [4000, 5000, 6000, 7000],
        [8000, 9000],
    ]
    assert store.reads == [
        ("MainThread", None),
        ("cosmobac-read-ahead", 4),  # read while batch 1 was written
        ("cosmobac-read-ahead", 8),  # while batch 2 was: a short batch 3 reads nothing ahead
        ("MainThread", None),  # nothing left
    ]


def test_a_batch_read_ahead_is_dropped_when_rows_of_the_one_before_must_be_retried():
    store = RecordingStore()
    store.append(readings(10))
    calls = {"n": 0}

    def respond(batch):
        calls["n"] += 1
        return WriteResult(retry=[1, 3]) if calls["n"] == 1 else None

    sink = ListSink(respond=respond)
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward()
    assert report.ok and report.lanes[0].acked == 10 and report.lanes[0].retried == 2
    # the rows to retry come first again, before the rows read ahead
    assert [b["timestamp"].tolist() for b in sink.batches] == [
        [0, 2000],
        [1000, 3000, 4000, 5000],
        [6000, 7000, 8000, 9000],
    ]
    assert sorted(sink.written["timestamp"].tolist()) == list(range(0, 10_000, 1000))


def test_a_store_that_is_not_a_read_ahead_store_is_read_in_the_foreground_only():
    class PlainStore(RecordingStore):
        read_after = None  # takes back the capability: not a ReadAheadStore

    store = PlainStore()
    assert isinstance(store, Store) and not isinstance(store, ReadAheadStore)
    store.append(readings(10))
    sink = ListSink()
    assert Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST).forward().ok
    assert len(sink.written) == 10 and len(sink.batches) == 3
    assert store.reads == [("MainThread", None)] * 4


def test_nothing_reads_the_store_once_forward_has_returned():
    store = RecordingStore(slow_ahead=0.3)
    store.append(readings(10))
    sink = ListSink(fail=1, permanent=True)  # the first write fails for good: forward returns
    pipeline = Pipeline(store=store, lanes=[Lane("out", sink)], run=FAST)
    report = pipeline.forward()
    assert not report.ok and store.active == 0
    assert store.reads[-1] == ("cosmobac-read-ahead", 4)  # it finished before forward returned
    assert len(store.read("out", 100)) == 10  # nothing acknowledged
    pipeline.close()


# -- components are checked against their Protocols -----------------------------------------------
def test_a_component_missing_a_method_is_refused_at_once_naming_it():
    class NoClose:
        def write(self, batch):
            return None

    with pytest.raises(
        TypeError, match=r"sink of lane 'out' \(NoClose\) is not a Sink: it lacks close"
    ):
        Pipeline(store=MemoryStore(), lanes=[Lane("out", NoClose())])

    class NoStats(MemoryStore):
        stats = None

    with pytest.raises(TypeError, match=r"the store \(NoStats\) is not a Store: it lacks stats"):
        Pipeline(store=NoStats())


def test_a_pipeline_from_a_file_closes_a_sensor_that_is_closeable():
    from cosmobac import hookimpl
    from cosmobac.config import parse_config
    from cosmobac.testing import fresh_plugins

    made = []

    class ClosingSensor(ListSensor):
        closed = 0

        def close(self):
            self.closed += 1

    class SensorPlugin:
        @hookimpl
        def register_sensors(self, register):
            register("closing", lambda: made.append(ClosingSensor()) or made[-1])

    with fresh_plugins() as plugins:
        plugins.register(SensorPlugin(), name="closing-sensor")
        config = parse_config({"sensor": {"plugin": "closing"}, "store": {"plugin": "memory"}})
        with Pipeline.from_config(config, plugins=plugins, need_sensor=True):
            pass
    assert len(made) == 1 and made[0].closed == 1


def test_build_store_asks_a_store_not_to_create_only_when_it_can_be_asked():
    """``create=False`` reaches a factory with a ``create`` keyword (overriding the file's own
    ``create``), never one without it; ``create=True`` leaves the file's value alone."""
    from cosmobac import hookimpl
    from cosmobac.config import parse_config
    from cosmobac.errors import StoreMissingError
    from cosmobac.pipeline import build_store, wait_for_store
    from cosmobac.testing import fresh_plugins

    seen: list[object] = []
    exists = threading.Event()

    def file_store(name: str, create: bool = True) -> MemoryStore:
        seen.append(create)
        if not create and not exists.is_set():
            raise StoreMissingError(f"store {name}: does not exist")
        return MemoryStore()

    class Stores:
        @hookimpl
        def register_stores(self, register):
            register("file", file_store)

    with fresh_plugins() as plugins:
        plugins.register(Stores(), name="stores")
        on_file = parse_config(
            {"store": {"plugin": "file", "name": "x", "create": True}, "run": {"interval": "10ms"}}
        )
        build_store(on_file, plugins=plugins).close()
        with pytest.raises(StoreMissingError, match="store x: does not exist"):
            build_store(on_file, plugins=plugins, create=False)
        with pytest.raises(StoreMissingError):
            Pipeline.from_config(on_file, plugins=plugins, create_store=False)
        kept = parse_config({"store": {"plugin": "file", "name": "x", "create": False}})
        with pytest.raises(StoreMissingError):
            build_store(kept, plugins=plugins, create=True)  # the file's create = false stands
        assert seen == [True, False, False, False]
        memory = parse_config({"store": {"plugin": "memory"}})
        assert isinstance(build_store(memory, plugins=plugins, create=False), MemoryStore)

        stop = threading.Event()
        stop.set()
        assert wait_for_store(on_file, stop=stop, plugins=plugins) is False  # stopped first
        timer = threading.Timer(0.1, exists.set)
        timer.start()
        try:
            assert wait_for_store(on_file, stop=threading.Event(), plugins=plugins) is True
        finally:
            timer.cancel()


def test_following_a_sink_that_caught_up_keeps_delivering_while_another_retries():
    """One sink failing transiently (in backoff) must not hold back a sink that caught up."""
    store = filled(4)
    good, bad = ListSink(), ListSink(fail=10**6)
    run = RunConfig(backoff=0.05, max_backoff=0.05, batch_size=4, interval=0.01)
    pipeline = Pipeline(store=store, lanes=[Lane("good", good), Lane("bad", bad)], run=run)
    thread = threading.Thread(target=pipeline.forward, kwargs={"follow": True})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(good.written) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        store.append(readings(4, start=100))  # new rows while "bad" keeps retrying
        while len(good.written) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        pipeline.stop.set()
        thread.join(timeout=30)
    assert len(good.written) == 8
    assert bad.calls >= 1 and len(bad.written) == 0  # still failing all along


def test_a_write_that_settled_some_rows_is_progress_not_a_failure():
    """A sink that writes part of a batch and asks for the rest again (a rate budget, a throttled
    share) is sent the rest at once, without a failed write or a backoff; a write that settles
    nothing is a failure, as before."""
    store = filled(8)

    def respond(batch):
        return WriteResult(retry=list(range(2, len(batch)))) if len(batch) > 2 else None

    sink = ListSink(respond=respond)
    slow = RunConfig(backoff=60.0, max_backoff=60.0, batch_size=4, max_attempts=3)
    report = Pipeline(store=store, lanes=[Lane("out", sink)], run=slow).forward()
    lane = report.lanes[0]
    assert lane.error is None and lane.acked == 8 and lane.failures == 0 and lane.retried > 0
    assert sorted(sink.written["timestamp"].tolist()) == list(range(0, 8000, 1000))
    nothing = ListSink(respond=lambda b: WriteResult(retry=list(range(len(b)))))
    report = Pipeline(store=filled(2), lanes=[Lane("out", nothing)], run=FAST).forward()
    assert report.lanes[0].failures == FAST.max_attempts and report.lanes[0].error is not None


# -- fusable transforms -----------------------------------------------------------------------
class AddTemperature:
    """Adds ``amount`` to temperature; merges with a following AddTemperature (the sum)."""

    def __init__(self, amount: float, calls: list[str]) -> None:
        self.amount, self.calls = amount, calls

    def __call__(self, batch: Batch) -> Batch:
        self.calls.append(f"add {self.amount:g}")
        return batch.with_columns({"temperature": batch["temperature"] + self.amount})

    def fuse_with(self, following):
        if isinstance(following, AddTemperature):
            return AddTemperature(self.amount + following.amount, self.calls)
        return None


class CountRows:
    """A stateful transform: counts the rows it has seen (its state)."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, batch: Batch) -> Batch:
        self.seen += len(batch)
        return batch

    def get_state(self) -> str:
        return str(self.seen)

    def set_state(self, state: str) -> None:
        self.seen = int(state)


def test_fuse_transforms_merges_runs_in_order():
    from cosmobac.assembly import fuse_transforms
    from cosmobac.interfaces import FusableTransform

    calls: list[str] = []
    a, b, c = (AddTemperature(x, calls) for x in (1.0, 2.0, 4.0))
    counter = CountRows()
    assert isinstance(a, FusableTransform) and not isinstance(counter, FusableTransform)
    fused = fuse_transforms([a, b, counter, c])
    assert [type(t).__name__ for t in fused] == ["AddTemperature", "CountRows", "AddTemperature"]
    assert fused[0].amount == 3.0 and fused[1] is counter and fused[2] is c
    assert fuse_transforms([]) == [] and fuse_transforms([counter]) == [counter]


def test_a_pipeline_runs_fused_transforms_and_keeps_state_keys_as_declared():
    calls: list[str] = []
    store = MemoryStore()
    store.append(
        Batch.from_columns(
            sensor_id=np.array(["s"] * 5, dtype=object),
            timestamp=np.arange(5, dtype=np.int64),
            temperature=np.full(5, 20.0),
        )
    )
    sink, counter = ListSink(), CountRows()
    chain = [AddTemperature(1.0, calls), AddTemperature(2.0, calls), counter]
    with Pipeline(store=store, lanes=[Lane("out", sink, chain)]) as pipeline:
        pipeline.forward()
    assert calls == ["add 3"]  # one merged call, not two
    assert [r["temperature"] for b in sink.batches for r in b.rows()] == [23.0] * 5
    # the counter's state is saved under its declared place (2), not its place after fusion (1)
    assert store.load_state("out") == {"transform.2.CountRows": "5"}
