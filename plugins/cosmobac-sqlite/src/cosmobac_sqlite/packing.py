"""Rows in the compact form (schema version 2): batches packed into ``packed_readings`` rows and
unpacked back, through this process's copy of the dimension tables.

Guarantees:

* a batch unpacked is value for value the batch packed (each field read as the schema-1 store
  read it: NaN and missing floats as NaN, missing text as None, a missing flag as False);
* dimension ids never change once committed, so the copy a process keeps stays valid whatever
  other processes add; an id this process staged in a transaction enters its copy only when the
  transaction commits (:meth:`Dimensions.keep`), and an id it does not know is looked up in the
  reading transaction (new rows of another process);
* timestamps are stored relative to ``meta.time_base`` (set by the first append that stores
  rows: 2**23 ms after its first reading, so 3 bytes hold a timestamp of the first 4.6 hours,
  4 bytes one of the first 24.9 days, 6 bytes any other), and must lie within ±2**62 ms of the
  epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np

from cosmobac.batch import Batch, read_only
from cosmobac.schema import CORE_FIELDS, STORE_SEQ, Kind

from ._schema import (
    BASE_AHEAD,
    METRIC_FIELDS,
    SENSOR_BITS,
    SENSOR_MASK,
    SOURCE_FIELDS,
    TIME_BASE,
    column_from_sql,
    quote,
)

__all__ = ["Dimensions", "Packed", "select_list"]

_LIMIT: Final = 1 << 62
_TEXT_SOURCE = tuple(n for n in SOURCE_FIELDS if CORE_FIELDS[n] is Kind.STR)


def select_list(extras: Sequence[str]) -> str:
    """The columns :meth:`Dimensions.unpack` takes, from ``packed_readings AS r``."""
    return ", ".join(
        [
            "r.seq",
            "r._source",
            "r._ts",
            *(f"r.{quote(n)}" for n in METRIC_FIELDS),
            "coalesce(r._anomaly, 0)",
            *(f"r.{quote(n)}" for n in extras),
        ]
    )


@attrs.define
class Packed:
    """One batch as ``packed_readings`` rows: the columns to insert and their values."""

    names: tuple[str, ...]
    lists: list[Any]  # one list of values per column

    def columns(self, first_seq: int | None) -> tuple[str, ...]:
        """The columns to insert: with ``seq`` when rows are numbered from ``first_seq``."""
        return self.names if first_seq is None else ("seq", *self.names)

    def rows(self, first_seq: int | None) -> Iterator[tuple[Any, ...]]:
        """One tuple per reading; numbered from ``first_seq`` when given (else SQLite numbers
        them)."""
        if first_seq is None:
            return zip(*self.lists, strict=True)
        numbers = range(first_seq, first_seq + len(self.lists[0]))
        return zip(numbers, *self.lists, strict=True)


@attrs.define
class _Staged:
    """Dimension rows added in the current transaction (kept only once it commits)."""

    sensors: dict[str, int] = attrs.field(factory=dict)
    sources: dict[tuple[Any, ...], int] = attrs.field(factory=dict)
    types: dict[Any, int] = attrs.field(factory=dict)
    base: int | None = None


def _unstorable(column: str, value: object) -> ValueError:
    return ValueError(
        f"column {column!r} holds values SQLite cannot store ({type(value).__name__}); use "
        "numbers, text or None"
    )


class Dimensions:
    """This process's copy of the dimension tables and the time base, and the packing with it."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything (a forked child, or a store reopened)."""
        self._sensors: dict[str, int] = {}
        self._sources: dict[tuple[Any, ...], int] = {}
        self._types: dict[Any, int] = {}
        self._base: int | None = None
        self._staged = _Staged()
        # for unpacking, as read from the file: source id -> its fields; type id -> name
        self._source_rows: dict[int, tuple[Any, ...]] = {}
        self._type_names: dict[int, str] = {}

    # -- packing -------------------------------------------------------------------------------
    def begin(self) -> None:
        """A write transaction starts: nothing staged."""
        self._staged = _Staged()

    def keep(self) -> None:
        """The write transaction committed: what it staged is now in the file for good."""
        staged, self._staged = self._staged, _Staged()
        self._sensors.update(staged.sensors)
        self._sources.update(staged.sources)
        self._types.update(staged.types)
        if staged.base is not None:
            self._base = staged.base

    def pack(self, conn: sqlite3.Connection, batch: Batch, names: Sequence[str]) -> Packed:
        """``batch`` (its columns ``names``) as rows to insert, inside a write transaction that
        :meth:`begin` started; dimension rows it lacks are inserted into ``conn``."""
        n = len(batch)
        stamps = np.asarray(batch["timestamp"], dtype=np.int64)
        if int(stamps.min()) <= -_LIMIT or int(stamps.max()) >= _LIMIT:
            raise ValueError(
                "column 'timestamp' holds values beyond ±2**62 ms of the epoch, which the store "
                "cannot hold; give epoch milliseconds"
            )
        base = self._time_base(conn, int(stamps.min()))
        columns: list[str] = ["_source", "_ts"]
        lists: list[Any] = [self._source_ids(conn, batch, n), (stamps - base).tolist()]
        for name in METRIC_FIELDS:
            if name in batch:
                columns.append(name)
                lists.append(batch[name].tolist())
        anomaly = self._anomaly_codes(conn, batch, n)
        if anomaly is not None:
            columns.append("_anomaly")
            lists.append(anomaly)
        for name in names:
            if name not in CORE_FIELDS:
                columns.append(name)
                lists.append(batch[name].tolist())
        return Packed(tuple(columns), lists)

    def _time_base(self, conn: sqlite3.Connection, first: int) -> int:
        if self._base is not None:
            return self._base
        if self._staged.base is not None:
            return self._staged.base
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (TIME_BASE,)).fetchone()
        if row is None:
            base = first + BASE_AHEAD
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (TIME_BASE, str(base)))
            self._staged.base = base
            return base
        self._base = int(row[0])  # committed by another process (we hold the write lock)
        return self._base

    def _source_ids(self, conn: sqlite3.Connection, batch: Batch, n: int) -> list[int]:
        fields: list[Any] = []
        for name in SOURCE_FIELDS:
            if name not in batch:
                fields.append([None] * n)
                continue
            values = batch[name].tolist()
            if CORE_FIELDS[name] is Kind.FLOAT and np.isnan(batch[name]).any():
                values = [None if v != v else v for v in values]  # stored as NULL
            fields.append(values)
        cache = self._sources
        try:
            return list(map(cache.__getitem__, zip(*fields, strict=True)))
        except KeyError:
            pass
        except TypeError:  # an unhashable value: let the slow path name it
            pass
        out = []
        for key in zip(*fields, strict=True):
            found = cache.get(key) if _hashable(key) else None
            out.append(found if found is not None else self._source(conn, key))
        return out

    def _source(self, conn: sqlite3.Connection, key: tuple[Any, ...]) -> int:
        """The id of the source ``key`` (sensor id and identity fields), added if new."""
        for name, value in zip(SOURCE_FIELDS, key, strict=True):
            if value is not None and not isinstance(value, str | int | float):
                raise _unstorable(name, value)
        staged = self._staged.sources.get(key)
        if staged is not None:
            return staged
        sensor = self._sensor(conn, key[0])
        rest = key[1:]
        where = " AND ".join(f"{quote(n)} IS ?" for n in SOURCE_FIELDS[1:])
        row = conn.execute(
            f"SELECT id FROM sources WHERE sensor = ? AND {where} ORDER BY id LIMIT 1",
            (sensor, *rest),
        ).fetchone()
        if row is not None:
            self._sources[key] = int(row[0])  # committed: we hold the write lock
            return int(row[0])
        top = conn.execute("SELECT max(id) FROM sources WHERE sensor = ?", (sensor,)).fetchone()[0]
        new = sensor if top is None else (((int(top) >> SENSOR_BITS) + 1) << SENSOR_BITS) | sensor
        marks = ", ".join("?" * len(SOURCE_FIELDS))
        columns = ", ".join(quote(n) for n in SOURCE_FIELDS[1:])
        conn.execute(
            f"INSERT INTO sources (id, sensor, {columns}) VALUES (?, {marks})",
            (new, sensor, *rest),
        )
        self._staged.sources[key] = new
        return new

    def _sensor(self, conn: sqlite3.Connection, sensor_id: Any) -> int:
        if sensor_id is None:
            raise ValueError("batch has rows without a 'sensor_id'; every reading needs one")
        known = self._sensors.get(sensor_id)
        if known is None:
            known = self._staged.sensors.get(sensor_id)
        if known is not None:
            return known
        row = conn.execute("SELECT id FROM sensors WHERE sensor_id = ?", (sensor_id,)).fetchone()
        if row is not None:
            self._sensors[sensor_id] = int(row[0])
            return int(row[0])
        new = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM sensors").fetchone()[0])
        if new > SENSOR_MASK:
            raise ValueError(
                f"the store holds {SENSOR_MASK} sensors, as many as it can; start a new store"
            )
        conn.execute("INSERT INTO sensors (id, sensor_id) VALUES (?, ?)", (new, sensor_id))
        self._staged.sensors[sensor_id] = new
        return new

    def _anomaly_codes(self, conn: sqlite3.Connection, batch: Batch, n: int) -> list[Any] | None:
        """``2 * type id + flag`` per row, None where both are missing; None: no such columns."""
        if "anomaly_flag" not in batch and "anomaly_type" not in batch:
            return None
        codes = np.zeros(n, dtype=np.int64)
        if "anomaly_flag" in batch:
            codes += np.asarray(batch["anomaly_flag"], dtype=np.bool_)
        if "anomaly_type" in batch:
            types = batch["anomaly_type"]
            named = np.flatnonzero(np.not_equal(types, None))  # type: ignore[call-overload]
            if named.size:
                known = self._types
                ids = [known.get(t) or self._type(conn, t) for t in types[named].tolist()]
                codes[named] += 2 * np.asarray(ids, dtype=np.int64)
        out = codes.astype(object)
        out[codes == 0] = None
        return out.tolist()

    def _type(self, conn: sqlite3.Connection, name: Any) -> int:
        known = self._types.get(name) if _hashable(name) else None
        if known is None:
            known = self._staged.types.get(name) if _hashable(name) else None
        if known is not None:
            return known
        if not isinstance(name, str | int | float):
            raise _unstorable("anomaly_type", name)
        row = conn.execute("SELECT id FROM anomaly_types WHERE name = ?", (name,)).fetchone()
        if row is not None:
            self._types[name] = int(row[0])
            return int(row[0])
        new = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM anomaly_types").fetchone()[0])
        conn.execute("INSERT INTO anomaly_types (id, name) VALUES (?, ?)", (new, name))
        self._staged.types[name] = new
        return new

    # -- unpacking -----------------------------------------------------------------------------
    def base(self, conn: sqlite3.Connection) -> int:
        """The time base (0 before the first row is stored), inside a transaction."""
        if self._base is None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (TIME_BASE,)).fetchone()
            if row is None:
                return 0
            self._base = int(row[0])
        return self._base

    def sensor_number(self, conn: sqlite3.Connection, sensor_id: str) -> int | None:
        """The number of ``sensor_id``, None for a sensor never stored."""
        row = conn.execute("SELECT id FROM sensors WHERE sensor_id = ?", (sensor_id,)).fetchone()
        return None if row is None else int(row[0])

    def _load(self, conn: sqlite3.Connection) -> None:
        """Every source and anomaly type, as the file holds them now."""
        columns = ", ".join(f"o.{quote(n)}" for n in SOURCE_FIELDS[1:])
        self._source_rows = {
            int(row[0]): row[1:]
            for row in conn.execute(
                f"SELECT o.id, s.sensor_id, {columns} FROM sources AS o "
                "JOIN sensors AS s ON s.id = o.sensor"
            )
        }
        self._type_names = dict(conn.execute("SELECT id, name FROM anomaly_types"))

    def unpack(
        self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]], extras: Mapping[str, Kind]
    ) -> Batch:
        """Rows selected with :func:`select_list` as a batch: every core column (canonical
        dtypes), the extra columns, and ``seq``; inside the reading transaction."""
        width = 4 + len(METRIC_FIELDS) + len(extras)
        columns: list[Sequence[Any]] = (
            list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
        )
        out: dict[str, np.ndarray] = {}
        sources = np.array(columns[1], dtype=np.int64)
        unique, inverse = np.unique(sources, return_inverse=True)
        if any(int(u) not in self._source_rows for u in unique):
            self._load(conn)
        fields = [self._source_rows[int(u)] for u in unique]
        stamps = np.array(columns[2], dtype=np.int64) + self.base(conn)
        codes = np.array(columns[3 + len(METRIC_FIELDS)], dtype=np.int64)
        for name, kind in CORE_FIELDS.items():
            if name == "timestamp":
                array = stamps
            elif name in SOURCE_FIELDS:
                at = SOURCE_FIELDS.index(name)
                array = column_from_sql([f[at] for f in fields], kind, core=True)[inverse]
            elif name in METRIC_FIELDS:
                array = column_from_sql(columns[3 + METRIC_FIELDS.index(name)], kind, core=True)
            elif name == "anomaly_flag":
                array = (codes & 1).astype(np.bool_)
            else:
                array = self._type_column(conn, codes >> 1)
            out[name] = read_only(array)
        for offset, (name, kind) in enumerate(extras.items()):
            values = columns[4 + len(METRIC_FIELDS) + offset]
            out[name] = read_only(column_from_sql(values, kind, core=False))
        out[STORE_SEQ] = read_only(np.array(columns[0], dtype=np.int64))
        return Batch(columns=out)

    def _type_column(self, conn: sqlite3.Connection, ids: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(ids, return_inverse=True)
        if any(int(u) and int(u) not in self._type_names for u in unique):
            self._load(conn)
        names = np.empty(len(unique), dtype=object)
        names[:] = [self._type_names.get(int(u)) for u in unique]
        return names[inverse]


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
