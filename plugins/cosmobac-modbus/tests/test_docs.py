"""The pipeline files shown in the docs are valid: their sensor builds as the text says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from cosmobac.config import parse_config
from cosmobac.plugins import Plugins

DOCS = Path(__file__).resolve().parents[3] / "docs"


def toml_blocks(page: Path) -> list[dict]:
    return [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", page.read_text(), re.S)]


def build_sensor(table: dict):
    table = {k: v for k, v in table.items() if k not in ("sinks", "store")}  # other plugins
    return parse_config(table, source="docs").sensor.build()


@pytest.mark.skipif(not DOCS.is_dir(), reason="docs are in the repository, not the package")
def test_the_how_to_pipeline_polls_two_devices():
    (pipeline,) = toml_blocks(DOCS / "how-to" / "modbus-input.md")
    assert pipeline["sinks"][0]["plugin"] == "cosmos"
    sensor = build_sensor(pipeline)
    meter, flow = sensor.devices
    assert (meter.sensor_id, meter.port, meter.unit, meter.fields) == (
        "hall-meter",
        502,
        1,
        {"city": "Porto", "model": "TH-200"},
    )
    assert (flow.unit, flow.timeout, flow.fields) == (7, 2.0, {"city": "Porto", "line": "A"})
    assert [(r.kind, r.address, r.count) for r in flow.requests] == [
        ("input", 10, 4),
        ("coil", 0, 1),
    ]
    assert {r.word_order for r in flow.registers} == {"little"}
    sensor.close()


@pytest.mark.skipif(not DOCS.is_dir(), reason="docs are in the repository, not the package")
def test_the_reference_example_builds_and_names_every_key():
    page = DOCS / "reference" / "config-modbus.md"
    (pipeline,) = toml_blocks(page)
    sensor = build_sensor(pipeline)
    assert [d.sensor_id for d in sensor.devices] == ["boiler-1", "boiler-2"]
    assert sensor.devices[1].registers[0].word_order == "little"
    sensor.close()
    (component,) = [c for c in Plugins().components() if c.name == "modbus"]
    text = page.read_text()
    for key in component.accepted_keys() or []:
        assert f"`{key}`" in text
