"""Documents as a sink receives them, and the deterministic ids that make replays idempotent.

Guarantees:

* :func:`document_id` is a pure function of ``(sensor_id, timestamp)``: a retry or a replay after a
  crash produces the same id, so an upsert rewrites the same document instead of adding a duplicate;
* ids obey Cosmos DB's rules: at most 255 characters, none of ``/ \\ ? #``, no control characters;
* distinct readings get distinct ids (the encoding is injective; ids that would be too long fall back
  to a SHA-256 digest, prefixed so they cannot collide with encoded ids);
* documents carry ``timestamp`` as ISO-8601 UTC with milliseconds, ending in ``Z``;
* a missing or non-finite value is never ``0.0``: an extra column's is ``null``, and a core field
  other than the identity is left out of the document of a row where it is missing, so a sensor's
  documents carry the fields it has, not the simulator's (see :func:`to_documents`).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterator
from typing import Any, Final

import numpy as np

from .batch import Batch
from .schema import CORE_FIELDS, IDENTITY, STORE_SEQ, Kind

__all__ = [
    "MAX_ID_LENGTH",
    "document_id",
    "document_ids",
    "iso_timestamps",
    "missing_mask",
    "to_documents",
]

MAX_ID_LENGTH: Final = 255
_UNSAFE = re.compile(r"[%/\\?#\x00-\x1f\x7f]")
_DIGEST_PREFIX: Final = (
    "h~"  # '~' never appears in an encoded id's sensor part followed by a digest
)


@functools.lru_cache(maxsize=65536)  # a fleet has few sensors and many readings each
def _encode_sensor(sensor_id: str) -> str:
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", sensor_id)


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms")) + "Z"


def iso_timestamps(ms: np.ndarray) -> np.ndarray:
    """ISO-8601 UTC text with milliseconds and a trailing ``Z`` for int64 epoch milliseconds."""
    return np.array(_iso_list(ms), dtype=str)


def _iso_list(ms: np.ndarray) -> list[str]:
    """:func:`iso_timestamps` as a list of str (what documents hold)."""
    text = np.datetime_as_string(np.asarray(ms, dtype=np.int64).astype("datetime64[ms]"), unit="ms")
    return [t + "Z" for t in text.tolist()]


def _make_id(sensor_id: str, iso: str) -> str:
    candidate = f"{_encode_sensor(sensor_id)}@{iso}"
    if len(candidate) <= MAX_ID_LENGTH and not candidate.startswith(_DIGEST_PREFIX):
        return candidate
    digest = hashlib.sha256(f"{sensor_id}\x00{iso}".encode()).hexdigest()
    return f"{_DIGEST_PREFIX}{digest}"


def document_id(sensor_id: str, timestamp_ms: int) -> str:
    """The document id of the reading ``(sensor_id, timestamp_ms)``, e.g. ``s-001@2026-01-01T00:00:00.000Z``.

    Characters Cosmos forbids (and ``%``) are percent-encoded, so the mapping stays injective.
    """
    return _make_id(sensor_id, _iso(timestamp_ms))


def _id_list(sensor_ids: list[str], isos: list[str]) -> list[str]:
    return [_make_id(s, t) for s, t in zip(sensor_ids, isos, strict=True)]


def document_ids(batch: Batch) -> np.ndarray:
    """Document ids for every row of ``batch`` (object array of str)."""
    if not len(batch):
        return np.empty(0, dtype=object)
    ids = np.empty(len(batch), dtype=object)
    ids[:] = _id_list(batch["sensor_id"].tolist(), _iso_list(batch["timestamp"]))
    return ids


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def missing_mask(batch: Batch, name: str) -> np.ndarray:
    """The rows of ``batch`` where column ``name`` is missing: NaN or infinity in a float column,
    ``None`` (or a non-finite float) in an object column, and, for the core ``anomaly_flag`` only,
    ``False``, which is what a flag that was never set reads as. Other columns miss nothing."""
    column = batch[name]
    kind = column.dtype.kind
    if kind == "f":
        return ~np.isfinite(column)
    if kind == "O":
        return np.fromiter(
            (v is None or (isinstance(v, float) and not math.isfinite(v)) for v in column.tolist()),
            dtype=np.bool_,
            count=len(column),
        )
    if kind == "b" and name == _FLAG:
        return ~column
    return np.zeros(len(column), dtype=np.bool_)


def _in(rows: list[int], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=np.bool_)
    mask[rows] = True
    return mask


_FLAG: Final = "anomaly_flag"
_OPTIONAL: Final = frozenset(CORE_FIELDS) - frozenset(IDENTITY)  # left out where missing


def to_documents(batch: Batch) -> Iterator[dict[str, Any]]:
    """Each row of ``batch`` as the JSON-ready dict a sink receives: ``id`` first, then the columns
    (the store's ``seq`` left out), timestamps as ISO text, non-finite floats as ``None``.

    A core field other than the identity (``city``, the metrics, the sensor metadata and the
    simulator's labels) is left out of the document of a row where it is missing
    (:func:`missing_mask`: NaN, ``None``; ``anomaly_flag`` only when true), so the documents of a
    sensor that never declared those fields do not carry them as nulls, even when its rows come
    from a store that holds every core column. Extra columns are always there (``null`` when
    missing): a sensor or transform that adds one declares it.

    A column named ``id`` (e.g. set by a transform that makes its own rows) replaces the derived id;
    it must then obey the sink's id rules itself (the Cosmos sink dead-letters rows whose id does
    not)."""
    if not len(batch):
        return
    isos = _iso_list(batch["timestamp"])  # once: for the ids and for the timestamp column
    ids = _id_list(batch["sensor_id"].tolist(), isos)
    columns: dict[str, list[Any]] = {}
    holes: list[tuple[str, list[int]]] = []  # core fields to leave out, and of which rows
    sparse: list[tuple[str, list[Any], list[int]]] = []  # fields to add, and to which rows
    n = len(batch)
    for name in batch.columns:
        if name == STORE_SEQ:
            continue
        column = batch[name]
        optional = name in _OPTIONAL
        missing: list[int] | None = None  # rows of an optional field where it is missing
        if name == "timestamp":
            values = isos
        elif column.dtype.kind == "f":
            bad = ~np.isfinite(column)
            if optional:
                if bad.all():
                    continue
                missing = np.flatnonzero(bad).tolist()
            as_objects = column.astype(object)
            as_objects[bad] = None
            values = as_objects.tolist()
        elif column.dtype.kind == "O":
            values = column.tolist()
            if CORE_FIELDS.get(name) is Kind.STR:  # core text columns hold only str or None
                count = values.count(None)
                if count == n:
                    continue
                if count:
                    missing = [i for i, v in enumerate(values) if v is None]
            else:
                values = [_plain(v) for v in values]
                if optional:
                    missing = [i for i, v in enumerate(values) if v is None]
                    if len(missing) == n:
                        continue
        elif optional and column.dtype.kind == "b" and name == _FLAG:
            if not column.any():
                continue
            missing = np.flatnonzero(~column).tolist()
            values = column.tolist()
        else:
            values = column.tolist()
        if missing and 2 * len(missing) > n:  # mostly missing: added to the rows that have it
            sparse.append((name, values, np.flatnonzero(~_in(missing, n)).tolist()))
            continue
        if missing:
            holes.append((name, missing))
        columns[name] = values
    keys = ["id", *columns]  # a column named "id" comes later, so it wins
    documents = [
        dict(zip(keys, row, strict=True)) for row in zip(ids, *columns.values(), strict=True)
    ]
    for name, rows in holes:
        for row in rows:
            del documents[row][name]
    for name, values, rows in sparse:
        for row in rows:
            documents[row][name] = values[row]
    yield from documents
