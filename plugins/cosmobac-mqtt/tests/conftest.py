"""Fixtures for the MQTT tests: a real Mosquitto on a free loopback port, one per test (optionally
with a password file, or TLS with a throwaway CA made by the ``openssl`` command).

Without mosquitto (or openssl for TLS) the tests are skipped, except under CI (``CI`` set), where
that fails them. Fixtures such as ``cosmobac_plugins`` come from ``cosmobac.testing``."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmobac.testing import skip_or_fail, use_hypothesis_profile
from cosmobac_mqtt.localbroker import LocalBroker, mosquitto_path, start_broker

use_hypothesis_profile()

USERS = {"edge": "s3cret-Passw0rd"}
_ids = itertools.count()


def need_mosquitto() -> None:
    if mosquitto_path() is None:
        skip_or_fail("mosquitto is not installed: apt-get install mosquitto")


@pytest.fixture
def client_id(request: pytest.FixtureRequest) -> str:
    """A client id of the test's own (a persistent session per test)."""
    return f"t{next(_ids)}-{request.node.name[:40]}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    need_mosquitto()
    with start_broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    need_mosquitto()
    if shutil.which("mosquitto_passwd") is None:
        skip_or_fail("mosquitto_passwd is not installed: apt-get install mosquitto")
    with start_broker(tmp_path / "broker", users=USERS) as running:
        yield running


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key);
    beside them ``client.pem``/``client.key``, a client certificate signed by the same CA."""
    if shutil.which("openssl") is None:
        skip_or_fail("openssl is not installed: apt-get install openssl")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = folder / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=cosmobac test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    # a client certificate signed by the same CA, for brokers that require one
    client_key, client_csr, client_cert = (
        folder / n for n in ("client.key", "client.csr", "client.pem")
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(client_key), "-out",
        str(client_csr), "-subj", "/CN=cosmobac-edge-1")  # fmt: skip
    run("x509", "-req", "-in", str(client_csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(client_cert), "-days", "2")  # fmt: skip
    return ca, cert, key


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, Path]]:
    """A TLS-only broker and the CA file that verifies it."""
    need_mosquitto()
    ca, cert, key = make_certificates(tmp_path / "certs")
    with start_broker(tmp_path / "broker", tls=(str(ca), str(cert), str(key))) as running:
        yield running, ca


@pytest.fixture
def client_cert_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, Path]]:
    """A TLS-only broker that requires a client certificate signed by its CA, and the folder
    holding ``ca.pem``, ``client.pem`` and ``client.key``."""
    need_mosquitto()
    folder = tmp_path / "certs"
    ca, cert, key = make_certificates(folder)
    tls = (str(ca), str(cert), str(key))
    with start_broker(tmp_path / "broker", tls=tls, extra=["require_certificate true"]) as running:
        yield running, folder
