"""Consumers' bookkeeping in the store file: checkpoints, out-of-order acks, dead letters, and the
backlog figures of ``stats``; and the checks of the arguments that name rows and consumers.

Guarantees: a checkpoint only moves forward, and never past a row the consumer has neither
acknowledged nor dead-lettered; every function here runs inside the caller's transaction and
touches only ``seq`` values (never the readings' contents).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import numpy as np

from cosmobac.batch import Batch
from cosmobac.interfaces import StoreStats
from cosmobac.schema import STORE_SEQ

from ._schema import TABLE
from .connection import wall_clock_ms

__all__ = [
    "has",
    "move_checkpoint",
    "next_checkpoint",
    "pending_head",
    "register",
    "seq_floor",
    "seqs_of",
    "sql_limit",
    "stats_of",
    "validate_consumer",
]


def sql_limit(limit: Any, *, optional: bool) -> int:
    """A ``limit`` argument checked (a positive integer; None too when ``optional``), as SQLite's
    ``LIMIT`` takes it (-1: no limit)."""
    if limit is None and optional:
        return -1
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        none = " or None" if optional else ""
        raise ValueError(f"limit must be a positive integer{none}, got {limit!r}")
    return int(limit)


def seq_floor(after: Any) -> int:
    """The ``seq`` that rows must be above for an ``after`` argument (None: every row)."""
    if after is None:
        return -1
    if isinstance(after, bool) or not isinstance(after, int | np.integer):
        raise ValueError(f"after must be a seq (an integer) or None, got {after!r}")
    return int(after)


def validate_consumer(consumer: Any) -> str:
    if not isinstance(consumer, str):
        raise TypeError(f"consumer must be a str (a sink's name), got {type(consumer).__name__}")
    if not consumer:
        raise ValueError("consumer must be a non-empty name")
    return consumer


def seqs_of(rows: Batch | Iterable[int]) -> list[int]:
    """Sorted distinct ``seq`` values of a batch the store returned, or of an iterable of ints."""
    if isinstance(rows, Batch):
        if not len(rows):
            return []
        if STORE_SEQ not in rows:
            raise ValueError(
                f"the batch has no {STORE_SEQ!r} column: acknowledge or dead-letter rows as "
                f"read() returned them (transforms must keep the {STORE_SEQ!r} column)"
            )
        array = np.asarray(rows[STORE_SEQ])
    else:
        array = np.asarray(list(rows))
    if array.size == 0:
        return []
    if array.dtype.kind not in "iu":
        raise TypeError(f"seq values must be integers, got dtype {array.dtype}")
    return sorted(set(array.astype(np.int64).tolist()))


def register(conn: sqlite3.Connection, consumer: str) -> int:
    """Register ``consumer`` if new (inside a write transaction); its checkpoint."""
    conn.execute(
        "INSERT INTO consumers (name, checkpoint, created_at) VALUES (?, 0, ?) "
        "ON CONFLICT (name) DO NOTHING",
        (consumer, wall_clock_ms()),
    )
    row = conn.execute("SELECT checkpoint FROM consumers WHERE name = ?", (consumer,))
    return int(row.fetchone()[0])


def next_checkpoint(
    conn: sqlite3.Connection, consumer: str, checkpoint: int, handled: set[int]
) -> int:
    """The checkpoint after ``handled`` rows (above ``checkpoint``) are handled too: just below
    the first row that is neither acked, dead-lettered nor in ``handled``."""
    cursor = conn.execute(
        f"SELECT r.seq FROM {TABLE} AS r WHERE r.seq > ? "
        "AND NOT EXISTS (SELECT 1 FROM acked AS a WHERE a.consumer = ? AND a.seq = r.seq) "
        "AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.consumer = ? AND d.seq = r.seq) "
        "ORDER BY r.seq",
        (checkpoint, consumer, consumer),
    )
    try:
        for (seq,) in cursor:
            if seq not in handled:
                return int(seq) - 1
    finally:
        cursor.close()
    top = conn.execute(f"SELECT max(seq) FROM {TABLE}").fetchone()[0]
    return max(checkpoint, int(top or 0))


def move_checkpoint(conn: sqlite3.Connection, consumer: str, old: int, new: int) -> None:
    if new > old:
        conn.execute("UPDATE consumers SET checkpoint = ? WHERE name = ?", (new, consumer))
        conn.execute("DELETE FROM acked WHERE consumer = ? AND seq <= ?", (consumer, new))


def has(conn: sqlite3.Connection, table: str, consumer: str, *, replayed: bool = False) -> bool:
    """Whether ``table`` has any row of ``consumer`` (only replayed ones if ``replayed``)."""
    extra = " AND replayed = 1" if replayed else ""
    return bool(
        conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE consumer = ?{extra})", (consumer,)
        ).fetchone()[0]
    )


def pending_head(
    conn: sqlite3.Connection, name: str, checkpoint: int
) -> tuple[int, int, int, int | None, int | None]:
    """For ``stats``: ``consumer``'s rows pending, dead letters waiting, and its next row to
    deliver (the first pending row above the checkpoint, or the first replayed dead letter): how
    many there are (0 or 1), its stored timestamp (relative to the time base) and its arrival."""
    above = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE seq > ?", (checkpoint,)).fetchone()[0]
    acked = conn.execute(
        "SELECT count(*) FROM acked WHERE consumer = ? AND seq > ?", (name, checkpoint)
    ).fetchone()[0]
    waiting_above, replayed_below, waiting = conn.execute(
        "SELECT coalesce(sum(replayed = 0 AND seq > ?), 0), "
        "coalesce(sum(replayed = 1 AND seq <= ?), 0), coalesce(sum(replayed = 0), 0) "
        "FROM dead_letters WHERE consumer = ?",
        (checkpoint, checkpoint, name),
    ).fetchone()
    found, head, arrived = conn.execute(
        "SELECT count(*), min(r._ts), min((SELECT a.stored_at FROM arrivals AS a "
        " WHERE a.seq_max >= r.seq ORDER BY a.seq_max LIMIT 1)) "
        f"FROM {TABLE} AS r WHERE r.seq IN (("
        f" SELECT min(x.seq) FROM {TABLE} AS x WHERE x.seq > ? AND NOT EXISTS "
        " (SELECT 1 FROM acked AS a WHERE a.consumer = ? AND a.seq = x.seq) "
        " AND NOT EXISTS (SELECT 1 FROM dead_letters AS d "
        " WHERE d.consumer = ? AND d.seq = x.seq)), "
        "(SELECT min(seq) FROM dead_letters WHERE consumer = ? AND replayed = 1))",
        (checkpoint, name, name, name),
    ).fetchone()
    pending = int(above - acked - waiting_above + replayed_below)
    return pending, int(waiting), int(found), head, arrived


def stats_of(conn: sqlite3.Connection, base: int, now: int, file_size: int | None) -> StoreStats:
    """``SQLiteStore.stats`` inside a read transaction: ``base`` is the time base, ``now`` the
    wall clock (epoch ms)."""
    pending: dict[str, int] = {}
    ages: dict[str, float | None] = {}
    heads: dict[str, float | None] = {}
    dead: dict[str, int] = {}
    rows = int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
    # the oldest row stored (lowest seq): its reading timestamp and its arrival
    first = conn.execute(
        "SELECT r._ts, (SELECT a.stored_at FROM arrivals AS a "
        " WHERE a.seq_max >= r.seq ORDER BY a.seq_max LIMIT 1) "
        f"FROM {TABLE} AS r WHERE r.seq = (SELECT min(seq) FROM {TABLE})"
    ).fetchone()
    stored_age: float | None = None
    stored_head: float | None = None
    if first is not None:
        stored_head = (int(first[0]) + base) / 1000.0
        # no arrival: stored by earlier code since this store was opened, so just now
        stored_age = 0.0 if first[1] is None else max(0.0, (now - int(first[1])) / 1000.0)
    consumers = conn.execute("SELECT name, checkpoint FROM consumers ORDER BY name").fetchall()
    for name, checkpoint in consumers:
        pending[name], dead[name], found, head, arrived = pending_head(conn, name, checkpoint)
        if not found or head is None:
            ages[name] = heads[name] = None
            continue
        heads[name] = (int(head) + base) / 1000.0
        ages[name] = 0.0 if arrived is None else max(0.0, (now - int(arrived)) / 1000.0)
    return StoreStats(
        rows=rows,
        pending=pending,
        oldest_pending_age_s=ages,
        dead_letters=dead,
        file_size=file_size,
        oldest_pending_timestamp=heads,
        oldest_stored_age_s=stored_age,
        oldest_stored_timestamp=stored_head,
    )
