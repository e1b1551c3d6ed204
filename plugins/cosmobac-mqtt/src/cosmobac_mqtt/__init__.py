"""cosmobac-mqtt: the ``mqtt`` sensor, JSON messages from an MQTT broker, acknowledged to the
broker only once the collector has stored them.

Use it in a pipeline file (``[sensor] plugin = "mqtt"``, see docs/reference/config-mqtt.md) or
directly::

    from cosmobac_mqtt import mqtt

    with mqtt(host="broker", topics="sensors/#", client_id="edge-1") as sensor:
        if sensor.wait(1.0, 1000):
            batch = sensor.read(0)
            store.append_input(batch, sensor="mqtt", rejects=sensor.take_rejects())
            sensor.commit()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cosmobac.hookspecs import Register, hookimpl

from .config import Settings, settings_from_keys
from .payload import PayloadMapping
from .sensor import MqttSensor

__all__ = ["MqttSensor", "PayloadMapping", "Settings", "mqtt", "register_sensors"]


def mqtt(
    *,
    host: str,
    topics: str | list[str],
    client_id: str,
    port: int | str | None = None,
    qos: int | str = 1,
    tls: bool | str = False,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    insecure: bool | str = False,
    username: str | None = None,
    password: str | None = None,
    keepalive: float | str = 60,
    protocol: str = "5",
    session_expiry: float | str = "7d",
    max_buffered: int | str = 20_000,
    reconnect_max: float | str = 30,
    fields: Mapping[str, str] | None = None,
    sensor_id_from_topic: bool | int | str = False,
    timestamp_unit: str = "ms",
    keep_extra: bool | str = False,
) -> MqttSensor:
    """Readings from JSON messages on MQTT topics (QoS 1, persistent session), acknowledged to
    the broker only once stored.

    See docs/reference/config-mqtt.md for the keys."""
    keys: dict[str, Any] = dict(locals())
    return MqttSensor(settings_from_keys(keys))


@hookimpl
def register_sensors(register: Register) -> None:
    register("mqtt", mqtt)
