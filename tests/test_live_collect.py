"""The collect loop with a live sensor: real time, flushes, commit after store, state, rejects."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from cosmobac import InputStore, Pipeline
from cosmobac.batch import Batch
from cosmobac.interfaces import LiveSensor, SourceReportingSensor, SourceStatus
from cosmobac.testing import ListSink, MemoryStore, QueueSensor, sample_readings


def rows(n: int, offset: int = 0) -> Batch:
    return sample_readings(n, offset=offset)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def collect_in_thread(pipeline: Pipeline, **kwargs) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(pipeline.collect(**kwargs)), daemon=True)
    thread.start()
    return thread, out


def test_queue_sensor_is_a_live_sensor():
    assert isinstance(QueueSensor(), LiveSensor)


def test_a_finished_sensor_ends_collect_with_everything_stored_and_committed():
    sensor, store = QueueSensor(), MemoryStore()
    sensor.put(rows(5))
    sensor.put(rows(3, offset=5))
    sensor.finish()
    with Pipeline(store=store, sensor=sensor) as pipeline:
        report = pipeline.collect()
    assert (report.rows_read, report.rows_added) == (8, 8)
    assert len(store.scan()) == 8
    assert sensor.committed == 8


def test_no_duration_runs_until_stopped_then_stores_what_it_holds():
    sensor, store = QueueSensor(), MemoryStore()
    pipeline = Pipeline(store=store, sensor=sensor, run={"speed": "max", "flush_interval": "1h"})
    thread, out = collect_in_thread(pipeline)
    sensor.put(rows(4))  # fewer than batch_size, and the flush interval is an hour away
    time.sleep(0.3)
    assert thread.is_alive(), "collect ended by itself without a duration"
    pipeline.stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert out[0].rows_added == 4, "rows in hand at the stop were not stored"
    assert sensor.committed == 4


def test_readings_are_stored_every_flush_interval_while_collect_runs():
    sensor, store = QueueSensor(), MemoryStore()
    pipeline = Pipeline(store=store, sensor=sensor, run={"flush_interval": "50ms"})
    thread, _ = collect_in_thread(pipeline)
    try:
        for i in range(3):
            sensor.put(rows(2, offset=2 * i))
            wait_until(lambda i=i: len(store.scan()) == 2 * (i + 1))
    finally:
        pipeline.stop.set()
        thread.join(10)


def test_a_full_batch_is_stored_before_the_flush_interval():
    sensor, store = QueueSensor(), MemoryStore()
    run = {"flush_interval": "1h", "batch_size": 5}
    pipeline = Pipeline(store=store, sensor=sensor, run=run)
    thread, _ = collect_in_thread(pipeline)
    try:
        sensor.put(rows(5))
        wait_until(lambda: len(store.scan()) == 5)
    finally:
        pipeline.stop.set()
        thread.join(10)


def test_duration_is_wall_clock_time_for_a_live_sensor():
    sensor, store = QueueSensor(), MemoryStore()
    sensor.put(rows(3))
    with Pipeline(store=store, sensor=sensor) as pipeline:
        report = pipeline.collect(duration=0.2)
    assert report.rows_added == 3
    assert report.end >= report.start + 200


class StoreChecks(QueueSensor):
    """Commits only what the store already holds: fails the test otherwise."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store
        self.seen_at_commit: list[int] = []

    def commit(self) -> None:
        self.seen_at_commit.append(len(self.store.scan()))
        super().commit()


def test_commit_comes_after_the_rows_are_stored():
    store = MemoryStore()
    sensor = StoreChecks(store)
    sensor.put(rows(4))
    sensor.finish()
    with Pipeline(store=store, sensor=sensor) as pipeline:
        pipeline.collect()
    assert sensor.seen_at_commit[0] == 4


class FailingStore(MemoryStore):
    def append_input(self, *args, **kwargs):
        raise OSError("disk full")


def test_nothing_is_committed_when_the_store_fails():
    store, sensor = FailingStore(), QueueSensor()
    sensor.put(rows(2))
    sensor.finish()
    with Pipeline(store=store, sensor=sensor) as pipeline, pytest.raises(OSError, match="disk"):
        pipeline.collect()
    assert sensor.committed == 0


def test_rejects_are_stored_under_the_sensor_name():
    sensor, store = QueueSensor(), MemoryStore()
    sensor.put(rows(1))
    sensor.reject("feed.csv:7", "temperature 'abc' is not a number", "a,abc")
    sensor.finish()
    with Pipeline(store=store, sensor=sensor) as pipeline:
        pipeline.collect()
    (reject,) = store.input_rejects()
    assert (reject.sensor, reject.origin, reject.raw) == ("QueueSensor", "feed.csv:7", "a,abc")


class PlainStore:
    """A Store without the InputStore capability (delegates to a MemoryStore)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def append(self, batch):
        return self.inner.append(batch)

    def read(self, consumer, limit):
        return self.inner.read(consumer, limit)

    def ack(self, consumer, batch, *, state=None):
        self.inner.ack(consumer, batch, state=state)

    def dead_letter(self, consumer, batch, reason):
        self.inner.dead_letter(consumer, batch, reason)

    def stats(self):
        return self.inner.stats()

    def close(self):
        pass


def test_a_store_without_input_tables_logs_the_rejects(caplog):
    store, sensor = PlainStore(), QueueSensor()
    assert not isinstance(store, InputStore)
    sensor.put(rows(2))
    sensor.reject("topic t/1", "payload is not JSON", b"\xff")
    sensor.finish()
    with caplog.at_level(logging.WARNING), Pipeline(store=store, sensor=sensor) as pipeline:
        pipeline.collect()
    assert len(store.inner.scan()) == 2
    assert "topic t/1: payload is not JSON" in caplog.text


class Positioned(QueueSensor):
    """A stateful live sensor: its state is how many rows it has returned."""

    def __init__(self) -> None:
        super().__init__()
        self.position = 0
        self.restored: list[str] = []

    def read(self, until: int) -> Batch:
        batch = super().read(until)
        self.position += len(batch)
        return batch

    def get_state(self) -> str:
        return str(self.position)

    def set_state(self, state: str) -> None:
        self.restored.append(state)
        self.position = int(state)


def test_a_stateful_sensor_resumes_from_the_state_stored_with_its_rows():
    store = MemoryStore()
    first = Positioned()
    first.put(rows(3))
    first.finish()
    with Pipeline(store=store, sensor=first) as pipeline:
        pipeline.collect()
    assert store.load_sensor_state("Positioned") == "3"
    second = Positioned()
    second.put(rows(2, offset=3))
    second.finish()
    with Pipeline(store=store, sensor=second) as pipeline:
        pipeline.collect()
    assert second.restored == ["3"]
    assert store.load_sensor_state("Positioned") == "5"


def test_run_forwards_what_a_live_sensor_stored():
    sensor, store, sink = QueueSensor(), MemoryStore(), ListSink()
    sensor.put(rows(6))
    sensor.finish()
    with Pipeline(store=store, sensor=sensor, sinks=[sink]) as pipeline:
        collected, forwarded = pipeline.run()
    assert collected.rows_added == 6
    assert len(sink.written) == 6 and forwarded.ok


def test_flush_interval_is_checked():
    with pytest.raises(ValueError, match="flush_interval"):
        Pipeline(store="memory", run={"flush_interval": "0s"})


@pytest.mark.needs_plugins
def test_dead_letters_inputs_lists_the_rejects_of_a_store(tmp_path):
    import json

    from click.testing import CliRunner

    from cosmobac.cli import cli
    from cosmobac.interfaces import InputReject
    from cosmobac_sqlite import SQLiteStore

    db = tmp_path / "edge.db"
    with SQLiteStore(db) as store:
        store.append_input(
            rows(2),
            sensor="csv",
            state="{}",
            rejects=[InputReject("data/a.csv:17", "column 'temp_c': 'n/a' is not a number", "x")],
        )
        store.append_input(rows(0), sensor="mqtt", rejects=[InputReject("topic t/1", "not JSON")])
    config = tmp_path / "p.toml"
    config.write_text(f'[store]\nplugin = "sqlite"\npath = "{db}"\n')
    result = CliRunner().invoke(cli, ["dead-letters", "inputs", str(config)])
    assert result.exit_code == 0, result.output
    assert "csv  data/a.csv:17: column 'temp_c': 'n/a' is not a number  'x'" in result.output
    assert "mqtt  topic t/1: not JSON" in result.output
    result = CliRunner().invoke(
        cli, ["dead-letters", "inputs", str(config), "--sensor", "mqtt", "--json"]
    )
    (line,) = result.output.splitlines()
    assert json.loads(line)["origin"] == "topic t/1"


def test_dead_letters_inputs_names_a_store_that_keeps_none(tmp_path):
    from click.testing import CliRunner

    from cosmobac.cli import cli

    config = tmp_path / "p.toml"
    config.write_text('[store]\nplugin = "memory"\n')
    result = CliRunner().invoke(cli, ["dead-letters", "inputs", str(config)])
    assert result.exit_code == 0 and "no input rejects" in result.output


def test_input_rejects_are_counted_by_the_metrics():
    prometheus_client = pytest.importorskip("prometheus_client")
    from cosmobac.monitoring import HealthTracker, Monitor, ObserverGroup

    store, sensor = MemoryStore(), QueueSensor()
    monitor = Monitor(store=lambda: store, consumers=list)
    sensor.put(rows(2))
    sensor.reject("topic t/1", "payload is not JSON", "{")
    sensor.reject("topic t/2", "payload is not JSON", "}")
    sensor.finish()
    observer = ObserverGroup(HealthTracker(), monitor)
    with Pipeline(store=store, sensor=sensor, observer=observer) as pipeline:
        pipeline.collect()
    text = prometheus_client.generate_latest(monitor.registry).decode()
    assert 'cosmobac_input_rejects_total{sensor="QueueSensor"} 2.0' in text
    assert "cosmobac_rows_stored_total 2.0" in text


class Pumps(QueueSensor):
    """A queue sensor that reports two sources, one up and one down, counting its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, now):
        self.reads += 1
        return super().read(now)

    def sources(self):
        return (
            SourceStatus("pump-1", up=True, polls=self.reads, readings=self.reads),
            SourceStatus("pump-2", up=False, polls=self.reads, failures=self.reads, last_error="x"),
        )


def test_the_sources_a_sensor_reports_reach_the_metrics():
    prometheus_client = pytest.importorskip("prometheus_client")
    from cosmobac.monitoring import HealthTracker, Monitor, ObserverGroup

    store, sensor = MemoryStore(), Pumps()
    assert isinstance(sensor, SourceReportingSensor)
    monitor = Monitor(store=lambda: store, consumers=list)
    text = prometheus_client.generate_latest(monitor.registry).decode()
    assert "# TYPE cosmobac_source_up gauge" in text  # listed before any sensor reported
    assert "cosmobac_source_up{" not in text
    sensor.put(rows(2))
    sensor.finish()
    observer = ObserverGroup(HealthTracker(), monitor)
    with Pipeline(store=store, sensor=sensor, observer=observer) as pipeline:
        pipeline.collect()
    reads = float(sensor.reads)
    assert reads >= 1
    text = prometheus_client.generate_latest(monitor.registry).decode()
    assert 'cosmobac_source_up{sensor="Pumps",source="pump-1"} 1.0' in text
    assert 'cosmobac_source_up{sensor="Pumps",source="pump-2"} 0.0' in text
    assert f'cosmobac_source_polls_total{{sensor="Pumps",source="pump-2"}} {reads}' in text
    assert f'cosmobac_source_failures_total{{sensor="Pumps",source="pump-2"}} {reads}' in text
    assert 'cosmobac_source_failures_total{sensor="Pumps",source="pump-1"} 0.0' in text
    assert f'cosmobac_source_readings_total{{sensor="Pumps",source="pump-1"}} {reads}' in text


@pytest.mark.needs_plugins
def test_a_sensor_table_name_keys_its_state_and_rejects(tmp_path):
    """Two csv collectors sharing a store keep their positions apart under their names."""
    from cosmobac_sqlite import SQLiteStore

    db = tmp_path / "edge.db"
    for site in ("a", "b"):
        (tmp_path / f"{site}.csv").write_text(
            f"sensor_id,timestamp,temperature\n{site}-1,2026-01-01T00:00:00Z,1.5\n{site}-1,x,2\n"
        )
        config = tmp_path / f"{site}.toml"
        config.write_text(
            f'[sensor]\nplugin = "csv"\nname = "site-{site}"\npath = "{tmp_path / site}.csv"\n'
            f'[store]\nplugin = "sqlite"\npath = "{db}"\n'
        )
        with Pipeline.from_config(str(config), need_sensor=True) as pipeline:
            assert pipeline.sensor_name == f"site-{site}"
            pipeline.collect()
    with SQLiteStore(db) as store:
        assert store.load_sensor_state("site-a") and store.load_sensor_state("site-b")
        assert store.load_sensor_state("csv") is None
        assert sorted(r.sensor for r in store.input_rejects()) == ["site-a", "site-b"]


def test_a_sensor_table_in_code_may_carry_a_name():
    with Pipeline(store="memory", sensor={"plugin": "simulated", "name": "fleet"}) as pipeline:
        assert pipeline.sensor_name == "fleet"
