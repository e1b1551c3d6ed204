"""The conformance checks for sinks, sensors and transforms."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..batch import Batch
from ..documents import document_id, to_documents
from ..interfaces import (
    Closeable,
    FixedStartSensor,
    ReadableSink,
    SeekableSensor,
    Sensor,
    Sink,
    StatefulTransform,
    Transform,
    WriteResult,
)
from ..schema import STORE_SEQ
from ._common import (
    Checker,
    ReadBack,
    batch_difference,
    keys_of,
    same_value,
    sample_readings,
    seqs_of,
)


# -- sinks ----------------------------------------------------------------------------------------
def check_sink(
    factory: Callable[[], Sink],
    *,
    read_back: ReadBack | None = None,
    idempotent: bool = True,
) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Sink` contract on sinks made by ``factory``.

    Always: an empty batch is accepted; ``write`` returns ``None`` or a
    :class:`~cosmobac.interfaces.WriteResult` whose positions are rows of the batch given, none
    both retried and rejected, each rejection with a reason; a batch with the store's ``seq``
    column, one without it, and the same batch again are taken; ``close`` can be called twice.

    With ``read_back(sink)`` (what the sink's target now holds, as mappings with the document
    ``id`` — or ``sensor_id`` and an epoch-ms ``timestamp`` — and the columns): every row the sink
    said it wrote is there, values included, and a missing value reads back missing (never 0.0).
    With ``idempotent`` (the default) writing the same batch twice leaves each row once (upserts by
    document id); pass ``idempotent=False`` for an append-only target whose readers deduplicate by
    ``id`` (e.g. JSON lines).

    A :class:`~cosmobac.interfaces.ReadableSink` also has its ``spans`` (per sensor: documents,
    first and last timestamp; within a time range; only the sensors asked for; a batch written
    twice counted once) and ``fetch`` (documents by id, values included; an unknown id left out)
    checked against what it wrote."""
    c = Checker("sink", factory)
    g = "an empty batch is accepted"
    with c.fresh(Sink, g) as sink:
        empty = sample_readings(3).select(slice(0, 0))
        result = sink.write(empty)
        _check_result(c, g, result, 0)
        c.expect(result is None or result.complete, g, f"it answered {result!r}")
    g = "write answers None or a WriteResult with positions in the batch"
    with c.fresh(Sink, g) as sink:
        batch = sample_readings(12)
        batch = batch.with_columns({STORE_SEQ: np.arange(101, 101 + len(batch))})
        written = _write(c, g, sink, batch)
        plain = sample_readings(5, offset=12)  # no seq: what an aggregating transform gives
        written += _write(c, g, sink, plain)
        if read_back is not None:
            _check_read_back(c, sink, read_back, Batch.concat([batch, plain]), written, once=False)
            c.ran.append("read_back holds every row written")
    g = "writing the same batch twice"
    with c.fresh(Sink, g) as sink:
        batch = sample_readings(6, offset=20)
        written = _write(c, g, sink, batch)
        written = sorted(set(written) & set(_write(c, g, sink, batch)))
        if read_back is not None:
            _check_read_back(c, sink, read_back, batch, written, once=idempotent)
            if idempotent:
                c.ran.append("the same batch written twice is held once")
    g = "close can be called twice"
    with c.fresh(Sink, g) as sink:
        sink.close()
    probe = factory()
    readable = isinstance(probe, ReadableSink)
    if isinstance(probe, Closeable):
        probe.close()
    if readable:
        _check_readable(c)
    return c.ran


def _check_readable(c: Checker) -> None:
    g = "spans and fetch read back what was written (ReadableSink)"
    with c.fresh(ReadableSink, g) as sink:
        batch = sample_readings(12, offset=40)
        written = _write(c, g, sink, batch)
        _write(c, g, sink, batch)  # again: each document still counts once
        rows = [row for i, row in enumerate(batch.rows()) if i in set(written)]
        want: dict[str, list[int]] = {}
        for row in rows:
            want.setdefault(str(row["sensor_id"]), []).append(int(row["timestamp"]))
        ours = sorted(want)
        spans = sink.spans(sensors=ours)
        got = {k: (v.count, v.first, v.last) for k, v in spans.items()}
        expected = {k: (len(v), min(v), max(v)) for k, v in want.items()}
        c.expect(got == expected, g, f"spans(sensors=...) gave {got}, expected {expected}")
        one = ours[0]
        only = dict(sink.spans(sensors=[one]))
        c.expect(set(only) == {one}, g, f"spans(sensors=[{one!r}]) gave sensors {sorted(only)}")
        stamps = sorted({t for v in want.values() for t in v})
        start, end = stamps[1], stamps[-1]  # leaves out the first and the last second
        ranged = sink.spans(start=start, end=end, sensors=ours)
        counts = {k: v.count for k, v in ranged.items()}
        expected_counts = {
            k: n for k, n in ((k, sum(start <= t < end for t in v)) for k, v in want.items()) if n
        }
        c.expect(
            counts == expected_counts,
            g,
            f"spans(start={start}, end={end}) counted {counts}, expected {expected_counts}",
        )
        docs = {str(d["id"]): d for d in to_documents(batch)}
        ids = [document_id(str(r["sensor_id"]), int(r["timestamp"])) for r in rows[:5]]
        fetched = sink.fetch([*ids, "no-such-document@1970-01-01T00:00:00.000Z"])
        c.expect(
            set(fetched) == set(ids),
            g,
            f"fetch gave ids {sorted(fetched)}, expected {sorted(ids)} (an unknown id left out)",
        )
        for key in ids:
            for name, value in docs[key].items():
                found = fetched[key].get(name)
                c.expect(
                    same_value(value, found), g, f"{key}: {name} {value!r} fetched as {found!r}"
                )


def _write(c: Checker, g: str, sink: Sink, batch: Batch) -> list[int]:
    """Write ``batch``; the positions the sink says it wrote."""
    result = sink.write(batch)
    _check_result(c, g, result, len(batch))
    if result is None:
        return list(range(len(batch)))
    skipped = set(result.retry) | set(result.rejected)
    return [i for i in range(len(batch)) if i not in skipped]


def _check_result(c: Checker, g: str, result: object, rows: int) -> None:
    if result is None:
        return
    c.expect(isinstance(result, WriteResult), g, f"write returned {result!r}")
    assert isinstance(result, WriteResult)
    retry, rejected = list(result.retry), dict(result.rejected)
    outside = [p for p in [*retry, *rejected] if not 0 <= p < rows]
    c.expect(not outside, g, f"positions {outside} are outside a batch of {rows} rows")
    c.expect(len(set(retry)) == len(retry), g, f"retry names a row twice: {retry}")
    both = set(retry) & set(rejected)
    c.expect(not both, g, f"rows {sorted(both)} are both to retry and rejected")
    for position, reason in rejected.items():
        c.expect(
            isinstance(reason, str) and bool(reason.strip()),
            g,
            f"row {position} rejected without a reason ({reason!r})",
        )


def _document_key(doc: Mapping[str, Any]) -> str:
    if "id" in doc:
        return str(doc["id"])
    return document_id(str(doc["sensor_id"]), int(doc["timestamp"]))


def _check_read_back(
    c: Checker,
    sink: Sink,
    read_back: ReadBack,
    batch: Batch,
    written: Sequence[int],
    *,
    once: bool,
) -> None:
    g = "what the sink wrote reads back, values and missing values included"
    docs: dict[str, list[Mapping[str, Any]]] = {}
    for doc in read_back(sink):
        docs.setdefault(_document_key(doc), []).append(doc)
    rows = list(batch.rows())
    for position in written:
        row = rows[position]
        key = document_id(str(row["sensor_id"]), int(row["timestamp"]))
        found = docs.get(key)
        c.expect(bool(found), g, f"row {position} ({key}) was written but does not read back")
        assert found is not None
        if once:
            c.expect(
                len(found) == 1,
                "writing the same batch twice leaves each row once",
                f"{key} reads back {len(found)} times",
            )
        doc = found[-1]
        for name in ("temperature", "humidity", "score", "tag"):
            value = row[name]
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            got = doc.get(name)
            if missing:
                c.expect(
                    got is None or (isinstance(got, float) and math.isnan(got)),
                    g,
                    f"{key}: missing {name} reads back as {got!r}, not as missing",
                )
            elif name in doc:
                c.expect(
                    same_value(value, got), g, f"{key}: {name} {value!r} reads back as {got!r}"
                )


# -- sensors ----------------------------------------------------------------------------------------
def check_sensor(
    factory: Callable[[], Sensor], *, span_ms: int = 60_000, deterministic: bool = True
) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Sensor` contract on sensors made by ``factory``.

    Reads over ``span_ms`` of sensor time from its ``start`` (a
    :class:`~cosmobac.interfaces.FixedStartSensor`) or from now: rows have ``sensor_id`` and
    ``timestamp``, lie below ``until``, and are never returned twice. With ``deterministic`` (a
    simulation with a seed) two sensors from the factory read the same rows. A
    :class:`~cosmobac.interfaces.SeekableSensor` returns nothing below the point it was sought to,
    and (when deterministic) the same rows from there on as one that was not."""
    c = Checker("sensor", factory)

    def origin(sensor: Sensor) -> int:
        start = sensor.start if isinstance(sensor, FixedStartSensor) else None
        return int(time.time() * 1000) if start is None else int(start)

    g = "read(until) returns rows below until, each once"
    with c.fresh(Sensor, g) as sensor:
        t0 = origin(sensor)
        parts = []
        for until in (t0 + span_ms // 2, t0 + span_ms, t0 + span_ms):
            batch = sensor.read(until)
            c.expect(isinstance(batch, Batch), g, f"read returned {type(batch).__name__}")
            if len(batch):
                missing = [n for n in ("sensor_id", "timestamp") if n not in batch.columns]
                c.expect(not missing, g, f"rows lack {missing}")
                top = int(batch["timestamp"].max())
                c.expect(top < until, g, f"read({until}) returned a reading at {top}")
            parts.append(batch)
        c.expect(not len(parts[2]), g, f"reading to the same until again gave {len(parts[2])} rows")
        keys = keys_of(parts[0]) + keys_of(parts[1])
        c.expect(len(keys) == len(set(keys)), g, "a reading was returned twice")
        first = Batch.concat(parts)
    if deterministic:
        g = "two sensors from the factory read the same rows (deterministic)"
        with c.fresh(Sensor, g) as sensor:
            t0 = origin(sensor)
            second = Batch.concat([sensor.read(t0 + span_ms // 2), sensor.read(t0 + span_ms)])
            why = batch_difference(first, second)
            c.expect(why is None, g, f"they differ: {why}")
    probe = factory()
    if isinstance(probe, SeekableSensor):
        g = "seek(until) skips every reading below until (SeekableSensor)"
        with c.fresh(SeekableSensor, g) as sensor:
            t0 = origin(sensor)
            middle = t0 + span_ms // 2
            sensor.seek(middle)
            rest = sensor.read(t0 + span_ms)
            if len(rest):
                low = int(rest["timestamp"].min())
                c.expect(low >= middle, g, f"after seek({middle}) it returned a reading at {low}")
            if deterministic and len(first):
                want = first.select(first["timestamp"] >= middle)
                why = batch_difference(want, rest)
                c.expect(why is None, g, f"rows after seeking differ from an unsought run: {why}")
    if isinstance(probe, Closeable):
        probe.close()
    return c.ran


# -- transforms ---------------------------------------------------------------------------------------
def check_transform(factory: Callable[[], Transform], batch: Batch | None = None) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Transform` contract on transforms made by
    ``factory``, over ``batch`` (default: 240 :func:`sample_readings` with a ``seq`` column).

    A transform returns a :class:`~cosmobac.batch.Batch`, for an empty batch too; the ``seq`` values
    it keeps are rows of its input, each once. A
    :class:`~cosmobac.interfaces.StatefulTransform` gives state as text, and a transform given a
    saved state (a new one, or the same one rolled back) continues exactly as the one that saved
    it: that is what lets the forwarder restart warm and retry a batch."""
    c = Checker("transform", factory)
    if batch is None:
        batch = sample_readings(240)
        batch = batch.with_columns({STORE_SEQ: np.arange(1, len(batch) + 1)})
    g = "a transform returns a batch whose seq values are rows of its input"
    with c.fresh(Transform, g) as transform:
        for part in (batch, batch.select(slice(0, 0))):
            out = transform(part)
            c.expect(isinstance(out, Batch), g, f"it returned {type(out).__name__}")
            if STORE_SEQ in out.columns and len(out):
                seqs = seqs_of(out)
                outside = set(seqs) - set(seqs_of(part))
                c.expect(not outside, g, f"seq values {sorted(outside)[:5]} are not in the input")
                c.expect(len(seqs) == len(set(seqs)), g, "a seq value appears twice")
    probe = factory()
    stateful = isinstance(probe, StatefulTransform)
    if isinstance(probe, Closeable):
        probe.close()
    if not stateful:
        return c.ran
    g = "a saved state continues exactly where it was saved (StatefulTransform)"
    half = len(batch) // 2
    head, tail = batch.select(slice(0, half)), batch.select(slice(half, len(batch)))
    with c.fresh(StatefulTransform, g) as first:
        first(head)
        saved = first.get_state()
        c.expect(isinstance(saved, str), g, f"get_state returned {type(saved).__name__}")
        went_on = first(tail)
        first.set_state(saved)
        rolled_back = first(tail)
        why = batch_difference(went_on, rolled_back)
        c.expect(why is None, g, f"rolled back to the saved state, the next batch differs: {why}")
        with c.fresh(StatefulTransform, g) as second:
            second.set_state(saved)
            why = batch_difference(went_on, second(tail))
            c.expect(why is None, g, f"a new transform given the state differs: {why}")
    return c.ran
