"""The conformance kit (``cosmobac.testing.check_*``): core's components pass it, and broken
components fail it with a message naming the guarantee they break."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from collections.abc import Iterator

import numpy as np
import pytest

from cosmobac import Batch, WriteResult
from cosmobac.batch import to_epoch_ms
from cosmobac.interfaces import (
    ConsumerAdminStore,
    DeadLetterStore,
    FileStore,
    FixedStartSensor,
    PrunableStore,
    ReadAheadStore,
    ResumableStore,
    ScannableStore,
    SeekableSensor,
    StatefulStore,
    Store,
    StoreStats,
    missing_members,
)
from cosmobac.schema import STORE_SEQ
from cosmobac.sensors.simulated import SimulatedFleet
from cosmobac.sinks.jsonl import JsonlSink
from cosmobac.sinks.parquet import ParquetSink
from cosmobac.sinks.stdout import StdoutSink
from cosmobac.sinks.webhook import WebhookSink
from cosmobac.testing import (
    ListSensor,
    ListSink,
    MemoryStore,
    check_sensor,
    check_sink,
    check_store,
    check_transform,
    fresh_plugins,
    sample_readings,
)
from webhook_receiver import Receiver


# -- what core's components declare, and pass ------------------------------------------------------
def test_memory_store_declares_its_capabilities_and_passes_the_store_checks():
    store = MemoryStore()
    for protocol in (
        ReadAheadStore,
        StatefulStore,
        ResumableStore,
        ScannableStore,
        DeadLetterStore,
        ConsumerAdminStore,
    ):
        assert isinstance(store, protocol), protocol
    assert not isinstance(store, PrunableStore) and not isinstance(store, FileStore)
    ran = check_store(MemoryStore)
    assert any("ReadAheadStore" in name for name in ran)
    assert any("remove_consumer" in name for name in ran)
    assert not any("PrunableStore" in name for name in ran)


def test_the_memory_store_is_a_built_in_store_plugin_passing_the_store_checks():
    import cosmobac
    from cosmobac.stores.memory import MemoryStore as BuiltIn

    assert MemoryStore is BuiltIn is cosmobac.MemoryStore  # one class, re-exported
    with fresh_plugins() as plugins:
        component = plugins.get("store", "memory")
        assert component.accepted_keys() == []
        made = plugins.create("store", "memory")
        assert type(made) is BuiltIn
        assert check_store(lambda: plugins.create("store", "memory"))


def test_memory_store_reports_the_oldest_stored_row_for_consumers_that_never_read(monkeypatch):
    now = {"ns": 1_700_000_000_000 * 1_000_000}
    monkeypatch.setattr("cosmobac.stores.memory.time.time_ns", lambda: now["ns"])
    store = MemoryStore()
    empty = store.stats()
    assert empty.oldest_stored_age_s is None and empty.oldest_stored_timestamp is None
    year_2000 = 946_684_800_000
    store.append(sample_readings(3, start=year_2000))
    now["ns"] += 10_000 * 1_000_000
    store.append(sample_readings(2, start=4_102_444_800_000))
    now["ns"] += 5_000 * 1_000_000
    stats = store.stats()
    assert stats.pending == {}
    assert stats.oldest_stored_age_s == 15.0  # the first append, not the reading's year 2000
    assert stats.oldest_stored_timestamp == year_2000 / 1000
    assert stats.backlog_of("never") == (5, 15.0, year_2000 / 1000)
    store.ack("a", store.read("a", 10))  # acknowledged rows stay stored
    stats = store.stats()
    assert stats.backlog_of("a") == (0, None, None)
    assert stats.backlog_of("never") == (5, 15.0, year_2000 / 1000)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_memory_store_passes_the_model_check_for_other_seeds(seed):
    assert check_store(MemoryStore, seed=seed)


def test_list_sink_passes_the_sink_checks_reading_back_what_it_kept():
    ran = check_sink(ListSink, read_back=lambda sink: sink.written.rows(), idempotent=False)
    assert "read_back holds every row written" in ran


def _jsonl_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_jsonl_sink_passes_reading_back_every_line(tmp_path):
    paths = (tmp_path / f"out-{i}.jsonl" for i in itertools.count())
    ran = check_sink(
        lambda: JsonlSink(path=next(paths)),
        read_back=lambda sink: _jsonl_lines(sink.path),
        idempotent=False,  # append-only: a replay adds lines, readers keep the last per id
    )
    assert "read_back holds every row written" in ran
    assert "spans and fetch read back what was written (ReadableSink)" in ran


class _CountsEveryLine(JsonlSink):
    """Reads back, but counts a document written twice twice."""

    def spans(self, *, start=None, end=None, sensors=None):
        from cosmobac.interfaces import SensorSpan

        found = {}
        for doc in self._documents():
            if sensors is not None and doc["sensor_id"] not in set(sensors):
                continue
            n, first, last = found.get(doc["sensor_id"], (0, None, None))
            ms = to_epoch_ms(doc["timestamp"])
            found[doc["sensor_id"]] = (n + 1, min(first or ms, ms), max(last or ms, ms))
        return {k: SensorSpan(*v) for k, v in found.items()}


class _FetchesChanged(JsonlSink):
    def fetch(self, ids):
        return {k: {**v, "humidity": 0.0} for k, v in super().fetch(ids).items()}


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        (_CountsEveryLine, "spans\\(sensors=...\\) gave"),
        (_FetchesChanged, "humidity .* fetched as 0.0"),
    ],
)
def test_a_readable_sink_that_reads_back_wrong_fails(tmp_path, sink, message):
    paths = (tmp_path / f"out-{i}.jsonl" for i in itertools.count())
    with pytest.raises(AssertionError, match=message):
        check_sink(lambda: sink(path=next(paths)), idempotent=False)


def test_stdout_sink_passes_reading_back_what_it_printed():
    out = io.StringIO()

    def make():
        out.seek(0)
        out.truncate()
        return StdoutSink()

    def printed(sink):
        return [json.loads(line) for line in out.getvalue().splitlines()]

    with contextlib.redirect_stdout(out):
        ran = check_sink(make, read_back=printed, idempotent=False)
        assert check_sink(lambda: StdoutSink(format="summary"))
    assert "read_back holds every row written" in ran


def test_parquet_sink_passes_and_writes_a_replayed_batch_once(tmp_path):
    import pyarrow.dataset as ds

    folders = (tmp_path / f"archive-{i}" for i in itertools.count())

    def read_back(sink):
        if not sink.path.exists():
            return []
        return ds.dataset(sink.path, partitioning="hive").to_table().to_pylist()

    ran = check_sink(lambda: ParquetSink(path=next(folders), fsync=False), read_back=read_back)
    assert "the same batch written twice is held once" in ran


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_sink_passes_against_a_loopback_server(receiver):
    def make():
        receiver.posts.clear()
        return WebhookSink(url=receiver.url, include="all")

    def received(sink):
        return [doc for post in receiver.posts for doc in post["documents"]]

    ran = check_sink(make, read_back=received, idempotent=False)  # a receiver dedupes by id
    assert "read_back holds every row written" in ran


def test_webhook_sink_rejections_are_valid_write_results(receiver):
    receiver.status = 422  # the server refuses every document for its content
    check_sink(lambda: WebhookSink(url=receiver.url, include="all"))


def test_list_sensor_and_the_simulated_fleet_pass_the_sensor_checks():
    batches = [sample_readings(30)]
    assert any("SeekableSensor" in n for n in check_sensor(lambda: ListSensor(batches)))
    fleet = SimulatedFleet(cities=1, sensors_per_city=2, seed=7)
    assert isinstance(fleet, FixedStartSensor) and isinstance(fleet, SeekableSensor)
    ran = check_sensor(lambda: SimulatedFleet(cities=1, sensors_per_city=2, seed=7))
    assert any("SeekableSensor" in n for n in ran)


TRANSFORMS = [
    ("zscore", {}),
    ("robust_zscore", {}),
    ("ewma", {}),
    ("spike", {}),
    ("cusum", {}),
    ("stuck", {}),
    ("dropout", {}),
    ("context", {}),
    ("entropy", {}),
    ("ensemble", {}),
    ("calibrate", {"columns": {"temperature": {"gain": 2.0, "offset": 1.0}}}),
    ("drop_columns", {"columns": ["tag"]}),
    ("filter_sensors", {"sensors": ["conformance-1"]}),
    ("validate", {}),
    ("convert", {"units": {"temperature": "degF"}}),
    ("aggregate", {"window": "10s"}),
]


@pytest.mark.parametrize(("name", "keys"), TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_built_in_transforms_pass_the_transform_checks(name, keys):
    with fresh_plugins() as plugins:
        check_transform(lambda: plugins.create("transform", name, **keys))


def test_the_transforms_list_covers_every_built_in_transform():
    with fresh_plugins() as plugins:
        built_in = {c.name for c in plugins.components() if c.kind == "transform"}
    assert built_in == {name for name, _ in TRANSFORMS}


def test_a_detector_is_checked_as_a_stateful_transform():
    from cosmobac.detectors import ZScore

    assert any("StatefulTransform" in n for n in check_transform(ZScore))


# -- broken components fail, naming the guarantee ---------------------------------------------------
class ForgetsToDedupe(MemoryStore):
    def append(self, batch):
        self._keys.clear()
        return super().append(batch)


class IgnoresLimit(MemoryStore):
    def read(self, consumer, limit):
        return super().read(consumer, 1_000_000)


class AcksEverything(MemoryStore):
    def ack(self, consumer, batch, *, state=None):
        super().ack(consumer, self.read(consumer, 1_000_000), state=state)


class SharedCheckpoint(MemoryStore):
    def read(self, consumer, limit):
        return super().read("everyone", limit)

    def ack(self, consumer, batch, *, state=None):
        super().ack("everyone", batch, state=state)


class DeadLettersBlock(MemoryStore):
    def dead_letter(self, consumer, batch, reason):
        pass  # the row stays at the head of the queue


class MergesState(MemoryStore):
    def ack(self, consumer, batch, *, state=None):
        if state is not None:
            state = {**self.load_state(consumer), **state}
        super().ack(consumer, batch, state=state)


class StoresHalf(MemoryStore):
    def append(self, batch):
        if len(batch) > 1 and batch["sensor_id"].tolist()[-1] is None:
            return super().append(batch.select(slice(0, len(batch) - 1)))  # not all or nothing
        return super().append(batch)


class ReadAfterIgnoresAfter(MemoryStore):
    def read_after(self, consumer, limit, after):
        return self.read(consumer, limit)


class NewestAppended(MemoryStore):
    def last_timestamp(self):
        return int(self._rows["timestamp"][-1]) if len(self._rows) else None


class PrunesEverything(MemoryStore):
    def prune(self):
        removed = len(self._rows)
        self._rows = self._rows.select(slice(0, 0))
        return removed


class ReplayForgets(MemoryStore):
    def replay(self, consumer, seqs=None):
        return 0


class ScanRegisters(MemoryStore):
    def scan(self, *, after=None, limit=None):
        self.read("scanner", 1)
        return super().scan(after=after, limit=limit)


class RemoveKeepsAcks(MemoryStore):
    def remove_consumer(self, consumer):
        existed = consumer in self._acked
        self._dead.pop(consumer, None)
        self._state.pop(consumer, None)
        return existed


class StatsCountAll(MemoryStore):
    def stats(self):
        stats = super().stats()
        import attrs

        return attrs.evolve(stats, pending={c: stats.rows for c in stats.pending})


class AgeByReadingTimestamp(MemoryStore):
    """The age judged by the reading's timestamp against the wall clock (what stores did before they recorded arrivals):
    a backfill's rows read as 25 years old the moment they are stored."""

    def stats(self):
        import time

        import attrs

        stats = super().stats()
        now = time.time()
        ages = {
            c: None if ts is None else max(0.0, now - ts)
            for c, ts in stats.oldest_pending_timestamp.items()
        }
        return attrs.evolve(stats, oldest_pending_age_s=ages)


class StoredAgeByReadingTimestamp(MemoryStore):
    """The oldest stored row's age judged by its reading's timestamp: a backfill reads as 25
    years old the moment it is stored."""

    def stats(self):
        import time

        import attrs

        stats = super().stats()
        ts = stats.oldest_stored_timestamp
        return attrs.evolve(stats, oldest_stored_age_s=None if ts is None else time.time() - ts)


class StoredAgeOfPendingRows(MemoryStore):
    """The oldest stored row's age taken only over rows still pending for someone."""

    def stats(self):
        import attrs

        stats = super().stats()
        if stats.pending and not any(stats.pending.values()):
            return attrs.evolve(stats, oldest_stored_age_s=None, oldest_stored_timestamp=None)
        return stats


BROKEN_STORES = [
    (ForgetsToDedupe, "stores each \\(sensor_id, timestamp\\) once"),
    (IgnoresLimit, "at most limit"),
    (AcksEverything, "ack advances only the acknowledged rows"),
    (SharedCheckpoint, "per consumer"),
    (DeadLettersBlock, "do not block the rows behind them"),
    (MergesState, "replaces the last"),
    (StoresHalf, "all or nothing"),
    (ReadAfterIgnoresAfter, "ReadAheadStore"),
    (NewestAppended, "ResumableStore"),
    (PrunesEverything, "never removes a row"),
    (ReplayForgets, "can be replayed"),
    (ScanRegisters, "registering nothing"),
    (RemoveKeepsAcks, "remove_consumer forgets"),
    (StatsCountAll, "stats"),
    (AgeByReadingTimestamp, "how long the next row has waited in the store"),
    (StoredAgeByReadingTimestamp, "oldest_stored_age_s is how long the oldest stored row"),
    (StoredAgeOfPendingRows, "not pending for anyone"),
]


@pytest.mark.parametrize(
    ("store", "guarantee"), BROKEN_STORES, ids=[s.__name__ for s, _ in BROKEN_STORES]
)
def test_a_broken_store_fails_naming_the_guarantee(store, guarantee):
    with pytest.raises(AssertionError, match=guarantee) as failure:
        check_store(store)
    assert f"store from {store.__qualname__}" in str(failure.value)


def test_a_store_not_reporting_oldest_pending_timestamp_passes():
    """``StoreStats.oldest_pending_timestamp`` has a default: a third-party store written before
    it existed still constructs its stats and passes the checks."""

    class WithoutTimestamps(MemoryStore):
        def stats(self):
            s = super().stats()
            return StoreStats(s.rows, s.pending, s.oldest_pending_age_s, s.dead_letters)

    store = WithoutTimestamps()
    assert store.stats().oldest_pending_timestamp == {}
    store.append(Batch.from_columns(timestamp=[1], sensor_id=["s"]))
    stats = store.stats()
    assert stats.oldest_stored_age_s is None and stats.oldest_stored_timestamp is None
    assert stats.backlog_of("never") == (1, None, None)
    assert check_store(WithoutTimestamps)


def test_something_that_is_not_a_store_fails_saying_what_it_lacks():
    class NoStats:
        def append(self, batch): ...
        def read(self, consumer, limit): ...
        def ack(self, consumer, batch, *, state=None): ...
        def dead_letter(self, consumer, batch, reason): ...
        def close(self): ...

    assert missing_members(NoStats(), Store) == ["stats"]
    with pytest.raises(AssertionError, match="it is a Store: NoStats lacks stats"):
        check_store(NoStats)


def test_a_store_whose_method_raises_fails_naming_the_check():
    class Explodes(MemoryStore):
        def stats(self):
            raise RuntimeError("boom")

    with pytest.raises(AssertionError, match="raised RuntimeError: boom"):
        check_store(Explodes)


class OutOfRange(ListSink):
    def write(self, batch):
        super().write(batch)
        return WriteResult(retry=[len(batch)]) if len(batch) else None


class RejectsWithoutReason(ListSink):
    def write(self, batch):
        return WriteResult(rejected={0: " "}) if len(batch) else None


class RetriesAndRejects(ListSink):
    def write(self, batch):
        return WriteResult(retry=[0], rejected={0: "bad"}) if len(batch) else None


class ReturnsText(ListSink):
    def write(self, batch):
        return "ok"


class CloseOnce(ListSink):
    def close(self):
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        (OutOfRange, "outside a batch of"),
        (RejectsWithoutReason, "without a reason"),
        (RetriesAndRejects, "both to retry and rejected"),
        (ReturnsText, "write returned 'ok'"),
        (CloseOnce, "close can be called twice"),
    ],
)
def test_a_broken_sink_fails_naming_the_guarantee(sink, message):
    with pytest.raises(AssertionError, match=message):
        check_sink(sink)


def test_a_sink_that_duplicates_a_replayed_batch_fails_when_it_should_be_idempotent():
    with pytest.raises(AssertionError, match="leaves each row once"):
        check_sink(ListSink, read_back=lambda sink: sink.written.rows())


def test_a_sink_that_loses_rows_or_writes_zero_for_missing_fails_on_read_back():
    class LosesRows(ListSink):
        def write(self, batch):
            return super().write(batch.select(slice(0, len(batch) // 2)))

    with pytest.raises(AssertionError, match="was written but does not read back"):
        check_sink(LosesRows, read_back=lambda sink: sink.written.rows(), idempotent=False)

    def zeros(sink):
        for row in sink.written.rows():
            yield {k: 0.0 if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}

    with pytest.raises(AssertionError, match="missing temperature reads back as 0.0"):
        check_sink(ListSink, read_back=zeros, idempotent=False)


def test_broken_sensors_fail():
    class Late(ListSensor):
        def read(self, until):
            return super().read(until + 1000)  # returns a reading at until

    class Repeats(ListSensor):
        def read(self, until):
            return self._pending.select(self._pending["timestamp"] < until)

    batches = [sample_readings(30)]
    with pytest.raises(AssertionError, match="returned a reading at"):
        check_sensor(lambda: Late(batches), span_ms=6000)
    with pytest.raises(AssertionError, match="again gave"):
        check_sensor(lambda: Repeats(batches))


def test_a_stateful_transform_whose_state_does_not_restore_fails():
    class Counter:
        def __init__(self):
            self.n = 0

        def __call__(self, batch):
            self.n += len(batch)
            return batch.with_columns(count=np.full(len(batch), self.n))

        def get_state(self):
            return "{}"  # forgets what it counted

        def set_state(self, state):
            pass

    with pytest.raises(AssertionError, match="continues exactly where it was saved"):
        check_transform(Counter)


def test_a_transform_inventing_seq_values_fails():
    def shifts_seq(batch: Batch) -> Batch:
        return batch.with_columns({STORE_SEQ: batch[STORE_SEQ] + 1_000})

    with pytest.raises(AssertionError, match="are not in the input"):
        check_transform(lambda: shifts_seq)
