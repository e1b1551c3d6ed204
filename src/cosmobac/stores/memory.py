"""The ``memory`` store: the Store contract in memory.

For notebooks, scripts and tests that need no file, and a short reference implementation of the
contract. Nothing outlives the process: use the ``sqlite`` store (``cosmobac-sqlite``) for an
edge node's durable outbox.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

import attrs
import numpy as np

from ..batch import Batch, require_identity
from ..hookspecs import Register, hookimpl
from ..interfaces import DeadLetter, InputReject, StoreStats
from ..schema import STORE_SEQ

__all__ = ["MemoryStore", "register_stores"]


@attrs.define(eq=False)
class MemoryStore:
    """The Store contract in memory (plugin name ``memory``), for notebooks and tests that need no
    file, and a short reference implementation.

    Besides :class:`~cosmobac.interfaces.Store` it is a :class:`~cosmobac.interfaces.ReadAheadStore`,
    :class:`~cosmobac.interfaces.StatefulStore`, :class:`~cosmobac.interfaces.ResumableStore`,
    :class:`~cosmobac.interfaces.ScannableStore`, :class:`~cosmobac.interfaces.SensorRangeStore`,
    :class:`~cosmobac.interfaces.DeadLetterStore`,
    :class:`~cosmobac.interfaces.InputStore` and
    :class:`~cosmobac.interfaces.ConsumerAdminStore`; it has no retention (not prunable) and no
    file."""

    _rows: Batch = attrs.field(init=False, factory=Batch.empty)
    _keys: set[tuple[str, int]] = attrs.field(init=False, factory=set)
    _acked: dict[str, set[int]] = attrs.field(init=False, factory=dict)
    _dead: dict[str, dict[int, DeadLetter]] = attrs.field(init=False, factory=dict)
    _state: dict[str, dict[str, str]] = attrs.field(init=False, factory=dict)
    _lock: threading.RLock = attrs.field(init=False, factory=threading.RLock)
    # when rows arrived, one entry per append that stored rows: its highest seq, epoch ms
    _arrival_seqs: list[int] = attrs.field(init=False, factory=list)
    _arrival_ms: list[int] = attrs.field(init=False, factory=list)
    _sensor_state: dict[str, str] = attrs.field(init=False, factory=dict)
    _rejects: list[InputReject] = attrs.field(init=False, factory=list)

    def append(self, batch: Batch) -> int:
        if not len(require_identity(batch)):
            return 0
        if any(s is None for s in batch["sensor_id"].tolist()):
            raise ValueError("batch has rows without a 'sensor_id'; every reading needs one")
        with self._lock:
            keys = list(zip(batch["sensor_id"].tolist(), batch["timestamp"].tolist(), strict=True))
            new = np.zeros(len(keys), dtype=bool)
            for i, key in enumerate(keys):  # duplicates, stored or inside the batch, count once
                if key not in self._keys:
                    self._keys.add(key)
                    new[i] = True
            fresh = batch.drop(STORE_SEQ).select(new)
            start = len(self._rows) + 1
            fresh = fresh.with_columns({STORE_SEQ: np.arange(start, start + len(fresh))})
            self._rows = Batch.concat([self._rows, fresh])
            if len(fresh):
                self._arrival_seqs.append(start + len(fresh) - 1)
                self._arrival_ms.append(time.time_ns() // 1_000_000)
            return len(fresh)

    def append_input(
        self,
        batch: Batch,
        *,
        sensor: str,
        state: str | None = None,
        rejects: Sequence[InputReject] = (),
    ) -> int:
        """:meth:`append`, saving ``sensor``'s ``state`` and recording ``rejects`` with it (all or
        nothing)."""
        rejects = [attrs.evolve(r, sensor=sensor) for r in rejects]
        if state is not None and not isinstance(state, str):
            raise TypeError(f"state must be text, got {type(state).__name__}")
        with self._lock:
            new = self.append(batch) if len(batch) else 0
            if state is not None:
                self._sensor_state[sensor] = state
            self._rejects.extend(rejects)
            return new

    def load_sensor_state(self, sensor: str) -> str | None:
        """The state last saved for ``sensor`` by :meth:`append_input`, None when none was."""
        return self._sensor_state.get(sensor)

    def input_rejects(
        self, *, sensor: str | None = None, limit: int | None = None
    ) -> list[InputReject]:
        """The recorded rejects (of one sensor, or all), oldest first, at most ``limit``."""
        with self._lock:
            found = [r for r in self._rejects if sensor is None or r.sensor == sensor]
        return found if limit is None else found[:limit]

    def _arrival_ms_of(self, seq: int) -> int:
        """When the row ``seq`` was appended (epoch ms): the first arrival covering it."""
        return self._arrival_ms[bisect.bisect_left(self._arrival_seqs, seq)]

    def last_timestamp(self) -> int | None:
        """The newest reading's timestamp, or None when empty (lets a collector resume)."""
        return int(self._rows["timestamp"].max()) if len(self._rows) else None

    def read(self, consumer: str, limit: int) -> Batch:
        return self._pending(consumer, limit, None)

    def read_after(self, consumer: str, limit: int, after: int) -> Batch:
        """:meth:`read`, only rows whose ``seq`` is above ``after`` (safe from another thread)."""
        return self._pending(consumer, limit, int(after))

    def _pending(self, consumer: str, limit: int, after: int | None) -> Batch:
        with self._lock:  # the forwarder may read ahead from another thread
            acked = self._acked.setdefault(consumer, set())
            dead = self._dead.setdefault(consumer, {})
            waiting = {s for s, d in dead.items() if not d.replayed}
            rows = self._rows
            if not len(rows):
                return rows
            pending = ~np.isin(rows[STORE_SEQ], list(acked | waiting))
            if after is not None:
                pending &= rows[STORE_SEQ] > after
            return rows.select(np.flatnonzero(pending)[:limit])

    def scan(self, *, after: int | None = None, limit: int | None = None) -> Batch:
        """Stored rows in ``seq`` order, whatever consumers did (registers nothing)."""
        with self._lock:
            rows = self._rows
            if after is not None and len(rows):
                rows = rows.select(rows[STORE_SEQ] > after)
            return rows if limit is None else rows.select(slice(0, limit))

    def scan_sensor(
        self, sensor_id: str, start: int, end: int, *, limit: int | None = None
    ) -> Batch:
        """One sensor's rows with ``start <= timestamp < end`` (epoch ms), in timestamp order."""
        with self._lock:
            rows = self._rows
            if not len(rows):
                return rows
            t = rows["timestamp"]
            keep = (rows["sensor_id"] == sensor_id) & (t >= start) & (t < end)
            found = np.flatnonzero(keep)
            found = found[np.argsort(t[found], kind="stable")]
            return rows.select(found if limit is None else found[:limit])

    def ack(self, consumer: str, batch: Batch, *, state: Mapping[str, str] | None = None) -> None:
        with self._lock:
            seqs = batch[STORE_SEQ].tolist()
            self._acked.setdefault(consumer, set()).update(seqs)
            dead = self._dead.setdefault(consumer, {})
            for seq in seqs:
                dead.pop(seq, None)
            if state is not None:
                self._state[consumer] = dict(state)

    def load_state(self, consumer: str) -> dict[str, str]:
        return dict(self._state.get(consumer, {}))

    def remove_consumer(self, consumer: str) -> bool:
        """Forget ``consumer`` (acks, dead letters, state); whether it existed."""
        with self._lock:
            existed = consumer in self._acked or consumer in self._dead
            for table in (self._acked, self._dead, self._state):
                table.pop(consumer, None)
            return existed

    def dead_letter(self, consumer: str, batch: Batch, reason: str) -> None:
        with self._lock:
            dead = self._dead.setdefault(consumer, {})
            now = int(time.time() * 1000)
            for row in batch.rows():
                seq = int(row.pop(STORE_SEQ))
                self._acked.setdefault(consumer, set()).discard(seq)
                dead[seq] = DeadLetter(consumer, seq, reason, now, replayed=False, reading=row)

    def dead_letters(
        self, consumer: str | None = None, *, limit: int | None = None
    ) -> list[DeadLetter]:
        """Dead letters (of one consumer or all), by consumer then ``seq``."""
        chosen = [consumer] if consumer is not None else sorted(self._dead)
        letters = [d for c in chosen for _, d in sorted(self._dead.get(c, {}).items())]
        return letters if limit is None else letters[:limit]

    def replay(self, consumer: str, seqs: Iterable[int] | None = None) -> int:
        with self._lock:
            dead = self._dead.setdefault(consumer, {})
            wanted = set(dead) if seqs is None else set(seqs)
            waiting = [s for s, d in dead.items() if s in wanted and not d.replayed]
            for seq in waiting:
                dead[seq] = attrs.evolve(dead[seq], replayed=True)
            return len(waiting)

    def stats(self) -> StoreStats:
        """Per consumer, ``oldest_pending_age_s`` is how long its next row has waited since the
        ``append`` that stored it (a replayed dead letter: since its original append);
        ``oldest_stored_age_s`` and ``oldest_stored_timestamp`` describe the first row stored."""
        with self._lock:
            consumers = sorted(set(self._acked) | set(self._dead))
            pending: dict[str, int] = {}
            ages: dict[str, float | None] = {}
            heads: dict[str, float | None] = {}
            now_ms = time.time_ns() // 1_000_000
            for consumer in consumers:
                rows = self.read(consumer, len(self._rows))
                pending[consumer] = len(rows)
                if len(rows):
                    arrived = self._arrival_ms_of(int(rows[STORE_SEQ][0]))
                    ages[consumer] = max(0.0, (now_ms - arrived) / 1000)
                    heads[consumer] = float(rows["timestamp"][0]) / 1000
                else:
                    ages[consumer] = heads[consumer] = None
            stored_age: float | None = None
            stored_head: float | None = None
            if len(self._rows):  # nothing is ever deleted: the oldest row is the first one
                first = int(self._rows[STORE_SEQ][0])
                stored_age = max(0.0, (now_ms - self._arrival_ms_of(first)) / 1000)
                stored_head = float(self._rows["timestamp"][0]) / 1000
            return StoreStats(
                rows=len(self._rows),
                pending=pending,
                oldest_pending_age_s=ages,
                dead_letters={
                    c: sum(not d.replayed for d in self._dead.get(c, {}).values())
                    for c in consumers
                },
                oldest_pending_timestamp=heads,
                oldest_stored_age_s=stored_age,
                oldest_stored_timestamp=stored_head,
            )

    def close(self) -> None:
        pass


@hookimpl
def register_stores(register: Register) -> None:
    register(
        "memory",
        MemoryStore,
        description="rows in this process's memory (nothing outlives it); for notebooks and tests",
    )
