"""Fixtures for the Cosmos DB tests: the real local server, a fault proxy in front of it, sinks and
a direct view of what a container holds.

The session fixture installs the pinned ``@vercel/cosmosdb-server`` with ``npm ci`` into the
plugin's ``server/`` folder when ``node_modules`` is missing (the lock file is in the repository),
then starts it with ``node`` on a free loopback port. Without Node.js the tests are skipped —
except under CI (``CI`` set), where that is an error.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from cosmobac.testing import use_hypothesis_profile
from cosmobac_cosmos import CosmosSink
from cosmobac_cosmos.emulator import (
    LOCAL_KEY,
    SERVER_DIR,
    LocalServer,
    ensure_installed,
    node_available,
    start_server,
)

from .faultproxy import FaultProxy, Rules

DATABASE = "cosmobac-tests"

use_hypothesis_profile()


@pytest.fixture(scope="session")
def cosmos_server() -> Iterator[LocalServer]:
    """The local Cosmos DB server for the whole session (plain HTTP on 127.0.0.1)."""
    if not node_available():
        if os.environ.get("CI"):
            pytest.fail("Node.js ≥ 20 and npm are required for the Cosmos DB tests under CI")
        pytest.skip("Node.js ≥ 20 and npm are needed to run the local Cosmos DB server")
    ensure_installed(SERVER_DIR)
    proc, server = start_server(SERVER_DIR)
    try:
        yield server
    finally:
        server.stop()
        proc.wait(timeout=30)


@pytest.fixture
def container_name(request: pytest.FixtureRequest) -> str:
    """A container name of its own for each test (the server is shared by the session)."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")


@pytest.fixture
def proxy(cosmos_server: LocalServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of the server (no faults until a test sets its rules)."""
    with FaultProxy(cosmos_server.host, cosmos_server.port, rules=Rules(), seed=1) as p:
        yield p


def make_sink(endpoint: str, container: str, **options: Any) -> CosmosSink:
    settings: dict[str, Any] = {
        "key": LOCAL_KEY,
        "create_if_missing": True,
        "connection_timeout": 5,
        "read_timeout": 10,
        "write_timeout": 60,
        "database": DATABASE,
    }
    settings.update(options)
    if "credential" in options:
        settings.pop("key")
    return CosmosSink(endpoint=endpoint, container=container, **settings)


def _container(server: LocalServer, container: str) -> Any:
    from azure.cosmos import CosmosClient

    client = CosmosClient(
        server.endpoint,
        LOCAL_KEY,
        enable_endpoint_discovery=False,
        connection_timeout=5,
        read_timeout=30,
    )
    return client, client.get_database_client(DATABASE).get_container_client(container)


def contents(server: LocalServer, container: str) -> list[dict[str, Any]]:
    """Every document in ``container``, read straight from the server (not through a proxy)."""
    client, proxy = _container(server, container)
    with client:
        return list(proxy.read_all_items(max_item_count=5000))


def ids(server: LocalServer, container: str) -> list[str]:
    """Every document id in ``container`` (``CosmosResourceNotFoundError`` when it does not
    exist)."""
    client, proxy = _container(server, container)
    with client:
        return [
            row["id"]
            for row in proxy.query_items(
                "SELECT c.id FROM c", enable_cross_partition_query=True, max_item_count=5000
            )
        ]


def delivered_ids(server: LocalServer, container: str) -> list[str]:
    """:func:`ids`, none while the container does not exist yet (a forwarder killed before it
    created it, on a loaded machine)."""
    try:
        return ids(server, container)
    except CosmosResourceNotFoundError:
        return []


def self_signed(directory: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 and localhost (made here), its key, and a server TLS context."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cosmobac test server")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, key_path, context
