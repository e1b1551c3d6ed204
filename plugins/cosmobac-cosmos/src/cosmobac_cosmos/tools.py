"""What ``cosmobac cosmos check|count|query`` do, usable from Python too.

Queries are built from fixed text and query parameters only: values given by the user are never
put into the SQL text.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from cosmobac.batch import to_epoch_ms
from cosmobac.documents import iso_timestamps

from ._errors import Action, classify, request_charge
from .connection import close_client, credential_for
from .sink import CosmosSink

__all__ = ["Check", "Filters", "check", "count", "count_by", "query"]

SYSTEM_PROPERTIES = ("_rid", "_self", "_etag", "_attachments", "_ts", "_lsn")


def _iso(value: str | int) -> str:
    """ISO-8601 UTC text as documents carry it, for an ISO time (a date means midnight UTC) or
    epoch milliseconds."""
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            ms = int(text)
        else:
            if len(text) == 10:  # a date alone
                text += "T00:00:00Z"
            try:
                ms = to_epoch_ms(text)
            except ValueError as exc:
                raise ValueError(
                    f"{value!r}: give ISO-8601 time with a zone (e.g. 2026-01-01T06:00:00Z), a "
                    f"date (2026-01-01, UTC), or epoch milliseconds ({exc})"
                ) from None
    else:
        ms = int(value)
    return str(iso_timestamps(np.array([ms], dtype=np.int64))[0])


@attrs.frozen
class Filters:
    """Which readings: by city, sensor, time range ``[since, until)`` and anomaly label."""

    city: str | None = None
    sensor: str | None = None
    since: str | int | None = None
    until: str | int | None = None
    anomalies: bool = False

    def where(self) -> tuple[str, list[dict[str, Any]]]:
        """The WHERE clause (empty when nothing is filtered) and its query parameters."""
        clauses: list[str] = []
        parameters: list[dict[str, Any]] = []
        if self.city is not None:
            clauses.append("c.city = @city")
            parameters.append({"name": "@city", "value": self.city})
        if self.sensor is not None:
            clauses.append("c.sensor_id = @sensor")
            parameters.append({"name": "@sensor", "value": self.sensor})
        if self.since is not None:
            clauses.append("c.timestamp >= @since")
            parameters.append({"name": "@since", "value": _iso(self.since)})
        if self.until is not None:
            clauses.append("c.timestamp < @until")
            parameters.append({"name": "@until", "value": _iso(self.until)})
        if self.anomalies:
            clauses.append("c.anomaly_flag = true")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), parameters


def count(sink: CosmosSink, filters: Filters = Filters()) -> int:
    """How many documents match."""
    where, parameters = filters.where()
    result = list(
        sink.container_client.query_items(
            "SELECT VALUE COUNT(1) FROM c" + where,
            parameters=parameters,
            enable_cross_partition_query=True,
        )
    )
    return int(sum(result))


def count_by(sink: CosmosSink, field: str, filters: Filters = Filters()) -> Any:
    """Documents per value of ``field`` (``city`` or ``sensor_id``) as a
    :class:`cosmobac_cosmos.readback.Grouped`: GROUP BY where the server runs it, else a tally
    of a projection (the local test server refuses GROUP BY)."""
    from .readback import grouped_counts

    where, parameters = filters.where()
    return grouped_counts(sink.container_client, field, where=where, parameters=parameters)


def query(
    sink: CosmosSink,
    filters: Filters = Filters(),
    *,
    limit: int | None = 100,
    newest_first: bool = False,
    raw: bool = False,
) -> Iterator[dict[str, Any]]:
    """Matching documents ordered by timestamp (at most ``limit``; ``None``: all)."""
    where, parameters = filters.where()
    top = ""
    if limit is not None:
        top = "TOP @limit "
        parameters = [*parameters, {"name": "@limit", "value": int(limit)}]
    order = " ORDER BY c.timestamp " + ("DESC" if newest_first else "ASC")
    sql = f"SELECT {top}* FROM c{where}{order}"
    for doc in sink.container_client.query_items(
        sql, parameters=parameters, enable_cross_partition_query=True
    ):
        if not raw:
            doc = {k: v for k, v in doc.items() if k not in SYSTEM_PROPERTIES}
        yield doc


@attrs.frozen
class Check:
    """One line of ``cosmobac cosmos check``: ``ok`` is True, False, or None (skipped/a note)."""

    ok: bool | None
    what: str
    detail: str


def check(sink: CosmosSink, *, write: bool = True) -> list[Check]:
    """Reachability, authentication, database and container, partition key, and (``write``) one
    test document written and deleted. Each step runs only when the one before it passed."""
    from azure.cosmos import CosmosClient

    results: list[Check] = []

    def failed(what: str, exc: BaseException) -> list[Check]:
        results.append(Check(False, what, sink_redact(sink, classify(exc).message)))
        return results

    def missing(what: str, name: str) -> list[Check]:
        note = " (create_if_missing will create it)" if sink.create_if_missing else ""
        results.append(Check(bool(sink.create_if_missing), what, f"{name!r} does not exist{note}"))
        return results

    auth = "account key" if sink.key is not None else "Microsoft Entra ID"
    credential, owned = credential_for(sink)
    try:
        client = CosmosClient(sink.endpoint, credential, **sink.client_options())
        account = client.get_database_account()
    except Exception as exc:
        failure = classify(exc)
        if failure.status in (401, 403):
            results.append(Check(True, "endpoint", f"{sink.endpoint} answers"))
            return failed("credentials", exc)
        return failed("endpoint", exc)
    try:
        regions = ", ".join(loc["name"] for loc in account.WritableLocations) or "-"
        results.append(
            Check(True, "endpoint", f"{sink.endpoint} answers (write regions: {regions})")
        )
        results.append(Check(True, "credentials", f"{auth} accepted"))
        database = client.get_database_client(sink.database)
        try:
            database.read()
        except Exception as exc:
            if getattr(exc, "status_code", None) == 404:
                return missing("database", sink.database)
            return failed("database", exc)
        results.append(Check(True, "database", f"{sink.database!r} exists"))
        container = database.get_container_client(sink.container)
        try:
            properties = container.read()
        except Exception as exc:
            if getattr(exc, "status_code", None) == 404:
                return missing("container", sink.container)
            return failed("container", exc)
        paths = tuple((properties.get("partitionKey") or {}).get("paths") or ())
        ttl = properties.get("defaultTtl")
        results.append(
            Check(
                True,
                "container",
                f"{sink.container!r} exists"
                + (f", default TTL {ttl} s" if ttl not in (None, -1) else ""),
            )
        )
        results.append(
            Check(
                paths == sink.partition_key,
                "partition key",
                f"container {list(paths)}, sink {list(sink.partition_key)}"
                + ("" if paths == sink.partition_key else ": they must match"),
            )
        )
        if paths != sink.partition_key:
            return results
        if not write:
            results.append(Check(None, "test write", "skipped (--no-write)"))
            return results
        results.append(_test_write(sink, container))
        return results
    finally:
        close_client(client, timeout=sink.connection_timeout + 1)
        if owned is not None:
            owned.close()


def _test_write(sink: CosmosSink, container: Any) -> Check:
    doc: dict[str, Any] = {"id": f"cosmobac-check-{uuid.uuid4()}", "cosmobac_check": True}
    for path in sink.partition_key:
        doc[path[1:]] = "cosmobac-check"
    doc.setdefault("timestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    key: Any = (
        doc[sink.partition_key[0][1:]]
        if len(sink.partition_key) == 1
        else [doc[p[1:]] for p in sink.partition_key]
    )
    charges: list[float] = []

    def hook(headers: Any, _: Any) -> None:
        charges.append(request_charge(headers))

    try:
        container.create_item(doc, response_hook=hook)
    except Exception as exc:
        failure = classify(exc)
        if failure.status == 403:
            return Check(None, "test write", "not allowed for this identity (a read-only role?)")
        return Check(False, "test write", sink_redact(sink, failure.message))
    try:
        container.delete_item(doc["id"], partition_key=key, response_hook=hook)
    except Exception as exc:
        failure = classify(exc)
        if failure.action is Action.PERMANENT and failure.status == 403:
            return Check(
                None,
                "test write",
                f"written ({charges[0]:g} RU) but deleting it is not allowed; delete "
                f"{doc['id']!r} by hand",
            )
        return Check(False, "test write", sink_redact(sink, failure.message))
    return Check(
        True, "test write", f"one document written and deleted ({sum(charges):g} RU in all)"
    )


def sink_redact(sink: CosmosSink, text: str) -> str:
    return sink._redact(text)


def cosmos_sinks(config: Any) -> Sequence[Any]:
    return [c for c in config.sinks if c.plugin == "cosmos"]
