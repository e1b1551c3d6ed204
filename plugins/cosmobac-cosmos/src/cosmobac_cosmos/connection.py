"""How the ``cosmos`` sink reaches its container: authentication (account key or Microsoft Entra
ID), the SDK client's options and HTTP session, and the container opened, created if asked, and
checked against the sink's partition key.

Guarantees:

* the SDK retries nothing itself (no 429 waits, no transport retries): the sink backs off;
* opening gives up on an endpoint that does not answer within about ``read_timeout`` plus 3 s
  (the SDK's first account read): every call made here carries an absolute ``timeout`` of
  ``read_timeout``, which stops the SDK's own health-check retries of the account read (3, 5,
  then ``read_timeout`` s each: 63 s with the former 30 s default);
* TLS is verified unless ``verify_tls = false``, even on loopback;
* :func:`open_container` either returns a :class:`Connection` to a container whose partition key
  equals the sink's, or raises and leaves nothing open; a missing database or container and a
  partition key that differs raise a permanent :class:`~cosmobac.errors.SinkError` saying how to
  fix it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import attrs

from cosmobac.errors import SinkError

from . import _settings as s

if TYPE_CHECKING:
    from .sink import CosmosSink

__all__ = [
    "Connection",
    "client_options",
    "close_client",
    "credential_for",
    "open_container",
    "paths_text",
    "wait_for_background_refresh",
    "where",
]

log = logging.getLogger("cosmobac.cosmos")


@attrs.define(eq=False)
class Connection:
    """What a sink opened: the SDK client, its HTTP session, the credential it made (if any) and
    the checked container (the SDK's ``ContainerProxy``)."""

    client: Any
    container: Any
    session: Any
    own_credential: Any

    def close(self, *, timeout: float) -> None:
        """Close the client, the session and an owned credential; never raises (closing must not
        hide the error that led here)."""
        close_client(self.client, timeout=timeout)
        self.session.close()
        if self.own_credential is not None:
            try:
                self.own_credential.close()
            except Exception:
                log.debug("closing the credential failed", exc_info=True)


def where(sink: CosmosSink) -> str:
    """The sink's container, for messages."""
    return f"container {sink.container!r} of database {sink.database!r} at {sink.endpoint}"


def paths_text(partition_key: tuple[str, ...]) -> str:
    """Partition key paths as a user writes them: ``'/a'`` or ``['/a', '/b']``."""
    if len(partition_key) == 1:
        return repr(partition_key[0])
    return "[" + ", ".join(repr(p) for p in partition_key) + "]"


def client_options(sink: CosmosSink) -> dict[str, Any]:
    """Keyword arguments for ``azure.cosmos.CosmosClient`` (timeouts, TLS, retries)."""
    from azure.cosmos import SSLConfiguration
    from azure.cosmos.documents import ConnectionPolicy, RetryOptions

    policy = ConnectionPolicy()
    # the sink honours 429 itself (retry-after, then slows down): the SDK must not wait on it
    policy.RetryOptions = RetryOptions(max_retry_attempt_count=0)
    options: dict[str, Any] = {
        "connection_policy": policy,
        "connection_timeout": sink.connection_timeout,
        "read_timeout": sink.read_timeout,
        "retry_total": 0,  # transport retries off: the sink backs off with full jitter
        # the SDK retries its first read of the account (health check) with longer and longer
        # timeouts; an absolute timeout ends that on an endpoint that does not answer
        "timeout": sink.read_timeout,
        "enable_endpoint_discovery": not (
            sink.endpoint.startswith("http://") or s.is_loopback(sink.endpoint)
        ),
        "user_agent_suffix": "cosmobac",
    }
    if sink.verify_tls:
        ssl = SSLConfiguration()
        ssl.SSLCaCerts = sink.tls_ca_file or True  # verify even for localhost
        options["ssl_config"] = ssl
    else:
        options["connection_verify"] = False
    return options


def credential_for(sink: CosmosSink) -> tuple[Any, Any]:
    """``(credential, owned)``: what ``CosmosClient`` authenticates with (the account key, or a
    token credential), and the credential made here that the caller must close (or ``None``)."""
    if sink.key is not None:
        return sink.key.strip(), None
    if sink.credential == "default":
        from azure.identity import DefaultAzureCredential

        made = DefaultAzureCredential()
        return made, made
    return sink.credential, None


def open_container(sink: CosmosSink) -> Connection:
    """Open the client, check (or create) database and container, and check the partition key."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from azure.cosmos import CosmosClient
    from urllib3.util.retry import Retry

    session = requests.Session()
    # proxies from the environment (HTTPS_PROXY, NO_PROXY, ...) are looked up once here, not
    # on every request (requests scans os.environ per request: ~10% of the client's CPU)
    session.proxies.update(requests.utils.get_environ_proxies(sink.endpoint))
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=sink.max_concurrency + 4,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    connection = Connection(client=None, container=None, session=session, own_credential=None)
    try:
        options = client_options(sink)
        options["transport"] = RequestsTransport(session=session, session_owner=False)
        credential, connection.own_credential = credential_for(sink)
        connection.client = CosmosClient(sink.endpoint, credential, **options)
        connection.container = _checked_container(sink, connection.client)
    except BaseException:
        connection.close(timeout=sink.connection_timeout + 1)
        raise
    return connection


def _checked_container(sink: CosmosSink, client: Any) -> Any:
    from azure.cosmos import PartitionKey, ThroughputProperties

    timeout = {"timeout": sink.read_timeout}  # each call gives up on a hung endpoint
    if sink.create_if_missing:
        database = client.create_database_if_not_exists(id=sink.database, **timeout)
        extra: dict[str, Any] = {}
        if sink.throughput is not None:
            extra["offer_throughput"] = sink.throughput
        elif sink.autoscale_max_throughput is not None:
            extra["offer_throughput"] = ThroughputProperties(
                auto_scale_max_throughput=sink.autoscale_max_throughput
            )
        if sink.default_ttl is not None:
            extra["default_ttl"] = sink.default_ttl
        policy = sink.creation_policy()
        if policy is not None:
            extra["indexing_policy"] = policy
        if len(sink.partition_key) > 1:
            key = PartitionKey(path=list(sink.partition_key), kind="MultiHash")
        else:
            key = PartitionKey(path=sink.partition_key[0], kind="Hash")
        container = database.create_container_if_not_exists(
            id=sink.container, partition_key=key, **extra, **timeout
        )
        properties = container.read(**timeout)
    else:
        database = client.get_database_client(sink.database)
        container = database.get_container_client(sink.container)
        try:
            properties = container.read(**timeout)
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            missing = _missing(sink, database)
            raise SinkError(
                f"cosmos sink: {missing}. Create it in Azure (with partition key "
                f"{paths_text(sink.partition_key)}), or set create_if_missing = true where the "
                "identity may create databases and containers",
                transient=False,
            ) from None
    actual = tuple((properties.get("partitionKey") or {}).get("paths") or ())
    if actual != sink.partition_key:
        raise SinkError(
            f"cosmos sink: {where(sink)} is partitioned by {list(actual)}, but the sink "
            f"is configured with partition_key = {paths_text(sink.partition_key)}; make them "
            "match (a container's partition key cannot be changed)",
            transient=False,
        )
    return container


def _missing(sink: CosmosSink, database: Any) -> str:
    try:
        database.read()
    except Exception as exc:
        if getattr(exc, "status_code", None) == 404:
            return f"database {sink.database!r} does not exist at {sink.endpoint}"
        raise
    return f"container {sink.container!r} does not exist in database {sink.database!r}"


def close_client(client: Any, *, timeout: float) -> None:
    """Close an SDK client (``None`` is fine) after its background refresh; never raises."""
    if client is None:
        return
    wait_for_background_refresh(client, timeout=timeout)
    try:
        client.__exit__(None, None, None)
    except Exception:  # closing must not hide the error that got us here
        log.debug("closing the Cosmos client failed", exc_info=True)


def wait_for_background_refresh(client: Any, timeout: float) -> None:
    """The SDK checks endpoints on a background thread when a client starts; closing the client
    under it makes that thread log a traceback. Give it a moment to finish first."""
    manager = getattr(getattr(client, "client_connection", None), "_global_endpoint_manager", None)
    thread = getattr(manager, "_refresh_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        thread.join(timeout)
