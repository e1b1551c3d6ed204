"""cosmobac-modbus: a sensor polling Modbus TCP devices, registered as the sensor plugin ``modbus``.

Use it in a pipeline file (``[sensor] plugin = "modbus"`` with ``[[sensor.devices]]``; see
docs/reference/config-modbus.md) or directly::

    from cosmobac_modbus import ModbusSensor

    with ModbusSensor(
        devices=[{"host": "10.0.0.5", "unit": 1, "sensor_id": "boiler-1"}],
        registers=[{"address": 0, "type": "float32", "metric": "temperature"}],
        interval="1s",
    ) as sensor:
        sensor.wait(5.0, 1)
        batch = sensor.read(0)

pymodbus is imported when polling starts, not when this module is.
"""

from __future__ import annotations

from cosmobac.hookspecs import Register, hookimpl

from .config import Device, Request, group_requests, parse_devices
from .config import Register as RegisterSpec
from .decode import decode, encode
from .sensor import ModbusSensor

__all__ = [
    "Device",
    "ModbusSensor",
    "RegisterSpec",
    "Request",
    "decode",
    "encode",
    "group_requests",
    "parse_devices",
    "register_sensors",
]


@hookimpl
def register_sensors(register: Register) -> None:
    register("modbus", ModbusSensor)
