"""The store's SQLite schema (version 1), and how each kind of column is held in it.

Tables:

* ``meta(key, value)``: ``format = 'cosmobac-store'``, ``schema_version``, ``created_at`` (epoch ms);
* ``readings``: ``seq INTEGER PRIMARY KEY AUTOINCREMENT`` then one column per core field
  (``timestamp`` INTEGER epoch ms UTC, strings TEXT, floats REAL with NULL for NaN, ``anomaly_flag``
  INTEGER), extra columns appended by ``ALTER TABLE``; UNIQUE index on ``(sensor_id, timestamp)``;
* ``extra_columns(name, kind)``: the :class:`cosmobac.schema.Kind` of every extra column, so a read
  returns the dtype that was appended;
* ``consumers(name, checkpoint, created_at)``: every row with ``seq <= checkpoint`` is acknowledged
  or dead-lettered by that consumer;
* ``acked(consumer, seq)``: rows acknowledged above the checkpoint (out-of-order acks), compacted as
  the checkpoint advances;
* ``dead_letters(consumer, seq, reason, created_at, replayed)``: rows set aside; ``replayed = 1``
  makes them deliverable again until acknowledged;
* ``consumer_state(consumer, key, value)``: the state a consumer saved with its last ack;
* ``arrivals(seq_max, stored_at)``: when rows arrived in the outbox, one row per ``append`` that
  stored rows (the highest ``seq`` it stored, the wall-clock time in epoch ms), not one per reading:
  a row's arrival is the ``stored_at`` of the first arrival with ``seq_max >= seq``. Added to
  schema version 1 without a version bump (earlier code ignores the table, so a file stays
  readable by it); a file without it gets it when opened, with one arrival covering every row
  already stored, timed at that moment (:data:`MIGRATE_ARRIVALS`): ages of rows stored before
  the upgrade count from the upgrade. Rows appended later by earlier code are covered the same
  way the next time this code opens the file. Arrivals no row needs any more are pruned with the
  readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from cosmobac.schema import CORE_FIELDS, Kind

FORMAT: Final = "cosmobac-store"
SCHEMA_VERSION: Final = 1

SQL_TYPES: Final[dict[Kind, str]] = {
    Kind.TIMESTAMP: "INTEGER",
    Kind.FLOAT: "REAL",
    Kind.INT: "INTEGER",
    Kind.BOOL: "INTEGER",
    Kind.STR: "TEXT",
}


def quote(name: str) -> str:
    """``name`` as an SQL identifier (double-quoted, inner quotes doubled)."""
    if "\x00" in name:
        raise ValueError(f"column name {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _object_array(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def column_from_sql(values: Sequence[Any], kind: Kind, core: bool) -> np.ndarray:
    """One column of values read from SQLite, as the dtype its kind is held as in a batch."""
    if kind is Kind.STR:
        return _object_array(values)
    if kind is Kind.TIMESTAMP:
        return np.array(values, dtype=np.int64)
    try:
        if kind is Kind.FLOAT:
            return np.array(values, dtype=np.float64)  # None (NULL) becomes NaN
        has_null = None in values
        if kind is Kind.INT:
            return np.array(values, dtype=np.float64 if has_null else np.int64)
        if kind is Kind.BOOL:
            if has_null and not core:
                return _object_array([None if v is None else bool(v) for v in values])
            return np.array(values, dtype=np.bool_)  # a core flag never stored reads as False
    except (TypeError, ValueError, OverflowError):
        return _object_array(values)  # values of another type found their way in: keep them
    raise AssertionError(kind)  # pragma: no cover


def widen(old: Kind, new: Kind) -> Kind | None:
    """The kind a column of ``old`` values becomes when ``new`` values arrive, or None if they do
    not mix."""
    if old is new:
        return old
    order = (Kind.BOOL, Kind.INT, Kind.FLOAT)
    if old in order and new in order:
        return max(old, new, key=order.index)
    return None


def _core_columns() -> str:
    parts = ["seq INTEGER PRIMARY KEY AUTOINCREMENT"]
    for name, kind in CORE_FIELDS.items():
        not_null = " NOT NULL" if name in ("timestamp", "sensor_id") else ""
        parts.append(f"{quote(name)} {SQL_TYPES[kind]}{not_null}")
    return ",\n    ".join(parts)


SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    {_core_columns()}
);
CREATE UNIQUE INDEX IF NOT EXISTS readings_identity ON readings (sensor_id, timestamp);
CREATE TABLE IF NOT EXISTS extra_columns (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consumers (
    name TEXT PRIMARY KEY,
    checkpoint INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS acked (
    consumer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    consumer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    replayed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dead_letters_seq ON dead_letters (seq);
CREATE TABLE IF NOT EXISTS consumer_state (
    consumer TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (consumer, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS arrivals (
    seq_max INTEGER PRIMARY KEY,
    stored_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sensor_state (
    sensor TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS input_rejects (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    origin TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"""

INPUT_TABLES: Final = tuple(
    statement.strip()
    for statement in SCHEMA.split(";")
    if "sensor_state" in statement or "input_rejects" in statement
)
"""The tables a live sensor's state and rejected input are kept in (added to older files on open)."""

ARRIVALS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS arrivals (
    seq_max INTEGER PRIMARY KEY,
    stored_at INTEGER NOT NULL
)"""

UNCOVERED_ROWS: Final = (
    "SELECT coalesce((SELECT max(seq) FROM readings), 0) > "
    "coalesce((SELECT max(seq_max) FROM arrivals), 0)"
)
"""Whether rows exist above every arrival (stored before the table existed, or by earlier code)."""

MIGRATE_ARRIVALS: Final = (
    "INSERT INTO arrivals (seq_max, stored_at) SELECT m, ? FROM (SELECT max(seq) AS m FROM readings) "
    "WHERE m > coalesce((SELECT max(seq_max) FROM arrivals), 0) ON CONFLICT DO NOTHING"
)
"""One arrival (at the time given) covering the rows no arrival covers: the fallback for rows
stored before the ``arrivals`` table existed."""
