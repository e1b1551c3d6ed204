"""The ``cosmos`` sink against the real local server: writes, replays, partition keys, missing
containers, HTTPS with TLS verification, and Microsoft Entra ID (through a test double of the
managed identity token endpoint)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac.documents import document_ids
from cosmobac.errors import SinkError

from .conftest import contents, ids, make_sink, self_signed
from .faultproxy import FaultProxy, Rules


def readings(n: int, sensors: int = 4, start: int = 0, **extra) -> Batch:
    ts = (np.arange(n, dtype=np.int64) // sensors + start) * 1000 + 1_767_225_600_000
    return Batch.from_columns(
        timestamp=ts,
        sensor_id=[f"sensor-{i % sensors}" for i in range(n)],
        city=["Berlin" if i % sensors < sensors // 2 else "Lisbon" for i in range(n)],
        temperature=np.arange(n, dtype=float),
        **extra,
    )


def test_write_stores_one_document_per_reading_with_deterministic_ids(
    cosmos_server, container_name
):
    batch = readings(950)
    with make_sink(cosmos_server.endpoint, container_name) as sink:
        result = sink.write(batch)
        assert result is not None and result.complete
        assert result.stats["requests"] >= 4 * 3  # per sensor: 238 rows → 3 batches
        assert result.stats["request_charge"] > 0
        totals = sink.totals()
    docs = contents(cosmos_server, container_name)
    assert sorted(d["id"] for d in docs) == sorted(document_ids(batch).tolist())
    assert totals["documents"] == 950 and totals["request_charge_per_document"] > 0


def test_a_replay_settles_conflicts_with_upserts_exactly_once(cosmos_server, container_name):
    batch = readings(300)
    with make_sink(cosmos_server.endpoint, container_name) as sink:
        sink.write(batch.select(slice(0, 150)))  # as if a crash came after half the batch
        changed = batch.with_columns(temperature=np.arange(300, dtype=float) + 0.5)
        result = sink.write(changed)  # the replay, with values a transform recomputed
        assert result is not None and result.complete
        assert result.stats["conflicts"] >= 150
    docs = contents(cosmos_server, container_name)
    assert len(docs) == 300 == len({d["id"] for d in docs})
    assert sorted(d["temperature"] for d in docs) == [t + 0.5 for t in range(300)]


def test_hierarchical_partition_key(cosmos_server, container_name):
    batch = readings(200)
    with make_sink(
        cosmos_server.endpoint, container_name, partition_key=["/city", "/sensor_id"]
    ) as sink:
        assert sink.write(batch).complete
        properties = sink.container_client.read()
    assert properties["partitionKey"]["paths"] == ["/city", "/sensor_id"]
    assert properties["partitionKey"]["kind"] == "MultiHash"
    assert len(ids(cosmos_server, container_name)) == 200


def test_container_settings_when_creating_it(cosmos_server, container_name):
    policy = {"indexingMode": "consistent", "excludedPaths": [{"path": "/*"}]}
    with make_sink(
        cosmos_server.endpoint,
        container_name,
        default_ttl=86_400,
        indexing_policy=policy,
        throughput=400,
    ) as sink:
        sink.write(readings(10))
        properties = sink.container_client.read()
    assert properties["defaultTtl"] == 86_400
    assert properties["indexingPolicy"]["excludedPaths"] == [{"path": "/*"}]


def test_a_missing_container_is_a_permanent_error_naming_it(cosmos_server, container_name):
    with make_sink(cosmos_server.endpoint, container_name) as creator:
        creator.connect()  # the database exists, the container below does not
    sink = make_sink(cosmos_server.endpoint, "no-such-container", create_if_missing=False)
    with pytest.raises(SinkError) as info:
        sink.write(readings(5))
    assert not info.value.transient
    assert "'no-such-container' does not exist" in str(info.value)
    assert "create_if_missing" in str(info.value)
    other = make_sink(cosmos_server.endpoint, "c", database="no-such-db", create_if_missing=False)
    with pytest.raises(SinkError, match="database 'no-such-db' does not exist"):
        other.write(readings(5))


def test_a_partition_key_that_differs_from_the_container_is_refused(cosmos_server, container_name):
    with make_sink(cosmos_server.endpoint, container_name) as sink:
        sink.write(readings(5))
    wrong = make_sink(cosmos_server.endpoint, container_name, partition_key="/city")
    with pytest.raises(SinkError) as info:
        wrong.write(readings(5))
    assert not info.value.transient and "['/sensor_id']" in str(info.value)
    assert "partition_key = '/city'" in str(info.value)


def test_an_unreachable_endpoint_is_transient(container_name):
    sink = make_sink("http://127.0.0.1:9/", container_name, connection_timeout=1)
    with pytest.raises(SinkError) as info:
        sink.write(readings(3))
    assert info.value.transient


# -- HTTPS and TLS verification ------------------------------------------------------------------
@pytest.fixture
def tls_proxy(cosmos_server, tmp_path):
    cert, _, context = self_signed(tmp_path)
    with FaultProxy(cosmos_server.host, cosmos_server.port, tls=context) as proxy:
        yield proxy, cert


def test_https_with_a_self_signed_certificate_is_refused_by_default(tls_proxy, container_name):
    proxy, _ = tls_proxy
    sink = make_sink(proxy.endpoint, container_name)
    with pytest.raises(SinkError) as info:
        sink.write(readings(3))
    assert not info.value.transient
    assert "TLS" in str(info.value) and "tls_ca_file" in str(info.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_works_with_the_certificate_or_verification_off(
    cosmos_server, tls_proxy, container_name
):
    proxy, cert = tls_proxy
    with make_sink(proxy.endpoint, container_name, tls_ca_file=str(cert)) as sink:
        assert sink.write(readings(40)).complete
    with make_sink(proxy.endpoint, container_name, verify_tls=False) as sink:
        assert sink.write(readings(40, start=100)).complete
    assert len(ids(cosmos_server, container_name)) == 80
    assert proxy.count("forward") > 0


# -- Microsoft Entra ID --------------------------------------------------------------------------
ENTRA_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_TOKEN_CREDENTIALS",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
)


class FakeManagedIdentityEndpoint:
    """TEST DOUBLE of the Azure App Service managed identity token endpoint — the wire format
    azure-identity's ManagedIdentityCredential (inside DefaultAzureCredential) uses when
    ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set: ``GET {IDENTITY_ENDPOINT}?api-version=
    2019-08-01&resource=R`` with header ``X-IDENTITY-HEADER``, answered with JSON ``access_token``,
    ``expires_on`` (epoch seconds), ``resource``, ``token_type``. The real endpoint is only inside
    Azure; docs/cosmos.md says how to check against real Entra ID."""

    def __init__(self, secret_header: str, token: str) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                endpoint.requests.append(
                    (urlsplit(self.path).path, query, self.headers.get("X-IDENTITY-HEADER"))
                )
                if self.headers.get("X-IDENTITY-HEADER") != secret_header:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps(
                    {
                        "access_token": token,
                        "expires_on": str(int(time.time()) + 3600),
                        "resource": query.get("resource", [""])[0],
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_entra_id_default_credential_sends_aad_tokens(
    cosmos_server, tls_proxy, container_name, monkeypatch
):
    proxy, cert = tls_proxy
    token = "fake-entra-token-7f3a"
    identity = FakeManagedIdentityEndpoint("identity-header-value", token)
    try:
        for name in ENTRA_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "identity-header-value")
        with make_sink(
            proxy.endpoint, container_name, credential="default", tls_ca_file=str(cert)
        ) as sink:
            assert "credential='default'" in repr(sink)
            assert sink.write(readings(120)).complete
    finally:
        identity.close()
    assert identity.requests, "DefaultAzureCredential never asked the identity endpoint"
    path, query, _ = identity.requests[0]
    assert path == "/msi/token" and query["resource"] == ["https://127.0.0.1"]
    authorizations = {e.authorization for e in proxy.events}
    assert authorizations == {f"type=aad&ver=1.0&sig={token}"}
    assert len(ids(cosmos_server, container_name)) == 120


def test_entra_id_refused_token_is_a_clear_permanent_error(
    tls_proxy, container_name, monkeypatch, tmp_path
):
    # the identity endpoint refuses us (wrong X-IDENTITY-HEADER); set so that no credential of
    # the chain probes anything off this machine
    proxy, cert = tls_proxy
    identity = FakeManagedIdentityEndpoint("the-right-header", "never-issued")
    try:
        for name in ENTRA_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "a-wrong-header")
        monkeypatch.setenv("PATH", str(tmp_path))  # no az, azd, pwsh to ask
        sink = make_sink(
            proxy.endpoint, container_name, credential="default", tls_ca_file=str(cert)
        )
        with pytest.raises(SinkError) as info:
            sink.write(readings(3))
    finally:
        identity.close()
    assert not info.value.transient
    assert "could not get a Microsoft Entra ID token" in str(info.value)
    assert "az login" in str(info.value)
    assert identity.requests  # it asked
    assert proxy.count("forward") == 0  # nothing reached the server without a token


def test_throttling_is_honoured_on_https_too(cosmos_server, tls_proxy, container_name):
    proxy, cert = tls_proxy
    proxy.rules = Rules(throttle=0.3, retry_after_ms=(10, 40))
    with make_sink(proxy.endpoint, container_name, tls_ca_file=str(cert)) as sink:
        assert sink.write(readings(400)).complete
    assert proxy.count("throttle") > 0 and not proxy.retry_after_violations()
    assert len(ids(cosmos_server, container_name)) == 400
