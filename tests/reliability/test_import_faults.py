"""``cosmobac import`` on the odd source files the original system and its operators leave behind
(issue 19, item 6), run as the real command.

Shown: epoch seconds stored as TEXT are read as the import how-to says; a ``sensor_readings`` that
is a view is read through with a warning giving its row count, and one that yields no rows is
reported; every row read is accounted for, as new, already stored, or skipped by reason, including
rows the store refuses; none of it ends in a traceback.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cosmobac.testing import run_cosmobac

pytestmark = pytest.mark.needs_plugins  # imports into the sqlite store

COLUMNS = "id INTEGER PRIMARY KEY, timestamp, sensor_id TEXT, temperature REAL, status_code"


def source(path: Path, rows: list[tuple[object, ...]], *, columns: str = COLUMNS) -> Path:
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE sensor_readings ({columns})")
    con.executemany(
        "INSERT INTO sensor_readings (timestamp, sensor_id, temperature, status_code) "
        "VALUES (?, ?, ?, ?)",
        rows,
    )
    con.commit()
    con.close()
    return path


def stored(store: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT sensor_id, timestamp, temperature FROM readings ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


def imported(*args: str | Path) -> tuple[str, list[str]]:
    result = run_cosmobac("import", *args, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.strip(), result.stderr.strip().splitlines()


def test_epoch_seconds_stored_as_text_are_imported(tmp_path):
    src = source(
        tmp_path / "sensor_data.db",
        [
            ("1740823203.5", "s1", 20.0, 0),
            ("1740823204", "s1", 21.0, 0),
            (1740823205.25, "s1", 22.0, 0),
        ],
    )
    store = tmp_path / "edge.db"
    out, warnings = imported(src, "--into", store)
    assert out == (f"3 new rows from 1 files (3 read, 0 already stored, 0 skipped) into {store}")
    assert warnings == []
    assert stored(store) == [
        ("s1", 1740823203500, 20.0),
        ("s1", 1740823204000, 21.0),
        ("s1", 1740823205250, 22.0),
    ]


def test_a_view_is_read_through_with_a_warning_and_an_empty_table_is_reported(tmp_path):
    view = tmp_path / "view.db"
    con = sqlite3.connect(view)
    con.execute(f"CREATE TABLE raw ({COLUMNS})")
    con.executemany(
        "INSERT INTO raw (timestamp, sensor_id, temperature, status_code) VALUES (?, ?, ?, ?)",
        [(1740823200 + i, "v1", float(i), 0) for i in range(5)],
    )
    con.execute("CREATE VIEW sensor_readings AS SELECT * FROM raw WHERE temperature >= 1")
    con.commit()
    con.close()
    empty = source(tmp_path / "empty.db", [])
    store = tmp_path / "edge.db"
    out, warnings = imported(view, empty, "--into", store)
    assert out == f"4 new rows from 2 files (4 read, 0 already stored, 0 skipped) into {store}"
    assert warnings == [
        f"warning: {view}: 'sensor_readings' is a view, not a table: 4 row(s) read through it; "
        "check that it selects the readings you mean to import",
        f"warning: {empty}: 'sensor_readings' yields no rows: nothing imported",
    ]
    assert [row[2] for row in stored(store)] == [1.0, 2.0, 3.0, 4.0]


def test_every_row_read_is_new_already_stored_or_skipped_by_reason(tmp_path):
    first = source(
        tmp_path / "a.db",
        [
            (1740823200, "s1", 1.0, 7),
            ("2025-03-01T10:00:01Z", "s1", 2.0, 7),
            ("1970", "s1", 3.0, 7),  # a number too small for epoch seconds
            ("yesterday", "s1", 4.0, 7),
            (None, "s1", 5.0, 7),
        ],
        columns=COLUMNS.replace("status_code", "status_code INTEGER"),
    )
    # status_code is text here, while a.db made it a column of integers: the store refuses those
    second = source(
        tmp_path / "b.db",
        [(1740823300, "s2", 6.0, "ok"), (1740823301, "s2", 7.0, "ok")],
        columns=COLUMNS.replace("status_code", "status_code TEXT"),
    )
    store = tmp_path / "edge.db"
    out, warnings = imported(first, second, first, "--into", store)  # a.db twice: one import
    assert out == f"2 new rows from 2 files (7 read, 0 already stored, 5 skipped) into {store}"
    assert warnings[:3] == [
        f"warning: {first}: 1 row(s) skipped: missing timestamp (first: row id 5, timestamp None)",
        f"warning: {first}: 1 row(s) skipped: timestamp text is a number too small for epoch "
        "seconds (before 1973) (first: row id 3, timestamp '1970')",
        f"warning: {first}: 1 row(s) skipped: timestamp text is neither epoch seconds nor "
        "ISO-8601 (first: row id 4, timestamp 'yesterday')",
    ]
    assert len(warnings) == 4
    assert warnings[3].startswith(
        f"warning: {second}: 2 row(s) skipped: the store refused them: column 'status_code'"
    )
    assert warnings[3].endswith("(first: row id 1)")
    again, _ = imported(first, "--into", store)
    assert again == f"0 new rows from 1 files (5 read, 2 already stored, 3 skipped) into {store}"
    assert len(stored(store)) == 2


def test_a_without_rowid_table_is_read_and_rows_are_named_by_position(tmp_path):
    src = source(
        tmp_path / "norowid.db",
        [(1740823200, "s1", 1.0, 0), ("later", "s1", 2.0, 0)],
        columns="timestamp, sensor_id TEXT, temperature REAL, status_code, "
        "PRIMARY KEY (sensor_id, timestamp)) WITHOUT ROWID -- ",
    )
    store = tmp_path / "edge.db"
    out, warnings = imported(src, "--into", store)
    assert out == f"1 new rows from 1 files (2 read, 0 already stored, 1 skipped) into {store}"
    assert warnings == [
        f"warning: {src}: 1 row(s) skipped: timestamp text is neither epoch seconds nor "
        "ISO-8601 (first: row 2, timestamp 'later')"
    ]
