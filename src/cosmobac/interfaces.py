"""The component contract downstream plugins are written against.

Components are plain objects satisfying these Protocols; nothing needs to inherit from cosmobac.
Factories registered through the hooks (see :mod:`cosmobac.hookspecs`) take keyword configuration
and return one component.

Besides the four component Protocols (:class:`Sensor`, :class:`Store`, :class:`Transform`,
:class:`Sink`), optional abilities are Protocols of their own (*capabilities*): a component has one
by having its methods, and cosmobac asks with ``isinstance`` (e.g. ``isinstance(store,
PrunableStore)``), never by probing for attributes. ``isinstance`` against a Protocol only checks
that the members exist, so each capability is named by methods whose presence is the promise
(read-ahead is its own method, :meth:`ReadAheadStore.read_after`, rather than an optional keyword of
``read``). :func:`cosmobac.testing.check_store` and its siblings check what the methods do.

A subclass can take back a capability it inherited by setting the method to ``None``
(``scan = None``): ``isinstance`` then says no.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .batch import Batch

__all__ = [
    "Closeable",
    "CommittingSensor",
    "ConsumerAdminStore",
    "DeadLetter",
    "DeadLetterStore",
    "FileStore",
    "FixedStartSensor",
    "FleetNode",
    "FleetSource",
    "FusableTransform",
    "InputObserver",
    "InputReject",
    "InputStore",
    "LaneOutcome",
    "LiveSensor",
    "PipelineObserver",
    "PrunableStore",
    "ReadAheadStore",
    "ReadableSink",
    "RejectingSensor",
    "ResumableStore",
    "ScannableStore",
    "SeekableSensor",
    "Sensor",
    "SensorRangeStore",
    "SensorSpan",
    "Sink",
    "SourceObserver",
    "SourceReportingSensor",
    "SourceStatus",
    "StatefulSensor",
    "StatefulStore",
    "StatefulTransform",
    "Store",
    "StoreStats",
    "Transform",
    "WriteResult",
    "missing_members",
]


@runtime_checkable
class Sensor(Protocol):
    """A source of readings.

    ``read(until)`` returns the readings with ``timestamp < until`` (epoch ms) that it has not
    returned before. The clock is passed in, so a simulation can run faster than real time and be
    deterministic for a seed.
    """

    def read(self, until: int) -> Batch: ...


@runtime_checkable
class FixedStartSensor(Sensor, Protocol):
    """A sensor whose time begins at a set point: ``collect`` starts at ``start`` (epoch ms)
    instead of the wall clock's current time. ``start`` may be ``None`` when the sensor has no
    readings to place (e.g. ``ListSensor`` given nothing): the wall clock is used then."""

    @property
    def start(self) -> int | None: ...


@runtime_checkable
class SeekableSensor(Sensor, Protocol):
    """A sensor that can skip ahead: ``seek(until)`` counts every reading with
    ``timestamp < until`` as already returned, so the next ``read`` starts at ``until``.

    A collector restarted over a :class:`ResumableStore` seeks past the newest stored reading and
    so neither collects a reading twice nor leaves a gap."""

    def seek(self, until: int) -> None: ...


@runtime_checkable
class LiveSensor(Sensor, Protocol):
    """A sensor fed by the outside world (a broker, devices, growing files) rather than by the
    collector's clock.

    * ``wait(timeout, rows)`` blocks until at least ``rows`` readings wait to be read, or fewer
      that are all the source will ever give or all the sensor can hold (returns True: read
      now), or ``timeout`` seconds have passed (returns False);
    * ``read(until)`` is given the wall clock (epoch ms) and returns the readings received since
      the last ``read``, whatever their own timestamps (a device's clock is its own); it does not
      block for long;
    * ``finished`` is true once the sensor will never have more to return (a ``csv`` sensor that
      does not follow its files, after their last line); a source that runs until stopped keeps
      it false.

    ``collect`` runs a live sensor in real time, whatever ``run.speed``: it reads whenever
    ``run.batch_size`` readings wait or ``run.flush_interval`` has passed, stores what it read,
    and ends when ``run.duration`` (wall-clock time) has passed, the sensor is finished, or it is
    stopped, reading and storing once more first."""

    def wait(self, timeout: float, rows: int) -> bool: ...

    @property
    def finished(self) -> bool: ...


@runtime_checkable
class CommittingSensor(Sensor, Protocol):
    """A sensor told when what it returned is safe: ``commit()`` is called once everything its
    last ``read`` returned is durably stored, with its rejects and state (an MQTT sensor
    acknowledges the messages to the broker then). A collector that dies before ``commit`` gets
    the same input again from the source when restarted; the store's dedupe (same ``sensor_id``
    and ``timestamp``) stores each reading once."""

    def commit(self) -> None: ...


@runtime_checkable
class StatefulSensor(Sensor, Protocol):
    """A sensor that knows where it stands in its sources (e.g. a ``csv`` sensor's file offsets).

    ``get_state()`` is saved with the rows of each read, in the same store transaction, when the
    store is an :class:`InputStore`; ``set_state(text)`` is called with the last saved text when
    collecting starts, so a restarted collector neither reads a row twice nor skips one."""

    def get_state(self) -> str: ...

    def set_state(self, state: str) -> None: ...


MAX_REJECT_RAW = 4096
"""An :class:`InputReject` keeps at most this many characters of the input it could not read."""


def _raw_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", errors="replace")
    text = str(value)
    return text if len(text) <= MAX_REJECT_RAW else text[: MAX_REJECT_RAW - 1] + "…"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.frozen
class InputReject:
    """Input a sensor could not turn into a reading: where it came from (``origin``: a file and
    line, ``"data/a.csv:17"``; a topic; a device), why (``reason``, naming what was wrong), the
    input itself (``raw``, text, cut to :data:`MAX_REJECT_RAW` characters; bytes are decoded as
    UTF-8 with replacement), when (``created_at``, epoch ms) and, once stored, the ``sensor`` it
    came from (the collector fills it in: the sensor's plugin name)."""

    origin: str = attrs.field(converter=str)
    reason: str = attrs.field(converter=str)
    raw: str = attrs.field(default="", converter=_raw_text, repr=False)
    created_at: int = attrs.field(factory=_now_ms, converter=int)
    sensor: str = attrs.field(default="", converter=str)


@runtime_checkable
class RejectingSensor(Sensor, Protocol):
    """A sensor that sets aside input it could not read (a malformed line or payload) instead of
    failing: ``take_rejects()`` returns the :class:`InputReject` s set aside since it was last
    called. The collector calls it after each ``read`` and stores them with that read's rows (an
    :class:`InputStore`; ``cosmobac dead-letters inputs`` lists them), or logs them."""

    def take_rejects(self) -> Sequence[InputReject]: ...


@attrs.frozen
class SourceStatus:
    """How one source of a live sensor is doing (a device it polls, a broker it reads): its
    name, ``up`` (its last attempt gave readings), attempts made (``polls``), ``readings`` made,
    ``failures`` (attempts that could not reach it) and ``last_error`` (why, or None). Counts
    are totals since the sensor started."""

    source: str
    up: bool
    polls: int = 0
    readings: int = 0
    failures: int = 0
    last_error: str | None = None


@runtime_checkable
class SourceReportingSensor(Sensor, Protocol):
    """A sensor reading several sources that says how each is doing: ``sources()`` returns one
    :class:`SourceStatus` per source, in a stable order. The collector passes them to a
    :class:`SourceObserver` after each store (the ``monitoring`` metrics export them)."""

    def sources(self) -> Sequence[SourceStatus]: ...


@runtime_checkable
class Closeable(Protocol):
    """Anything holding resources to release: ``close()``, callable more than once. Stores and
    sinks always have it; a pipeline built from a file also closes a sensor or transform that has
    it."""

    def close(self) -> None: ...


@attrs.frozen
class StoreStats:
    """A store's state at one moment.

    Per consumer (a sink's name):

    * ``pending``: rows not yet acknowledged nor waiting as dead letters (replayed ones count);
    * ``oldest_pending_age_s``: how long, in seconds (≥ 0), its oldest pending row (the next one
      it is to deliver) has waited in the store: the wall clock now minus when the ``append``
      that stored it ran. It does not depend on the reading's own timestamp, so simulated time, a
      backfill of old data or a sensor's wrong clock never make it absurd. None when nothing is
      pending. A replayed dead letter counts from its original arrival. A store that cannot know
      when a row arrived (e.g. rows stored before it recorded arrivals) documents its fallback;
      the ``sqlite`` store counts such rows from the upgrade that began recording them;
    * ``oldest_pending_timestamp``: that same row's reading timestamp, in epoch seconds (None
      when nothing is pending): how far behind in sensor time the consumer is. Empty for a store
      that does not report it;
    * ``dead_letters``: dead letters waiting (not replayed).

    A consumer that has never read the store (e.g. a sink whose forwarder never started) is not
    registered and has no entry in these mappings, yet every stored row is pending for it. For it:

    * ``oldest_stored_age_s``: how long, in seconds (≥ 0), the oldest row still in the store has
      waited since the ``append`` that stored it (None for an empty store, or a store that does not
      report it). It is the oldest pending row of any consumer that has not read the store;
    * ``oldest_stored_timestamp``: that same row's reading timestamp, in epoch seconds (None for an
      empty store, or a store that does not report it).

    :meth:`backlog_of` answers for any consumer, registered or not. ``file_size`` is the bytes on
    disk, where the store has a file.
    """

    rows: int
    pending: Mapping[str, int]  # consumer → rows not yet acknowledged or dead-lettered
    oldest_pending_age_s: Mapping[str, float | None]  # consumer → seconds its next row has waited
    dead_letters: Mapping[str, int]  # consumer → dead letters waiting
    file_size: int | None = None  # bytes on disk, where the store has a file
    # consumer → reading timestamp (epoch s) of its next row
    oldest_pending_timestamp: Mapping[str, float | None] = attrs.field(factory=dict)
    # the oldest row still stored: seconds since it was stored, its reading timestamp (epoch s)
    oldest_stored_age_s: float | None = None
    oldest_stored_timestamp: float | None = None

    def backlog_of(self, consumer: str) -> tuple[int, float | None, float | None]:
        """``consumer``'s pending rows, how long its oldest pending row has waited in the store
        (seconds) and that row's reading timestamp (epoch seconds). A registered consumer: its
        entries in ``pending``, ``oldest_pending_age_s`` and ``oldest_pending_timestamp``. One that
        has never read the store: every stored row is pending, the oldest stored row first
        (``rows``, ``oldest_stored_age_s``, ``oldest_stored_timestamp``; the age and timestamp are
        None when the store does not report them)."""
        if consumer in self.pending:
            return (
                self.pending[consumer],
                self.oldest_pending_age_s.get(consumer),
                self.oldest_pending_timestamp.get(consumer),
            )
        if not self.rows:
            return 0, None, None
        return self.rows, self.oldest_stored_age_s, self.oldest_stored_timestamp

    def _repr_html_(self) -> str:
        """What a notebook shows: rows, size, and per consumer pending rows and dead letters."""
        from .display import store_stats_html

        return store_stats_html(self)


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
class ReadAheadStore(Store, Protocol):
    """A store the forwarder can read the next batch from while the sink writes this one.

    ``read_after(consumer, limit, after)`` returns what ``read(consumer, limit)`` would, restricted
    to rows whose ``seq`` is larger than ``after`` (oldest first, at most ``limit``), and must be
    safe to call from another thread while the store is used on this one. Like ``read`` it leases
    nothing: the rows come back on later reads until acknowledged.

    It is a method of its own, not an optional ``after=`` keyword of ``read``, because
    ``isinstance`` checks only that methods exist, not their signatures: having ``read_after`` is
    the store's declaration that it can do this."""

    def read_after(self, consumer: str, limit: int, after: int) -> Batch: ...


@runtime_checkable
class StatefulStore(Store, Protocol):
    """A store that keeps each consumer's transform state with its checkpoint:
    ``load_state(consumer)`` returns the ``state`` given with that consumer's last ``ack`` that
    carried one (an empty mapping when none did), so a restarted forwarder resumes its
    :class:`StatefulTransform` s warm. A store without it ignores ``state``; stateful transforms then
    start cold after a restart."""

    def load_state(self, consumer: str) -> Mapping[str, str]: ...


@runtime_checkable
class ResumableStore(Store, Protocol):
    """A store that can say what it holds last: ``last_timestamp()`` is the newest stored reading's
    timestamp (epoch ms), ``None`` when empty. With a :class:`SeekableSensor` a restarted collector
    resumes just after it."""

    def last_timestamp(self) -> int | None: ...


@runtime_checkable
class PrunableStore(Store, Protocol):
    """A store with retention: ``prune()`` deletes rows it no longer needs and returns how many.
    It must never delete a row some consumer has not acknowledged, nor one waiting as a dead
    letter. The forwarder calls it about once a minute and when it has nothing left to send."""

    def prune(self) -> int: ...


@runtime_checkable
class ScannableStore(Store, Protocol):
    """A store that can be read whole without acting as a consumer: ``scan(*, after=None,
    limit=None)`` returns stored rows in ``seq`` order (only above ``after``, at most ``limit``),
    whatever consumers acknowledged, registering nothing (``evaluate`` and ``report`` use it)."""

    def scan(self, *, after: int | None = None, limit: int | None = None) -> Batch: ...


@runtime_checkable
class SensorRangeStore(Store, Protocol):
    """A store that can read one sensor's rows over a span of time, quickly (the ``sqlite`` store
    through its ``(sensor_id, timestamp)`` index): ``scan_sensor(sensor_id, start, end, *,
    limit=None)`` returns the stored rows of ``sensor_id`` with ``start <= timestamp < end`` (epoch
    ms), in timestamp order, at most ``limit``, whatever consumers acknowledged, registering nothing.
    Same columns as ``read``. The dashboard zooms in on it; without it, it shows coarser data."""

    def scan_sensor(
        self, sensor_id: str, start: int, end: int, *, limit: int | None = None
    ) -> Batch: ...


@runtime_checkable
class InputStore(Store, Protocol):
    """A store that keeps, with the rows, where a sensor stands and the input it could not read.

    * ``append_input(batch, *, sensor, state=None, rejects=())`` does what ``append`` does and, in
      the same transaction, saves ``state`` (when given) as sensor ``sensor``'s state and records
      ``rejects``; returns how many rows were new. Rejects are kept at least once: a collector
      that dies after storing them and before its sensor's ``commit`` may record them again;
    * ``load_sensor_state(sensor)``: the state last saved for ``sensor``, None when none was;
    * ``input_rejects(*, sensor=None, limit=None)``: the recorded rejects (of one sensor, or all),
      oldest first, at most ``limit``, each with its ``sensor`` set.
    """

    def append_input(
        self,
        batch: Batch,
        *,
        sensor: str,
        state: str | None = None,
        rejects: Sequence[InputReject] = (),
    ) -> int: ...

    def load_sensor_state(self, sensor: str) -> str | None: ...

    def input_rejects(
        self, *, sensor: str | None = None, limit: int | None = None
    ) -> list[InputReject]: ...


@runtime_checkable
class DeadLetterStore(Store, Protocol):
    """A store whose dead letters can be listed and replayed (the ``cosmobac dead-letters``
    commands).

    * ``dead_letters(consumer=None, *, limit=None)``: the dead letters of one consumer (or all),
      by consumer then ``seq``; replayed ones stay listed (``replayed=True``) until acknowledged;
    * ``replay(consumer, seqs=None)``: makes the consumer's waiting dead letters (all, or those
      ``seq`` s) deliverable again, so ``read`` returns them until acknowledged; returns how many
      were waiting.
    """

    def dead_letters(
        self, consumer: str | None = None, *, limit: int | None = None
    ) -> list[DeadLetter]: ...

    def replay(self, consumer: str, seqs: Iterable[int] | None = None) -> int: ...


@runtime_checkable
class ConsumerAdminStore(Store, Protocol):
    """A store that can forget a consumer: ``remove_consumer(consumer)`` drops its checkpoint,
    acknowledgements, dead letters and state (rows only it held back become prunable) and returns
    whether it existed. Used for a sink taken out of a pipeline and for temporary readers."""

    def remove_consumer(self, consumer: str) -> bool: ...


@runtime_checkable
class FileStore(Store, Protocol):
    """A store kept in a file: ``path`` names it (the importer refuses to import the store into
    itself)."""

    @property
    def path(self) -> str: ...


@runtime_checkable
class Transform(Protocol):
    """A step between store and sink: returns a new batch (may add columns or drop rows).

    Keeping the store's ``seq`` column on rows that pass through lets the forwarder acknowledge
    exactly what the sink wrote; rows a transform drops count as handled.
    """

    def __call__(self, batch: Batch) -> Batch: ...


@runtime_checkable
class FusableTransform(Transform, Protocol):
    """A transform that can merge with the one after it into one transform giving the same
    results, bit for bit, and doing less work (WebAssembly kernels of one module run in one
    sandboxed call): ``fuse_with(following)`` returns the merged transform, or ``None`` when the
    two cannot merge. A pipeline runs each lane's transforms with such runs merged
    (:func:`cosmobac.assembly.fuse_transforms`); a stateful transform's state is still saved
    under its place in the chain as declared."""

    def fuse_with(self, following: Transform) -> Transform | None: ...


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


@attrs.frozen
class SensorSpan:
    """What a destination holds of one sensor: ``count`` documents (distinct ids), the first and
    the last reading's ``timestamp`` (epoch ms)."""

    count: int = attrs.field(converter=int)
    first: int = attrs.field(converter=int)
    last: int = attrs.field(converter=int)


@runtime_checkable
class ReadableSink(Sink, Protocol):
    """A sink whose destination can be read back (``cosmobac verify`` compares it with the store).

    * ``spans(*, start=None, end=None, sensors=None)``: per ``sensor_id``, a :class:`SensorSpan`
      of the documents with ``start <= timestamp < end`` (epoch ms; ``None``: unbounded), only of
      the ``sensors`` given (``None``: every sensor the destination holds; a destination shared by
      several nodes is asked for its own sensors). A document held twice under one ``id`` (an
      append-only file after a crash) counts once. Sensors without documents are left out;
    * ``fetch(ids)``: the documents held under those ids, by id, as the sink wrote them (a
      destination's own bookkeeping, such as Cosmos DB's ``_rid``, left out); ids it does not hold
      are left out.

    Both read the destination as it is now, without writing, and may cost (a database charges
    queries): each sink documents what."""

    def spans(
        self,
        *,
        start: int | None = None,
        end: int | None = None,
        sensors: Iterable[str] | None = None,
    ) -> Mapping[str, SensorSpan]: ...

    def fetch(self, ids: Iterable[str]) -> Mapping[str, Mapping[str, Any]]: ...


@runtime_checkable
class PipelineObserver(Protocol):
    """What a :class:`~cosmobac.pipeline.Pipeline` tells an ``observer`` as it runs (the
    ``monitoring`` package's metrics and health tracker are two). Called on the loops' threads,
    once per collected step or forwarded batch (never per row); a method should return quickly
    and never raise.

    * ``on_collect``: rows read from the sensor in one step, and how many of them were new to
      the store;
    * ``on_write``: a sink's ``write`` returned (``result`` is ``None`` when it wrote every row)
      after ``seconds``; ``rows`` is the batch it was given (after the transforms);
    * ``on_lane``: a lane handled one batch: a :class:`LaneOutcome` says what changed.
    """

    def on_collect(self, rows_read: int, rows_added: int) -> None: ...

    def on_write(
        self, consumer: str, rows: Batch, seconds: float, result: WriteResult | None
    ) -> None: ...

    def on_lane(self, outcome: LaneOutcome) -> None: ...


@runtime_checkable
class InputObserver(Protocol):
    """An observer (see :class:`PipelineObserver`) that also hears of input a live sensor could
    not read: ``on_input_rejects(sensor, count)`` after a store that recorded ``count`` of
    ``sensor``'s :class:`InputReject` s (the ``monitoring`` package's metrics count them)."""

    def on_input_rejects(self, sensor: str, count: int) -> None: ...


@runtime_checkable
class SourceObserver(Protocol):
    """An observer (see :class:`PipelineObserver`) that also hears how a live sensor's sources
    are doing: ``on_sources(sensor, sources)`` after each store of a
    :class:`SourceReportingSensor`'s readings, with its latest :class:`SourceStatus` es."""

    def on_sources(self, sensor: str, sources: Sequence[SourceStatus]) -> None: ...


@attrs.frozen
class LaneOutcome:
    """What one lane's turn at one batch changed: rows acknowledged, dead-lettered and to retry,
    failed writes (0 or 1), and when something failed, ``error`` (the text, secrets redacted by
    the sink) with ``stopped`` true when the sink failed permanently. A transform that raised is
    named by ``failed_transform`` (its class name), with the exception's class name in
    ``error_type`` and its :attr:`~cosmobac.errors.CosmobacError.cause` in ``error_cause``."""

    consumer: str
    acked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    failures: int = 0
    error: str | None = None
    stopped: bool = False
    failed_transform: str | None = None
    error_type: str | None = None
    error_cause: str | None = None


@attrs.frozen
class FleetNode:
    """One node of a fleet as a :class:`FleetSource` found it: its ``cosmobac status --json``
    document (``status``, ``None`` when it gave none) and ``problems``, the reasons it is not
    healthy (its status's problems, a stopped sink, or why it did not answer), empty when healthy."""

    node_id: str
    status: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems


@runtime_checkable
class FleetSource(Protocol):
    """Where a fleet view learns how its nodes are: ``poll()`` asks every node once (it may take
    seconds; callers poll from a background thread) and returns one :class:`FleetNode` per node,
    by ``node_id``; a node that could not answer is there with its problem."""

    def poll(self) -> Sequence[FleetNode]: ...


def missing_members(component: object, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``component`` lacks (or has set to ``None``), in name
    order: empty exactly when ``isinstance(component, protocol)`` holds, for a message that says
    what is missing rather than only that something is."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        names.update(n for n in vars(klass) if not n.startswith("_") or n == "__call__")
        names.update(n for n in getattr(klass, "__annotations__", {}) if not n.startswith("_"))
    return sorted(n for n in names if getattr(component, n, None) is None)
