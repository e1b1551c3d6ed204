"""The component contract downstream plugins are written against.

Components are plain objects satisfying these Protocols; nothing needs to inherit from cosmobac.
Factories registered through the hooks (see :mod:`cosmobac.hookspecs`) take keyword configuration
and return one component.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .batch import Batch

__all__ = [
    "DeadLetter",
    "Sensor",
    "Sink",
    "StatefulTransform",
    "Store",
    "StoreStats",
    "Transform",
    "WriteResult",
]


@runtime_checkable
class Sensor(Protocol):
    """A source of readings.

    ``read(until)`` returns the readings with ``timestamp < until`` (epoch ms) that it has not
    returned before. The clock is passed in, so a simulation can run faster than real time and be
    deterministic for a seed.
    """

    def read(self, until: int) -> Batch: ...


@attrs.frozen
class StoreStats:
    """A store's state at one moment."""

    rows: int
    pending: Mapping[str, int]  # consumer → rows not yet acknowledged or dead-lettered
    oldest_pending_age_s: Mapping[str, float | None]  # consumer → age of its oldest pending row
    dead_letters: Mapping[str, int]  # consumer → dead letters waiting
    file_size: int | None = None  # bytes on disk, where the store has a file


@attrs.frozen
class DeadLetter:
    """A row set aside for one consumer: why, when, and the reading itself.

    ``created_at`` is epoch milliseconds; ``replayed`` is true once the store's ``replay`` made it
    deliverable again (it leaves the dead letters when the consumer acknowledges it).
    """

    consumer: str
    seq: int
    reason: str
    created_at: int
    replayed: bool
    reading: Mapping[str, Any] = attrs.field(repr=False)

    @property
    def sensor_id(self) -> str:
        return str(self.reading["sensor_id"])

    @property
    def timestamp(self) -> int:
        return int(self.reading["timestamp"])


@runtime_checkable
class Store(Protocol):
    """A durable outbox between collecting and forwarding.

    * ``append(batch)`` stores rows durably (all or nothing); a reading already stored (same
      ``sensor_id`` and ``timestamp``) is not stored twice. Returns how many rows were new.
    * ``read(consumer, limit)`` returns up to ``limit`` of the oldest rows ``consumer`` has neither
      acknowledged nor dead-lettered, with a ``seq`` column identifying each row.
    * ``ack(consumer, batch, state=None)`` records that ``consumer`` durably delivered these rows
      (by ``seq``); ``state`` (str → str), when given, replaces the consumer's saved transform state
      in the same transaction (``load_state(consumer)`` returns it).
    * ``dead_letter(consumer, batch, reason)`` sets rows aside for ``consumer`` with a reason; they no
      longer block the rows behind them and can be listed and replayed.
    """

    def append(self, batch: Batch) -> int: ...

    def read(self, consumer: str, limit: int) -> Batch: ...

    def ack(
        self, consumer: str, batch: Batch, *, state: Mapping[str, str] | None = None
    ) -> None: ...

    def dead_letter(self, consumer: str, batch: Batch, reason: str) -> None: ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...


@runtime_checkable
class Transform(Protocol):
    """A step between store and sink: returns a new batch (may add columns or drop rows).

    Keeping the store's ``seq`` column on rows that pass through lets the forwarder acknowledge
    exactly what the sink wrote; rows a transform drops count as handled.
    """

    def __call__(self, batch: Batch) -> Batch: ...


@runtime_checkable
class StatefulTransform(Transform, Protocol):
    """A transform that carries state from batch to batch (e.g. a detector's rolling statistics).

    The forwarder saves ``get_state()`` with each acknowledgement, in the same store transaction,
    and calls ``set_state`` with the saved text when a forwarder starts, so a restarted forwarder
    continues warm and gives the same results as one that never stopped. When a batch is not
    acknowledged (sink failure, retry), the forwarder restores the state it had before the batch.
    """

    def get_state(self) -> str: ...

    def set_state(self, state: str) -> None: ...


def _positions(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class WriteResult:
    """What a sink did with a batch when it could not write every row.

    ``retry`` lists row positions (in the batch given to ``write``) to send again later;
    ``rejected`` maps row positions to the reason the sink refused them for their content (they go
    to the dead letters). Rows named in neither were durably written.
    """

    retry: tuple[int, ...] = attrs.field(default=(), converter=_positions)
    rejected: Mapping[int, str] = attrs.field(factory=dict)
    stats: Mapping[str, Any] = attrs.field(factory=dict)  # e.g. {"request_charge": 12.5}

    @property
    def complete(self) -> bool:
        """True when every row was written."""
        return not self.retry and not self.rejected


@runtime_checkable
class Sink(Protocol):
    """A destination. ``write`` returns ``None`` when every row is durably written, or a
    :class:`WriteResult`. Raising :class:`cosmobac.errors.SinkError` (or any exception) means nothing
    in the batch counts as written."""

    def write(self, batch: Batch) -> WriteResult | None: ...

    def close(self) -> None: ...
