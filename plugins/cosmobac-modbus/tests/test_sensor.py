"""The sensor against real pymodbus TCP servers on loopback: values, grouping, offline devices,
exception responses and undecodable values."""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable

from conftest import REGISTERS, Simulator, free_port, standard, words
from cosmobac.interfaces import (
    Closeable,
    InputReject,
    LiveSensor,
    RejectingSensor,
    SourceReportingSensor,
)
from cosmobac_modbus import ModbusSensor


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for ``condition`` (a bound on a wait, not a measured time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def read_rows(sensor: ModbusSensor, rows: int) -> list[dict]:
    """Read until ``rows`` readings have come."""
    got: list[dict] = []
    while len(got) < rows:
        assert sensor.wait(20, 1), "no reading came"
        got.extend(sensor.read(0).rows())
    return got


def test_it_is_a_live_rejecting_closeable_sensor(make_sensor):
    sensor = make_sensor(
        devices=[{"host": "127.0.0.1", "port": free_port(), "sensor_id": "s"}], registers=REGISTERS
    )
    assert isinstance(sensor, LiveSensor)
    assert isinstance(sensor, RejectingSensor)
    assert isinstance(sensor, Closeable)
    assert isinstance(sensor, SourceReportingSensor)
    assert sensor.finished is False


def test_readings_carry_the_scaled_values_of_each_device(simulators, make_sensor):
    sensor = make_sensor(
        devices=[
            {**sim.address, "sensor_id": f"s-{i}", "city": "Lisbon", "fields": {"line": "A"}}
            for i, sim in enumerate(simulators)
        ],
        registers=REGISTERS,
    )
    rows = read_rows(sensor, 9)
    by_sensor: dict[str, list[dict]] = {}
    for row in rows:
        by_sensor.setdefault(row["sensor_id"], []).append(row)
    assert set(by_sensor) == {"s-0", "s-1", "s-2"}
    for i in range(3):
        row = by_sensor[f"s-{i}"][0]
        assert row["temperature"] == 20.5 + i
        assert row["humidity"] == 45.5
        assert row["offset_c"] == 95.0
        assert row["pressure"] == 1013.25
        assert row["pump_on"] == 1.0
        assert (row["city"], row["line"]) == ("Lisbon", "A")
        stamps = [r["timestamp"] for r in by_sensor[f"s-{i}"]]
        assert stamps == sorted(set(stamps))  # one reading per poll, strictly increasing
        assert abs(stamps[0] - time.time() * 1000) < 60_000  # the wall clock, epoch ms
    assert sensor.take_rejects() == []
    assert all(s.up and s.failures == 0 for s in sensor.sources())


def test_wait_says_whether_readings_wait_and_read_empties_the_buffer(simulators, make_sensor):
    sensor = make_sensor(devices=[{**simulators[0].address, "sensor_id": "s"}], registers=REGISTERS)
    assert sensor.wait(20, 3)
    assert len(sensor.read(0)) >= 3
    assert not sensor.wait(0, 10**6)
    sensor.close()
    sensor.read(0)
    assert len(sensor.read(0)) == 0  # closed: nothing more is polled
    assert not sensor.wait(0, 1)


def test_adjacent_registers_are_read_in_one_request_each(make_sensor):
    sim = Simulator(
        holding={0: [*words(1.5, "float32"), *words(2.5, "float32"), 7, 8]},
        input={100: [1, 2, 3]},
    ).start()
    try:
        sensor = make_sensor(
            devices=[{**sim.address, "sensor_id": "s"}],
            registers=[
                {"address": 0, "type": "float32", "metric": "a"},
                {"address": 2, "type": "float32", "metric": "b"},
                {"address": 4, "metric": "c"},
                {"address": 5, "metric": "d"},
                {"address": 100, "kind": "input", "metric": "e"},
                {"address": 101, "kind": "input", "type": "int16", "metric": "f"},
                {"address": 102, "kind": "input", "metric": "g"},
            ],
        )
        rows = read_rows(sensor, 3)
        sensor.close()
        assert rows[0] | {"timestamp": 0} == {
            "sensor_id": "s",
            "timestamp": 0,
            "a": 1.5,
            "b": 2.5,
            "c": 7.0,
            "d": 8.0,
            "e": 1.0,
            "f": 2.0,
            "g": 3.0,
        }
        polls = sensor.sources()[0].polls
        assert set(sim.requests) == {(3, 0, 6), (4, 100, 3)}  # two requests per poll
        assert 2 * polls <= len(sim.requests) <= 2 * polls + 2
    finally:
        sim.stop()


def test_an_offline_device_does_not_stop_the_others_and_comes_back(simulators, make_sensor, caplog):
    caplog.set_level(logging.INFO, logger="cosmobac.modbus")
    late = standard(30.0, port=free_port())  # not started: nothing listens on its port yet
    sensor = make_sensor(
        devices=[
            {**simulators[0].address, "sensor_id": "up"},
            {**late.address, "sensor_id": "late"},
        ],
        registers=REGISTERS,
    )
    sensor.start()
    until(lambda: sensor.sources()[1].failures >= 3)
    rows = read_rows(sensor, 5)
    assert {r["sensor_id"] for r in rows} == {"up"}
    up, down = sensor.sources()
    assert up.up and not down.up and down.readings == 0
    assert "cannot connect" in down.last_error

    late.start()
    try:
        late_rows: list[dict] = []

        def late_read() -> bool:
            late_rows.extend(r for r in sensor.read(0).rows() if r["sensor_id"] == "late")
            return bool(late_rows)

        until(late_read)
        assert late_rows[0]["temperature"] == 30.0
        assert sensor.sources()[1].up

        # its server stops mid-run and restarts: down once, back once
        late.stop()
        until(lambda: not sensor.sources()[1].up)
        late.start()
        until(lambda: sensor.sources()[1].up)
    finally:
        late.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "cosmobac.modbus"]
    offline = [m for m in messages if "device late" in m and "is offline" in m]
    back = [m for m in messages if "device late" in m and "is back" in m]
    assert len(offline) == 2 and len(back) == 2, messages
    assert "polls missed" in back[0]
    assert not [m for m in messages if "device up" in m]
    assert sensor.sources()[0].failures == 0


def test_an_illegal_address_is_one_reject_with_a_fix_and_the_rest_is_read(make_sensor, caplog):
    sim = Simulator(holding={0: [10, 20]}).start()  # address 2 does not exist
    try:
        sensor = make_sensor(
            devices=[{**sim.address, "sensor_id": "s"}],
            registers=[
                {"address": 0, "metric": "a"},
                {"address": 1, "metric": "b"},
                {"address": 2, "metric": "c"},
            ],
        )
        rows = read_rows(sensor, 4)
        assert all((r["a"], r["b"]) == (10.0, 20.0) and math.isnan(r["c"]) for r in rows)
        rejects = sensor.take_rejects()
        assert len(rejects) == 1  # once, not once per poll
        (reject,) = rejects
        assert isinstance(reject, InputReject)
        assert reject.origin == f"device s (127.0.0.1:{sim.port} unit 1) register 2"
        assert "Modbus exception 2 (illegal data address)" in reject.reason
        assert "check its address (0-based" in reject.reason
        assert sensor.sources()[0].up
        # the group that failed is read register by register from then on
        assert (3, 0, 3) in sim.requests and (3, 0, 1) in sim.requests and (3, 2, 1) in sim.requests
        assert sum(1 for q in sim.requests if q == (3, 0, 3)) == 1
        assert any(
            "register 2" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records
        )
    finally:
        sim.stop()


def test_a_nan_float_is_a_reject_and_a_missing_value(make_sensor):
    nan = [0x7FC0, 0x0000]
    sim = Simulator(holding={0: [*nan, *words(1.25, "float32")]}).start()
    try:
        sensor = make_sensor(
            devices=[{**sim.address, "sensor_id": "s"}],
            registers=[
                {"address": 0, "type": "float32", "metric": "temperature"},
                {"address": 2, "type": "float32", "metric": "voltage"},
            ],
        )
        rows = read_rows(sensor, 2)
        assert all(math.isnan(r["temperature"]) and r["voltage"] == 1.25 for r in rows)
        rejects = sensor.take_rejects()
        assert len(rejects) >= 2  # one per poll: the value may change, each is data
        assert rejects[0].origin.endswith("register 0")
        assert rejects[0].reason == "temperature: float32 value is nan, not a number"
        assert rejects[0].raw == "0x7fc0 0x0000"
    finally:
        sim.stop()


def test_a_device_with_no_value_read_gives_no_reading(make_sensor):
    sim = Simulator(holding={0: [1]}).start()
    try:
        sensor = make_sensor(
            devices=[{**sim.address, "sensor_id": "s"}], registers=[{"address": 9, "metric": "x"}]
        )
        sensor.start()
        until(lambda: sensor.sources()[0].polls >= 3)
        assert len(sensor.read(0)) == 0
        assert len(sensor.take_rejects()) == 1
    finally:
        sim.stop()


def test_a_unit_the_server_does_not_have_is_reported(make_sensor):
    sim = standard(20.0, unit=3).start()
    try:
        sensor = make_sensor(
            devices=[{**sim.address, "unit": 4, "sensor_id": "s"}], registers=REGISTERS
        )
        sensor.start()
        until(lambda: sensor.sources()[0].polls >= 3)
        assert sensor.sources()[0].readings == 0
        rejects = sensor.take_rejects()
        # pymodbus's server answers "server device failure" for a unit it does not have
        assert sorted(r.reason.split(":")[0] for r in rejects) == sorted(
            r["metric"] for r in REGISTERS
        )
        assert all("Modbus exception 4 (server device failure)" in r.reason for r in rejects)
        assert all(
            r.origin.startswith(f"device s (127.0.0.1:{sim.port} unit 4) register ")
            for r in rejects
        )
    finally:
        sim.stop()


def test_close_stops_polling_and_closes_connections(simulators, make_sensor):
    sensor = make_sensor(devices=[{**simulators[0].address, "sensor_id": "s"}], registers=REGISTERS)
    assert sensor.wait(20, 1)
    sensor.close()
    sensor.close()
    assert not sensor._thread.is_alive()
    polls = sensor.sources()[0].polls
    count = len(simulators[0].requests)
    sensor.wait(0.2, 10**6)
    assert sensor.sources()[0].polls == polls and len(simulators[0].requests) == count


def test_a_device_that_never_answers_delays_no_other(simulators, make_sensor):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        sensor = make_sensor(
            devices=[
                {"host": "127.0.0.1", "port": port, "sensor_id": "silent", "timeout": "30s"},
                {**simulators[0].address, "sensor_id": "up"},
            ],
            registers=REGISTERS,
        )
        rows = read_rows(sensor, 5)
        assert {r["sensor_id"] for r in rows} == {"up"}
        assert sensor.sources()[0].polls == 0  # still waiting on its first answer
        sensor.close()  # does not wait out the 30 s


def test_a_timeout_takes_the_device_offline(make_sensor):
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        sensor = make_sensor(
            devices=[
                {"host": "127.0.0.1", "port": port, "sensor_id": "silent", "timeout": "100ms"}
            ],
            registers=REGISTERS,
        )
        sensor.start()
        until(lambda: sensor.sources()[0].failures >= 2)
        assert sensor.sources()[0].last_error == "no answer within 0.1s"
        assert len(sensor.read(0)) == 0
