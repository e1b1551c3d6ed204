"""The store file under faults: missing, empty, not a store, deleted, moved or replaced while open.

Shown: nothing is created where only reading was asked for; nothing at the path is ever initialised
(a 0-byte file, an SQLite file without tables); a file deleted, moved away or replaced under an open
store stops every later operation with a ``StoreError`` saying what happened, and the rows already
stored are all in the moved file; creating a store is atomic, even with several creators at once.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
from pathlib import Path

import pytest

from cosmobac.batch import Batch
from cosmobac.errors import StoreError
from cosmobac_sqlite import SQLiteStore

LOST = "deleted or moved away while in use"


def readings(n: int, start: int = 0, sensor: str = "s1") -> Batch:
    return Batch.from_columns(
        {"timestamp": [start + i * 1000 for i in range(n)], "sensor_id": [sensor] * n}
    )


def rows_in(path: Path) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM readings").fetchone()[0])
    finally:
        con.close()


# -- creating, or not --------------------------------------------------------------------------------
def test_create_false_never_creates(tmp_path):
    path = tmp_path / "sub" / "missing.db"
    with pytest.raises(StoreError, match=r"missing\.db: does not exist; check the path"):
        SQLiteStore(path, create=False)
    assert not path.parent.exists()  # not even its directory
    with SQLiteStore(path) as store:  # the default creates
        store.append(readings(3))
    with SQLiteStore(path, create=False) as store:
        assert store.stats().rows == 3


@pytest.mark.parametrize(("value", "creates"), [("no", False), ("true", True), (False, False)])
def test_create_is_a_flag(tmp_path, value, creates):
    path = tmp_path / "f.db"
    if creates:
        SQLiteStore(path, create=value).close()
        assert path.exists()
    else:
        with pytest.raises(StoreError, match="does not exist"):
            SQLiteStore(path, create=value)


def test_create_rejects_a_non_flag(tmp_path):
    with pytest.raises(ValueError, match=r"store 'create' must be true or false, got 'maybe'"):
        SQLiteStore(tmp_path / "f.db", create="maybe")


def test_a_pickled_store_keeps_create(tmp_path):
    path = tmp_path / "p.db"
    SQLiteStore(path).close()
    with SQLiteStore(path, create=False) as store:
        data = pickle.dumps(store)
    path.unlink()
    with pytest.raises(StoreError, match="does not exist"):
        pickle.loads(data)


@pytest.mark.parametrize("create", [True, False])
def test_a_zero_byte_file_is_refused_and_left_alone(tmp_path, create):
    path = tmp_path / "truncated.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"truncated\.db: is an empty \(0-byte\) file.*backup"):
        SQLiteStore(path, create=create)
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.db"]


def test_an_sqlite_file_without_tables_is_refused(tmp_path):
    path = tmp_path / "blank.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 3")  # writes a header: a valid database, no tables
    con.commit()
    con.close()
    assert path.stat().st_size > 0
    with pytest.raises(StoreError, match=r"blank\.db: is an SQLite database without tables"):
        SQLiteStore(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    con.close()


def test_creators_racing_make_one_store_and_leave_no_temporary_files(tmp_path):
    path = tmp_path / "race.db"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            barrier.wait()
            with SQLiteStore(path) as store:
                store.append(readings(5, sensor=f"s{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rows_in(path) == 40
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_relative_path_survives_a_change_of_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("rel.db") as store:
        store.append(readings(2))
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        assert store.append(readings(2, start=10_000)) == 2  # still the file it opened
    assert rows_in(tmp_path / "rel.db") == 4


# -- the file changes under an open store -------------------------------------------------------------
def test_a_moved_file_stops_the_store_and_keeps_every_row(tmp_path):
    path, kept = tmp_path / "live.db", tmp_path / "kept.db"
    store = SQLiteStore(path)
    reader = SQLiteStore(path)  # a second connection, as a forwarder would hold
    try:
        store.append(readings(10))
        assert len(reader.read("sink", 100)) == 10
        path.rename(kept)
        with pytest.raises(StoreError, match=rf"live\.db: the file was {LOST}"):
            store.append(readings(5, start=100_000))
        with pytest.raises(StoreError, match=LOST):  # every later use, reads too
            store.stats()
        with pytest.raises(StoreError, match=LOST):
            reader.read("sink", 100)
    finally:
        store.close()
        reader.close()
    assert not path.exists()  # nothing made a new store there
    assert rows_in(kept) == 10  # the rows in the write-ahead log reached the moved file
    with SQLiteStore(kept, create=False) as moved:
        assert moved.stats().rows == 10
    # the old path's log is empty, so a new store can be made there
    with SQLiteStore(path) as fresh:
        assert fresh.stats().rows == 0


def test_a_deleted_file_stops_the_store(tmp_path):
    path = tmp_path / "gone.db"
    store = SQLiteStore(path)
    try:
        store.append(readings(3))
        path.unlink()
        with pytest.raises(StoreError, match=rf"gone\.db: the file was {LOST}.*restart"):
            store.read("sink", 10)
        with pytest.raises(StoreError, match=LOST):
            store.append(readings(1, start=50_000))
    finally:
        store.close()
    assert not path.exists()


def test_a_replaced_file_stops_the_store_and_the_new_file_is_untouched(tmp_path):
    path, other = tmp_path / "edge.db", tmp_path / "other.db"
    with SQLiteStore(other) as o:
        o.append(readings(7, sensor="other"))
    store = SQLiteStore(path)
    try:
        store.append(readings(3))
        os.replace(other, path)
        with pytest.raises(StoreError, match=r"edge\.db: the file was replaced by another file"):
            store.append(readings(2, start=90_000))
    finally:
        store.close()
    assert rows_in(path) == 7
    with SQLiteStore(path, create=False) as replaced:
        assert set(replaced.scan()["sensor_id"].tolist()) == {"other"}


def test_no_new_store_over_the_log_of_a_vanished_one(tmp_path):
    path = tmp_path / "edge.db"
    old = SQLiteStore(path)
    try:
        old.append(readings(4))
        path.unlink()  # the old store's committed rows are still in edge.db-wal
        assert (tmp_path / "edge.db-wal").stat().st_size > 0
        with pytest.raises(StoreError, match=r"edge\.db: does not exist, but its write-ahead log"):
            SQLiteStore(path)
        assert not path.exists()
        with pytest.raises(StoreError, match=LOST):  # the old store notices, empties its log
            old.stats()
    finally:
        old.close()
    with SQLiteStore(path) as new:
        assert new.stats().rows == 0
        new.append(readings(1))
        assert new.stats().rows == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_reopen_a_replaced_file(tmp_path):
    path = tmp_path / "fork.db"
    store = SQLiteStore(path)
    store.append(readings(2))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = b"?"
        try:
            SQLiteStore(tmp_path / "new.db").close()
            os.replace(tmp_path / "new.db", path)  # a new, empty store at the same path
            store.stats()
            code = b"opened"
        except StoreError as exc:
            code = b"refused" if "the file was replaced" in str(exc) else str(exc).encode()
        finally:
            os.write(write_end, code)
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    answer = os.read(read_end, 100)
    os.close(read_end)
    store.close()
    assert answer == b"refused", answer
