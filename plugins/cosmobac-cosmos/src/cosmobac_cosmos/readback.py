"""Reading a container back: per-sensor spans, documents by id, and counts per value of a field
(``cosmobac verify`` and ``cosmobac cosmos count --by``).

Queries are built from fixed text and query parameters only (a grouped field is one of
:data:`GROUP_FIELDS`, never text from the user).

Two ways to count per value, chosen by what the server can do:

* ``GROUP BY`` (``SELECT c.city AS value, COUNT(1) AS n FROM c GROUP BY c.city``): the service
  aggregates; the answer is one row per value. Azure Cosmos DB runs it.
* A client-side tally over a projection (``SELECT VALUE c.city FROM c``), read in pages of
  up to :data:`PAGE` items: every document's field crosses the wire once. Used when the server refuses
  ``GROUP BY`` (the local test server answers HTTP 400), detected from that error.

Per sensor, :func:`sensor_spans` asks one ``COUNT``/``MIN``/``MAX`` query per sensor, scoped to
that sensor's partition when the container is partitioned by ``/sensor_id`` (a single-partition
query that the index answers); without sensors it groups (or tallies) ``sensor_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from cosmobac.batch import to_epoch_ms
from cosmobac.documents import iso_timestamps
from cosmobac.interfaces import SensorSpan

__all__ = ["GROUP_FIELDS", "PAGE", "Grouped", "fetch", "grouped_counts", "sensor_spans"]

GROUP_FIELDS = ("city", "sensor_id")
"""The fields ``count --by`` groups by."""

PAGE = 10_000
"""Items asked for per page of a projection or fetch query (the service caps a page at 4 MB
anyway). Few pages matter on the local test server, which evaluates the whole query again for
every page: 16,000 documents took 30 s in pages of 1,000 and 5 s in pages of 10,000."""

FETCH_CHUNK = 100
"""Ids per fetch query."""

SYSTEM_PROPERTIES = ("_rid", "_self", "_etag", "_attachments", "_ts", "_lsn")


@attrs.frozen
class Grouped:
    """Counts per value of a field, and how they were counted: ``"group by"`` (the server) or
    ``"tally"`` (a projection counted here, because the server refused GROUP BY: ``reason``)."""

    counts: Mapping[Any, int]
    method: str
    reason: str | None = None


def _iso(ms: int) -> str:
    import numpy as np

    return str(iso_timestamps(np.array([ms], dtype=np.int64))[0])


def _range(start: int | None, end: int | None) -> tuple[list[str], list[dict[str, Any]]]:
    clauses: list[str] = []
    parameters: list[dict[str, Any]] = []
    if start is not None:
        clauses.append("c.timestamp >= @start")
        parameters.append({"name": "@start", "value": _iso(start)})
    if end is not None:
        clauses.append("c.timestamp < @end")
        parameters.append({"name": "@end", "value": _iso(end)})
    return clauses, parameters


def group_by_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is a server or SDK refusing a GROUP BY query (not an outage)."""
    status = getattr(exc, "status_code", None)
    if status == 400:
        return True
    text = str(exc).lower()
    return status is None and "group by" in text and "support" in text


def grouped_counts(
    container: Any,
    field: str,
    *,
    where: str = "",
    parameters: list[dict[str, Any]] | None = None,
) -> Grouped:
    """Documents per value of ``field`` (one of :data:`GROUP_FIELDS`), ``where`` being a WHERE
    clause (with its leading ``" WHERE "``) and its parameters. GROUP BY where the server runs it,
    else a client-side tally over a projection (documents without the field count under ``None``)."""
    if field not in GROUP_FIELDS:
        raise ValueError(f"cannot group by {field!r}; choose one of {', '.join(GROUP_FIELDS)}")
    parameters = list(parameters or [])
    sql = f"SELECT c.{field} AS value, COUNT(1) AS n FROM c{where} GROUP BY c.{field}"
    try:
        rows = list(
            container.query_items(sql, parameters=parameters, enable_cross_partition_query=True)
        )
    except Exception as exc:
        if not group_by_refused(exc):
            raise
        reason = str(exc).splitlines()[0][:200]
    else:
        counts: dict[Any, int] = {}
        for row in rows:  # a cross-partition GROUP BY may answer a value once per partition
            value = row.get("value")
            counts[value] = counts.get(value, 0) + int(row.get("n", 0))
        return Grouped(counts, "group by")
    tally: dict[Any, int] = {}
    items = container.query_items(
        f"SELECT VALUE c.{field} FROM c{where}",
        parameters=parameters,
        enable_cross_partition_query=True,
        max_item_count=PAGE,
    )
    for value in items:
        tally[value] = tally.get(value, 0) + 1
    return Grouped(tally, "tally", reason)


def sensor_spans(
    container: Any,
    partition_key: tuple[str, ...],
    *,
    start: int | None = None,
    end: int | None = None,
    sensors: Iterable[str] | None = None,
) -> dict[str, SensorSpan]:
    """Per sensor: documents with ``start <= timestamp < end``, first and last timestamp."""
    clauses, parameters = _range(start, end)
    if sensors is None:
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return _spans_of_all(container, where, parameters)
    scoped = partition_key == ("/sensor_id",)
    out: dict[str, SensorSpan] = {}
    sql = (
        "SELECT COUNT(1) AS n, MIN(c.timestamp) AS first, MAX(c.timestamp) AS last FROM c "
        "WHERE " + " AND ".join(["c.sensor_id = @sensor", *clauses])
    )
    for sensor in sorted(set(sensors)):
        options: dict[str, Any] = (
            {"partition_key": sensor} if scoped else {"enable_cross_partition_query": True}
        )
        rows = list(
            container.query_items(
                sql, parameters=[{"name": "@sensor", "value": sensor}, *parameters], **options
            )
        )
        n = sum(int(r.get("n") or 0) for r in rows)
        if not n:
            continue
        firsts = [r["first"] for r in rows if r.get("first") is not None]
        lasts = [r["last"] for r in rows if r.get("last") is not None]
        out[sensor] = SensorSpan(n, to_epoch_ms(min(firsts)), to_epoch_ms(max(lasts)))
    return out


def _spans_of_all(
    container: Any, where: str, parameters: list[dict[str, Any]]
) -> dict[str, SensorSpan]:
    sql = (
        "SELECT c.sensor_id AS value, COUNT(1) AS n, MIN(c.timestamp) AS first, "
        f"MAX(c.timestamp) AS last FROM c{where} GROUP BY c.sensor_id"
    )
    tally: dict[str, list[Any]] = {}

    def add(sensor: Any, n: int, first: str, last: str) -> None:
        if not isinstance(sensor, str) or not n:
            return
        found = tally.get(sensor)
        if found is None:
            tally[sensor] = [n, first, last]
        else:
            found[0] += n
            found[1] = min(found[1], first)
            found[2] = max(found[2], last)

    try:
        rows = list(
            container.query_items(sql, parameters=parameters, enable_cross_partition_query=True)
        )
        for row in rows:
            add(row.get("value"), int(row.get("n") or 0), row.get("first"), row.get("last"))
    except Exception as exc:
        if not group_by_refused(exc):
            raise
        tally.clear()
        for row in container.query_items(
            f"SELECT c.sensor_id, c.timestamp FROM c{where}",
            parameters=parameters,
            enable_cross_partition_query=True,
            max_item_count=PAGE,
        ):
            stamp = row.get("timestamp")
            if isinstance(stamp, str):
                add(row.get("sensor_id"), 1, stamp, stamp)
    return {
        k: SensorSpan(v[0], to_epoch_ms(v[1]), to_epoch_ms(v[2])) for k, v in sorted(tally.items())
    }


def fetch(container: Any, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Documents by id (system properties left out), :data:`FETCH_CHUNK` ids per query."""
    wanted = sorted(set(ids))
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(wanted), FETCH_CHUNK):
        chunk = wanted[i : i + FETCH_CHUNK]
        for doc in container.query_items(
            "SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.id)",
            parameters=[{"name": "@ids", "value": chunk}],
            enable_cross_partition_query=True,
            max_item_count=PAGE,
        ):
            found[str(doc["id"])] = {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}
    return found
