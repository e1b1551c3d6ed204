"""The store's SQLite schema (version 2, compact), and how each kind of column is held in it.

Tables:

* ``meta(key, value)``: ``format = 'cosmobac-store'``, ``schema_version``, ``created_at`` (epoch ms),
  ``time_base`` (epoch ms, set by the first append that stores rows: timestamps are kept
  relative to it, so those of a few weeks around it take 4 bytes instead of 6, see
  :data:`BASE_AHEAD`) and ``seq_floor`` (see :data:`SEQ_FLOOR`);
* ``sensors(id, sensor_id)``: every sensor id once, numbered from 1;
* ``sources(id, sensor, city, latitude, longitude, firmware_version, model, manufacturer)``: each
  distinct identity a sensor reported, once. ``id & SENSOR_MASK`` is the sensor's number: its first
  identity has ``id = sensor``, a later one (new firmware, moved) ``sensor + (n << SENSOR_BITS)``;
* ``anomaly_types(id, name)``: every anomaly type once;
* ``packed_readings``: ``seq INTEGER PRIMARY KEY``, ``_source``, ``_ts`` (timestamp minus
  ``time_base``), the five metrics REAL (NULL for NaN), ``_anomaly`` (NULL: no flag and no type;
  else ``2 * anomaly_types.id + flag``, id 0 for no type), then extra columns appended by ``ALTER
  TABLE``; UNIQUE index on ``(_ts, _source & SENSOR_MASK)``: the dedupe key, on integers, in time
  order (rows mostly arrive in time order, so the index grows at its end). ``seq`` is SQLite's
  next rowid, never reused: when the newest rows are deleted, ``meta.seq_floor`` keeps the
  highest given and new rows are numbered above it (cheaper than ``AUTOINCREMENT``, which
  updates ``sqlite_sequence`` for every row);
* ``readings``: a view with the columns of schema version 1 (``seq``, the core fields, the extra
  columns), for reading a store with plain SQL; recreated when an extra column is added;
* ``extra_columns(name, kind)``: the :class:`cosmobac.schema.Kind` of every extra column, so a read
  returns the dtype that was appended;
* ``consumers``, ``acked``, ``dead_letters``, ``consumer_state``: each consumer's checkpoint, its
  out-of-order acks, the rows it set aside and the state it saved (see :mod:`.consumers`);
* ``arrivals(seq_max, stored_at)``: when rows arrived in the outbox, one row per ``append`` that
  stored rows (the highest ``seq`` it stored, the wall-clock time in epoch ms), not one per
  reading: a row's arrival is the ``stored_at`` of the first arrival with ``seq_max >= seq``.
  Arrivals no row needs any more are pruned with the readings;
* ``sensor_state``, ``input_rejects``: a live sensor's position and the input it could not read.

Schema version 1 (one ``readings`` table with every field as its own column) is migrated to
version 2 when opened (:mod:`.migrate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from cosmobac.schema import CORE_FIELDS, Kind

FORMAT: Final = "cosmobac-store"
SCHEMA_VERSION: Final = 2

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


SENSOR_BITS: Final = 24
SENSOR_MASK: Final = (1 << SENSOR_BITS) - 1
"""A source id's low bits are its sensor's number (so at most 16.7 million sensors per store)."""

RESERVED: Final = ("_source", "_ts", "_anomaly")
"""Columns of ``packed_readings`` that are not fields: no extra column may take these names."""

TABLE: Final = "packed_readings"
"""The table the readings are stored in (``readings`` is a view over it)."""

METRIC_FIELDS: Final = tuple(
    n
    for n, k in CORE_FIELDS.items()
    if k is Kind.FLOAT
    and n
    not in (
        "latitude",
        "longitude",
    )
)
"""The core float fields stored in every row (the five metrics)."""

SOURCE_FIELDS: Final = (
    "sensor_id",
    "city",
    "latitude",
    "longitude",
    "firmware_version",
    "model",
    "manufacturer",
)
"""The core fields held once per source (a sensor's identity), in ``sources`` column order."""

TIME_BASE: Final = "time_base"
"""The ``meta`` key of the epoch ms stored timestamps are relative to."""

BASE_AHEAD: Final = 1 << 23
"""``time_base`` is this many ms after the first reading stored: a stored timestamp takes 3 bytes
within ±2**23 ms of the base (the first 4.6 hours after the first reading) and 4 bytes within
±2**31 ms (up to 24.9 days after it), 6 bytes beyond."""

SEQ_FLOOR: Final = "seq_floor"
"""The ``meta`` key of the highest ``seq`` ever given when rows up to it were all deleted (pruned,
or pruned before a migration): new rows are numbered above it, so a ``seq`` is never reused."""

SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sensors (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    sensor INTEGER NOT NULL REFERENCES sensors (id),
    city TEXT,
    latitude REAL,
    longitude REAL,
    firmware_version TEXT,
    model TEXT,
    manufacturer TEXT
);
CREATE INDEX IF NOT EXISTS sources_sensor ON sources (sensor);
CREATE TABLE IF NOT EXISTS anomaly_types (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY,
    _source INTEGER NOT NULL,
    _ts INTEGER NOT NULL,
    {", ".join(f"{quote(n)} REAL" for n in METRIC_FIELDS)},
    _anomaly INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS packed_identity ON {TABLE} (_ts, (_source & {SENSOR_MASK}));
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
"""Every table of a new store (the ``readings`` view is made by :func:`view_statements`)."""


def statements(script: str) -> list[str]:
    """The statements of an SQL script without triggers (split at ``;``)."""
    return [part.strip() for part in script.split(";") if part.strip()]


INPUT_TABLES: Final = tuple(
    statement
    for statement in statements(SCHEMA)
    if "sensor_state" in statement or "input_rejects" in statement
)
"""The tables a live sensor's state and rejected input are kept in (added to older files on open)."""

ARRIVALS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS arrivals (
    seq_max INTEGER PRIMARY KEY,
    stored_at INTEGER NOT NULL
)"""

UNCOVERED_ROWS: Final = (
    f"SELECT coalesce((SELECT max(seq) FROM {TABLE}), 0) > "
    "coalesce((SELECT max(seq_max) FROM arrivals), 0)"
)
"""Whether rows exist above every arrival (stored before the table existed, or by earlier code)."""

MIGRATE_ARRIVALS: Final = (
    f"INSERT INTO arrivals (seq_max, stored_at) SELECT m, ? FROM (SELECT max(seq) AS m FROM {TABLE}) "
    "WHERE m > coalesce((SELECT max(seq_max) FROM arrivals), 0) ON CONFLICT DO NOTHING"
)
"""One arrival (at the time given) covering the rows no arrival covers: the fallback for rows
stored before the ``arrivals`` table existed."""


def view_statements(extras: Sequence[str]) -> list[str]:
    """Statements that (re)create the ``readings`` view: the columns of schema version 1 (``seq``,
    every core field, then ``extras``), decoded from the compact tables."""
    core = {
        "timestamp": f"r._ts + (SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{TIME_BASE}')",
        "sensor_id": "s.sensor_id",
        **{n: f"r.{quote(n)}" for n in METRIC_FIELDS},
        **{n: f"o.{quote(n)}" for n in SOURCE_FIELDS if n != "sensor_id"},
        "anomaly_flag": "coalesce(r._anomaly & 1, 0)",
        "anomaly_type": "t.name",
    }
    columns = ", ".join(
        ["r.seq AS seq"]
        + [f"{core[n]} AS {quote(n)}" for n in CORE_FIELDS]
        + [f"r.{quote(n)} AS {quote(n)}" for n in extras]
    )
    return [
        "DROP VIEW IF EXISTS readings",
        f"CREATE VIEW readings AS SELECT {columns} FROM {TABLE} AS r "
        "JOIN sources AS o ON o.id = r._source JOIN sensors AS s ON s.id = o.sensor "
        "LEFT JOIN anomaly_types AS t ON t.id = r._anomaly >> 1",
    ]
