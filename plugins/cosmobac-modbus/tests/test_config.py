"""The sensor's settings: errors that name the key and say how to fix it; request grouping."""

from __future__ import annotations

import re

import pytest

from cosmobac import ConfigError
from cosmobac.config import parse_config
from cosmobac_modbus import ModbusSensor, group_requests, parse_devices
from cosmobac_modbus.config import MAX_COUNT, parse_registers

DEVICE = {"host": "127.0.0.1", "sensor_id": "s-1"}
TEMPERATURE = {"address": 0, "type": "float32", "metric": "temperature"}


def devices(*tables, **shared):
    return parse_devices(list(tables), **shared)


@pytest.mark.parametrize(
    ("tables", "shared", "message"),
    [
        (
            [
                DEVICE,
                {**DEVICE, "sensor_id": "s-2", "registers": [{**TEMPERATURE, "type": "float16"}]},
            ],
            [TEMPERATURE],
            "devices[1].registers[0].type must be one of 'int16', 'uint16', 'int32', 'uint32', "
            "'float32', 'float64'; got 'float16'; did you mean 'float64' or 'float32'?",
        ),
        (
            [DEVICE],
            [TEMPERATURE, {"address": 1, "metric": "humidity"}],
            "registers[1]: holding register 1 overlaps registers[0] (float32 at 0 spans 0-1); "
            "fix the address or the type of one of them",
        ),
        (
            [DEVICE],
            [{"address": 65534, "type": "float64", "metric": "x"}],
            "registers[0]: a float64 at address 65534 spans 4 registers, past the last address "
            "65535; lower registers[0].address",
        ),
        ([{"host": "127.0.0.1"}], [TEMPERATURE], "devices[0].sensor_id is required"),
        (
            [{**DEVICE, "port": 70000}],
            [TEMPERATURE],
            "devices[0].port must be between 1 and 65535, got 70000",
        ),
        (
            [{**DEVICE, "port": "five"}],
            [TEMPERATURE],
            "devices[0].port must be an integer, got 'five'",
        ),
        (
            [DEVICE, DEVICE],
            [TEMPERATURE],
            "devices[1].sensor_id: 's-1' is already the sensor_id of devices[0]",
        ),
        ([{**DEVICE, "adress": 1}], [TEMPERATURE], "devices[0]: unknown key 'adress'"),
        ([DEVICE], None, "devices[0] has no registers: give it [[sensor.devices.registers]]"),
        ([DEVICE], [{"metric": "x"}], "registers[0].address is required"),
        ([DEVICE], [{**TEMPERATURE, "kind": "holdings"}], "registers[0].kind must be one of"),
        (
            [DEVICE],
            [{**TEMPERATURE, "word_order": "middle"}],
            "registers[0].word_order must be one of 'big', 'little'",
        ),
        (
            [DEVICE],
            [{**TEMPERATURE, "metric": "sensor_id"}],
            "registers[0].metric: 'sensor_id' is set by the sensor",
        ),
        (
            [DEVICE],
            [{**TEMPERATURE, "metric": "Flow Rate"}],
            "registers[0].metric must be a column name",
        ),
        (
            [DEVICE],
            [TEMPERATURE, {**TEMPERATURE, "address": 10}],
            "registers[1].metric: 'temperature' is already read by registers[0]",
        ),
        (
            [DEVICE],
            [{"address": 0, "kind": "coil", "type": "int16", "metric": "on"}],
            "registers[0].type must be one of 'bool'",
        ),
        (
            [{**DEVICE, "timeout": "soon"}],
            [TEMPERATURE],
            "devices[0].timeout: 'soon' is not a duration",
        ),
        ([], [TEMPERATURE], "devices must list at least one device"),
    ],
)
def test_errors_name_the_key_and_the_fix(tables, shared, message):
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        devices(*tables, registers=shared)


def test_a_pipeline_file_error_reaches_the_user_as_a_config_error():
    table = {
        "plugin": "modbus",
        "devices": [
            DEVICE,
            {**DEVICE, "sensor_id": "s-2", "registers": [{**TEMPERATURE, "type": "real"}]},
        ],
        "registers": [TEMPERATURE],
    }
    config = parse_config({"sensor": table}, source="pipeline.toml")
    with pytest.raises(ConfigError, match=re.escape("devices[1].registers[0].type must be one of")):
        config.sensor.build()
    with pytest.raises(ConfigError, match="unknown key 'intervall'"):
        parse_config({"sensor": {"plugin": "modbus", "intervall": 1, "devices": [DEVICE]}})


def test_devices_take_defaults_and_their_own_settings():
    first, second = devices(
        {**DEVICE, "city": "Porto", "latitude": "41.15", "fields": {"line": "A", "floor": 2}},
        {
            "host": "10.0.0.2",
            "port": "1502",
            "unit": 7,
            "sensor_id": "s-2",
            "timeout": "250ms",
            "word_order": "little",
        },
        registers=[TEMPERATURE, {"address": 2, "metric": "humidity", "scale": "0.1"}],
        timeout=2.0,
    )
    assert (first.port, first.unit, first.timeout) == (502, 1, 2.0)
    assert first.fields == {"city": "Porto", "latitude": 41.15, "line": "A", "floor": 2}
    assert first.origin == "device s-1 (127.0.0.1:502 unit 1)"
    assert (second.port, second.unit, second.timeout) == (1502, 7, 0.25)
    assert [r.word_order for r in first.registers] == ["big", "big"]
    assert [r.word_order for r in second.registers] == ["little", "little"]
    assert first.registers[1].scale == 0.1 and first.registers[1].type == "uint16"
    assert len(first.requests) == 1 and first.requests[0].count == 3


def test_sensor_keys_are_checked_and_no_connection_is_opened():
    with pytest.raises(ValueError, match="interval must be at least"):
        ModbusSensor(devices=[DEVICE], registers=[TEMPERATURE], interval=0)
    with pytest.raises(ValueError, match="byte_order must be one of"):
        ModbusSensor(devices=[DEVICE], registers=[TEMPERATURE], byte_order="middle")
    sensor = ModbusSensor(devices=[{**DEVICE, "port": 1}], registers=[TEMPERATURE])
    assert sensor._thread is None  # built, not polling: checking a file opens nothing
    sensor.close()
    sensor.close()


def regs(*spans):
    """A register map from (kind, address, type) spans."""
    return parse_registers(
        "registers",
        [
            {"kind": k, "address": a, "type": t, "metric": f"m{i}"}
            for i, (k, a, t) in enumerate(spans)
        ],
    )


def test_contiguous_registers_share_a_request():
    requests = group_requests(
        regs(
            ("holding", 10, "float32"),
            ("holding", 0, "uint16"),
            ("holding", 1, "int32"),
            ("holding", 3, "float64"),
            ("input", 7, "uint16"),
            ("input", 8, "uint16"),
            ("coil", 0, "bool"),
            ("coil", 1, "bool"),
            ("coil", 5, "bool"),
        )
    )
    spans = [(r.kind, r.address, r.count, [reg.metric for reg in r.registers]) for r in requests]
    assert spans == [
        ("holding", 0, 7, ["m1", "m2", "m3"]),
        ("holding", 10, 2, ["m0"]),  # a gap: never read an address the map does not name
        ("input", 7, 2, ["m4", "m5"]),
        ("coil", 0, 2, ["m6", "m7"]),
        ("coil", 5, 1, ["m8"]),
    ]


def test_a_request_holds_at_most_125_registers_and_never_splits_a_value():
    registers = regs(*[("holding", 2 * i, "float32") for i in range(100)])  # 200 contiguous
    requests = group_requests(registers)
    assert [(r.address, r.count) for r in requests] == [(0, 124), (124, 76)]
    assert sum(len(r.registers) for r in requests) == 100
    bits = group_requests(regs(*[("coil", i, "bool") for i in range(2500)]))
    assert [(r.address, r.count) for r in bits] == [(0, MAX_COUNT["coil"]), (2000, 500)]
