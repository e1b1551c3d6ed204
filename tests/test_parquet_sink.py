"""The built-in ``parquet`` archive sink: partitioned by city and date, append-only, durable,
typed, idempotent on replays, and a clear error without pyarrow."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac.config import RunConfig, parse_config
from cosmobac.documents import document_ids
from cosmobac.errors import ConfigError
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.plugins import Plugins
from cosmobac.sinks.parquet import ParquetSink
from cosmobac.testing import MemoryStore

pytestmark = pytest.mark.needs_plugins  # the sqlite store

pa = pytest.importorskip("pyarrow")
ds = pytest.importorskip("pyarrow.dataset")

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def readings(n: int, *, start: int = T0, step: int = 3_600_000, cities=("London", "New York")):
    return Batch.from_columns(
        timestamp=start + np.arange(n, dtype=np.int64) * step,
        sensor_id=[f"s{i % 3}" for i in range(n)],
        city=[cities[i % len(cities)] for i in range(n)],
        temperature=np.where(np.arange(n) % 5 == 0, np.nan, np.arange(n, dtype=float)),
        anomaly_flag=np.arange(n) % 7 == 0,
    )


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def read(root):
    return ds.dataset(root, partitioning="hive").to_table()


def test_register_sinks_parquet_is_built_in_with_exact_keys():
    component = Plugins(entry_points=False).get("sink", "parquet")
    assert component.distribution == "cosmobac"
    assert component.accepted_keys() == ["path", "compression", "fsync"]


def test_rows_are_partitioned_by_city_and_date_and_read_back_typed(tmp_path):
    sink = ParquetSink(tmp_path / "archive")
    batch = readings(60)  # 60 hours: three dates, two cities
    sink.write(batch)
    names = {p.relative_to(tmp_path / "archive").parent.as_posix() for p in files(tmp_path)}
    assert names == {
        f"city={c}/date=2026-01-0{d}" for c in ("London", "New%20York") for d in (1, 2, 3)
    }
    table = read(tmp_path / "archive").sort_by("timestamp")
    assert table.num_rows == 60
    assert table.column_names[0] == "id"
    assert table["id"].to_pylist() == document_ids(batch).tolist()
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    temps = table["temperature"].to_pylist()
    assert temps[0] is None and temps[1] == 1.0  # NaN (missing) is null, never 0.0
    assert table["city"].to_pylist()[:2] == ["London", "New York"]
    assert "seq" not in table.column_names


def test_writes_only_add_files_and_never_touch_existing_ones(tmp_path):
    sink = ParquetSink(tmp_path, compression="snappy")
    sink.write(readings(10))
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in files(tmp_path)}
    sink.write(readings(10, start=T0 + 10 * 3_600_000))
    sink.write(readings(10, start=T0))  # the same rows again, without store seqs
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in files(tmp_path)}
    assert all(after[p] == v for p, v in before.items())  # nothing rewritten
    assert len(after) > len(before)
    assert not [p for p in files(tmp_path) if p.name.endswith(".tmp")]


def test_a_replayed_batch_is_not_archived_twice(tmp_path):
    store = MemoryStore()
    store.append(readings(40))
    sink = ParquetSink(tmp_path)
    batch = store.read("archive", 40)
    sink.write(batch)
    sink.write(batch)  # a crash came before the ack: the same batch is read and written again
    assert read(tmp_path).num_rows == 40


def test_forwarding_through_a_pipeline_archives_everything_once(tmp_path):
    store = MemoryStore()
    store.append(readings(500, step=600_000))
    sink = ParquetSink(tmp_path / "a", fsync=False)
    report = Pipeline(
        store=store, lanes=[Lane("archive", sink)], run=RunConfig(batch_size=120)
    ).forward()
    assert report.ok and report.lanes[0].acked == 500
    table = read(tmp_path / "a")
    assert sorted(table["id"].to_pylist()) == sorted(document_ids(readings(500, step=600_000)))


def test_readings_without_a_city_and_odd_city_names(tmp_path):
    batch = readings(4, cities=("São Paulo/Centro", None))
    ParquetSink(tmp_path).write(batch)
    table = read(tmp_path)
    assert sorted(table["city"].to_pylist(), key=lambda c: c or "") == [
        None,
        None,
        "São Paulo/Centro",
        "São Paulo/Centro",
    ]
    assert (tmp_path / "city=__HIVE_DEFAULT_PARTITION__").is_dir()
    assert (tmp_path / "city=S%C3%A3o%20Paulo%2FCentro").is_dir()


def test_extra_columns_travel_and_mixed_objects_become_json_text(tmp_path):
    mixed = np.empty(3, dtype=object)
    mixed[:] = [{"a": 1}, "text", None]
    batch = readings(3).with_columns(score=[0.5, np.nan, 2.0], note=mixed, count=[1, 2, 3])
    ParquetSink(tmp_path).write(batch)
    table = read(tmp_path).sort_by("timestamp")
    assert table["score"].to_pylist() == [0.5, None, 2.0]
    assert table["count"].to_pylist() == [1, 2, 3]
    assert table["note"].to_pylist() == ['{"a": 1}', "text", None]


def test_from_a_pipeline_file_and_bad_values_name_the_key(tmp_path):
    data = {
        "store": {"plugin": "sqlite", "path": str(tmp_path / "e.db")},
        "sinks": [{"plugin": "parquet", "path": str(tmp_path / "a"), "compression": "zip"}],
    }
    with pytest.raises(ConfigError, match="compression"):
        parse_config(data, source="p.toml").sinks[0].build()
    data["sinks"][0]["fsync"] = "maybe"
    data["sinks"][0]["compression"] = "gzip"
    with pytest.raises(ConfigError, match="fsync"):
        parse_config(data, source="p.toml").sinks[0].build()


def test_without_pyarrow_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    with pytest.raises(ConfigError, match="pip install pyarrow"):
        ParquetSink(tmp_path)
    data = {
        "store": {"plugin": "sqlite", "path": str(tmp_path / "e.db")},
        "sinks": [{"plugin": "parquet", "path": str(tmp_path / "a")}],
    }
    with pytest.raises(ConfigError, match="pip install pyarrow"):
        parse_config(data, source="p.toml").sinks[0].build()


def test_durable_writes_fsync_files_and_directories(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    ParquetSink(tmp_path / "a").write(readings(3))
    assert len(synced) >= 3  # the file, its directory, and the new directories' parents
    synced.clear()
    ParquetSink(tmp_path / "b", fsync=False).write(readings(3))
    assert synced == []
