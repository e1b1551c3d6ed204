"""What ``cosmobac cosmos plan`` asks an existing container: its properties (the indexing policy
in force) and, with ``--measure``, the request charge of sample writes.

Nothing is created: the container is read, and measured sample documents (ids prefixed
``cosmobac-plan-``) are deleted after their charge is read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._settings import is_loopback
from .connection import client_options, close_client, credential_for

if TYPE_CHECKING:
    from .sink import CosmosSink

__all__ = ["FLAT_CHARGE", "container_client", "measure_writes", "read_properties"]

FLAT_CHARGE = 1.0
"""What the local test server charges for any request."""


@contextmanager
def container_client(sink: CosmosSink) -> Iterator[Any]:
    """The SDK's container client for the sink's container (read-only use; nothing created)."""
    from azure.cosmos import CosmosClient

    credential, owned = credential_for(sink)
    client = CosmosClient(sink.endpoint, credential, **client_options(sink))
    try:
        yield client.get_database_client(sink.database).get_container_client(sink.container)
    finally:
        close_client(client, timeout=sink.connection_timeout + 1)
        if owned is not None:
            owned.close()


def read_properties(container: Any, timeout: float) -> dict[str, Any]:
    """The container's properties (``indexingPolicy``, ``partitionKey``, ``defaultTtl``...)."""
    return dict(container.read(timeout=timeout))


def measure_writes(
    container: Any, sink: CosmosSink, docs: Sequence[dict[str, Any]]
) -> tuple[float | None, str]:
    """Create each of ``docs`` (under a new id), read its ``x-ms-request-charge``, delete it.
    Returns the mean charge, or ``None`` with the reason when it says nothing about Azure's
    (the local test server's flat 1 RU)."""
    charges: list[float] = []
    paths = [p.lstrip("/") for p in sink.partition_key]
    for doc in docs:
        headers: dict[str, Any] = {}
        body = {**doc, "id": f"cosmobac-plan-{uuid.uuid4().hex}"}

        def hook(response_headers: Any, _: Any, into: dict[str, Any] = headers) -> None:
            into.update(response_headers)

        container.create_item(body, response_hook=hook, timeout=sink.write_timeout)
        charges.append(float(headers.get("x-ms-request-charge", 0.0)))
        key = [body.get(p) for p in paths]
        container.delete_item(
            body["id"], partition_key=key[0] if len(key) == 1 else key, timeout=sink.read_timeout
        )
    if not charges:
        return None, "no documents to measure"
    if all(c == FLAT_CHARGE for c in charges):
        where = "a loopback endpoint" if is_loopback(sink.endpoint) else "this endpoint"
        return None, (
            f"measured charge ignored: {where} charges a flat {FLAT_CHARGE:g} RU per request "
            "(the local test server does), which says nothing about Azure's; the estimate is used"
        )
    mean = sum(charges) / len(charges)
    return mean, f"measured: {len(charges)} sample writes, {mean:.2f} RU each on average"
