"""``cosmobac compose``: the compose file of a city fleet, checked by a real compose
implementation (Debian's ``docker-compose``), refusing what it cannot deploy safely, and its
services' commands run as processes on this machine. Also ``[monitoring] health_file``."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cosmobac import Pipeline, simulate
from cosmobac.cli import cli
from cosmobac.compose import (
    CITY_VAR,
    CONFIG_PATH,
    COSMOS_LAUNCHER,
    COSMOS_PROBE,
    COSMOS_SERVER_PACKAGE,
    COSMOS_SERVER_VERSION,
    DATA_DIR,
    SENSORS_VAR,
    ComposeError,
    compose_plan,
    to_yaml,
    write_compose,
)
from cosmobac.config import load_config
from cosmobac.monitoring import read_health
from cosmobac.monitoring.status import read_status
from cosmobac.testing import require_command

pytestmark = pytest.mark.needs_plugins  # the sqlite store

ROOT = Path(__file__).resolve().parent.parent

JSONL = """\
[sensor]
plugin = "simulated"
cities = ["${COSMOBAC_CITY}"]
sensors_per_city = "${COSMOBAC_SENSORS_PER_CITY}"
seed = 5
rate_hz = 1.0

[store]
plugin = "sqlite"
path = "${COSMOBAC_DATA}/edge.db"

[[sinks]]
plugin = "jsonl"
name = "archive"
path = "${COSMOBAC_DATA}/documents.jsonl"

[run]
speed = "max"
step = "5m"
interval = "50ms"

[monitoring]
health_file = "${COSMOBAC_DATA}/health.json"
"""

COSMOS = """\
[sensor]
plugin = "simulated"
cities = ["${COSMOBAC_CITY}"]
sensors_per_city = "${COSMOBAC_SENSORS_PER_CITY:-4}"

[store]
plugin = "sqlite"
path = "${COSMOBAC_DATA}/edge.db"

[[sinks]]
plugin = "cosmos"
name = "cosmos"
endpoint = "${COSMOS_ENDPOINT:-https://acct.documents.azure.com:443/}"
database = "telemetry"
container = "readings"
key = "${COSMOS_KEY}"
create_if_missing = true

[monitoring]
listen = "0.0.0.0:9464"
health_file = "health.json"
max_backlog_age = "${MAX_BACKLOG_AGE:-15m}"
"""


def pipeline(tmp_path: Path, text: str, name: str = "pipeline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str, **options) -> str:
    options = {"cities": 2, "sensors_per_city": 3, **options}
    with pytest.raises(ComposeError) as info:
        compose_plan(pipeline(tmp_path, text), **options)
    return str(info.value)


# -- the plan --------------------------------------------------------------------------------------
def test_each_city_node_is_a_collector_and_a_forwarder_sharing_a_volume(tmp_path):
    plan = compose_plan(pipeline(tmp_path, JSONL), cities=2, sensors_per_city=3)
    assert [c.name for c in plan.cities] == ["London", "New York"]
    assert [s.name for s in plan.services] == [
        "london-collector",
        "london-forwarder",
        "new-york-collector",
        "new-york-forwarder",
    ]
    collector, forwarder = plan.nodes()["new-york"]
    assert collector.argv == ("cosmobac", "collect", CONFIG_PATH)
    assert forwarder.argv == ("cosmobac", "forward", "--follow", CONFIG_PATH)
    assert collector.volume == forwarder.volume == "new-york-data"
    assert forwarder.environment == {
        CITY_VAR: "New York",
        SENSORS_VAR: "3",
        "COSMOBAC_DATA": DATA_DIR,
    }
    services = plan.document["services"]
    entry = services["new-york-forwarder"]
    assert entry["command"] == list(forwarder.argv[1:])  # the image's entrypoint is cosmobac
    assert entry["environment"] == dict(forwarder.environment)
    assert entry["restart"] == "unless-stopped"
    assert entry["stop_signal"] == "SIGTERM"
    assert entry["stop_grace_period"] == "1m"
    assert entry["working_dir"] == DATA_DIR
    volume, config = entry["volumes"]
    assert volume == {"type": "volume", "source": "new-york-data", "target": DATA_DIR}
    assert config["target"] == CONFIG_PATH and config["read_only"] is True
    assert entry["healthcheck"]["test"] == ["CMD", "cosmobac", "status", "--check", CONFIG_PATH]
    assert services["new-york-collector"]["healthcheck"]["test"][:3] == [
        "CMD",
        "cosmobac",
        "status",
    ]
    assert set(plan.document["volumes"]) == {"london-data", "new-york-data"}
    assert (
        "env_file" not in entry and plan.env_file is None
    )  # the file needs no variable of its own


def test_cities_by_name_and_the_local_server(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOS_KEY", "s3cr3t-value-never-in-the-file")
    plan = compose_plan(
        pipeline(tmp_path, COSMOS),
        city_names=["São Paulo", "tokyo"],
        sensors_per_city=2,
        local_cosmos=True,
        env_file="secrets.env",
    )
    assert [s.node for s in plan.services] == ["sao-paulo"] * 2 + ["tokyo"] * 2
    assert plan.required == ("COSMOS_KEY",) and plan.optional == ("MAX_BACKLOG_AGE",)
    services = plan.document["services"]
    assert services["cosmos"]["image"].startswith("node:20")
    assert f"{COSMOS_SERVER_PACKAGE}@{COSMOS_SERVER_VERSION}" in services["cosmos"]["command"][-1]
    forwarder = services["tokyo-forwarder"]
    assert forwarder["environment"]["COSMOS_ENDPOINT"] == "http://cosmos:8081/"
    assert forwarder["env_file"] == ["secrets.env"]
    assert forwarder["depends_on"] == {"cosmos": {"condition": "service_healthy"}}
    readyz = forwarder["healthcheck"]["test"]
    assert readyz[:3] == ["CMD", "python", "-c"] and "http://127.0.0.1:9464/readyz" in readyz[3]
    assert "/healthz" in services["tokyo-collector"]["healthcheck"]["test"][3]
    assert "s3cr3t-value-never-in-the-file" not in to_yaml(plan)


def test_the_local_server_is_the_version_the_cosmos_plugin_pins():
    server = pytest.importorskip("cosmobac_cosmos.emulator").SERVER_DIR
    pinned = json.loads((server / "package.json").read_text())["dependencies"]
    assert pinned == {COSMOS_SERVER_PACKAGE: COSMOS_SERVER_VERSION}


def test_a_dollar_sign_is_escaped_for_compose(tmp_path):
    text = JSONL.replace("seed = 5", 'seed = 5\nname = "sim"')
    plan = compose_plan(pipeline(tmp_path, text), cities=1, sensors_per_city=1, image="reg/$x")
    assert plan.document["services"]["london-collector"]["image"] == "reg/$$x"


def test_host_commands_replace_the_config_and_the_volume(tmp_path):
    plan = compose_plan(pipeline(tmp_path, JSONL), cities=1, sensors_per_city=1)
    host = plan.service("london-forwarder").on_host(tmp_path / "p.toml", tmp_path / "data")
    assert host.argv == ("cosmobac", "forward", "--follow", str(tmp_path / "p.toml"))
    assert host.env["COSMOBAC_DATA"] == str(tmp_path / "data")
    assert host.env[CITY_VAR] == "London"
    assert host.cwd == tmp_path / "data"


# -- refusals ---------------------------------------------------------------------------------------
def test_refuses_a_file_that_does_not_read_the_node_variables(tmp_path):
    text = JSONL.replace('["${COSMOBAC_CITY}"]', "2").replace('"${COSMOBAC_SENSORS_PER_CITY}"', "4")
    message = refusal(tmp_path, text)
    assert 'write cities = ["${COSMOBAC_CITY}"]' in message
    assert 'write sensors_per_city = "${COSMOBAC_SENSORS_PER_CITY}"' in message


def test_refuses_a_node_of_more_than_its_city(tmp_path):
    text = JSONL.replace('["${COSMOBAC_CITY}"]', '["${COSMOBAC_CITY}", "Paris"]')
    message = refusal(tmp_path, text)
    assert "each node collects its own city only" in message


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ('key = "abc123=="', 'key = "${COSMOS_KEY}"'),
        ('key = "${COSMOS_KEY:-abc123==}"', "holds a default value"),
    ],
)
def test_refuses_a_literal_secret(tmp_path, line, shown):
    text = COSMOS.replace('key = "${COSMOS_KEY}"', line)
    message = refusal(tmp_path, text)
    assert "[[sinks]] #1 key" in message and shown in message
    assert "COSMOS_KEY=... in .env" in message
    assert "abc123" not in message  # the secret itself is never shown


def test_a_credential_that_is_not_a_secret_is_accepted(tmp_path):
    text = COSMOS.replace('key = "${COSMOS_KEY}"', 'credential = "default"')
    plan = compose_plan(pipeline(tmp_path, text), cities=1, sensors_per_city=1)
    assert plan.required == ()


def test_refuses_a_literal_alert_webhook(tmp_path):
    text = JSONL + '\n[[alerts]]\nurl = "https://hooks.slack.com/services/T0/B0/XYZ"\n'
    message = refusal(tmp_path, text)
    assert "[[alerts]] #1 url holds a literal value" in message
    assert "XYZ" not in message


def test_refuses_state_outside_the_volume(tmp_path):
    text = (
        JSONL.replace('"${COSMOBAC_DATA}/edge.db"', '"/var/lib/edge.db"')
        .replace('health_file = "${COSMOBAC_DATA}/health.json"\n', "")
        .replace('"${COSMOBAC_DATA}/documents.jsonl"', '"/tmp/out.jsonl"')
    )
    message = refusal(tmp_path, text)
    assert "[store] path is '/var/lib/edge.db' in the container, outside the node's volume" in (
        message
    )
    assert 'write path = "${COSMOBAC_DATA}/edge.db"' in message
    assert '[monitoring] health_file = "${COSMOBAC_DATA}/health.json"' in message
    assert 'write path = "${COSMOBAC_DATA}/out.jsonl"' in message


def test_refuses_a_live_sensor_and_a_memory_store(tmp_path):
    text = JSONL.replace('plugin = "simulated"', 'plugin = "csv"').replace(
        'plugin = "sqlite"', 'plugin = "memory"'
    )
    text = re.sub(
        r"cities = .*\nsensors_per_city = .*\nseed = 5\nrate_hz = 1.0\n", 'path = "in.csv"\n', text
    )
    text = text.replace('path = "${COSMOBAC_DATA}/edge.db"\n', "")
    message = refusal(tmp_path, text)
    assert "for any other sensor give --node NAME" in message
    assert "[store] needs a file store" in message


def test_local_cosmos_needs_the_endpoint_variable(tmp_path):
    text = COSMOS.replace(
        '"${COSMOS_ENDPOINT:-https://acct.documents.azure.com:443/}"',
        '"https://acct.documents.azure.com:443/"',
    )
    message = refusal(tmp_path, text, local_cosmos=True)
    assert 'endpoint = "${COSMOS_ENDPOINT:-https://ACCOUNT.documents.azure.com:443/}"' in message
    message = refusal(tmp_path, JSONL, local_cosmos=True)
    assert 'plugin = "cosmos"' in message


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"cities": 2, "city_names": ["Tokyo"]}, "not both"),
        ({"cities": None}, "give --cities N"),
        ({"cities": None, "city_names": ["Atlantis"]}, "unknown city 'Atlantis'"),
        ({"cities": 10_000}, "--cities must be from 1 to"),
        ({"sensors_per_city": 0}, "--sensors-per-city"),
    ],
)
def test_refuses_bad_options(tmp_path, options, shown):
    assert shown in refusal(tmp_path, JSONL, **options)


def test_the_command_writes_the_file_and_says_what_the_env_file_needs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_KEY", "s3cr3t-value-never-in-the-file")
    pipeline(tmp_path, COSMOS)
    result = CliRunner().invoke(
        cli,
        ["compose", "pipeline.toml", "--cities", "3", "--sensors-per-city", "2", "--local-cosmos"],
    )
    assert result.exit_code == 0, result.output
    assert (
        "wrote docker-compose.yml: 3 nodes (London, New York, Tokyo), 6 services" in result.output
    )
    assert "COSMOS_KEY=...   (required)" in result.output
    text = (tmp_path / "docker-compose.yml").read_text()
    assert "s3cr3t-value-never-in-the-file" not in text
    assert yaml.safe_load(text)["services"]["tokyo-collector"]["volumes"][1]["source"] == (
        "./pipeline.toml"
    )


def test_the_command_refuses_with_status_2(tmp_path):
    config = pipeline(tmp_path, COSMOS.replace('"${COSMOS_KEY}"', '"abc=="'))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosmobac",
            "compose",
            str(config),
            "--cities",
            "1",
            "--sensors-per-city",
            "1",
            "--out",
            str(tmp_path / "c.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("Error: ") and 'write key = "${COSMOS_KEY}"' in out.stderr
    assert not (tmp_path / "c.yml").exists()


# -- a real compose implementation -------------------------------------------------------------------
def compose_config(path: Path) -> dict:
    command = require_command("docker-compose", hint="the compose file's config check")
    out = subprocess.run(
        [command, "-f", str(path), "config"], capture_output=True, text=True, cwd=path.parent
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.mark.parametrize("local_cosmos", [False, True])
def test_docker_compose_accepts_the_file(tmp_path, monkeypatch, local_cosmos):
    monkeypatch.setenv("COSMOS_KEY", "s3cr3t-value-never-in-the-file")
    (tmp_path / "conf").mkdir()
    config = pipeline(tmp_path / "conf", COSMOS)
    out = tmp_path / "deploy" / "docker-compose.yml"
    out.parent.mkdir()
    (out.parent / ".env").write_text("COSMOS_KEY=from-the-env-file\n")
    plan = write_compose(config, out, cities=2, sensors_per_city=4, local_cosmos=local_cosmos)
    assert "s3cr3t-value-never-in-the-file" not in out.read_text()
    seen = compose_config(out)
    names = {s.name for s in plan.services} | ({"cosmos"} if local_cosmos else set())
    assert set(seen["services"]) == names
    forwarder = seen["services"]["london-forwarder"]
    assert forwarder["environment"]["COSMOS_KEY"] == "from-the-env-file"  # read from .env
    assert forwarder["environment"][CITY_VAR] == "London"
    bind = next(v for v in forwarder["volumes"] if v["type"] == "bind")
    assert bind["source"] == str(config) and bind["read_only"] is True
    assert forwarder["restart"] == "unless-stopped" and forwarder["stop_signal"] == "SIGTERM"
    assert set(seen["volumes"]) == {"london-data", "new-york-data"}


def test_docker_compose_accepts_the_file_of_the_jsonl_pipeline(tmp_path):
    out = tmp_path / "docker-compose.yml"
    write_compose(pipeline(tmp_path, JSONL), out, city_names=["Berlin"], sensors_per_city=1)
    seen = compose_config(out)
    assert set(seen["services"]) == {"berlin-collector", "berlin-forwarder"}


# -- the services' commands as processes --------------------------------------------------------------
def start(argv, env, cwd, *extra: str) -> subprocess.Popen[str]:
    assert argv[0] == "cosmobac"
    return subprocess.Popen(
        [sys.executable, "-m", "cosmobac", *argv[1:], *extra],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_sensors(data: Path) -> tuple[set[str], int]:
    con = sqlite3.connect(f"file:{data / 'edge.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT sensor_id FROM readings").fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}, len(rows)


def delivered(data: Path) -> dict[str, dict]:
    path = data / "documents.jsonl"
    if not path.exists():
        return {}
    found = {}
    complete = path.read_text().split("\n")[:-1]  # the last line may be half written
    for line in complete:
        if line.strip():
            document = json.loads(line)
            found[document["id"]] = document
    return found


@pytest.mark.slow
def test_the_services_commands_run_each_node_on_its_own_store(tmp_path):
    config = pipeline(tmp_path, JSONL)
    plan = compose_plan(config, cities=2, sensors_per_city=3)
    nodes = plan.nodes()
    assert len(nodes) == 2
    for node, (collector, forwarder) in nodes.items():
        data = tmp_path / node
        data.mkdir()
        # the forwarder first: it waits for the collector to create the store
        fwd = forwarder.on_host(config, data)
        following = start(fwd.argv, fwd.env, fwd.cwd)
        col = collector.on_host(config, data)
        collecting = start(col.argv, col.env, col.cwd, "--duration", "30m")
        out, err = collecting.communicate(timeout=120)
        assert collecting.returncode == 0, err
        sensors, rows = stored_sensors(data)
        assert rows == 3 * 30 * 60  # 3 sensors at 1 Hz for 30 minutes of sensor time
        assert sensors == {f"{node}-00{i}" for i in (1, 2, 3)}  # its city's sensors only
        deadline = time.monotonic() + 120
        while len(delivered(data)) < rows and time.monotonic() < deadline:
            assert following.poll() is None, following.communicate()[1]
            time.sleep(0.1)
        following.send_signal(signal.SIGTERM)
        out, err = following.communicate(timeout=60)
        assert following.returncode == 0, err
        assert "archive: " in out
        documents = delivered(data)
        assert len(documents) == rows
        assert {d["sensor_id"] for d in documents.values()} == sensors
        assert {d["city"] for d in documents.values()} == {collector.city}
        # the forwarder recorded its health in the volume, where status (the health check) reads it
        assert (data / "health.json").exists()
        assert not (tmp_path / ".pipeline.toml.health.json").exists()
        check = subprocess.run(
            [sys.executable, "-m", "cosmobac", "status", "--check", str(config)],
            env={**os.environ, **fwd.env},
            cwd=data,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "archive: 0 pending" in check.stdout or "healthy" in check.stdout


# -- [monitoring] health_file -------------------------------------------------------------------------
HEALTHY = """\
[store]
plugin = "sqlite"
path = "edge.db"

[[sinks]]
plugin = "jsonl"
name = "archive"
path = "out.jsonl"

[monitoring]
health_file = "${HEALTH:-state/health.json}"
"""


def test_health_file_is_where_forward_records_and_status_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state").mkdir()
    conf = tmp_path / "conf"
    conf.mkdir()
    config = pipeline(conf, HEALTHY.replace("edge.db", str(tmp_path / "edge.db")))
    cfg = load_config(config, env={})
    assert cfg.monitoring.health_file == "state/health.json"  # relative to the working directory
    with Pipeline.from_config(cfg, create_store=True) as p:
        p.store.append(simulate(duration="10m", cities=1, sensors_per_city=1))
    result = CliRunner().invoke(cli, ["forward", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "state" / "health.json").exists()
    assert not (conf / ".pipeline.toml.health.json").exists()
    health = read_health(config, cfg.monitoring.health_file)
    assert health is not None and health.sink("archive").acked == 600
    status = read_status(config)
    assert status.forwarder.health is not None
    assert status.forwarder.health.sink("archive").acked == 600


def test_health_file_must_be_a_path(tmp_path):
    config = pipeline(tmp_path, HEALTHY.replace('"${HEALTH:-state/health.json}"', "3"))
    with pytest.raises(Exception, match=r"\[monitoring\]: health_file must be a file path"):
        load_config(config)


# -- the how-tos' commands ----------------------------------------------------------------------------
DOCS = ROOT / "docs" / "how-to"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def doc_blocks(name: str) -> list[tuple[str, str]]:
    """(language, code) of the fenced blocks of a how-to, in order."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer((DOCS / name).read_text())]


def run_cosmobac(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "cosmobac", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )


def test_the_deploy_howto_runs(tmp_path, monkeypatch):
    """Every cosmobac command of docs/how-to/deploy-compose.md runs on its pipeline file and prints
    what the page shows; the files it writes pass `docker-compose config` with the page's .env."""
    compose = require_command("docker-compose", hint="the compose file's config check")
    monkeypatch.delenv("COSMOS_KEY", raising=False)
    blocks = doc_blocks("deploy-compose.md")
    pipelines = [code for lang, code in blocks if lang == "toml"]
    pipeline(tmp_path, pipelines[0])  # the simulated fleet's
    pipeline(tmp_path, pipelines[1], "nodes.toml")  # named nodes with a csv sensor
    ran: list[str] = []
    for i, (lang, code) in enumerate(blocks):
        if lang == "dotenv":
            (tmp_path / ".env").write_text(code)
        if lang != "console":
            continue
        for line in code.splitlines():
            argv = shlex.split(line)
            if argv[0] == "cosmobac" and argv[1] == "compose":
                out = run_cosmobac(argv[1:], tmp_path)
                assert out.returncode == 0, out.stderr
                shown = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
                if shown[0] == "text" and shown[1].startswith("wrote"):
                    assert out.stdout == shown[1]
                ran.append(line)
            elif argv[0] == "docker-compose":
                out = subprocess.run(
                    [compose, *argv[1:]], cwd=tmp_path, capture_output=True, text=True
                )
                assert out.returncode == 0, f"{line}: {out.stderr}"
                ran.append(line)
            elif argv[0] == "chmod":
                subprocess.run(argv, cwd=tmp_path, check=True)
    assert len(ran) == 6, ran  # three compose files, each checked
    assert "cosmos" in yaml.safe_load((tmp_path / "local.yml").read_text())["services"]
    nodes = yaml.safe_load((tmp_path / "nodes.yml").read_text())["services"]
    assert nodes["depot-2-collector"]["environment"]["COSMOBAC_NODE"] == "depot-2"
    for name in ("docker-compose.yml", "local.yml", "nodes.yml"):
        assert "your-account-key" not in (tmp_path / name).read_text()


@pytest.mark.slow
def test_the_operate_howto_commands_run_in_a_node(tmp_path):
    """The `docker compose exec SERVICE cosmobac ...` lines of docs/how-to/operate-compose.md name
    services of the generated file, and their cosmobac commands run on a node's store the way the
    service would run them (the Cosmos DB queries excepted: they need a server)."""
    blocks = doc_blocks("operate-compose.md")
    config = pipeline(
        tmp_path, next(c for lang, c in doc_blocks("deploy-compose.md") if lang == "toml")
    )
    plan = compose_plan(config, cities=3, sensors_per_city=4)
    names = {s.name for s in plan.services}
    data = tmp_path / "london"
    data.mkdir()
    secrets = {"COSMOS_KEY": "Y29zbW9iYWMgbG9jYWwgc2VydmVyOiBhbnkga2V5IHdvcmtz"}
    collector = plan.service("london-collector").on_host(config, data)
    collecting = start(collector.argv, {**collector.env, **secrets}, collector.cwd)
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
    ):  # the pipeline follows the wall clock: stop it once it stored
        if (data / "edge.db").exists() and stored_sensors(data)[1] > 0:
            break
        assert collecting.poll() is None, collecting.communicate()[1]
        time.sleep(0.1)
    collecting.send_signal(signal.SIGTERM)
    assert collecting.wait(timeout=60) == 0
    ran = []
    for lang, code in blocks:
        if lang != "console":
            continue
        for line in code.splitlines():
            argv = shlex.split(line)
            if argv[:3] == ["docker", "compose", "exec"]:
                service, command = argv[3], argv[4:]
                assert service in names, line
                if command[0] != "cosmobac" or command[1] == "cosmos":
                    continue
                host = plan.service(service).on_host(config, data)
                args = [str(config) if a == CONFIG_PATH else a for a in command[1:]]
                out = run_cosmobac(args, host.cwd, {**host.env, **secrets})
                assert out.returncode == 0, f"{line}: {out.stdout}{out.stderr}"
                ran.append(line)
            elif argv[:2] == ["cosmobac", "compose"]:
                out = run_cosmobac(argv[1:], tmp_path)
                assert out.returncode == 0, out.stderr
                document = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
                assert document["services"]["tokyo-forwarder"]["image"] == "cosmobac:0.2.0"
                ran.append(line)
    assert len(ran) == 5, ran


# -- the local Cosmos server service -----------------------------------------------------------------
LOCAL_COSMOS = COSMOS.replace('listen = "0.0.0.0:9464"\n', "") + (
    '\n[run]\nspeed = "max"\nstep = "5m"\ninterval = "50ms"\n'
)


@pytest.mark.slow
def test_the_local_server_service_runs_and_the_nodes_write_to_it(tmp_path):
    """The cosmos service's launcher and health check, run with node on this machine, serve the
    node commands of the file (their COSMOS_ENDPOINT pointed at it instead of http://cosmos:8081/)."""
    emulator = pytest.importorskip("cosmobac_cosmos.emulator")
    node = require_command("node", "nodejs", hint="the local Cosmos server")
    directory = emulator.ensure_installed()
    config = pipeline(tmp_path, LOCAL_COSMOS)
    plan = compose_plan(config, city_names=["Oslo"], sensors_per_city=2, local_cosmos=True)
    service = plan.document["services"]["cosmos"]
    assert service["command"][-1].endswith(f'exec node -e "{COSMOS_LAUNCHER}"')
    assert service["healthcheck"]["test"] == ["CMD", "node", "-e", COSMOS_PROBE]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **service["environment"], "COSMOS_PORT": str(port)}
    server = subprocess.Popen([node, "-e", COSMOS_LAUNCHER], cwd=directory, env=env)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([node, "-e", COSMOS_PROBE], env=env).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        collector, forwarder = plan.nodes()["oslo"]
        assert forwarder.environment["COSMOS_ENDPOINT"] == "http://cosmos:8081/"
        local = {"COSMOS_ENDPOINT": f"http://127.0.0.1:{port}/", "COSMOS_KEY": emulator.LOCAL_KEY}
        data = tmp_path / "oslo"
        data.mkdir()
        col = collector.on_host(config, data)
        out = run_cosmobac([*col.argv[1:], "--duration", "10m"], col.cwd, {**col.env, **local})
        assert out.returncode == 0, out.stderr
        rows = stored_sensors(data)[1]
        assert rows == 2 * 600
        fwd = forwarder.on_host(config, data)
        following = start(fwd.argv, {**fwd.env, **local}, fwd.cwd)
        cfg = load_config(config, env={**os.environ, **fwd.env, **local})
        deadline = time.monotonic() + 120
        while read_status(cfg).stats.pending.get("cosmos", rows) > 0:
            assert following.poll() is None, following.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        following.send_signal(signal.SIGTERM)
        out_text, err = following.communicate(timeout=60)
        assert following.returncode == 0, err
        assert f"cosmos: {rows} rows acknowledged" in out_text
        count = run_cosmobac(["cosmos", "count", str(config)], data, {**fwd.env, **local})
        assert count.returncode == 0, count.stderr
        assert str(rows) in count.stdout.replace(",", "")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
