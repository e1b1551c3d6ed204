"""The SQLite outbox: a durable store between collecting and forwarding.

Guarantees:

* ``append`` is all-or-nothing (one transaction per batch) and idempotent: a reading already stored
  (same ``sensor_id`` and ``timestamp``) is not stored twice;
* every consumer has its own checkpoint; a checkpoint never passes a row the consumer has neither
  acknowledged nor dead-lettered, and acknowledgements may arrive in any order;
* dead-lettered rows never block the rows behind them, are never pruned while they wait, and can be
  listed and replayed;
* retention prunes only rows acknowledged by every registered consumer: nothing unsent is dropped;
* one writer process and several reader processes may share a file: every process (and every
  forked child) uses its own connection, WAL mode lets readers run beside the writer, and
  ``busy_timeout`` absorbs lock contention. Within a process a store object may be shared by threads.

The rows are kept compact (:mod:`.packing`, schema in :mod:`._schema`); consumers' bookkeeping is
in :mod:`.consumers`, opening the file in :mod:`.connection` and upgrading it in :mod:`.migrate`.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any, Final

from cosmobac.batch import Batch, require_identity
from cosmobac.errors import StoreError
from cosmobac.interfaces import DeadLetter, InputReject, StoreStats
from cosmobac.schema import CORE_FIELDS, STORE_SEQ, Kind, kind_of
from cosmobac.values import choice, duration, flag

from . import inputs
from ._schema import (
    RESERVED,
    SENSOR_MASK,
    SEQ_FLOOR,
    SQL_TYPES,
    TABLE,
    quote,
    view_statements,
    widen,
)
from .connection import MEMORY, SYNCHRONOUS, StoreConnection, wall_clock_ms
from .consumers import (
    has,
    move_checkpoint,
    next_checkpoint,
    register,
    seq_floor,
    seqs_of,
    sql_limit,
    stats_of,
    validate_consumer,
)
from .packing import Dimensions, select_list

__all__ = ["DeadLetter", "SQLiteStore"]

_CORE: Final = tuple(CORE_FIELDS)


class SQLiteStore:
    """The durable SQLite outbox (store plugin ``sqlite``).

    ``path`` is the database file (``":memory:"`` for a private in-memory store). ``create``: when
    the file does not exist, create it (with its parent directories); with ``create=False`` that is
    a :class:`~cosmobac.errors.StoreError` (commands that only read a store open it so). An existing
    file is never initialised: a 0-byte file or anything but a cosmobac store is refused. ``retention`` is how long rows acknowledged by every consumer
    are kept, as seconds or text like ``"7d"``/``"12h"`` (default: keep everything), judged by the
    reading's timestamp when :meth:`prune` runs. ``busy_timeout`` is how long to wait for a lock
    another process holds (seconds, or text like ``"30s"``). ``synchronous`` is ``"normal"``
    (durable at WAL checkpoints; a power cut may lose the last transactions, never corrupt) or
    ``"full"`` (durable at every commit). Opening the file is :mod:`cosmobac_sqlite.connection`'s
    job; so is noticing that the file was deleted, moved away or replaced while the store is open
    (every later operation raises a ``StoreError`` saying so).

    Capabilities (:mod:`cosmobac.interfaces`): read-ahead, stateful, resumable, prunable,
    scannable, sensor-range, dead-letter, input, consumer-admin and file store.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: str | float | None = None,
        busy_timeout: str | float = 30.0,
        synchronous: str = "normal",
        create: bool | str = True,
    ) -> None:
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"store 'path' must be a file path, got {type(path).__name__}")
        if not path.strip():
            raise ValueError("store 'path' must not be empty")
        self._retention_s = None if retention is None else duration("store 'retention'", retention)
        self._path = path
        self._known: set[str] = set()
        self._insert_sql: dict[tuple[str, ...], str] = {}
        self._dims = Dimensions()
        self._db = StoreConnection(
            path,
            busy_timeout=duration("store 'busy_timeout'", busy_timeout),
            synchronous=choice("store 'synchronous'", synchronous, SYNCHRONOUS),
            create=flag("store 'create'", create),
            on_reopen=self._forget,
        )

    def _forget(self) -> None:
        """A forked child opens its own connection: what this process cached may be stale."""
        self._known.clear()
        self._dims.clear()

    # -- connection -----------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def retention(self) -> float | None:
        """Seconds acknowledged rows are kept, or None to keep everything."""
        return self._retention_s

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r}, retention={self._retention_s!r})"

    def _fail(self, message: str) -> StoreError:
        return self._db.fail(message)

    def _transaction(self, *, write: bool) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction(write=write)

    def close(self) -> None:
        """Close the connection (idempotent). A forked child leaves its parent's connection alone."""
        self._db.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its configuration: a process that unpickles a store opens its own
        connection (e.g. ``multiprocessing`` with the ``spawn`` context)."""
        if self._path == MEMORY:
            raise TypeError("an in-memory store cannot be pickled or sent to another process")
        db = self._db
        return (
            _reopen,
            (self._path, self._retention_s, db.busy_timeout, db.synchronous, db.create),
        )

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -------------------------------------------------------------------------------
    def _insert_statement(self, names: tuple[str, ...]) -> str:
        sql = self._insert_sql.get(names)
        if sql is None:
            columns = ", ".join(quote(n) for n in names)
            marks = ", ".join("?" * len(names))
            sql = f"INSERT INTO {TABLE} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
            self._insert_sql[names] = sql
        return sql

    def _ensure_columns(self, conn: sqlite3.Connection, wanted: Mapping[str, Kind]) -> None:
        existing = {
            name: Kind(kind) for name, kind in conn.execute("SELECT name, kind FROM extra_columns")
        }
        taken = {n.lower(): n for n in (*_CORE, STORE_SEQ, *RESERVED, *existing)}
        added = False
        for name, kind in wanted.items():
            old = existing.get(name)
            if old is not None:
                new = widen(old, kind)
                if new is None:
                    raise ValueError(
                        f"column {name!r} is stored as {old.value} values; this batch has "
                        f"{kind.value} values (convert the column or rename it)"
                    )
                if new is not old:
                    conn.execute(
                        "UPDATE extra_columns SET kind = ? WHERE name = ?", (new.value, name)
                    )
                continue
            clash = taken.get(name.lower())
            if clash is not None and clash.lower() in RESERVED:
                raise ValueError(
                    f"column {name!r} has a name the store keeps for itself "
                    f"({', '.join(RESERVED)}); rename it"
                )
            if clash is not None:
                raise ValueError(
                    f"column {name!r} differs from column {clash!r} only by letter case, and "
                    "SQLite column names ignore case; rename it"
                )
            conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {quote(name)} {SQL_TYPES[kind]}")
            conn.execute("INSERT INTO extra_columns (name, kind) VALUES (?, ?)", (name, kind.value))
            taken[name.lower()] = name
            added = True
        if added:  # the readings view shows the new columns
            for statement in view_statements(list(self._extra_kinds(conn))):
                conn.execute(statement)

    def append(self, batch: Batch) -> int:
        """Store the rows of ``batch`` in one transaction; returns how many were new.

        ``sensor_id`` and ``timestamp`` are required; other core columns may be absent (stored as
        missing). Extra columns are added to the table as they first appear and travel through. A
        ``seq`` column (from another store's read) is ignored.
        """
        return self._append(batch, None)

    def append_input(
        self,
        batch: Batch,
        *,
        sensor: str,
        state: str | None = None,
        rejects: Sequence[InputReject] = (),
    ) -> int:
        """:meth:`append`, and in the same transaction ``sensor``'s ``state`` saved (when given)
        and ``rejects`` recorded (see :mod:`cosmobac_sqlite.inputs`)."""
        record = inputs.InputRecord.of(sensor, state, rejects)
        return self._append(batch, record)

    def load_sensor_state(self, sensor: str) -> str | None:
        """The state last saved for ``sensor`` by :meth:`append_input`, None when none was."""
        with self._transaction(write=False) as conn:
            return inputs.load_state(conn, sensor)

    def input_rejects(
        self, *, sensor: str | None = None, limit: int | None = None
    ) -> list[InputReject]:
        """The recorded rejects (of one sensor, or all), oldest first, at most ``limit``."""
        limit = sql_limit(limit, optional=True)
        with self._transaction(write=False) as conn:
            return inputs.rejects(conn, sensor, limit)

    @staticmethod
    def _first_seq(conn: sqlite3.Connection) -> int | None:
        """The ``seq`` new rows must start from when SQLite's next rowid would give a ``seq``
        again (the newest rows were deleted: ``meta.seq_floor``); None: SQLite's is right."""
        top, floor = conn.execute(
            f"SELECT (SELECT max(seq) FROM {TABLE}), (SELECT value FROM meta WHERE key = ?)",
            (SEQ_FLOOR,),
        ).fetchone()
        if floor is None or int(top or 0) >= int(floor):
            return None
        return int(floor) + 1

    def _append(self, batch: Batch, record: inputs.InputRecord | None) -> int:
        """The rows of ``batch`` (and a live sensor's ``record``) stored in one transaction."""
        if not len(batch) and record is not None:
            with self._transaction(write=True) as conn:
                record.save(conn)
            return 0
        if not len(require_identity(batch)):
            return 0
        names = tuple(n for n in batch.columns if n != STORE_SEQ)
        extras = {n: kind_of(batch[n].dtype.kind) for n in names if n not in CORE_FIELDS}
        if None in batch["sensor_id"].tolist():
            raise ValueError("batch has rows without a 'sensor_id'; every reading needs one")
        dims = self._dims
        columns: tuple[str, ...] = ()
        try:
            with self._transaction(write=True) as conn:
                dims.begin()
                if extras:
                    self._ensure_columns(conn, extras)
                packed = dims.pack(conn, batch, names)
                first = self._first_seq(conn)
                columns = packed.columns(first)
                cursor = conn.executemany(self._insert_statement(columns), packed.rows(first))
                stored = int(cursor.rowcount)
                if stored > 0:  # when these rows arrived: one arrivals row per append
                    conn.execute(
                        "INSERT INTO arrivals (seq_max, stored_at) "
                        f"VALUES ((SELECT max(seq) FROM {TABLE}), ?) ON CONFLICT DO NOTHING",
                        (wall_clock_ms(),),
                    )
                if record is not None:
                    record.save(conn)
            dims.keep()
            return stored
        except StoreError as exc:
            cause = exc.__cause__
            match = re.search(r"binding parameter (\d+)", str(cause)) if cause else None
            if match and isinstance(cause, sqlite3.InterfaceError | sqlite3.ProgrammingError):
                index = int(match.group(1))
                name = columns[index - 1] if 0 < index <= len(columns) else "?"
                raise ValueError(
                    f"column {name!r} holds values SQLite cannot store ({cause}); use numbers, "
                    "text or None"
                ) from None
            raise

    # -- consumers -----------------------------------------------------------------------------
    def last_timestamp(self) -> int | None:
        """The newest stored reading's timestamp (epoch ms), or None for an empty store. A
        restarted collector resumes after it."""
        with self._transaction(write=False) as conn:
            row = conn.execute(f"SELECT max(_ts) FROM {TABLE}").fetchone()
            if row is None or row[0] is None:
                return None
            return int(row[0]) + self._dims.base(conn)

    def consumers(self) -> list[str]:
        """Names of the registered consumers (a consumer registers on its first read or ack)."""
        with self._transaction(write=False) as conn:
            return [row[0] for row in conn.execute("SELECT name FROM consumers ORDER BY name")]

    def checkpoint(self, consumer: str) -> int:
        """The highest ``seq`` such that every row up to it is acknowledged or dead-lettered by
        ``consumer`` (0 for a consumer that has not read yet)."""
        validate_consumer(consumer)
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT checkpoint FROM consumers WHERE name = ?", (consumer,)
            ).fetchone()
        return int(row[0]) if row else 0

    def remove_consumer(self, consumer: str) -> bool:
        """Forget ``consumer``: its checkpoint, acks, dead letters and state. Rows it alone was
        holding back become prunable. Returns whether it existed."""
        validate_consumer(consumer)
        with self._transaction(write=True) as conn:
            existed = conn.execute("DELETE FROM consumers WHERE name = ?", (consumer,)).rowcount
            for table in ("acked", "dead_letters", "consumer_state"):
                conn.execute(f"DELETE FROM {table} WHERE consumer = ?", (consumer,))
        self._known.discard(consumer)
        return bool(existed)

    def load_state(self, consumer: str) -> dict[str, str]:
        """The state ``consumer`` saved with its last :meth:`ack` that carried one (empty if none)."""
        validate_consumer(consumer)
        with self._transaction(write=False) as conn:
            return dict(
                conn.execute(
                    "SELECT key, value FROM consumer_state WHERE consumer = ? ORDER BY key",
                    (consumer,),
                )
            )

    # -- reading -------------------------------------------------------------------------------
    def _extra_kinds(self, conn: sqlite3.Connection) -> dict[str, Kind]:
        return {
            name: Kind(kind)
            for name, kind in conn.execute("SELECT name, kind FROM extra_columns ORDER BY rowid")
        }

    def read(self, consumer: str, limit: int = 1000, *, after: int | None = None) -> Batch:
        """Up to ``limit`` of the oldest rows (by ``seq``) ``consumer`` has neither acknowledged nor
        dead-lettered, together with its replayed dead letters; with ``after``, only rows whose
        ``seq`` is larger (the forwarder reads the next batch so while the sink writes this one).

        The batch has every core column (canonical dtypes), the extra columns, and an int64 ``seq``
        column to acknowledge with. Reading does not lease rows: until acknowledged, the same rows
        come back on the next read. The consumer is registered on its first read. Safe to call
        from another thread while this one writes (the connection is shared under a lock).
        """
        validate_consumer(consumer)
        limit = sql_limit(limit, optional=False)
        above = seq_floor(after)
        for _ in range(2):
            if consumer not in self._known:
                with self._transaction(write=True) as conn:
                    register(conn, consumer)
                self._known.add(consumer)
            with self._transaction(write=False) as conn:
                row = conn.execute(
                    "SELECT checkpoint FROM consumers WHERE name = ?", (consumer,)
                ).fetchone()
                if row is None:  # removed by another process meanwhile: register again
                    self._known.discard(consumer)
                    continue
                checkpoint = max(int(row[0]), above)  # rows above this seq are candidates
                extras = self._extra_kinds(conn)
                select = select_list(list(extras))
                # the NOT EXISTS probes cost ~40 % of a read: skip them when there is nothing
                # above the checkpoint to skip (the common, in-order case)
                skip_acked = has(conn, "acked", consumer)
                skip_dead = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM dead_letters WHERE consumer = ? AND seq > ?)",
                    (consumer, checkpoint),
                ).fetchone()[0]
                any_replayed = has(conn, "dead_letters", consumer, replayed=True)
                sql = f"SELECT {select} FROM {TABLE} AS r WHERE r.seq > ?"
                params: list[Any] = [checkpoint]
                if skip_acked:
                    sql += (
                        " AND NOT EXISTS (SELECT 1 FROM acked AS a "
                        "WHERE a.consumer = ? AND a.seq = r.seq)"
                    )
                    params.append(consumer)
                if skip_dead:
                    sql += (
                        " AND NOT EXISTS (SELECT 1 FROM dead_letters AS d "
                        "WHERE d.consumer = ? AND d.seq = r.seq)"
                    )
                    params.append(consumer)
                rows = conn.execute(f"{sql} ORDER BY r.seq LIMIT ?", [*params, limit]).fetchall()
                replayed: list[Any] = []
                if any_replayed:
                    replayed = conn.execute(
                        f"SELECT {select} FROM dead_letters AS d JOIN {TABLE} AS r ON r.seq = d.seq "
                        "WHERE d.consumer = ? AND d.replayed = 1 AND d.seq > ? ORDER BY d.seq LIMIT ?",
                        (consumer, above, limit),
                    ).fetchall()
                if replayed:
                    rows = sorted(replayed + rows, key=lambda r: r[0])[:limit]
                return self._dims.unpack(conn, rows, extras)
        raise self._fail(f"consumer {consumer!r} keeps being removed while it reads")

    def read_after(self, consumer: str, limit: int, after: int) -> Batch:
        """:meth:`read` with ``after``: what makes this a ``ReadAheadStore``."""
        return self.read(consumer, limit, after=after)

    def scan(self, *, after: int | None = None, limit: int | None = None) -> Batch:
        """Stored rows in ``seq`` order (only those above ``after``, at most ``limit``), whatever
        any consumer acknowledged or dead-lettered: a read that registers nothing and writes
        nothing (for evaluating or exporting what a store holds). Same columns as :meth:`read`."""
        above = seq_floor(after)
        rows_at_most = sql_limit(limit, optional=True)
        with self._transaction(write=False) as conn:
            extras = self._extra_kinds(conn)
            rows = conn.execute(
                f"SELECT {select_list(list(extras))} FROM {TABLE} AS r WHERE r.seq > ? "
                "ORDER BY r.seq LIMIT ?",
                (above, rows_at_most),
            ).fetchall()
            return self._dims.unpack(conn, rows, extras)

    def scan_sensor(
        self, sensor_id: str, start: int, end: int, *, limit: int | None = None
    ) -> Batch:
        """The stored rows of ``sensor_id`` with ``start <= timestamp < end`` (epoch ms), in
        timestamp order, at most ``limit``: a read through the ``(sensor_id, timestamp)`` index
        that registers nothing and writes nothing (the dashboard's zoom). Same columns as
        :meth:`read`."""
        rows_at_most = sql_limit(limit, optional=True)
        with self._transaction(write=False) as conn:
            extras = self._extra_kinds(conn)
            sensor = self._dims.sensor_number(conn, str(sensor_id))
            base = self._dims.base(conn)
            rows = conn.execute(
                f"SELECT {select_list(list(extras))} FROM {TABLE} AS r "
                f"WHERE (r._source & {SENSOR_MASK}) = ? AND r._ts >= ? AND r._ts < ? "
                "ORDER BY r._ts LIMIT ?",
                (
                    -1 if sensor is None else sensor,
                    int(start) - base,
                    int(end) - base,
                    rows_at_most,
                ),
            ).fetchall()
            return self._dims.unpack(conn, rows, extras)

    # -- acknowledging -------------------------------------------------------------------------
    def ack(
        self,
        consumer: str,
        batch: Batch | Iterable[int],
        *,
        state: Mapping[str, str] | None = None,
    ) -> None:
        """Record that ``consumer`` durably delivered these rows (by their ``seq``), in any order.

        ``batch`` is what :meth:`read` returned (possibly filtered), or the ``seq`` values. Acking a
        replayed dead letter clears it. Rows that do not exist or are already acknowledged are
        ignored. ``state`` (str → str) replaces the consumer's saved state in the same transaction.
        """
        validate_consumer(consumer)
        seqs = seqs_of(batch)
        if state is not None:
            if not isinstance(state, Mapping):
                raise TypeError(
                    f"state must be a mapping of str to str, got {type(state).__name__}"
                )
            for key, value in state.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError(
                        f"state must map str to str; got {key!r}: {type(value).__name__}"
                    )
        with self._transaction(write=True) as conn:
            checkpoint = register(conn, consumer)
            if seqs:
                if has(conn, "dead_letters", consumer):
                    conn.executemany(
                        "DELETE FROM dead_letters WHERE consumer = ? AND seq = ?",
                        [(consumer, s) for s in seqs],
                    )
                above = [s for s in seqs if s > checkpoint]
                if above:
                    new = next_checkpoint(conn, consumer, checkpoint, set(above))
                    rest = [(consumer, s) for s in above if s > new]
                    if rest:  # out of order: remember them until the checkpoint passes them
                        conn.executemany(
                            f"INSERT INTO acked (consumer, seq) SELECT ?, seq FROM {TABLE} "
                            "WHERE seq = ? ON CONFLICT DO NOTHING",
                            rest,
                        )
                    move_checkpoint(conn, consumer, checkpoint, new)
            if state is not None:
                conn.execute("DELETE FROM consumer_state WHERE consumer = ?", (consumer,))
                conn.executemany(
                    "INSERT INTO consumer_state (consumer, key, value) VALUES (?, ?, ?)",
                    [(consumer, k, v) for k, v in state.items()],
                )
        self._known.add(consumer)

    # -- dead letters --------------------------------------------------------------------------
    def dead_letter(
        self, consumer: str, batch: Batch | Iterable[int], reason: str | Sequence[str]
    ) -> None:
        """Set rows aside for ``consumer`` with a reason (one for all, or one per row). They count
        as handled for the checkpoint, never block the rows behind them, and are kept (never
        pruned) until replayed and acknowledged."""
        validate_consumer(consumer)
        if isinstance(batch, Batch):
            if len(batch) and STORE_SEQ not in batch:
                seqs_of(batch)  # raises the explanatory error
            raw = batch[STORE_SEQ].tolist() if len(batch) else []
        else:
            raw = list(batch)
        if isinstance(reason, str):
            reasons = [reason] * len(raw)
        else:
            reasons = list(reason)
            if len(reasons) != len(raw):
                raise ValueError(f"{len(reasons)} reasons given for {len(raw)} rows")
        for text in reasons:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"a dead letter needs a non-empty reason, got {text!r}")
        seqs_of(raw)  # checks they are integers
        pairs = {int(seq): text for seq, text in zip(raw, reasons, strict=True)}
        now = wall_clock_ms()
        with self._transaction(write=True) as conn:
            checkpoint = register(conn, consumer)
            if pairs:
                conn.executemany(
                    "INSERT INTO dead_letters (consumer, seq, reason, created_at, replayed) "
                    f"SELECT ?, seq, ?, ?, 0 FROM {TABLE} WHERE seq = ? "
                    "ON CONFLICT (consumer, seq) DO UPDATE SET reason = excluded.reason, "
                    "created_at = excluded.created_at, replayed = 0",
                    [(consumer, text, now, seq) for seq, text in pairs.items()],
                )
                above = [s for s in pairs if s > checkpoint]
                if above:
                    if has(conn, "acked", consumer):
                        conn.executemany(
                            "DELETE FROM acked WHERE consumer = ? AND seq = ?",
                            [(consumer, s) for s in above],
                        )
                    new = next_checkpoint(conn, consumer, checkpoint, set())
                    move_checkpoint(conn, consumer, checkpoint, new)
        self._known.add(consumer)

    def dead_letters(
        self, consumer: str | None = None, *, limit: int | None = None
    ) -> list[DeadLetter]:
        """Dead letters (of one consumer or all), ordered by consumer then ``seq``, each with its
        reason, time and reading. Replayed ones stay listed (``replayed=True``) until acknowledged."""
        if consumer is not None:
            validate_consumer(consumer)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        with self._transaction(write=False) as conn:
            extras = self._extra_kinds(conn)
            where = "WHERE d.consumer = ?" if consumer is not None else ""
            params: list[Any] = [consumer] if consumer is not None else []
            tail = ""
            if limit is not None:
                tail = " LIMIT ?"
                params.append(int(limit))
            rows = conn.execute(
                f"SELECT d.consumer, d.reason, d.created_at, d.replayed, "
                f"{select_list(list(extras))} FROM dead_letters AS d "
                f"JOIN {TABLE} AS r ON r.seq = d.seq {where} ORDER BY d.consumer, d.seq{tail}",
                params,
            ).fetchall()
            if not rows:
                return []
            batch = self._dims.unpack(conn, [row[4:] for row in rows], extras)
        readings = list(batch.drop(STORE_SEQ).rows())
        return [
            DeadLetter(
                consumer=row[0],
                seq=int(row[4]),
                reason=row[1],
                created_at=int(row[2]),
                replayed=bool(row[3]),
                reading=reading,
            )
            for row, reading in zip(rows, readings, strict=True)
        ]

    def replay(self, consumer: str, seqs: Batch | Iterable[int] | None = None) -> int:
        """Make ``consumer``'s waiting dead letters (all, or those with these ``seq`` values)
        deliverable again: :meth:`read` returns them until they are acknowledged (or dead-lettered
        again). Returns how many were waiting."""
        validate_consumer(consumer)
        chosen = None if seqs is None else seqs_of(seqs)
        with self._transaction(write=True) as conn:
            if chosen is None:
                return int(
                    conn.execute(
                        "UPDATE dead_letters SET replayed = 1 WHERE consumer = ? AND replayed = 0",
                        (consumer,),
                    ).rowcount
                )
            cursor = conn.executemany(
                "UPDATE dead_letters SET replayed = 1 "
                "WHERE consumer = ? AND seq = ? AND replayed = 0",
                [(consumer, s) for s in chosen],
            )
            return int(cursor.rowcount)

    # -- housekeeping --------------------------------------------------------------------------
    def stats(self) -> StoreStats:
        """Rows stored; per consumer: rows pending (neither acknowledged nor waiting as dead
        letters; replayed dead letters count as pending), how long the next row to deliver has
        waited in the store (seconds since the ``append`` that stored it, from the ``arrivals``
        table; None when nothing is pending), that row's reading timestamp (epoch seconds), and
        dead letters waiting. A replayed dead letter keeps its original arrival. For a consumer
        that has not read the store, ``oldest_stored_age_s`` and ``oldest_stored_timestamp``
        describe the oldest row still stored (its lowest ``seq``). ``file_size`` includes the WAL
        file."""
        now = wall_clock_ms()
        with self._transaction(write=False) as conn:
            return stats_of(conn, self._dims.base(conn), now, self._file_size())

    def _file_size(self) -> int | None:
        if self._path == MEMORY:
            return None
        total = 0
        for suffix in ("", "-wal"):
            with suppress(OSError):
                total += os.path.getsize(self._path + suffix)
        return total

    def prune(self, now_ms: int | None = None) -> int:
        """Delete rows older than ``retention`` (by reading timestamp, against ``now_ms`` or the
        wall clock) that every registered consumer has acknowledged and that wait in no dead-letter
        list, and the ``arrivals`` that covered only them. With no retention set, or no consumer
        registered, nothing is pruned. Returns how many rows were deleted."""
        if self._retention_s is None:
            return 0
        now = wall_clock_ms() if now_ms is None else int(now_ms)
        cutoff = now - round(self._retention_s * 1000)
        with self._transaction(write=True) as conn:
            floor = conn.execute("SELECT min(checkpoint) FROM consumers").fetchone()[0]
            if floor is None:
                return 0
            top = conn.execute(f"SELECT max(seq) FROM {TABLE}").fetchone()[0]
            deleted = int(
                conn.execute(
                    f"DELETE FROM {TABLE} WHERE seq <= ? AND _ts < ? AND NOT EXISTS "
                    f"(SELECT 1 FROM dead_letters AS d WHERE d.seq = {TABLE}.seq)",
                    (int(floor), cutoff - self._dims.base(conn)),
                ).rowcount
            )
            if deleted:  # the newest row deleted: its seq is never given again
                conn.execute(
                    "INSERT INTO meta (key, value) "
                    f"SELECT ?, ? WHERE coalesce((SELECT max(seq) FROM {TABLE}), 0) < ? "
                    "ON CONFLICT (key) DO UPDATE SET "
                    "value = CAST(max(CAST(value AS INTEGER), excluded.value) AS TEXT)",
                    (SEQ_FLOOR, int(top or 0), int(top or 0)),
                )
            if deleted:  # arrivals below the oldest row left cover no row any more
                conn.execute(
                    f"DELETE FROM arrivals WHERE seq_max < coalesce((SELECT min(seq) FROM "
                    f"{TABLE}), (SELECT max(seq_max) FROM arrivals))"
                )
            return deleted


def _reopen(
    path: str, retention: float | None, busy_timeout: float, synchronous: str, create: bool
) -> SQLiteStore:
    return SQLiteStore(
        path,
        retention=retention,
        busy_timeout=busy_timeout,
        synchronous=synchronous,
        create=create,
    )
