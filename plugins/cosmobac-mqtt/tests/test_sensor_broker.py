"""The mqtt sensor against a real Mosquitto on loopback: wait/read/commit, redelivery of what was
not committed, rejects, flow control, reconnects, login and TLS."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from cosmobac.errors import ConfigError
from cosmobac.interfaces import Closeable, CommittingSensor, LiveSensor, RejectingSensor
from cosmobac_mqtt import MqttSensor, mqtt
from cosmobac_mqtt.localbroker import LocalBroker, free_port, publish, start_broker

from .conftest import USERS, make_certificates, need_mosquitto

T0 = 1_767_225_600_000


def readings(start: int, count: int, topic: str = "plant/a") -> list[tuple[str, Any]]:
    return [
        (topic, {"sensor_id": f"s-{i % 7}", "timestamp": T0 + i, "temperature": float(i)})
        for i in range(start, start + count)
    ]


def sensor(broker: LocalBroker, client_id: str, **keys: Any) -> MqttSensor:
    keys.setdefault("topics", "plant/#")
    return mqtt(host=broker.host, port=broker.port, client_id=client_id, **keys)


def read_all(s: MqttSensor, count: int, timeout: float = 20.0, commit: bool = True) -> list[float]:
    """Read until ``count`` readings came (committing each read), their temperatures in order."""
    values: list[float] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        s.wait(0.2, count - len(values))
        batch = s.read(0)
        if len(batch):
            values += batch["temperature"].tolist()
        if commit:
            s.commit()
    return values


def subscribed(s: MqttSensor, timeout: float = 10.0) -> None:
    """Wait until the sensor's session exists (messages published from now on are kept)."""
    s.start()
    deadline = time.monotonic() + timeout
    while not s.subscribed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert s.subscribed


def test_the_sensor_has_the_live_capabilities(broker, client_id):
    with sensor(broker, client_id) as s:
        for protocol in (LiveSensor, CommittingSensor, RejectingSensor, Closeable):
            assert isinstance(s, protocol)
        assert s.finished is False


def test_messages_arrive_in_order(broker, client_id):
    with sensor(broker, client_id) as s:
        subscribed(s)
        publish(broker.host, broker.port, readings(0, 500))
        assert read_all(s, 500) == [float(i) for i in range(500)]


def test_wait_times_out_without_messages(broker, client_id):
    with sensor(broker, client_id) as s:
        subscribed(s)
        began = time.monotonic()
        assert s.wait(0.3, 1) is False
        assert 0.25 <= time.monotonic() - began < 2
        assert len(s.read(0)) == 0


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_uncommitted_messages_come_again_and_committed_ones_do_not(broker, client_id, protocol):
    with sensor(broker, client_id, protocol=protocol) as first:
        subscribed(first)
        publish(broker.host, broker.port, readings(0, 20))
        assert read_all(first, 20) == [float(i) for i in range(20)]  # committed
        publish(broker.host, broker.port, readings(20, 30))
        assert read_all(first, 30, commit=False) == [float(i) for i in range(20, 50)]
    # a collector that died before commit: the same client id gets the 30 again, only them
    with sensor(broker, client_id, protocol=protocol) as second:
        assert read_all(second, 30) == [float(i) for i in range(20, 50)]
        assert second.redelivered == 30
        assert second.wait(0.5, 1) is False
    with sensor(broker, client_id, protocol=protocol) as third:
        assert third.wait(1.0, 1) is False
        assert len(third.read(0)) == 0


def test_messages_published_while_the_collector_is_away_wait_for_it(broker, client_id):
    with sensor(broker, client_id) as s:
        subscribed(s)
    publish(broker.host, broker.port, readings(0, 3000))
    with sensor(broker, client_id) as again:
        assert read_all(again, 3000) == [float(i) for i in range(3000)]


def test_malformed_payloads_are_rejects_and_are_acknowledged(broker, client_id):
    messages = [
        ("plant/a", b"not json"),
        ("plant/b", {"sensor_id": "x"}),
        ("plant/c", {"sensor_id": "x", "timestamp": T0, "temperature": 4.0}),
    ]
    with sensor(broker, client_id) as s:
        subscribed(s)
        publish(broker.host, broker.port, messages)
        assert s.wait(5, 1)
        deadline = time.monotonic() + 5
        rejects: list[Any] = []
        rows = 0
        while (rows < 1 or len(rejects) < 2) and time.monotonic() < deadline:
            s.wait(0.2, 3)
            rows += len(s.read(0))
            rejects += s.take_rejects()
            s.commit()
        assert rows == 1
        assert [(r.origin, r.raw) for r in rejects] == [
            ("topic plant/a", "not json"),
            ("topic plant/b", '{"sensor_id": "x"}'),
        ]
        assert "no timestamp" in rejects[1].reason
    with sensor(broker, client_id) as again:  # all three were acknowledged
        assert again.wait(1.0, 1) is False
        assert again.take_rejects() == []


def test_max_buffered_is_the_brokers_receive_maximum(broker, client_id):
    """The broker sends no more than max_buffered unacknowledged messages; nothing is lost."""
    with sensor(broker, client_id, max_buffered=50) as s:
        subscribed(s)
        publish(broker.host, broker.port, readings(0, 400))
        assert s.wait(5, 1000) is True  # a full buffer ends the wait early
        first = s.read(0)
        assert len(first) == 50
        assert s.wait(0.5, 1) is False  # nothing more until those 50 are acknowledged
        s.commit()
        rest = read_all(s, 350)
        assert first["temperature"].tolist() + rest == [float(i) for i in range(400)]


def test_qos_0_receives_without_acknowledgements(broker, client_id):
    with sensor(broker, client_id, qos=0) as s:
        subscribed(s)
        publish(broker.host, broker.port, readings(0, 100))
        assert read_all(s, 100) == [float(i) for i in range(100)]
        assert s.acknowledged == 0


def test_a_broker_down_at_start_is_retried(tmp_path: Path, client_id, caplog):
    need_mosquitto()
    port = free_port()
    caplog.set_level(logging.WARNING, logger="cosmobac_mqtt")
    with mqtt(host="127.0.0.1", port=port, topics="plant/#", client_id=client_id) as s:
        assert s.wait(0.5, 1) is False  # no broker: not an error
        assert "not reachable" in caplog.text
        with start_broker(tmp_path / "late", port=port) as late:
            subscribed(s, timeout=15)
            publish(late.host, late.port, readings(0, 10))
            assert read_all(s, 10) == [float(i) for i in range(10)]


def test_a_broker_restart_is_survived(broker, client_id, caplog):
    caplog.set_level(logging.INFO, logger="cosmobac_mqtt")
    with sensor(broker, client_id) as s:
        subscribed(s)
        broker.restart()  # persistence is off: the session is gone, the sensor subscribes again
        deadline = time.monotonic() + 15
        while "kept no session" not in caplog.text and time.monotonic() < deadline:
            s.wait(0.1, 1)
        assert "disconnected from MQTT broker" in caplog.text
        assert "kept no session" in caplog.text
        subscribed(s)
        publish(broker.host, broker.port, readings(0, 10))
        assert read_all(s, 10) == [float(i) for i in range(10)]


def test_an_unknown_host_name_is_a_config_error(client_id):
    with mqtt(host="no-such-host.invalid", topics="a", client_id=client_id) as s:
        with pytest.raises(ConfigError, match="not a known host name.*check `host`"):
            s.wait(1, 1)
        with pytest.raises(ConfigError, match="check `host`"):
            s.read(0)


def test_a_login_is_required_and_checked(auth_broker, client_id):
    ((user, password),) = USERS.items()
    with sensor(auth_broker, client_id, username=user, password=password) as s:
        subscribed(s)
        publish(auth_broker.host, auth_broker.port, readings(0, 5), username=user,
                password=password)  # fmt: skip
        assert read_all(s, 5) == [float(i) for i in range(5)]
    with sensor(auth_broker, client_id, username=user, password="wrong-Secret-9") as bad:
        with pytest.raises(ConfigError) as refused:
            bad.wait(10, 1)
        assert "check `username` and `password`" in str(refused.value)
        assert "wrong-Secret-9" not in str(refused.value) + repr(bad) + repr(bad.settings)
    with (
        sensor(auth_broker, client_id) as anonymous,
        pytest.raises(ConfigError, match="refused the anonymous login"),
    ):
        anonymous.wait(10, 1)


def test_tls_with_the_brokers_ca(tls_broker, client_id):
    broker, ca = tls_broker
    with sensor(broker, client_id, tls=True, ca_file=str(ca)) as s:
        subscribed(s)
        publish(broker.host, broker.port, readings(0, 5), tls=(ca, None, None))
        assert read_all(s, 5) == [float(i) for i in range(5)]


def test_tls_without_the_ca_is_a_config_error_and_insecure_connects(tls_broker, client_id):
    broker, _ = tls_broker
    with (
        sensor(broker, client_id, tls=True) as s,
        pytest.raises(ConfigError, match="does not verify.*check `ca_file`"),
    ):
        s.wait(5, 1)
    with sensor(broker, client_id, tls=True, insecure=True) as s:
        subscribed(s)


def test_client_certificate_login(client_cert_broker, client_id):
    broker, certs = client_cert_broker
    keys = {"tls": True, "ca_file": str(certs / "ca.pem")}
    client = {"cert_file": str(certs / "client.pem"), "key_file": str(certs / "client.key")}
    with sensor(broker, client_id, **keys, **client) as s:
        subscribed(s)
        files = (certs / "ca.pem", certs / "client.pem", certs / "client.key")
        publish(broker.host, broker.port, readings(0, 3), tls=files)
        assert read_all(s, 3) == [0.0, 1.0, 2.0]
    with (
        sensor(broker, f"{client_id}-nocert", **keys) as s,
        pytest.raises(ConfigError, match="requires a client certificate: set `cert_file`"),
    ):
        s.start()
        s.wait(10, 1)
    other = make_certificates(certs.parent / "other")[0].parent  # a CA the broker doesn't trust
    untrusted = {"cert_file": str(other / "client.pem"), "key_file": str(other / "client.key")}
    with (
        sensor(broker, f"{client_id}-untrusted", **keys, **untrusted) as s,
        pytest.raises(ConfigError, match=r"refused the TLS client certificate .*check `cert_file`"),
    ):
        s.start()
        s.wait(10, 1)


def test_close_is_idempotent_and_final(broker, client_id):
    s = sensor(broker, client_id)
    subscribed(s)
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.wait(0.1, 1)
