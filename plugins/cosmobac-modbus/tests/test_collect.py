"""``cosmobac collect`` as a real process polling real pymodbus servers into a SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import Simulator, free_port, standard
from cosmobac_sqlite import SQLiteStore

pytestmark = pytest.mark.slow


def pipeline_file(tmp_path: Path, sims: list[Simulator], *, run: str = "") -> Path:
    devices = "\n".join(
        f"""
[[sensor.devices]]
host = "127.0.0.1"
port = {sim.port}
unit = {sim.unit}
sensor_id = "dev-{i}"
city = "Porto"
"""
        for i, sim in enumerate(sims)
    )
    text = f"""
[sensor]
plugin = "modbus"
interval = "50ms"
timeout = "500ms"
{devices}
[[sensor.registers]]
address = 0
type = "float32"
metric = "temperature"

[[sensor.registers]]
address = 2
scale = 0.1
metric = "humidity"

[[sensor.registers]]
address = 3
type = "int16"
metric = "nowhere"

[[sensor.registers]]
address = 40
metric = "missing_register"

[store]
plugin = "sqlite"
path = "{tmp_path / "edge.db"}"

[[sinks]]
plugin = "jsonl"
path = "{tmp_path / "out.jsonl"}"

[run]
flush_interval = "200ms"
{run}
"""
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def cosmobac(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cosmobac", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stored(tmp_path: Path) -> tuple[list[dict], list]:
    with SQLiteStore(tmp_path / "edge.db", create=False) as store:
        return [dict(r) for r in store.scan().rows()], store.input_rejects(sensor="modbus")


def source_metrics(port: int) -> dict[tuple[str, str], float]:
    """The collector's ``cosmobac_source_*`` samples of the ``modbus`` sensor, by (measure,
    device): measure is up, polls, failures or readings."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("cosmobac_source_") and not sample.name.endswith("_created"):
                assert sample.labels["sensor"] == "modbus"
                measure = sample.name.removeprefix("cosmobac_source_").removesuffix("_total")
                found[measure, sample.labels["source"]] = sample.value
    return found


def test_collect_for_a_duration_stores_the_polled_readings(tmp_path, simulators):
    config = pipeline_file(tmp_path, simulators[:2])
    process = cosmobac("collect", str(config), "--duration", "3s")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    rows, rejects = stored(tmp_path)
    assert f"collected {len(rows)} new rows" in out
    by_device = {r["sensor_id"]: r for r in rows}
    assert set(by_device) == {"dev-0", "dev-1"}
    assert by_device["dev-0"]["temperature"] == 20.5 and by_device["dev-1"]["temperature"] == 21.5
    assert by_device["dev-0"]["humidity"] == 45.5 and by_device["dev-0"]["nowhere"] == -5.0
    assert by_device["dev-0"]["city"] == "Porto"
    assert sum(r["sensor_id"] == "dev-0" for r in rows) >= 5  # polled all along, not once
    # the register the devices do not have: one reject per device, kept in the store
    assert sorted(r.origin for r in rejects) == [
        f"device dev-{i} (127.0.0.1:{sim.port} unit 1) register 40"
        for i, sim in enumerate(simulators[:2])
    ]
    assert all("illegal data address" in r.reason for r in rejects)


def test_sigterm_ends_collect_cleanly_with_an_offline_device(tmp_path, simulators):
    offline = standard(25.0)  # never started: nothing listens on its port
    config = pipeline_file(tmp_path, [simulators[0], offline])
    port = free_port()
    process = cosmobac("-v", "collect", str(config), "--metrics-port", str(port))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "edge.db").exists() or not stored(tmp_path)[0]:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "nothing was stored"
            time.sleep(0.1)
        # each device's health is in the collector's metrics (cosmobac_source_*)
        metrics = source_metrics(port)
        while metrics.get(("failures", "dev-1"), 0) < 2:
            assert time.monotonic() < deadline, f"no failed polls of dev-1 in {metrics}"
            time.sleep(0.1)
            metrics = source_metrics(port)
        assert metrics[("up", "dev-0")] == 1 and metrics[("up", "dev-1")] == 0
        assert metrics[("readings", "dev-0")] >= 1 and metrics[("readings", "dev-1")] == 0
        assert metrics[("failures", "dev-0")] == 0
        assert metrics[("polls", "dev-1")] >= metrics[("failures", "dev-1")]
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "SIGTERM" in err
    assert err.count("device dev-1") == 1 and "is offline" in err  # logged once, not per retry
    rows, _ = stored(tmp_path)
    assert {r["sensor_id"] for r in rows} == {"dev-0"}
    assert f"collected {len(rows)} new rows" in out
