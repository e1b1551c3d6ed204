"""``cosmobac verify``: does each sink hold what the store says it delivered?

For each sink of a pipeline file that can be read back (a
:class:`~cosmobac.interfaces.ReadableSink`), against the pipeline's store (a
:class:`~cosmobac.interfaces.ScannableStore`):

* **counts and time range per sensor**: the rows the sink's consumer has acknowledged are
  *expected* in the sink; ``spans`` (asked for the store's sensors over the store's time span)
  must hold exactly that many documents per sensor, first and last timestamps included;
* **a sample, field by field**: ``sample`` random expected rows are fetched by document id
  (:func:`cosmobac.documents.document_id`) and compared with the document the store's row makes
  (:func:`cosmobac.documents.to_documents`): only the store's fields (fields a transform adds are
  ignored), numbers to a relative 1e-9 (float round trips).

A running node is fine: rows not yet acknowledged are reported as *not yet forwarded* and are
allowed, not required, in the sink (an at-least-once sink may hold a row written just before a
crash, before its acknowledgement); rows acknowledged while the check runs, and rows stored while
it runs, are *in flight*, allowed too. The order makes that sound: the store is scanned, then the
consumer's pending rows are read, then the sink is asked, then the pending rows are read again.

Limits, said in the report where they apply: the sink is asked only about the store's sensors
(a container shared by a fleet holds the other nodes' sensors too), so documents of a sensor the
store never held are not seen; rows a transform drops are acknowledged without reaching the sink
and show as missing (a hint names the transforms); a store with retention holds only its recent
rows, so the comparison starts at its oldest stored reading.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from .batch import Batch
from .config import PipelineConfig, load_config
from .documents import iso_timestamps, to_documents
from .errors import CosmobacError
from .interfaces import (
    DeadLetterStore,
    ReadableSink,
    ReadAheadStore,
    ScannableStore,
    SensorSpan,
    Store,
)
from .pipeline import Lane, Pipeline
from .schema import STORE_SEQ

__all__ = ["FieldDifference", "SensorCheck", "SinkCheck", "Verification", "verify"]

PAGE = 50_000
"""Rows per page when scanning the store or reading a consumer's pending rows."""

REL_TOL = 1e-9
ABSENT = "<absent>"
"""How a field the sink's document lacks is shown."""


def _iso(ms: int | None) -> str | None:
    return None if ms is None else str(iso_timestamps(np.array([ms], dtype=np.int64))[0])


@attrs.frozen
class SensorCheck:
    """One sensor: rows expected in the sink (acknowledged), found there, and allowed there
    (``pending``: not yet forwarded; ``in_flight``: acknowledged or stored during the check)."""

    sensor_id: str
    expected: int
    found: int
    pending: int = 0
    in_flight: int = 0
    first: int | None = None
    last: int | None = None
    found_first: int | None = None
    found_last: int | None = None

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.found)

    @property
    def extra(self) -> int:
        return max(0, self.found - self.expected - self.pending - self.in_flight)

    @property
    def range_differs(self) -> bool:
        """First or last timestamp differ where the counts are exact (nothing pending)."""
        if self.pending or self.in_flight or self.missing or self.extra or not self.expected:
            return False
        return (self.first, self.last) != (self.found_first, self.found_last)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.range_differs)

    def problem(self) -> str | None:
        parts = []
        if self.missing:
            parts.append(f"missing {self.missing}")
        if self.extra:
            parts.append(f"extra {self.extra}")
        if self.range_differs:
            parts.append(
                f"time range {_iso(self.found_first)} .. {_iso(self.found_last)}, stored "
                f"{_iso(self.first)} .. {_iso(self.last)}"
            )
        return ", ".join(parts) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "sensor_id": self.sensor_id,
            "expected": self.expected,
            "found": self.found,
            "pending": self.pending,
            "in_flight": self.in_flight,
            "missing": self.missing,
            "extra": self.extra,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "found_first": _iso(self.found_first),
            "found_last": _iso(self.found_last),
            "ok": self.ok,
            "problem": self.problem(),
        }


@attrs.frozen
class FieldDifference:
    """A sampled document whose field differs from the stored row's (``found`` is
    :data:`ABSENT` when the document lacks it)."""

    id: str
    field: str
    stored: Any
    found: Any

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "field": self.field, "stored": self.stored, "found": self.found}


@attrs.frozen
class SinkCheck:
    """One sink's verification (``skipped`` says why a sink was not checked)."""

    consumer: str
    plugin: str
    stored: int = 0
    expected: int = 0
    pending: int = 0
    in_flight: int = 0
    dead_lettered: int = 0
    sensors: tuple[SensorCheck, ...] = ()
    sampled: int = 0
    sample_missing: tuple[str, ...] = ()
    sample_different: tuple[FieldDifference, ...] = ()
    hints: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def found(self) -> int:
        return sum(s.found for s in self.sensors)

    @property
    def missing(self) -> int:
        return sum(s.missing for s in self.sensors)

    @property
    def extra(self) -> int:
        return sum(s.extra for s in self.sensors)

    @property
    def ok(self) -> bool:
        if self.skipped is not None:
            return True
        return (
            all(s.ok for s in self.sensors)
            and not self.sample_missing
            and not self.sample_different
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sink": self.consumer,
            "plugin": self.plugin,
            "ok": self.ok,
            "skipped": self.skipped,
            "stored": self.stored,
            "expected": self.expected,
            "found": self.found,
            "missing": self.missing,
            "extra": self.extra,
            "pending": self.pending,
            "in_flight": self.in_flight,
            "dead_lettered": self.dead_lettered,
            "sensors": [s.to_json() for s in self.sensors],
            "sample": {
                "size": self.sampled,
                "missing": list(self.sample_missing),
                "different": [d.to_json() for d in self.sample_different],
            },
            "hints": list(self.hints),
        }


@attrs.frozen
class Verification:
    """The result of :func:`verify`: one :class:`SinkCheck` per sink. ``ok`` when every sink
    checked holds what it should and at least one sink was checked."""

    config: str
    sinks: tuple[SinkCheck, ...]

    @property
    def checked(self) -> list[SinkCheck]:
        return [s for s in self.sinks if s.skipped is None]

    @property
    def ok(self) -> bool:
        return bool(self.checked) and all(s.ok for s in self.sinks)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "ok": self.ok,
            "sinks": [s.to_json() for s in self.sinks],
        }


# -- the store's side ---------------------------------------------------------------------------
@attrs.frozen
class _Snapshot:
    seq: np.ndarray  # int64
    sensor: np.ndarray  # object (str)
    timestamp: np.ndarray  # int64

    @classmethod
    def of(cls, parts: Sequence[Batch]) -> _Snapshot:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls(np.empty(0, np.int64), np.empty(0, object), np.empty(0, np.int64))
        return cls(
            np.concatenate([np.asarray(p[STORE_SEQ], dtype=np.int64) for p in parts]),
            np.concatenate([np.asarray(p["sensor_id"], dtype=object) for p in parts]),
            np.concatenate([np.asarray(p["timestamp"], dtype=np.int64) for p in parts]),
        )


def _scan(store: ScannableStore, after: int | None = None) -> _Snapshot:
    parts: list[Batch] = []
    while True:
        batch = store.scan(after=after, limit=PAGE)
        if not len(batch):
            break
        parts.append(batch)
        after = int(batch[STORE_SEQ][-1])
        if len(batch) < PAGE:
            break
    return _Snapshot.of(parts)


def _pending(store: Store, consumer: str) -> np.ndarray | None:
    """The seqs ``consumer`` has not acknowledged (replayed dead letters included); ``None``
    when it never read the store (every row is pending; reading would register it)."""
    if consumer not in store.stats().pending:
        return None
    seqs: list[np.ndarray] = []
    if isinstance(store, ReadAheadStore):
        after = 0
        while True:
            batch = store.read_after(consumer, PAGE, after)
            if not len(batch):
                break
            seqs.append(np.asarray(batch[STORE_SEQ], dtype=np.int64))
            after = int(batch[STORE_SEQ][-1])
            if len(batch) < PAGE:
                break
    else:
        batch = store.read(consumer, 1 << 40)
        if len(batch):
            seqs.append(np.asarray(batch[STORE_SEQ], dtype=np.int64))
    return np.concatenate(seqs) if seqs else np.empty(0, np.int64)


def _dead(store: Store, consumer: str) -> np.ndarray:
    if not isinstance(store, DeadLetterStore):
        return np.empty(0, np.int64)
    return np.array([d.seq for d in store.dead_letters(consumer) if not d.replayed], dtype=np.int64)


def _row(store: ScannableStore, seq: int) -> Batch:
    return store.scan(after=seq - 1, limit=1)


# -- comparing ----------------------------------------------------------------------------------
def _same(stored: Any, found: Any) -> bool:
    if stored is None:
        return found is None
    if isinstance(stored, bool) or isinstance(found, bool):
        return type(stored) is type(found) and stored == found
    if isinstance(stored, int | float) and isinstance(found, int | float):
        return math.isclose(float(stored), float(found), rel_tol=REL_TOL, abs_tol=1e-12)
    return bool(stored == found)


def compare_documents(stored: Mapping[str, Any], found: Mapping[str, Any]) -> list[FieldDifference]:
    """The fields of ``stored`` (a document the store's row makes) that ``found`` (what the sink
    holds) lacks or holds differently; fields only ``found`` has are ignored."""
    key = str(stored.get("id"))
    out = []
    for name, value in stored.items():
        if name == "id":
            continue
        if name not in found:
            if value is not None:
                out.append(FieldDifference(key, name, value, ABSENT))
            continue
        if not _same(value, found[name]):
            out.append(FieldDifference(key, name, value, found[name]))
    return out


def _count_by(sensors: np.ndarray, mask: np.ndarray) -> dict[str, int]:
    if not mask.any():
        return {}
    values, counts = np.unique(sensors[mask].astype(str), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _check_lane(
    store: ScannableStore,
    lane: Lane,
    plugin: str,
    snapshot: _Snapshot,
    sample: int,
    rng: random.Random,
) -> SinkCheck:
    sink = lane.sink
    assert isinstance(sink, ReadableSink)
    consumer = lane.consumer
    top = int(snapshot.seq.max()) if len(snapshot.seq) else 0
    pending_before = _pending(store, consumer)
    dead_before = _dead(store, consumer)
    sensors = sorted(set(snapshot.sensor.astype(str).tolist()))
    start = int(snapshot.timestamp.min()) if len(snapshot.timestamp) else None
    end = int(snapshot.timestamp.max()) + 1 if len(snapshot.timestamp) else None
    spans: Mapping[str, SensorSpan] = (
        sink.spans(start=start, end=end, sensors=sensors) if sensors else {}
    )
    pending_after = _pending(store, consumer)
    dead_after = _dead(store, consumer)
    newer = _scan(store, after=top) if top else _scan(store)

    seq = snapshot.seq
    if pending_before is None:
        definite = np.zeros(len(seq), dtype=bool)
    else:
        definite = ~np.isin(seq, pending_before) & ~np.isin(seq, dead_before)
    if pending_after is None:
        pending = np.ones(len(seq), dtype=bool)
        new_pending = np.ones(len(newer.seq), dtype=bool)
    else:
        pending = np.isin(seq, pending_after)
        new_pending = np.isin(newer.seq, pending_after)
    dead = np.isin(seq, dead_after) & ~definite
    in_flight = ~definite & ~pending & ~dead
    in_range = np.zeros(len(newer.seq), dtype=bool)
    if start is not None and end is not None:
        in_range = (newer.timestamp >= start) & (newer.timestamp < end)
    new_in_flight = in_range & ~new_pending & ~np.isin(newer.seq, dead_after)

    expected = _count_by(snapshot.sensor, definite)
    waiting = _count_by(snapshot.sensor, pending)
    for name, n in _count_by(newer.sensor, in_range & new_pending).items():
        waiting[name] = waiting.get(name, 0) + n
    flying = _count_by(snapshot.sensor, in_flight)
    for name, n in _count_by(newer.sensor, new_in_flight).items():
        flying[name] = flying.get(name, 0) + n
    checks = []
    for name in sensors:
        mine = definite & (snapshot.sensor == name)
        stamps = snapshot.timestamp[mine]
        span = spans.get(name)
        checks.append(
            SensorCheck(
                sensor_id=name,
                expected=expected.get(name, 0),
                found=span.count if span else 0,
                pending=waiting.get(name, 0),
                in_flight=flying.get(name, 0),
                first=int(stamps.min()) if len(stamps) else None,
                last=int(stamps.max()) if len(stamps) else None,
                found_first=span.first if span else None,
                found_last=span.last if span else None,
            )
        )

    # the sample: random expected rows, fetched by document id
    candidates = seq[definite].tolist()
    chosen = sorted(rng.sample(candidates, min(sample, len(candidates))))
    rows = [_row(store, s) for s in chosen]
    stored_docs: dict[str, dict[str, Any]] = {}
    for row in rows:
        if len(row):
            for doc in to_documents(row):
                stored_docs[str(doc["id"])] = doc
    found_docs = sink.fetch(list(stored_docs)) if stored_docs else {}
    sample_missing = tuple(k for k in stored_docs if k not in found_docs)
    different: list[FieldDifference] = []
    for key, doc in stored_docs.items():
        if key in found_docs:
            different.extend(compare_documents(doc, found_docs[key]))

    hints = []
    missing_any = any(c.missing for c in checks) or sample_missing
    if lane.transforms and (missing_any or different):
        names = ", ".join(type(t).__name__ for t in lane.transforms)
        hints.append(
            f"this sink's lane has transforms ({names}): rows a transform drops are "
            "acknowledged without reaching the sink and show as missing; values it changes "
            "show as different"
        )
    if any(c.extra for c in checks):
        hints.append(
            "extra documents: the sink holds more of these sensors' readings in the store's "
            "time span than the store acknowledged (written by another pipeline or by hand?)"
        )
    if pending_before is None:
        hints.append(
            f"the consumer {consumer!r} has never read this store: nothing is expected in the sink yet"
        )
    return SinkCheck(
        consumer=consumer,
        plugin=plugin,
        stored=len(seq) + len(newer.seq),
        expected=int(definite.sum()),
        pending=sum(waiting.values()),
        in_flight=sum(flying.values()),
        dead_lettered=len(dead_after),
        sensors=tuple(checks),
        sampled=len(stored_docs),
        sample_missing=sample_missing,
        sample_different=tuple(different),
        hints=tuple(hints),
    )


def verify(
    config: str | PipelineConfig,
    *,
    sink: str | None = None,
    sample: int = 100,
    seed: int | None = None,
) -> Verification:
    """Compare the store of the pipeline file ``config`` with each of its sinks (or the one named
    ``sink``: a consumer name, or a plugin name that one sink of the file has)."""
    if sample < 0:
        raise ValueError("sample must be 0 or more")
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    source = str(cfg.source)
    plugins = [c.plugin for c in cfg.sinks]
    rng = random.Random(seed)
    with Pipeline.from_config(cfg, need_sinks=True, create_store=False) as pipeline:
        store = pipeline.store
        if not isinstance(store, ScannableStore):
            raise CosmobacError(
                f"{source}: the store ({type(store).__name__}) cannot be scanned (it is not a "
                "ScannableStore), so there is nothing to compare the sinks with"
            )
        lanes = list(zip(pipeline.lanes, plugins, strict=True))
        if sink is not None:
            chosen = [(lane, p) for lane, p in lanes if sink == lane.consumer]
            if not chosen:
                chosen = [(lane, p) for lane, p in lanes if sink == p]
            if not chosen:
                known = ", ".join(lane.consumer for lane, _ in lanes)
                raise CosmobacError(f"{source}: no sink named {sink!r} (sinks: {known})")
            if len(chosen) > 1:
                names = ", ".join(lane.consumer for lane, _ in chosen)
                raise CosmobacError(f"{source}: {len(chosen)} {sink} sinks; give one of {names}")
            lanes = chosen
        snapshot = _scan(store)
        checks = []
        for lane, plugin in lanes:
            if not isinstance(lane.sink, ReadableSink):
                checks.append(
                    SinkCheck(
                        lane.consumer,
                        plugin,
                        skipped=f"the {plugin} sink cannot be read back (it is not a ReadableSink)",
                    )
                )
                continue
            checks.append(_check_lane(store, lane, plugin, snapshot, sample, rng))
    return Verification(source, tuple(checks))


# -- showing it ---------------------------------------------------------------------------------
def _value(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) or value == ABSENT else value
    return text if len(text) <= 40 else text[:39] + "…"


def render(result: Verification, console: Any, *, limit: int = 20) -> None:
    """The report as a person reads it: per sink a summary line, a table of sensors (those with a
    difference; all of them when few), the sample's findings and hints; a verdict last."""
    from rich.table import Table

    def say(text: str) -> None:  # a line is never wrapped: logs and tests read it whole
        console.print(text, soft_wrap=True)

    for check in result.sinks:
        if check.skipped is not None:
            say(f"[bold]{check.consumer}[/] ({check.plugin}): skipped: {check.skipped}")
            continue
        mark = "[green]ok[/]" if check.ok else "[red]DIFFERENT[/]"
        say(
            f"[bold]{check.consumer}[/] ({check.plugin}): {mark}: {check.stored:,} rows stored, "
            f"{check.expected:,} forwarded (expected in the sink), {check.found:,} found; "
            f"missing {check.missing:,}, extra {check.extra:,}"
        )
        say(
            f"  not yet forwarded: {check.pending:,}; in flight: {check.in_flight:,}; "
            f"dead-lettered: {check.dead_lettered:,}"
        )
        shown = [s for s in check.sensors if not s.ok]
        if len(check.sensors) <= limit and not shown:
            shown = list(check.sensors)
        if shown:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("sensor", "expected", "found", "pending", "first", "last", "problem"):
                table.add_column(
                    column,
                    justify="right" if column in ("expected", "found", "pending") else "left",
                )
            for s in shown[:limit]:
                table.add_row(
                    s.sensor_id,
                    f"{s.expected:,}",
                    f"{s.found:,}",
                    f"{s.pending + s.in_flight:,}",
                    _iso(s.first) or "-",
                    _iso(s.last) or "-",
                    s.problem() or "",
                )
            console.print(table)
            if len(shown) > limit:
                say(f"  … and {len(shown) - limit} more sensors")
        say(
            f"  sample: {check.sampled} documents compared field by field: "
            f"{len(check.sample_missing)} missing, "
            f"{len({d.id for d in check.sample_different})} different"
        )
        for key in check.sample_missing[:limit]:
            say(f"  missing: {key}")
        for diff in check.sample_different[:limit]:
            say(
                f"  different: {diff.id}: {diff.field}: stored {_value(diff.stored)}, "
                f"sink {_value(diff.found)}"
            )
        for hint in check.hints:
            say(f"  hint: {hint}")
    if not result.checked:
        say("nothing verified: no sink of this file can be read back")
    elif result.ok:
        say("[green]equal[/]: every sink holds what the store forwarded to it")
    else:
        say("[red]differences found[/]")
