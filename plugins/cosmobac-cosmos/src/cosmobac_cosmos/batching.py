"""How a write is cut into requests: rows grouped by partition key value into transactional
batches (at most ``max_batch_operations`` operations and 2 MB each), with each row's document
size bounded from the columns, and the rows Cosmos DB would refuse for their content found before
anything is sent."""

from __future__ import annotations

import json
from typing import Any

import attrs
import numpy as np

from cosmobac.batch import Batch
from cosmobac.documents import MAX_ID_LENGTH, document_ids, iso_timestamps, to_documents
from cosmobac.schema import STORE_SEQ

from .connection import paths_text
from .limits import (
    MAX_BATCH_BYTES,
    MAX_DOCUMENT_BYTES,
    MAX_PARTITION_KEY_BYTES,
    NUMBER_BOUND,
    json_value,
    value_bound,
)

__all__ = ["Work", "key_values", "partition_values", "plan_requests", "size_bounds"]


@attrs.define(eq=False)
class Work:
    """One request to make: a transactional batch of creates, or one upsert."""

    mode: str  # "create" or "upsert"
    partition_key: Any
    positions: list[int]
    docs: list[dict[str, Any]] | None  # built just before the first send
    attempt: int = 0
    not_before: float = 0.0
    reserved: float = 0.0  # RU reserved in the budget while in flight

    @property
    def built(self) -> list[dict[str, Any]]:
        assert self.docs is not None, "documents are built before a request is made"
        return self.docs


def size_bounds(batch: Batch) -> tuple[np.ndarray, dict[int, str]]:
    """An upper bound on each row's document size as the SDK writes it (JSON, ASCII-escaped),
    from the columns without building documents, and the rows refused for their content.
    Only rows whose bound passes 2 MB have their document built to know its exact size."""
    n = len(batch)
    rejected: dict[int, str] = {}
    bounds = np.full(n, 2 + 6 * MAX_ID_LENGTH + 8, dtype=np.int64)  # braces and the id
    for name in batch.columns:
        if name == STORE_SEQ:
            continue
        column = batch[name]
        key_bound = 6 * len(name) + 6
        if name != "id" and (name == "timestamp" or column.dtype.kind in "fiub"):
            bounds += key_bound + NUMBER_BOUND
            continue
        values = column.tolist()
        # text: its length; None (null, 4 bytes): -2; anything else: -1, looked at below
        lengths = np.array(
            [len(v) if type(v) is str else (-2 if v is None else -1) for v in values],
            dtype=np.int64,
        )
        sizes = np.where(lengths == -2, 4, 6 * lengths + 2)
        for i in np.flatnonzero(lengths == -1).tolist():
            size, problem = value_bound(values[i])
            sizes[i] = size
            if problem is not None:
                rejected.setdefault(i, f"field {name!r}: {problem}")
        bounds += key_bound + sizes
    for i in np.flatnonzero(bounds > MAX_DOCUMENT_BYTES).tolist():
        if i in rejected:
            continue
        doc = next(to_documents(batch.select([i])))
        exact = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if exact > MAX_DOCUMENT_BYTES:
            rejected[i] = (
                f"document is {exact} bytes of JSON; Cosmos DB stores at most 2 MB "
                f"({MAX_DOCUMENT_BYTES} bytes) per item"
            )
        bounds[i] = min(int(bounds[i]), MAX_BATCH_BYTES)
    return bounds, rejected


def key_values(batch: Batch, field: str) -> list[Any] | None:
    """The values documents will carry in ``field`` (``None`` when the batch lacks it)."""
    if field == "id":
        if "id" in batch.columns:
            return [json_value(v) for v in batch["id"].tolist()]
        return list(document_ids(batch).tolist())
    column = batch.get(field)
    if column is None:
        return None
    if field == "timestamp":
        return list(iso_timestamps(column).tolist())
    if column.dtype.kind == "f":
        values = column.astype(object)
        values[~np.isfinite(column)] = None
        return list(values.tolist())
    if column.dtype.kind == "O":
        return [json_value(v) for v in column.tolist()]
    return list(column.tolist())


def partition_values(
    batch: Batch, partition_key: tuple[str, ...], rejected: dict[int, str]
) -> list[Any]:
    """Each row's partition key value as the SDK takes it."""
    n = len(batch)
    columns = []
    for path in partition_key:
        values = key_values(batch, path[1:])
        if values is None:
            reason = (
                f"document has no {path[1:]!r}, the container's partition key "
                f"({paths_text(partition_key)})"
            )
            for i in range(n):
                rejected.setdefault(i, reason)
            return [None] * n
        columns.append(values)
    for i, parts in enumerate(zip(*columns, strict=True)):
        size = 0
        for value in parts:
            if type(value) is str:
                long = len(value) > MAX_PARTITION_KEY_BYTES // 4
                size += len(value.encode("utf-8")) if long else len(value)
            elif value is None or isinstance(value, int | float):
                size += 8
            else:
                rejected.setdefault(i, "partition key values must be text, numbers or null")
        if size > MAX_PARTITION_KEY_BYTES:
            rejected.setdefault(
                i,
                f"partition key value is {size} bytes; Cosmos DB allows at most "
                f"{MAX_PARTITION_KEY_BYTES}",
            )
    if len(columns) == 1:
        return columns[0]
    return [list(parts) for parts in zip(*columns, strict=True)]


def plan_requests(
    batch: Batch, partition_key: tuple[str, ...], max_operations: int
) -> tuple[list[Work], dict[int, str]]:
    """Rows grouped by partition key value into transactional batches (≤ 100 operations,
    ≤ 2 MB); documents are built later, just before each batch is sent."""
    bounds, rejected = size_bounds(batch)
    keys = partition_values(batch, partition_key, rejected)
    groups: dict[Any, list[int]] = {}
    values: dict[Any, Any] = {}
    for i, value in enumerate(keys):
        if i in rejected:
            continue
        if type(value) is str:
            group: Any = value
        else:  # lists (hierarchical keys) are not hashable; True and 1 must stay apart
            parts = value if isinstance(value, list) else [value]
            group = tuple((type(v).__name__, v) for v in parts)
        positions = groups.get(group)
        if positions is None:
            groups[group] = positions = []
            values[group] = value
        positions.append(i)
    work: list[Work] = []
    limit = max_operations
    sizes = bounds.tolist()
    for group, positions in groups.items():
        chunk: list[int] = []
        size = 0
        for i in positions:
            b = sizes[i]
            if chunk and (len(chunk) >= limit or size + b > MAX_BATCH_BYTES):
                work.append(Work("create", values[group], chunk, None))
                chunk, size = [], 0
            chunk.append(i)
            size += b
        if chunk:
            work.append(Work("create", values[group], chunk, None))
    return work, rejected
