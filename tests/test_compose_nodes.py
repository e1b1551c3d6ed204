"""``cosmobac compose --node``: nodes whose sensor is not the simulated fleet (here a CSV
sensor), each told apart by ``COSMOBAC_NODE``; the file checked by Debian's ``docker-compose`` and
the services' commands run as processes on this machine, each node on its own store."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cosmobac.cli import cli
from cosmobac.compose import (
    CITY_VAR,
    CONFIG_PATH,
    DATA_DIR,
    NODE_VAR,
    ComposeError,
    compose_plan,
    write_compose,
)
from test_compose import compose_config, delivered, pipeline, start

pytestmark = pytest.mark.needs_plugins  # the sqlite store

CSV = """\
[sensor]
plugin = "csv"
path = "${COSMOBAC_DATA}/in/${COSMOBAC_NODE}.csv"

[store]
plugin = "sqlite"
path = "${COSMOBAC_DATA}/edge.db"

[[sinks]]
plugin = "jsonl"
name = "archive"
path = "${COSMOBAC_DATA}/documents.jsonl"

[monitoring]
health_file = "${COSMOBAC_DATA}/health.json"
"""


def refusal(tmp_path: Path, text: str, **options) -> str:
    with pytest.raises(ComposeError) as info:
        compose_plan(pipeline(tmp_path, text), **options)
    return str(info.value)


def test_each_named_node_is_a_collector_and_a_forwarder_sharing_a_volume(tmp_path):
    plan = compose_plan(pipeline(tmp_path, CSV), node_names=["plant-7", "depot_2"])
    assert plan.names() == ("plant-7", "depot_2") and plan.cities == ()
    assert [s.name for s in plan.services] == [
        "plant-7-collector",
        "plant-7-forwarder",
        "depot_2-collector",
        "depot_2-forwarder",
    ]
    collector, forwarder = plan.nodes()["depot_2"]
    assert collector.argv == ("cosmobac", "collect", CONFIG_PATH)
    assert forwarder.argv == ("cosmobac", "forward", "--follow", CONFIG_PATH)
    assert collector.volume == forwarder.volume == "depot_2-data"
    assert collector.city is None
    assert (
        collector.environment
        == forwarder.environment
        == {NODE_VAR: "depot_2", "COSMOBAC_DATA": DATA_DIR}
    )
    services = plan.document["services"]
    for name in ("plant-7", "depot_2"):
        for role in ("collector", "forwarder"):
            entry = services[f"{name}-{role}"]
            assert entry["environment"][NODE_VAR] == name
            assert entry["labels"] == {"io.cosmobac.node": name, "io.cosmobac.role": role}
            assert entry["volumes"][0] == {
                "type": "volume",
                "source": f"{name}-data",
                "target": DATA_DIR,
            }
            assert entry["restart"] == "unless-stopped" and entry["stop_signal"] == "SIGTERM"
    assert services["plant-7-forwarder"]["stop_grace_period"] == "1m"
    assert services["plant-7-forwarder"]["healthcheck"]["test"][1:4] == [
        "cosmobac",
        "status",
        "--check",
    ]
    assert set(plan.document["volumes"]) == {"plant-7-data", "depot_2-data"}
    assert plan.env_file is None and plan.required == ()  # COSMOBAC_NODE is set by the file


def test_host_commands_of_a_named_node(tmp_path):
    plan = compose_plan(pipeline(tmp_path, CSV), node_names=["a1"])
    host = plan.service("a1-collector").on_host(tmp_path / "p.toml", tmp_path / "data")
    assert host.env == {NODE_VAR: "a1", "COSMOBAC_DATA": str(tmp_path / "data")}


def test_refuses_a_file_that_does_not_read_the_node_name(tmp_path):
    message = refusal(
        tmp_path, CSV.replace("${COSMOBAC_NODE}.csv", "readings.csv"), node_names=["a", "b"]
    )
    assert "every node would collect the same" in message
    assert f'path = "${{COSMOBAC_DATA}}/in/${{{NODE_VAR}}}.csv"' in message


def test_the_node_name_may_be_read_anywhere(tmp_path):
    text = CSV.replace("${COSMOBAC_NODE}.csv", "readings.csv").replace(
        'name = "archive"', 'name = "archive-${COSMOBAC_NODE}"'
    )
    plan = compose_plan(pipeline(tmp_path, text), node_names=["a"])
    assert [s.name for s in plan.services] == ["a-collector", "a-forwarder"]


SIMULATED = """\
[sensor]
plugin = "simulated"
cities = ["${COSMOBAC_CITY}"]
sensors_per_city = "${COSMOBAC_SENSORS_PER_CITY}"

[store]
plugin = "sqlite"
path = "${COSMOBAC_DATA}/edge.db"

[monitoring]
health_file = "${COSMOBAC_DATA}/health.json"
"""


@pytest.mark.parametrize(
    ("text", "options", "shown"),
    [
        (SIMULATED, {"node_names": ["a"]}, "give --cities N or --city NAME instead of --node"),
        (CSV, {"cities": 2, "sensors_per_city": 1}, "give --node NAME (repeatable)"),
        (CSV, {"city_names": ["Tokyo"], "sensors_per_city": 1}, "give --node NAME"),
        (CSV, {"node_names": ["a"], "cities": 2}, "not both"),
        (CSV, {"node_names": ["a"], "city_names": ["Tokyo"]}, "not both"),
        (CSV, {"node_names": ["a"], "sensors_per_city": 2}, "leave --sensors-per-city out"),
        (CSV, {}, "or --node NAME for any other sensor"),
        (SIMULATED, {"cities": 1}, "give --sensors-per-city M"),
        (CSV, {"node_names": ["a", "b", "a"]}, "node 'a' is given twice"),
        (CSV, {"node_names": [""]}, "a node name is empty"),
        (CSV, {"node_names": ["Plant 7"]}, "e.g. 'plant-7'"),
        (CSV, {"node_names": ["a/b"]}, "cannot name a service and a volume"),
        (CSV, {"node_names": ["-a"]}, "cannot name a service and a volume"),
        (CSV, {"node_names": ["a$b"]}, "cannot name a service and a volume"),
    ],
)
def test_refuses_option_mix_ups_and_bad_names(tmp_path, text, options, shown):
    assert shown in refusal(tmp_path, text, **options)


def test_the_command_takes_node_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pipeline(tmp_path, CSV)
    result = CliRunner().invoke(cli, ["compose", "pipeline.toml", "--node", "n1", "--node", "n2"])
    assert result.exit_code == 0, result.output
    assert "wrote docker-compose.yml: 2 nodes (n1, n2), 4 services" in result.output
    text = (tmp_path / "docker-compose.yml").read_text()
    assert text.startswith("# Generated by cosmobac compose from pipeline.toml: 2 nodes,")
    assert yaml.safe_load(text)["services"]["n2-forwarder"]["environment"][NODE_VAR] == "n2"


def test_docker_compose_accepts_the_file(tmp_path):
    out = tmp_path / "docker-compose.yml"
    write_compose(pipeline(tmp_path, CSV), out, node_names=["plant-7", "depot_2"])
    seen = compose_config(out)
    assert set(seen["services"]) == {
        f"{n}-{r}" for n in ("plant-7", "depot_2") for r in ("collector", "forwarder")
    }
    forwarder = seen["services"]["depot_2-forwarder"]
    assert forwarder["environment"][NODE_VAR] == "depot_2"
    assert CITY_VAR not in forwarder["environment"]
    assert "io.cosmobac.city" not in forwarder["labels"]
    assert set(seen["volumes"]) == {"plant-7-data", "depot_2-data"}


def test_the_services_commands_run_each_node_on_its_own_csv(tmp_path):
    config = pipeline(tmp_path, CSV)
    plan = compose_plan(config, node_names=["north", "south"])
    for number, (node, (collector, forwarder)) in enumerate(plan.nodes().items()):
        data = tmp_path / node
        (data / "in").mkdir(parents=True)
        rows = 5 + number  # a different count per node
        lines = ["timestamp,sensor_id,temperature"] + [
            f"2026-03-01T12:0{i}:00Z,{node}-s{i % 2},{20 + i}.5" for i in range(rows)
        ]
        (data / "in" / f"{node}.csv").write_text("\n".join(lines) + "\n")
        (data / "in" / "other.csv").write_text(lines[0] + "\n2026-03-01T12:00:00Z,x,1\n")
        fwd = forwarder.on_host(config, data)
        following = start(fwd.argv, fwd.env, fwd.cwd)
        col = collector.on_host(config, data)
        collecting = start(col.argv, col.env, col.cwd)
        _, err = collecting.communicate(timeout=120)
        assert collecting.returncode == 0, err
        con = sqlite3.connect(f"file:{data / 'edge.db'}?mode=ro", uri=True)
        try:
            stored = con.execute("SELECT sensor_id FROM readings").fetchall()
        finally:
            con.close()
        assert len(stored) == rows  # its own CSV's rows only
        assert {r[0] for r in stored} == {f"{node}-s0", f"{node}-s1"}
        deadline = time.monotonic() + 120
        while len(delivered(data)) < rows and time.monotonic() < deadline:
            assert following.poll() is None, following.communicate()[1]
            time.sleep(0.1)
        following.send_signal(signal.SIGTERM)
        _, err = following.communicate(timeout=60)
        assert following.returncode == 0, err
        documents = delivered(data)
        assert len(documents) == rows
        assert {d["sensor_id"] for d in documents.values()} == {f"{node}-s0", f"{node}-s1"}
        assert (data / "health.json").exists()
