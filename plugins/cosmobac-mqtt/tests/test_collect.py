"""The mqtt sensor in a pipeline: built from a pipeline file through the plugin registry, its keys
checked with errors naming them, and collected by ``cosmobac collect`` into the sqlite store with
its rejects (``input_rejects``)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from cosmobac.config import load_config, parse_config
from cosmobac.errors import ConfigError
from cosmobac.pipeline import Pipeline
from cosmobac_mqtt import MqttSensor
from cosmobac_sqlite import SQLiteStore

from .test_kill import collector

T0 = 1_767_225_600_000


@pytest.fixture
def registry(cosmobac_plugins):
    """A registry with the built-ins, the sqlite store and this plugin only (fast, and
    independent of what else is installed)."""
    import cosmobac_mqtt
    import cosmobac_sqlite

    cosmobac_plugins.register(cosmobac_mqtt, name="mqtt")
    cosmobac_plugins.register(cosmobac_sqlite, name="sqlite")
    return cosmobac_plugins


def test_the_plugin_registers_the_mqtt_sensor(tmp_path: Path, monkeypatch, registry):
    monkeypatch.setenv("MQTT_PASSWORD", "pa55-Word-xyz")
    path = tmp_path / "pipeline.toml"
    path.write_text(
        """
[sensor]
plugin = "mqtt"
host = "broker.example"
topics = "plant/+/telemetry"
client_id = "edge-7"
username = "edge"
password = "${MQTT_PASSWORD}"
sensor_id_from_topic = 1
timestamp_unit = "auto"

[sensor.fields]
temp = "temperature"
ts = "timestamp"

[store]
plugin = "sqlite"
path = "edge.db"
"""
    )
    config = load_config(path)
    sensor = config.sensor.build()
    assert isinstance(sensor, MqttSensor)
    settings = sensor.settings
    assert settings.password == "pa55-Word-xyz"
    assert settings.mapping.fields == {"temp": "temperature", "ts": "timestamp"}
    assert settings.mapping.sensor_id_from_topic == 1
    assert settings.broker_port == 1883
    assert "pa55" not in repr(sensor) + repr(settings)
    sensor.close()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"qos": 2}, "qos must be between 0 and 1"),
        ({"topics": []}, "topics must name at least one topic"),
        ({"topics": "a/#/b"}, "'#' must be a whole last level"),
        ({"topics": "a/b+"}, "'+' must be a whole level"),
        ({"host": "mqtt://broker"}, "host must be a host name"),
        ({"port": 70000}, "port must be between 1 and 65535"),
        ({"client_id": " "}, "client_id must be non-empty"),
        ({"ca_file": "ca.pem"}, "ca_file given without tls = true"),
        ({"tls": True, "ca_file": "/nonexistent/ca.pem"}, "ca_file '/nonexistent/ca.pem' cannot"),
        ({"password": "hunter2-secret"}, "password is given without username"),
        ({"protocol": "4"}, "protocol must be one of '5', '3.1.1'"),
        ({"max_buffered": 70000}, "max_buffered must be between 1 and 65535"),
        ({"keepalive": "1s"}, "keepalive must be at least 5s"),
        ({"timestamp_unit": "seconds"}, "timestamp_unit must be one of"),
        ({"colour": "blue"}, "unknown key 'colour'"),
    ],
)
def test_bad_keys_are_config_errors_naming_the_key(keys, message, registry):
    table = {"plugin": "mqtt", "host": "h", "topics": "a/#", "client_id": "c", **keys}
    with pytest.raises(ConfigError) as error:
        parse_config({"sensor": table}).sensor.build()
    assert message in str(error.value)
    assert "hunter2" not in str(error.value)


def test_collect_stores_readings_and_rejects_with_their_topic(broker, tmp_path, client_id):
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f"""
[sensor]
plugin = "mqtt"
host = "{broker.host}"
port = {broker.port}
topics = "site/#"
client_id = "{client_id}"

[store]
plugin = "sqlite"
path = "{tmp_path / "edge.db"}"
"""
    )
    log = tmp_path / "collect.log"
    proc = collector(config, log)
    try:
        deadline = time.monotonic() + 30
        while "subscribed to" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        from cosmobac_mqtt.localbroker import publish

        publish(
            broker.host,
            broker.port,
            [
                ("site/a", {"sensor_id": "a", "timestamp": T0, "temperature": 1.0}),
                ("site/b", b"{oops"),
                ("site/c", [{"sensor_id": "c", "timestamp": "2026-01-01T00:00:00"}]),
                ("site/d", {"sensor_id": "d", "timestamp": T0, "humidity": "wet"}),
            ],
        )
        time.sleep(1.5)  # more than one flush_interval
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    with SQLiteStore(tmp_path / "edge.db") as store:
        rows = store.scan()
        assert rows["sensor_id"].tolist() == ["a"]
        rejects = store.input_rejects()
    assert [(r.sensor, r.origin) for r in rejects] == [
        ("mqtt", "topic site/b"),
        ("mqtt", "topic site/c"),
        ("mqtt", "topic site/d"),
    ]
    assert rejects[0].raw == "{oops"
    assert "has no time zone" in rejects[1].reason
    assert "humidity must be a number" in rejects[2].reason


def test_a_pipeline_collects_from_the_sensor_in_process(broker, tmp_path, client_id):
    """The loop the collector runs, in process: Pipeline.collect with a duration."""
    from cosmobac.config import RunConfig
    from cosmobac_mqtt import mqtt
    from cosmobac_mqtt.localbroker import publish

    sensor = mqtt(host=broker.host, port=broker.port, topics="p/#", client_id=client_id)
    store = SQLiteStore(tmp_path / "edge.db")
    pipeline = Pipeline(
        sensor=sensor, store=store, lanes=[], run=RunConfig(flush_interval=0.1, batch_size=100)
    )

    def later() -> None:
        time.sleep(0.7)
        publish(broker.host, broker.port,
                [("p/x", {"sensor_id": "x", "timestamp": T0 + i}) for i in range(250)])  # fmt: skip

    import threading

    thread = threading.Thread(target=later)
    thread.start()
    report = pipeline.collect(duration=3.0)
    thread.join()
    assert report.rows_added == 250
    assert len(store.scan()) == 250
    sensor.close()
    store.close()
