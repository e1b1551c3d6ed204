"""A live sensor's state and rejected input, kept in the store file beside the rows.

Guarantees: :meth:`InputRecord.save` runs inside the transaction that stores the rows read with
them, so a sensor's saved position never runs ahead of (or behind) the rows it stands for; a
sensor's state is one row of ``sensor_state``, replaced whole; rejects are appended to
``input_rejects`` in the order given and listed oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import attrs

from cosmobac.interfaces import InputReject

__all__ = ["InputRecord", "load_state", "rejects"]


def _sensor_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"sensor must be a non-empty name (text), got {value!r}")
    return value


@attrs.frozen
class InputRecord:
    """What a live sensor stores beside one read's rows: its state (None: leave it) and rejects."""

    sensor: str = attrs.field(converter=_sensor_name)
    state: str | None
    rejects: tuple[InputReject, ...]

    @classmethod
    def of(cls, sensor: str, state: str | None, rejects: Sequence[InputReject]) -> InputRecord:
        """Checked: ``state`` text or None, every reject an :class:`InputReject`."""
        if state is not None and not isinstance(state, str):
            raise TypeError(f"state must be text or None, got {type(state).__name__}")
        for reject in rejects:
            if not isinstance(reject, InputReject):
                raise TypeError(f"rejects must be InputReject records, got {type(reject).__name__}")
        return cls(sensor, state, tuple(rejects))

    def save(self, conn: sqlite3.Connection) -> None:
        """Save the state and record the rejects (inside the caller's write transaction)."""
        if self.state is not None:
            conn.execute(
                "INSERT INTO sensor_state (sensor, state) VALUES (?, ?) "
                "ON CONFLICT (sensor) DO UPDATE SET state = excluded.state",
                (self.sensor, self.state),
            )
        if self.rejects:
            conn.executemany(
                "INSERT INTO input_rejects (sensor, origin, reason, raw, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(self.sensor, r.origin, r.reason, r.raw, r.created_at) for r in self.rejects],
            )


def load_state(conn: sqlite3.Connection, sensor: str) -> str | None:
    """The state saved for ``sensor``, None when none was."""
    row = conn.execute("SELECT state FROM sensor_state WHERE sensor = ?", (sensor,)).fetchone()
    return None if row is None else str(row[0])


def rejects(conn: sqlite3.Connection, sensor: str | None, limit: int) -> list[InputReject]:
    """Rejects of ``sensor`` (None: all), oldest first, at most ``limit`` (-1: all)."""
    where, args = ("WHERE sensor = ?", (sensor,)) if sensor is not None else ("", ())
    rows = conn.execute(
        f"SELECT origin, reason, raw, created_at, sensor FROM input_rejects {where} "
        "ORDER BY id LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [InputReject(*row) for row in rows]
