"""Bringing an existing store file up to this code when it is opened.

Guarantees:

* a file of schema version 1 (one ``readings`` table with every field as its own column) is
  rewritten in place to version 2 (:mod:`._schema`): every row keeps its ``seq`` and reads back
  with the same values; consumers, acks, dead letters, states and arrivals are untouched (they
  refer to rows by ``seq`` only), and the ``seq`` counter keeps its place, so a ``seq`` once
  given is never given again;
* everything happens in one write transaction: a migration interrupted (killed, power cut, disk
  full) leaves the file as it was, and the next open starts again. Two processes opening the same
  old file serialise on the write lock, and the second finds the work done;
* a file already up to date is opened without taking the write lock (a read decides);
* the ``arrivals`` and input tables are added to files that lack them, and rows no arrival
  covers (stored before the table existed) get one arrival timed now.

The space the old table used is left free inside the file for new rows (SQLite does not shrink
a file by itself; ``VACUUM`` does, with the store closed everywhere).
"""

from __future__ import annotations

import sqlite3

from ._schema import (
    ARRIVALS_TABLE,
    BASE_AHEAD,
    INPUT_TABLES,
    METRIC_FIELDS,
    MIGRATE_ARRIVALS,
    SCHEMA,
    SENSOR_BITS,
    SEQ_FLOOR,
    SOURCE_FIELDS,
    TABLE,
    TIME_BASE,
    UNCOVERED_ROWS,
    quote,
    statements,
    view_statements,
)

__all__ = ["migrate"]


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, tables: set[str], wall_ms: int) -> None:
    """Bring the file on ``conn`` (whose tables and views are ``tables``, format checked) up to
    this code; ``wall_ms`` times the arrival given to uncovered rows."""
    inputs = {"sensor_state", "input_rejects"} <= tables
    if (
        _version(conn) >= 2
        and inputs
        and "arrivals" in tables
        and not conn.execute(UNCOVERED_ROWS).fetchone()[0]
    ):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _version(conn) < 2:  # checked again under the write lock: another process may have
            _to_version_2(conn)
        for table in INPUT_TABLES:
            conn.execute(table)
        conn.execute(ARRIVALS_TABLE)
        conn.execute(MIGRATE_ARRIVALS, (wall_ms,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _to_version_2(conn: sqlite3.Connection) -> None:
    """Schema version 1 to 2, inside the caller's write transaction."""
    for statement in statements(SCHEMA):  # every one is CREATE ... IF NOT EXISTS
        conn.execute(statement)
    extras = [name for (name,) in conn.execute("SELECT name FROM extra_columns ORDER BY rowid")]
    declared = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(readings)")}
    for name in extras:
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {quote(name)} {declared[name]}")
    base = conn.execute(f"SELECT min(timestamp) + {BASE_AHEAD} FROM readings").fetchone()[0]
    if base is not None:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (TIME_BASE, str(int(base))))
    conn.execute(
        "INSERT INTO sensors (sensor_id) SELECT sensor_id FROM readings "
        "GROUP BY sensor_id ORDER BY min(seq)"
    )
    names = ", ".join(quote(n) for n in SOURCE_FIELDS[1:])
    identity = ", ".join(f"r.{quote(n)}" for n in SOURCE_FIELDS[1:])
    conn.execute(  # a sensor's first identity is numbered as the sensor, later ones above
        f"INSERT INTO sources (id, sensor, {names}) "
        f"SELECT s.id + ((row_number() OVER (PARTITION BY s.id ORDER BY min(r.seq)) - 1) "
        f"<< {SENSOR_BITS}), s.id, {identity} FROM readings AS r "
        f"JOIN sensors AS s ON s.sensor_id = r.sensor_id GROUP BY s.id, {identity}"
    )
    conn.execute(
        "INSERT INTO anomaly_types (name) SELECT anomaly_type FROM readings "
        "WHERE anomaly_type IS NOT NULL GROUP BY anomaly_type ORDER BY min(seq)"
    )
    same = " AND ".join(f"o.{quote(n)} IS r.{quote(n)}" for n in SOURCE_FIELDS[1:])
    metrics = ", ".join(quote(n) for n in METRIC_FIELDS)
    extra_list = "".join(f", {quote(n)}" for n in extras)
    conn.execute(
        f"INSERT INTO {TABLE} (seq, _source, _ts, {metrics}, _anomaly{extra_list}) "
        f"SELECT r.seq, (SELECT o.id FROM sources AS o WHERE o.sensor = s.id AND {same} "
        "ORDER BY o.id LIMIT 1), "
        f"r.timestamp - ?, {', '.join(f'r.{quote(n)}' for n in METRIC_FIELDS)}, "
        "nullif(2 * coalesce(t.id, 0) + (coalesce(r.anomaly_flag, 0) != 0), 0)"
        f"{''.join(f', r.{quote(n)}' for n in extras)} FROM readings AS r "
        "JOIN sensors AS s ON s.sensor_id = r.sensor_id "
        "LEFT JOIN anomaly_types AS t ON t.name = r.anomaly_type ORDER BY r.seq",
        (int(base or 0),),
    )
    # the seq counter keeps its place (rows pruned from the end are never numbered again)
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
    highest = conn.execute(f"SELECT max(seq) FROM {TABLE}").fetchone()[0]
    if top is not None and int(top[0]) > int(highest or 0):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (SEQ_FLOOR, str(int(top[0]))),
        )
    conn.execute("DROP TABLE readings")
    for statement in view_statements(extras):
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
