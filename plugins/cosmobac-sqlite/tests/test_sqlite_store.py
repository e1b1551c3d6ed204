"""The SQLite store (plugin ``sqlite``) on real files: schema, append, delivery state per consumer,
dead letters, retention, stats and errors; plus a hypothesis property over random operation
sequences."""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmobac import Batch, Store, StoreError
from cosmobac.plugins import Plugins
from cosmobac.schema import CORE_FIELDS, STORE_SEQ
from cosmobac_sqlite import DeadLetter, SQLiteStore

DAY_MS = 86_400_000


def readings(n: int, *, start: int = 0, sensor: str = "s-1", **columns) -> Batch:
    """``n`` readings one second apart from ``start`` (epoch ms), with a temperature ramp."""
    return Batch.from_columns(
        timestamp=start + 1000 * np.arange(n, dtype=np.int64),
        sensor_id=sensor,
        city="Lisbon",
        temperature=np.arange(n, dtype=np.float64),
        **columns,
    )


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "store.db") as s:
        yield s


def table_count(path: Path, sql: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


# -- plugin and configuration -----------------------------------------------------------------------
def test_registered_as_store_plugin_with_exact_keys(tmp_path):
    plugins = Plugins(allow={"sqlite"})
    component = plugins.get("store", "sqlite")
    assert component.distribution == "cosmobac-sqlite"
    assert component.accepted_keys() == [
        "path",
        "retention",
        "busy_timeout",
        "synchronous",
        "create",
    ]
    store = plugins.create("store", "sqlite", path=str(tmp_path / "p.db"), retention="7d")
    try:
        assert isinstance(store, SQLiteStore)
        assert isinstance(store, Store)
        assert store.retention == 7 * 86400
    finally:
        store.close()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7d", 604800.0), ("12h", 43200.0), ("1h30m", 5400.0), (90, 90.0), ("3600", 3600.0), (0, 0.0)],
)
def test_retention_accepts_durations(tmp_path, value, seconds):
    with SQLiteStore(tmp_path / "r.db", retention=value) as s:
        assert s.retention == seconds


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"retention": "7 days"}, ValueError, "retention"),
        ({"retention": -1}, ValueError, "retention"),
        ({"retention": True}, TypeError, "retention"),
        ({"busy_timeout": "soon"}, ValueError, "busy_timeout"),
        ({"busy_timeout": [1]}, TypeError, "busy_timeout"),
        ({"busy_timeout": -2}, ValueError, "busy_timeout"),
        ({"synchronous": "off"}, ValueError, "synchronous"),
        ({"synchronous": 1}, TypeError, "synchronous"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path, kwargs, error, words):
    with pytest.raises(error, match=words):
        SQLiteStore(tmp_path / "bad.db", **kwargs)
    with pytest.raises(TypeError, match="path"):
        SQLiteStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path"):
        SQLiteStore("  ")


def test_schema_wal_and_meta(store):
    path = Path(store.path)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(con.execute("SELECT key, value FROM meta"))
        assert meta["format"] == "cosmobac-store" and meta["schema_version"] == "2"
        columns = {row[1]: row[2] for row in con.execute("PRAGMA table_info(packed_readings)")}
        assert list(columns)[:3] == ["seq", "_source", "_ts"]
        assert columns["_ts"] == "INTEGER" and columns["temperature"] == "REAL"
        assert not set(columns) & {"sensor_id", "city", "model", "anomaly_type", "timestamp"}
        (index,) = con.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'packed_readings'"
        ).fetchone()
        assert index.startswith("CREATE UNIQUE INDEX") and "(_ts, (_source & 16777215))" in index
        # the readings view: the columns of schema version 1, for plain SQL
        view = [row[1] for row in con.execute("PRAGMA table_info(readings)")]
        assert view == ["seq", *CORE_FIELDS]
    finally:
        con.close()


@pytest.mark.parametrize(("setting", "level"), [("normal", 1), ("FULL", 2)])
def test_synchronous_setting(tmp_path, setting, level):
    store = SQLiteStore(tmp_path / "sync.db", synchronous=setting, busy_timeout=2.5)
    with store, store._transaction(write=False) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500


def test_reopen_keeps_rows_and_checkpoints(tmp_path):
    path = tmp_path / "again.db"
    with SQLiteStore(path) as s:
        s.append(readings(5))
        s.ack("sink", s.read("sink", 3))
        s.ack("sink", [5], state={"k": "v"})
    with SQLiteStore(path) as s:
        assert s.checkpoint("sink") == 3
        assert s.read("sink", 10)[STORE_SEQ].tolist() == [4]
        assert s.load_state("sink") == {"k": "v"}
        assert s.consumers() == ["sink"]


def test_memory_store(tmp_path):
    with SQLiteStore(":memory:") as s:
        assert s.append(readings(3)) == 3
        assert len(s.read("a", 10)) == 3
        assert s.stats().file_size is None
        with pytest.raises(TypeError, match="in-memory"):
            pickle.dumps(s)


# -- append -----------------------------------------------------------------------------------------
def test_append_counts_new_rows_and_dedupes(store):
    assert store.append(readings(10)) == 10
    assert store.append(readings(10)) == 0  # same readings again: nothing new
    assert store.append(readings(10, start=5000)) == 5  # overlaps half
    assert store.append(readings(3, sensor="s-2")) == 3  # same times, other sensor
    doubled = Batch.concat([readings(2, start=10**6), readings(2, start=10**6)])
    assert store.append(doubled) == 2  # duplicates inside one batch count once
    assert store.stats().rows == 20
    assert store.append(Batch.empty()) == 0


def test_append_requires_identity(store):
    with pytest.raises(ValueError, match="sensor_id"):
        store.append(Batch.from_columns(timestamp=[1, 2], temperature=[1.0, 2.0]))
    with pytest.raises(ValueError, match="timestamp"):
        store.append(Batch.from_columns(sensor_id=["a"], temperature=[1.0]))
    with pytest.raises(ValueError, match="sensor_id"):
        store.append(Batch.from_columns(timestamp=[1, 2], sensor_id=["a", None]))
    with pytest.raises(TypeError, match="Batch"):
        store.append({"timestamp": [1]})  # type: ignore[arg-type]
    assert store.stats().rows == 0


def test_absent_core_columns_read_back_missing(store):
    store.append(Batch.from_columns(timestamp=[7], sensor_id=["x"]))
    batch = store.read("c", 10)
    assert list(batch.columns) == [*CORE_FIELDS, STORE_SEQ]
    row = next(batch.rows())
    assert row["timestamp"] == 7 and row["sensor_id"] == "x"
    assert row["city"] is None and row["model"] is None and row["anomaly_type"] is None
    assert np.isnan(row["temperature"]) and np.isnan(row["latitude"])
    assert row["anomaly_flag"] is False
    for name, column in batch.to_dict().items():
        assert not column.flags.writeable, name
    assert batch["timestamp"].dtype == np.int64 and batch[STORE_SEQ].dtype == np.int64
    assert batch["anomaly_flag"].dtype == np.bool_ and batch["city"].dtype == object


def test_nan_and_infinity_round_trip(store):
    values = np.array([1.5, np.nan, -np.inf, np.inf, -0.25])
    original = readings(5, humidity=values, anomaly_flag=[True, False, True, False, False])
    store.append(original)
    back = store.read("c", 10)
    np.testing.assert_array_equal(back["humidity"], values)  # NaN equals NaN here
    assert back["anomaly_flag"].tolist() == [True, False, True, False, False]
    con = sqlite3.connect(store.path)
    try:
        assert con.execute("SELECT humidity FROM readings WHERE seq = 2").fetchone()[0] is None
    finally:
        con.close()


def test_read_matches_what_was_appended(store):
    original = Batch.from_columns(
        timestamp=[1000, 2000],
        sensor_id=["a", "b"],
        city=["Porto", None],
        temperature=[20.5, np.nan],
        humidity=[50.0, 51.0],
        pressure=[1000.0, np.nan],
        vibration=[0.1, 0.2],
        voltage=[12.0, 11.9],
        latitude=[41.1, 41.2],
        longitude=[-8.6, -8.7],
        firmware_version=["1.4.2", "2.0.0-beta"],
        model=["EnviroNode 100", None],
        manufacturer=["Acme Instruments", "Kestrel Labs"],
        anomaly_flag=[False, True],
        anomaly_type=[None, "spike"],
    )
    store.append(original)
    back = store.read("c", 10)
    assert back.drop(STORE_SEQ).equals(original)


def test_extra_columns_travel_through(store):
    store.append(readings(2))  # before any extra column existed
    store.append(
        readings(
            3,
            start=10_000,
            status_code=np.array([200, 500, 404]),
            score=np.array([0.5, np.nan, 1.5]),
            note=np.array(["ok", None, "odd"], dtype=object),
            checked=np.array([True, False, True]),
        )
    )
    back = store.read("c", 10)
    assert back.columns[: len(CORE_FIELDS)] == tuple(CORE_FIELDS)
    assert back.columns[len(CORE_FIELDS) :] == ("status_code", "score", "note", "checked", "seq")
    # rows from before the columns existed read as missing
    assert back["note"].tolist() == [None, None, "ok", None, "odd"]
    np.testing.assert_array_equal(back["score"], [np.nan, np.nan, 0.5, np.nan, 1.5])
    np.testing.assert_array_equal(back["status_code"], [np.nan, np.nan, 200, 500, 404])
    assert back["checked"].tolist() == [None, None, True, False, True]
    # once every row has a value, integers and flags come back with their own dtype
    later = store.read("c", 10).select(slice(2, None))
    assert later["status_code"].tolist() == [200.0, 500.0, 404.0]
    store.ack("c", store.read("c", 2))
    tail = store.read("c", 10)
    assert tail["status_code"].dtype == np.int64 and tail["status_code"].tolist() == [200, 500, 404]
    assert tail["checked"].dtype == np.bool_


def test_extra_column_kinds_widen_or_refuse(store):
    store.append(readings(1, level=np.array([1])))
    store.append(readings(1, start=5000, level=np.array([2.5])))  # int widens to float
    assert store.read("c", 5)["level"].tolist() == [1.0, 2.5]
    with pytest.raises(ValueError, match="'level' is stored as float"):
        store.append(readings(1, start=9000, level=np.array(["high"], dtype=object)))
    with pytest.raises(ValueError, match="only by letter case"):
        store.append(readings(1, start=9000, Temperature=np.array([1.0])))
    with pytest.raises(ValueError, match="'_TS' has a name the store keeps for itself"):
        store.append(readings(1, start=9000, _TS=np.array([1.0])))
    # names of the compact table's own columns in version 1 are free for extra columns
    store.append(readings(1, start=9000, source=np.array(["mqtt"], dtype=object)))
    assert store.read("c", 5)["source"].tolist() == [None, None, "mqtt"]
    assert store.stats().rows == 3  # a refused batch stores nothing


def test_seq_column_of_another_store_is_ignored(tmp_path, store):
    with SQLiteStore(tmp_path / "other.db") as other:
        other.append(readings(4))
        other.read("x", 1)
        batch = other.read("x", 10).select([2, 3])
    assert store.append(batch) == 2
    assert store.read("c", 5)[STORE_SEQ].tolist() == [1, 2]


def test_unstorable_values_name_the_column(store):
    weird = np.empty(1, dtype=object)
    weird[0] = {"a": 1}
    with pytest.raises(ValueError, match="'payload'"):
        store.append(readings(1, payload=weird))


# -- delivery state ---------------------------------------------------------------------------------
def test_read_registers_consumer_and_returns_oldest_first(store):
    assert store.consumers() == []
    assert len(store.read("a", 5)) == 0
    assert store.consumers() == ["a"]
    store.append(readings(10))
    first = store.read("a", 4)
    assert first[STORE_SEQ].tolist() == [1, 2, 3, 4]
    assert first["temperature"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert store.read("a", 4)[STORE_SEQ].tolist() == [1, 2, 3, 4]  # no lease: same until acked
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="limit"):
            store.read("a", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consumer"):
        store.read("", 1)


def test_in_order_acks_advance_the_checkpoint(store):
    store.append(readings(10))
    store.ack("a", store.read("a", 4))
    assert store.checkpoint("a") == 4
    assert store.read("a", 100)[STORE_SEQ].tolist() == [5, 6, 7, 8, 9, 10]
    store.ack("a", store.read("a", 100))
    assert store.checkpoint("a") == 10
    assert len(store.read("a", 100)) == 0
    assert store.checkpoint("nobody") == 0


def test_out_of_order_acks_never_pass_an_unacked_row(store):
    store.append(readings(10))
    batch = store.read("a", 10)
    store.ack("a", batch.select([1, 2, 5]))  # seqs 2, 3, 6
    assert store.checkpoint("a") == 0
    assert store.read("a", 100)[STORE_SEQ].tolist() == [1, 4, 5, 7, 8, 9, 10]
    store.ack("a", [1])
    assert store.checkpoint("a") == 3
    store.ack("a", [5, 4])
    assert store.checkpoint("a") == 6  # 6 was acked earlier
    assert table_count(Path(store.path), "SELECT count(*) FROM acked") == 0  # compacted
    store.ack("a", [9, 10])
    assert table_count(Path(store.path), "SELECT count(*) FROM acked") == 2
    assert store.read("a", 100)[STORE_SEQ].tolist() == [7, 8]
    store.ack("a", [8, 7])
    assert store.checkpoint("a") == 10
    assert table_count(Path(store.path), "SELECT count(*) FROM acked") == 0


def test_acking_unknown_or_repeated_rows_is_harmless(store):
    store.append(readings(3))
    store.ack("a", [1, 1, 2])
    store.ack("a", [1, 2])
    store.ack("a", [5, 6, 1000])  # no such rows (yet)
    assert store.checkpoint("a") == 3 - 1
    assert store.read("a", 10)[STORE_SEQ].tolist() == [3]
    store.append(readings(5, start=10**6))  # seqs 4..8: earlier acks for 5 and 6 do not count
    assert store.read("a", 10)[STORE_SEQ].tolist() == [3, 4, 5, 6, 7, 8]
    store.ack("a", Batch.empty())
    store.ack("a", [])
    with pytest.raises(ValueError, match="'seq'"):
        store.ack("a", readings(2))
    with pytest.raises(TypeError, match="integers"):
        store.ack("a", [1.5])  # type: ignore[list-item]


def test_ack_saves_consumer_state_atomically(store):
    store.append(readings(4))
    assert store.load_state("a") == {}
    store.ack("a", store.read("a", 2), state={"window": "[1, 2]", "count": "2"})
    assert store.load_state("a") == {"count": "2", "window": "[1, 2]"}
    store.ack("a", [], state={"count": "3"})  # replaces the whole state
    assert store.load_state("a") == {"count": "3"}
    with pytest.raises(TypeError, match="str"):
        store.ack("a", [3], state={"count": 4})  # type: ignore[dict-item]
    assert store.checkpoint("a") == 2  # the refused ack did nothing
    assert store.load_state("b") == {}


def test_consumers_progress_independently(store):
    store.append(readings(6))
    store.ack("a", store.read("a", 6))
    assert store.read("b", 2)[STORE_SEQ].tolist() == [1, 2]
    assert store.checkpoint("a") == 6 and store.checkpoint("b") == 0
    assert store.consumers() == ["a", "b"]
    stats = store.stats()
    assert stats.pending == {"a": 0, "b": 6}
    assert store.remove_consumer("b") is True
    assert store.remove_consumer("b") is False
    assert store.consumers() == ["a"]


# -- dead letters -----------------------------------------------------------------------------------
def test_dead_letters_do_not_block_and_are_listed(store):
    store.append(readings(5, firmware_version="1.4.2", status_code=np.arange(5)))
    batch = store.read("a", 5)
    before = time.time() * 1000
    store.dead_letter("a", batch.select([0, 2]), "too large")
    assert store.checkpoint("a") == 1  # seq 1 is handled (dead-lettered), 2 is not
    store.ack("a", batch.select([1]))
    assert store.checkpoint("a") == 3
    assert store.read("a", 10)[STORE_SEQ].tolist() == [4, 5]
    letters = store.dead_letters("a")
    assert [d.seq for d in letters] == [1, 3]
    first = letters[0]
    assert isinstance(first, DeadLetter)
    assert first.consumer == "a" and first.reason == "too large" and not first.replayed
    assert before - 5 <= first.created_at <= time.time() * 1000 + 5
    assert first.sensor_id == "s-1" and first.timestamp == 0
    assert first.reading["status_code"] == 0 and first.reading["firmware_version"] == "1.4.2"
    assert STORE_SEQ not in first.reading
    assert store.dead_letters("b") == []
    assert [d.seq for d in store.dead_letters()] == [1, 3]
    assert [d.seq for d in store.dead_letters(limit=1)] == [1]
    with pytest.raises(ValueError, match="limit"):
        store.dead_letters(limit=0)
    assert store.stats().dead_letters == {"a": 2}
    assert store.stats().pending == {"a": 2}


def test_dead_letter_reasons_per_row_and_validation(store):
    store.append(readings(3))
    batch = store.read("a", 3)
    store.dead_letter("a", batch, ["bad id", "too big", "bad id"])
    assert [(d.seq, d.reason) for d in store.dead_letters("a")] == [
        (1, "bad id"),
        (2, "too big"),
        (3, "bad id"),
    ]
    assert store.checkpoint("a") == 3
    with pytest.raises(ValueError, match="reasons"):
        store.dead_letter("a", batch, ["only one"])
    with pytest.raises(ValueError, match="reason"):
        store.dead_letter("a", batch, "  ")
    store.dead_letter("a", [99], "no such row")  # ignored
    assert len(store.dead_letters("a")) == 3


def test_replay_makes_dead_letters_deliverable_until_acked(store):
    store.append(readings(6))
    batch = store.read("a", 6)
    store.dead_letter("a", batch.select([1, 3]), "sink refused")  # seqs 2, 4
    store.ack("a", batch.select([0, 2, 4]))  # seqs 1, 3, 5
    assert store.checkpoint("a") == 5
    assert store.read("a", 10)[STORE_SEQ].tolist() == [6]
    assert store.replay("a", [4]) == 1
    assert store.replay("a", [4]) == 0  # already replayed
    again = store.read("a", 10)
    assert again[STORE_SEQ].tolist() == [4, 6]  # merged by seq
    assert again["temperature"].tolist() == [3.0, 5.0]
    assert store.stats().pending == {"a": 2}
    assert store.stats().dead_letters == {"a": 1}  # seq 2 still waits
    assert [d.replayed for d in store.dead_letters("a")] == [False, True]
    store.ack("a", again)
    assert [d.seq for d in store.dead_letters("a")] == [2]
    assert store.checkpoint("a") == 6
    assert store.replay("a") == 1
    assert store.read("a", 1)[STORE_SEQ].tolist() == [2]
    store.dead_letter("a", [2], "refused again")  # a replayed row can be set aside again
    assert len(store.read("a", 10)) == 0
    assert store.dead_letters("a")[0].reason == "refused again"
    assert not store.dead_letters("a")[0].replayed


def test_replay_of_rows_above_the_checkpoint(store):
    store.append(readings(4))
    store.dead_letter("a", [3], "x")
    assert store.checkpoint("a") == 0
    assert store.read("a", 10)[STORE_SEQ].tolist() == [1, 2, 4]
    store.replay("a")
    assert store.read("a", 10)[STORE_SEQ].tolist() == [1, 2, 3, 4]
    assert store.read("a", 2)[STORE_SEQ].tolist() == [1, 2]
    store.ack("a", [1, 2, 3, 4])
    assert store.checkpoint("a") == 4 and store.dead_letters() == []


def test_read_after_a_seq_returns_only_later_pending_rows(store):
    store.append(readings(8))
    store.ack("a", [1, 2, 6])
    store.dead_letter("a", [5], "x")
    store.dead_letter("a", [7], "y")
    store.replay("a", [7])
    assert store.read("a", 10, after=3)[STORE_SEQ].tolist() == [4, 7, 8]  # 5 waits, 6 acked
    assert store.read("a", 2, after=3)[STORE_SEQ].tolist() == [4, 7]
    assert store.read("a", 10, after=7)[STORE_SEQ].tolist() == [8]
    assert store.read("a", 10, after=8)[STORE_SEQ].tolist() == []
    assert store.read("a", 10, after=0)[STORE_SEQ].tolist() == [3, 4, 7, 8]
    assert store.read("a", 10)[STORE_SEQ].tolist() == [3, 4, 7, 8]
    with pytest.raises(ValueError, match="after must be a seq"):
        store.read("a", 10, after="3")


def test_scan_reads_every_row_without_registering_a_consumer(store):
    store.append(readings(6))
    store.read("a", 10)
    store.ack("a", [1, 2])
    store.dead_letter("a", [4], "x")
    before = store.consumers()
    everything = store.scan()
    assert everything[STORE_SEQ].tolist() == [1, 2, 3, 4, 5, 6]  # acked and dead-lettered too
    assert everything["temperature"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert store.scan(after=2, limit=3)[STORE_SEQ].tolist() == [3, 4, 5]
    assert store.scan(after=6)[STORE_SEQ].tolist() == []
    assert store.consumers() == before  # nothing registered, nothing acknowledged
    assert store.read("a", 10)[STORE_SEQ].tolist() == [3, 5, 6]
    with pytest.raises(ValueError, match="limit must be"):
        store.scan(limit=0)
    with pytest.raises(ValueError, match="after must be"):
        store.scan(after=1.5)


# -- stats and retention ----------------------------------------------------------------------------
def test_stats(store):
    now = int(time.time() * 1000)
    store.append(readings(5, start=now - 60_000))
    store.read("a", 1)
    store.read("b", 1)
    store.ack("a", [1, 2])
    store.dead_letter("b", [1], "nope")
    stats = store.stats()
    assert stats.rows == 5
    assert stats.pending == {"a": 3, "b": 4}
    assert stats.dead_letters == {"a": 0, "b": 1}
    # how long the rows waited in the store (just appended), not how old their readings are
    assert 0 <= stats.oldest_pending_age_s["a"] < 5
    assert 0 <= stats.oldest_pending_age_s["b"] < 5
    assert stats.oldest_pending_timestamp == {
        "a": (now - 58_000) / 1000,
        "b": (now - 59_000) / 1000,
    }
    size = stats.file_size
    assert size is not None
    assert size == Path(store.path).stat().st_size + Path(store.path + "-wal").stat().st_size
    store.ack("a", [3, 4, 5])
    assert store.stats().oldest_pending_age_s["a"] is None
    assert store.stats().oldest_pending_timestamp["a"] is None


class FakeClock:
    """The store's wall clock (epoch ms), set by the test."""

    def __init__(self, monkeypatch, ms: int) -> None:
        self.ms = ms
        monkeypatch.setattr("cosmobac_sqlite.store.wall_clock_ms", lambda: self.ms)
        monkeypatch.setattr("cosmobac_sqlite.connection.wall_clock_ms", lambda: self.ms)


def arrivals(path) -> list[tuple[int, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT seq_max, stored_at FROM arrivals ORDER BY seq_max").fetchall()


def test_oldest_pending_age_counts_from_the_append_not_the_reading(tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch, 1_700_000_000_000)
    with SQLiteStore(tmp_path / "s.db") as store:
        year_2000 = 946_684_800_000
        assert store.append(readings(3, start=year_2000)) == 3  # seq 1-3: a backfill
        clock.ms += 10_000
        assert store.append(readings(2, start=4_102_444_800_000)) == 2  # seq 4-5: year 2100
        assert store.append(readings(2, start=4_102_444_800_000)) == 0  # duplicates: no arrival
        assert arrivals(store.path) == [(3, 1_700_000_000_000), (5, 1_700_000_010_000)]
        store.read("a", 1)
        clock.ms += 5_000
        stats = store.stats()
        assert stats.oldest_pending_age_s == {"a": 15.0}  # appended 15 s ago
        assert stats.oldest_pending_timestamp == {"a": year_2000 / 1000}
        store.ack("a", [1, 2, 3])
        assert store.stats().oldest_pending_age_s == {"a": 5.0}  # the second append, 5 s ago
        assert store.stats().oldest_pending_timestamp == {"a": 4_102_444_800.0}
        # a replayed dead letter keeps its original arrival
        store.dead_letter("a", [4, 5], "nope")
        assert store.stats().oldest_pending_age_s == {"a": None}
        clock.ms += 100_000
        store.replay("a", [5])
        assert store.stats().oldest_pending_age_s == {"a": 105.0}
        clock.ms -= 200_000  # the wall clock stepped back: never negative
        assert store.stats().oldest_pending_age_s == {"a": 0.0}


def test_oldest_stored_row_gives_a_never_read_consumer_its_age(tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch, 1_700_000_000_000)
    with SQLiteStore(tmp_path / "o.db", retention="1d") as store:
        empty = store.stats()
        assert empty.oldest_stored_age_s is None and empty.oldest_stored_timestamp is None
        assert empty.backlog_of("up") == (0, None, None)
        year_2000 = 946_684_800_000
        store.append(readings(3, start=year_2000))  # seq 1-3
        clock.ms += 10_000
        store.append(readings(2, start=1_700_000_000_000))  # seq 4-5
        clock.ms += 5_000
        stats = store.stats()
        assert stats.pending == {}  # nobody has read
        assert stats.oldest_stored_age_s == 15.0  # the first append, 15 s ago
        assert stats.oldest_stored_timestamp == year_2000 / 1000
        assert stats.backlog_of("up") == (5, 15.0, year_2000 / 1000)
        # a consumer that registers by reading sees the same oldest row
        store.read("a", 1)
        stats = store.stats()
        assert stats.oldest_pending_age_s == {"a": stats.oldest_stored_age_s}
        assert stats.backlog_of("a") == stats.backlog_of("up") == (5, 15.0, year_2000 / 1000)
        # once rows 1-3 are pruned, the oldest stored row is from the second append
        store.ack("a", [1, 2, 3])
        assert store.prune(1_700_000_000_000 + 2 * DAY_MS) == 3
        stats = store.stats()
        assert stats.oldest_stored_age_s == 5.0
        assert stats.oldest_stored_timestamp == 1_700_000_000.0
        assert stats.backlog_of("up") == (2, 5.0, 1_700_000_000.0)
        clock.ms -= 100_000  # the wall clock stepped back: never negative
        assert store.stats().oldest_stored_age_s == 0.0


def test_prune_drops_arrivals_no_row_needs(tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch, 1_700_000_000_000)
    with SQLiteStore(tmp_path / "p.db", retention="1d") as store:
        for first in (0, 10, 20):  # three appends of old readings, seq 1-10, 11-20, 21-30
            store.append(readings(10, start=first * 1000))
            clock.ms += 1_000
        assert [seq for seq, _ in arrivals(store.path)] == [10, 20, 30]
        store.read("a", 30)
        store.ack("a", range(1, 16))
        assert store.prune() == 15
        assert arrivals(store.path) == [(20, 1_700_000_001_000), (30, 1_700_000_002_000)]
        clock.ms += 2_000
        assert store.stats().oldest_pending_age_s == {"a": 4.0}  # seq 16: the second append
        store.ack("a", range(16, 31))
        assert store.prune() == 15
        assert arrivals(store.path) == [(30, 1_700_000_002_000)]  # the newest stays
        store.append(readings(1, start=10**12))
        assert store.stats().oldest_pending_age_s == {"a": 0.0}


def test_prune_keeps_unacked_and_dead_lettered_rows(tmp_path):
    with SQLiteStore(tmp_path / "p.db", retention="1d") as store:
        now = 100 * DAY_MS
        store.append(readings(10, start=now - 3 * DAY_MS))  # old enough to prune, seqs 1..10
        store.append(readings(5, start=now - 1000 * 60))  # recent, seqs 11..15
        assert store.prune(now) == 0  # no consumer registered: nothing is prunable
        store.ack("a", store.read("a", 100))
        store.ack("b", store.read("b", 6))  # b acked 1..6
        store.dead_letter("a", [3], "x")  # a dead-lettered an already acked row: keep it
        assert store.prune(now) == 5  # 1, 2, 4, 5, 6
        assert store.stats().rows == 10
        assert store.read("b", 100)[STORE_SEQ].tolist() == [7, 8, 9, 10, 11, 12, 13, 14, 15]
        store.ack("b", store.read("b", 100))
        assert store.prune(now) == 4  # 7..10; 3 waits as a dead letter, 11..15 are recent
        store.replay("a")
        assert store.prune(now) == 0  # replayed but not yet acked: kept
        assert store.read("a", 10)[STORE_SEQ].tolist() == [3]
        store.ack("a", [3])
        assert store.prune(now) == 1
        assert store.prune(now + 2 * DAY_MS) == 5
        assert store.stats().rows == 0
        store.append(readings(1, start=now + 10 * DAY_MS))
        assert store.read("a", 10)[STORE_SEQ].tolist() == [16]  # seqs are never reused


def test_prune_without_retention_keeps_everything(store):
    store.append(readings(3))
    store.ack("a", store.read("a", 3))
    assert store.prune(10**15) == 0
    assert store.stats().rows == 3


def test_removed_consumer_no_longer_holds_rows_back(tmp_path):
    with SQLiteStore(tmp_path / "p.db", retention=0) as store:
        store.append(readings(4))
        store.ack("a", store.read("a", 4))
        store.read("gone", 1)
        assert store.prune() == 0
        store.remove_consumer("gone")
        assert store.prune() == 4


# -- errors -----------------------------------------------------------------------------------------
def test_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some text, long enough to not be a database header at all " * 20)
    with pytest.raises(StoreError, match=r"notes\.db.*not a cosmobac store"):
        SQLiteStore(path)


def test_foreign_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "sensor_data.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, timestamp REAL)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"sensor_data\.db.*cosmobac import"):
        SQLiteStore(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    con.close()
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="something-else"):
        SQLiteStore(other)


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "future.db"
    SQLiteStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"future\.db.*schema version 99.*upgrade"):
        SQLiteStore(path)


def test_unusable_paths(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"file\.txt"):
        SQLiteStore(blocker / "store.db")
    with pytest.raises(StoreError, match="directory"):
        SQLiteStore(tmp_path)
    nested = tmp_path / "a" / "b" / "store.db"
    SQLiteStore(nested).close()  # missing parent directories are created
    assert nested.exists()


def test_read_only_file_gives_store_error(tmp_path):
    path = tmp_path / "ro.db"
    with SQLiteStore(path) as s:
        s.append(readings(1))
    if os.geteuid() == 0:
        pytest.skip("root can write read-only files")
    path.chmod(0o444)
    try:
        with pytest.raises(StoreError, match=r"ro\.db"), SQLiteStore(path) as s:
            s.append(readings(1, start=5000))
    finally:
        path.chmod(0o644)


def test_closed_store(tmp_path):
    s = SQLiteStore(tmp_path / "c.db")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.read("a", 1)


def test_busy_timeout_reports_the_lock(tmp_path):
    path = tmp_path / "busy.db"
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with SQLiteStore(path, busy_timeout=0.2) as s:
            with pytest.raises(StoreError, match="busy_timeout"):
                s.append(readings(1))
            assert s.stats().rows == 0  # reading is not blocked by the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_threads_share_one_store(store):
    import threading

    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(20):
                store.append(readings(10, start=(k * 100 + i) * 10**6))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    delivered = 0
    while any(t.is_alive() for t in threads) or len(store.read("a", 1)):
        batch = store.read("a", 50)
        store.ack("a", batch)
        delivered += len(batch)
    for t in threads:
        t.join()
    assert not errors
    assert delivered == 800 and store.checkpoint("a") == 800


# -- property ---------------------------------------------------------------------------------------
CONSUMERS = st.sampled_from(["a", "b"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 6), st.booleans()),
        st.tuples(st.just("read"), CONSUMERS, st.integers(1, 8)),
        st.tuples(st.just("ack"), CONSUMERS, st.lists(st.integers(1, 30), max_size=6)),
        st.tuples(st.just("ack_read"), CONSUMERS, st.integers(1, 8)),
        st.tuples(st.just("dead"), CONSUMERS, st.lists(st.integers(1, 30), max_size=4)),
        st.tuples(st.just("replay"), CONSUMERS, st.none() | st.lists(st.integers(1, 30))),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(OPERATIONS)
def test_random_operations_keep_delivery_invariants(operations):
    """Model: per consumer, each row is new, acked, dead or replayed. Reads return exactly the
    deliverable rows (new or replayed) oldest first, never an acked one; the checkpoint never
    passes a new row; after draining, every row is acked or dead-lettered."""
    state: dict[str, dict[int, str]] = {"a": {}, "b": {}}
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "p.db") as store:
        clock = 0

        def existing() -> list[int]:
            con = sqlite3.connect(store.path)
            try:
                return [r[0] for r in con.execute("SELECT seq FROM readings ORDER BY seq")]
            finally:
                con.close()

        def check(consumer: str) -> None:
            seqs = existing()
            status = state[consumer]
            deliverable = [s for s in seqs if status.get(s, "new") in ("new", "replayed")]
            got = store.read(consumer, 1000)[STORE_SEQ].tolist()
            assert got == deliverable
            assert not any(status.get(s) == "acked" for s in got)
            cp = store.checkpoint(consumer)
            assert all(status.get(s, "new") != "new" for s in seqs if s <= cp)
            above = [s for s in seqs if s > cp]
            assert not above or status.get(above[0], "new") == "new"  # tight

        for op in operations:
            kind = op[0]
            if kind == "append":
                n, repeat = op[1], op[2]
                start = clock - 1000 if repeat and clock else clock
                store.append(readings(n, start=start))
                clock = max(clock, start + 1000 * n)
            elif kind == "read":
                store.read(op[1], op[2])
            else:
                consumer = op[1]
                seqs = set(existing())
                if kind == "ack_read":
                    chosen = store.read(consumer, op[2])[STORE_SEQ].tolist()
                    store.ack(consumer, chosen)
                    new_state = "acked"
                elif kind == "ack":
                    chosen = op[2]
                    store.ack(consumer, chosen)
                    new_state = "acked"
                elif kind == "dead":
                    chosen = op[2]
                    store.dead_letter(consumer, chosen, "reason")
                    new_state = "dead"
                else:
                    store.replay(consumer, op[2])
                    dead = [s for s, v in state[consumer].items() if v == "dead"]
                    chosen = dead if op[2] is None else [s for s in op[2] if s in dead]
                    new_state = "replayed"
                for s in chosen:
                    if s in seqs:
                        state[consumer][s] = new_state
            for consumer in ("a", "b"):
                check(consumer)
        # drain: every row ends acked or dead-lettered, and the checkpoints reach the end
        for consumer in ("a", "b"):
            while len(batch := store.read(consumer, 7)):
                store.ack(consumer, batch)
                for s in batch[STORE_SEQ].tolist():
                    state[consumer][s] = "acked"
            seqs = existing()
            assert all(state[consumer].get(s) in ("acked", "dead") for s in seqs)
            assert store.checkpoint(consumer) == (max(seqs) if seqs else 0)
            assert store.stats().pending.get(consumer, 0) == 0
            waiting = sorted(s for s, v in state[consumer].items() if v == "dead")
            assert [d.seq for d in store.dead_letters(consumer)] == waiting
