"""The compact rows (schema version 2): what is appended reads back value for value (a hypothesis
property over odd text, missing values, NaN and infinities, through the store that wrote it and
through another process's view of the file), and a simulated fleet's store stays within 80 bytes
per reading."""

from __future__ import annotations

import math
import os
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmobac import Batch
from cosmobac.plugins import Plugins
from cosmobac.schema import CORE_FIELDS, METRICS, STORE_SEQ, Kind
from cosmobac_sqlite import SQLiteStore

TEXT = st.one_of(
    st.none(), st.sampled_from(["", "Zürich", 'it\'s "x"; --', "\U0001f600"]), st.text()
)
FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 5e-324, 1e308])
)
SENSORS = st.lists(st.text(min_size=1), min_size=1, max_size=4, unique=True)


@st.composite
def batches(draw) -> list[Batch]:
    """A few batches of readings, each (sensor, timestamp) once over all of them; each batch has
    some of the optional core columns and maybe an extra one."""
    sensors = draw(SENSORS)
    n = draw(st.integers(1, 30))
    stamps = draw(st.lists(st.integers(-(2**50), 2**50), min_size=n, max_size=n, unique=True))
    rows = [(draw(st.sampled_from(sensors)), stamp) for stamp in stamps]
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    out = []
    for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
        part = rows[lo:hi]
        if not part:
            continue
        m = len(part)
        columns: dict[str, object] = {
            "sensor_id": np.array([s for s, _ in part], dtype=object),
            "timestamp": np.array([t for _, t in part], dtype=np.int64),
        }
        for name, kind in CORE_FIELDS.items():
            if name in columns or not draw(st.booleans()):
                continue
            if kind is Kind.STR:
                # repeated values, as a sensor's identity is
                pool = draw(st.lists(TEXT, min_size=1, max_size=3))
                values = draw(st.lists(st.sampled_from(pool), min_size=m, max_size=m))
                columns[name] = np.array(values, dtype=object)
            elif kind is Kind.FLOAT:
                columns[name] = np.array(draw(st.lists(FLOAT, min_size=m, max_size=m)))
            else:
                columns[name] = np.array(draw(st.lists(st.booleans(), min_size=m, max_size=m)))
        if draw(st.booleans()):
            columns["note"] = np.array(draw(st.lists(TEXT, min_size=m, max_size=m)), dtype=object)
        out.append(Batch.from_columns(columns))
    return out


def expected_value(batch: Batch, name: str, i: int) -> object:
    """What the store reads back for row ``i``'s ``name`` (a missing column: its missing value)."""
    kind = CORE_FIELDS.get(name, Kind.STR)
    if name not in batch:
        return {Kind.FLOAT: math.nan, Kind.BOOL: False}.get(kind)
    return batch[name][i]


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b and type(a) is type(b)


def check(read: Batch, written: list[Batch]) -> None:
    rows = {(r["sensor_id"], int(r["timestamp"])): r for r in read.drop(STORE_SEQ).rows()}
    total = 0
    for batch in written:
        for i in range(len(batch)):
            total += 1
            got = rows[(batch["sensor_id"][i], int(batch["timestamp"][i]))]
            for name in CORE_FIELDS:
                want = expected_value(batch, name, i)
                value = got[name]
                if isinstance(value, np.generic):
                    value = value.item()
                if isinstance(want, np.generic):
                    want = want.item()
                assert same(value, want), (name, value, want)
            if "note" in batch:
                assert got["note"] == batch["note"][i]
    assert len(read) == total


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(written=batches())
def test_rows_written_are_the_rows_read(tmp_path_factory, written):
    path = tmp_path_factory.mktemp("rt") / "s.db"
    with SQLiteStore(path) as store:
        for batch in written:
            assert store.append(batch) == len(batch)
        for batch in written:  # appended again: nothing new
            assert store.append(batch) == 0
        check(store.scan(), written)  # through the dimensions this store knows
        with SQLiteStore(path, create=False) as other:  # another process's fresh view
            check(other.read("c", 10_000), written)
            first = written[0]
            sensor, stamp = first["sensor_id"][0], int(first["timestamp"][0])
            zoom = other.scan_sensor(sensor, stamp, stamp + 1)
            assert zoom["timestamp"].tolist() == [stamp] and zoom["sensor_id"][0] == sensor
    # the readings view, for plain SQL, shows the same values
    with sqlite3.connect(path) as conn:
        columns = ", ".join(f'"{n}"' for n in ("sensor_id", "timestamp", *METRICS))
        viewed = {(r[0], r[1]): r[2:] for r in conn.execute(f"SELECT {columns} FROM readings")}
    for batch in written:
        for i in range(len(batch)):
            got = viewed[(batch["sensor_id"][i], int(batch["timestamp"][i]))]
            for name, value in zip(METRICS, got, strict=True):
                want = expected_value(batch, name, i)
                assert same(math.nan if value is None else value, float(want))


def test_a_simulated_fleet_takes_at_most_80_bytes_a_reading(tmp_path):
    """100 sensors at 1 Hz for 10 minutes of sensor time (60 000 readings), stored as collect
    stores them (a batch per simulated minute); the file, WAL checkpointed, over the readings."""
    fleet = Plugins(entry_points=False).create(
        "sensor", "simulated", cities=10, sensors_per_city=10, seed=7
    )
    path = tmp_path / "fleet.db"
    readings = 0
    with SQLiteStore(path) as store:
        for minute in range(1, 11):
            readings += store.append(fleet.read(int(fleet.start) + minute * 60_000))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))
    assert readings == 60_000
    assert size / readings <= 80, f"{size / readings:.1f} bytes per reading"
    print(f"{size / readings:.1f} bytes per reading")


@pytest.mark.parametrize("stamp", [2**62, -(2**62)])
def test_timestamps_beyond_the_range_are_refused(tmp_path, stamp):
    with SQLiteStore(tmp_path / "s.db") as store:
        batch = Batch.from_columns(timestamp=[stamp], sensor_id="a")
        with pytest.raises(ValueError, match="timestamp.*2\\*\\*62"):
            store.append(batch)
        assert len(store.scan()) == 0
