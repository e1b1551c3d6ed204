"""Files of schema version 1 (written by cosmobac-sqlite before the compact schema: the SQL dump
in ``data/store_v1.sql``, made by ``data/make_store_v1.py`` with that code) migrated in place on
open: the same rows, consumers and dead letters read back as that code read them
(``data/store_v1.json``); interrupted, the file is left as it was; two processes opening it at
once both get the migrated store."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmobac import Batch, InputReject
from cosmobac.schema import STORE_SEQ
from cosmobac_sqlite import SQLiteStore

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "store_v1.json").read_text(encoding="utf-8"))


def v1_file(path: Path) -> Path:
    """The schema-1 store file of ``data/store_v1.sql`` at ``path`` (WAL mode, as stores are)."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript((DATA / "store_v1.sql").read_text(encoding="utf-8"))
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    return path


def version_and_kind(path: Path) -> tuple[str, str]:
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'readings'").fetchone()
    return version[0], kind[0]


def old_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM readings ORDER BY seq").fetchall()


def plain(value: object) -> object:
    """A value as the JSON of ``data/store_v1.json`` holds it (NaN as "NaN")."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def test_a_schema_1_file_reads_the_same_after_the_migration(tmp_path):
    path = v1_file(tmp_path / "v1.db")
    assert version_and_kind(path) == ("1", "table")
    before = old_rows(path)
    with SQLiteStore(path, create=False) as store:
        assert version_and_kind(path) == ("2", "view")
        rows = store.scan()
        assert list(rows.columns) == EXPECTED["columns"]
        assert {n: str(rows[n].dtype) for n in rows.columns} == EXPECTED["dtypes"]
        got = [[plain(v) for v in row.values()] for row in rows.rows()]
        assert got == EXPECTED["rows"]
        dead = [
            [d.consumer, d.seq, d.reason, d.replayed, [plain(v) for v in d.reading.values()]]
            for d in store.dead_letters()
        ]
        assert dead == EXPECTED["dead_letters"]
        assert {c: store.checkpoint(c) for c in store.consumers()} == EXPECTED["checkpoints"]
        assert {c: store.load_state(c) for c in store.consumers()} == EXPECTED["states"]
        assert store.read("cosmos", 100)[STORE_SEQ].tolist() == EXPECTED["read_cosmos"]
        assert store.last_timestamp() == EXPECTED["last_timestamp"]
        assert store.stats().pending == EXPECTED["pending"]
        assert store.load_sensor_state("mqtt") == '{"offset": 7}'
        assert [r.origin for r in store.input_rejects()] == ["topic/a:3"]
        # seq 17 was pruned before the migration: never given again; duplicates still refused
        head = store.scan(limit=3)
        again = Batch.from_columns(timestamp=head["timestamp"], sensor_id=head["sensor_id"])
        assert store.append(again) == 0
        fresh = Batch.from_columns(timestamp=[1], sensor_id="berlin-002", status_code=[7])
        assert store.append(fresh) == 1
        assert store.scan(after=16)[STORE_SEQ].tolist() == [18]
    # the readings view shows what the table held (a flag never given reads 0, as the store did)
    after = old_rows(path)[: len(before)]
    assert [r[:14] for r in after] == [r[:14] for r in before]  # seq ... manufacturer
    assert [r[16:] for r in after] == [r[16:] for r in before]  # the extra columns
    assert [(bool(r[14]), r[15]) for r in after] == [(bool(r[14]), r[15]) for r in before]


def test_an_interrupted_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = v1_file(tmp_path / "v1.db")
    before = old_rows(path)

    def power_cut(extras):
        raise OSError("disk full")

    monkeypatch.setattr("cosmobac_sqlite.migrate.view_statements", power_cut)
    with pytest.raises(OSError, match="disk full"):
        SQLiteStore(path, create=False)
    assert version_and_kind(path) == ("1", "table")
    assert old_rows(path) == before
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "packed_readings" not in tables and "sensors" not in tables
    monkeypatch.undo()
    with SQLiteStore(path, create=False) as store:  # the next open does it all
        assert len(store.scan()) == len(EXPECTED["rows"])
    assert version_and_kind(path) == ("2", "view")


OPEN_AND_COUNT = """
import sys
from cosmobac import Batch, InputReject
from cosmobac_sqlite import SQLiteStore
with SQLiteStore(sys.argv[1], create=False) as store:
    head = store.scan(limit=2)
    again = Batch.from_columns(timestamp=head["timestamp"], sensor_id=head["sensor_id"])
    print(len(store.scan()), store.append(again))
"""


def test_two_processes_opening_an_old_file_at_once(tmp_path):
    path = v1_file(tmp_path / "v1.db")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_COUNT, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.split() == [str(len(EXPECTED["rows"])), "0"]
    assert version_and_kind(path) == ("2", "view")
    with SQLiteStore(path, create=False) as store:
        assert len(store.scan()) == len(EXPECTED["rows"])


def test_rows_no_arrival_covers_get_one_on_open(tmp_path, monkeypatch):
    """Rows that earlier code stored without an arrival (before the table existed, or appended by
    code that ignored it) get one arrival, timed at the open that migrates the file."""
    path = v1_file(tmp_path / "v1.db")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM arrivals WHERE seq_max > 8")
        for table in ("sensor_state", "input_rejects"):
            conn.execute(f"DROP TABLE {table}")
    monkeypatch.setattr("cosmobac_sqlite.connection.wall_clock_ms", lambda: 1_800_000_000_000)
    with SQLiteStore(path, create=False) as store:
        with sqlite3.connect(path) as conn:
            arrivals = conn.execute("SELECT seq_max, stored_at FROM arrivals").fetchall()
        assert arrivals[-1] == (16, 1_800_000_000_000)
        assert [seq for seq, _ in arrivals] == [4, 8, 16]
        assert store.load_sensor_state("mqtt") is None  # the input tables are back, empty
        stored = store.append_input(
            Batch.from_columns(timestamp=[2_000_000_000_000], sensor_id="csv-1"),
            sensor="csv",
            state='{"a.csv": 120}',
            rejects=[InputReject("a.csv:4", "bad timestamp", "x")],
        )
        assert stored == 1
    with SQLiteStore(path, create=False) as store, sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM arrivals").fetchone()[0] == 4  # + the append
        assert store.load_sensor_state("csv") == '{"a.csv": 120}'
        assert [r.origin for r in store.input_rejects()] == ["a.csv:4"]
