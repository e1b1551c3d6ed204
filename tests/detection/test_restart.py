"""Checkpoint and restart through the SQLite store: a forwarder stopped mid-way and started again
(new process: new store connection, new transforms, warm state from the store) gives the same
detections and windows as one that never stopped."""

from __future__ import annotations

import pytest
from detection_support import fleet_rows, same_columns

from cosmobac.batch import Batch
from cosmobac.config import RunConfig
from cosmobac.detectors import DETECTORS
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.testing import ListSink
from cosmobac.transforms.aggregate import Aggregate
from cosmobac_sqlite import SQLiteStore

pytestmark = pytest.mark.needs_plugins  # the sqlite store

DETECTOR_COLUMNS = [c for name in DETECTORS for c in (f"{name}_score", f"{name}_detected")] + [
    "anomaly_score",
    "detected",
    "detector",
]


def chain():
    return [cls() for cls in DETECTORS.values()]


class StopAfter(ListSink):
    """A sink that asks its pipeline to stop after ``count`` writes (a forwarder shut down)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.pipeline: Pipeline | None = None

    def write(self, batch):
        result = super().write(batch)
        if len(self.batches) >= self.count and self.pipeline is not None:
            self.pipeline.stop.set()
        return result


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "edge.db"
    with SQLiteStore(path) as store:
        rows = fleet_rows(2, 3, 40)
        for i in range(0, len(rows), 3000):  # collected in steps, like `cosmobac collect`
            store.append(rows.select(slice(i, i + 3000)))
    return path


def forward(path, consumer, transforms, *, batch_size=1000, stop_after=None, fail=0):
    sink = StopAfter(stop_after) if stop_after else ListSink()
    sink.fail = fail
    with SQLiteStore(path) as store:
        pipeline = Pipeline(
            store=store,
            lanes=[Lane(consumer, sink, transforms)],
            run=RunConfig(batch_size=batch_size, backoff=0.0, max_backoff=0.0),
        )
        if stop_after:
            sink.pipeline = pipeline
        report = pipeline.forward()
    assert report.ok
    return sink.written


def test_detectors_restarted_mid_way_give_the_same_results(store_path):
    uninterrupted = forward(store_path, "whole", chain())
    first = forward(store_path, "restarted", chain(), stop_after=7)
    assert 0 < len(first) < len(uninterrupted)
    second = forward(store_path, "restarted", chain())  # a new process: fresh transforms
    restarted = Batch.concat([first, second])
    assert len(restarted) == len(uninterrupted) == 14_400
    same_columns(uninterrupted, restarted, [*DETECTOR_COLUMNS, "timestamp", "sensor_id"])
    assert uninterrupted["detected"].any()


def test_a_restart_with_another_batch_size_gives_the_same_results(store_path):
    uninterrupted = forward(store_path, "whole", chain(), batch_size=1000)
    first = forward(store_path, "other", chain(), batch_size=777, stop_after=5)
    second = forward(store_path, "other", chain(), batch_size=2500)
    same_columns(uninterrupted, Batch.concat([first, second]), DETECTOR_COLUMNS)


def test_failed_writes_roll_the_state_back(store_path):
    uninterrupted = forward(store_path, "whole", chain())
    flaky = forward(store_path, "flaky", chain(), fail=3)  # three failed writes, retried
    same_columns(uninterrupted, flaky, DETECTOR_COLUMNS)


def test_the_state_is_in_the_store(store_path):
    forward(store_path, "restarted", chain(), stop_after=2)
    with SQLiteStore(store_path) as store:
        saved = store.load_state("restarted")
    assert len(saved) == len(DETECTORS)
    assert all(key.startswith("transform.") for key in saved)


def aggregate_windows(path, consumer, *, batch_size, stop_after=None):
    return forward(
        path, consumer, [Aggregate(window="1m")], batch_size=batch_size, stop_after=stop_after
    )


def test_aggregate_windows_survive_restarts_and_batch_boundaries(store_path):
    uninterrupted = aggregate_windows(store_path, "whole", batch_size=1000)
    parts = [aggregate_windows(store_path, "restarted", batch_size=333, stop_after=4)]
    parts.append(aggregate_windows(store_path, "restarted", batch_size=1700, stop_after=2))
    parts.append(aggregate_windows(store_path, "restarted", batch_size=1000))
    restarted = Batch.concat(parts)
    assert restarted.equals(uninterrupted)
    # each closed window once: 6 sensors × 39 closed minutes (the 40th is still open)
    keys = list(zip(restarted["sensor_id"].tolist(), restarted["timestamp"].tolist(), strict=True))
    assert len(keys) == len(set(keys)) == 6 * 39
    assert (restarted["count"] == 60).all()
    rows = fleet_rows(2, 3, 40)
    assert (
        restarted["anomaly_count"].sum()
        == rows["anomaly_flag"][
            rows["timestamp"] < rows["timestamp"].min() // 60_000 * 60_000 + 39 * 60_000
        ].sum()
    )


def test_a_sink_failure_does_not_lose_or_repeat_windows(store_path):
    uninterrupted = aggregate_windows(store_path, "whole", batch_size=1000)
    sink = ListSink(fail=2)
    with SQLiteStore(store_path) as store:
        Pipeline(
            store=store,
            lanes=[Lane("flaky", sink, [Aggregate(window="1m")])],
            run=RunConfig(batch_size=1000, backoff=0.0, max_backoff=0.0),
        ).forward()
    assert sink.calls == len(sink.batches) + 2
    assert sink.written.equals(uninterrupted)
