"""The command line with the real local server: a multi-city fleet end to end, ``cosmobac cosmos
check|count|query``, ``cosmobac emulator start|status|stop`` and ``cosmobac demo``."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import sys
import textwrap

import pytest

from cosmobac.testing import run_cosmobac
from cosmobac_cosmos.emulator import LOCAL_KEY

from .conftest import DATABASE, make_sink


def cosmobac(*args, env=None, check=True, timeout=180):
    return run_cosmobac(*args, env=env, check=check, timeout=timeout)


def pipeline_file(
    tmp_path, endpoint, container, *, extra="", duration="1h", sensors_per_city=4, seed=21
):
    """A three-city simulated fleet into ``container`` of the local server (``extra``: more keys
    of the sink table, e.g. ``name = "cloud"``)."""
    path = tmp_path / "fleet.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = ["London", "Tokyo", "Lisbon"]
            sensors_per_city = {sensors_per_city}
            seed = {seed}
            rate_hz = 0.2
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "cosmos"
            endpoint = "{endpoint}"
            database = "{DATABASE}"
            container = "{container}"
            key = "${{COSMOS_KEY}}"
            create_if_missing = true
            {extra}
            [run]
            duration = "{duration}"
            """
        )
    )
    return path


ENV = {"COSMOS_KEY": LOCAL_KEY}


def store_counts(path) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT city, COUNT(*) FROM readings GROUP BY city").fetchall())
    finally:
        con.close()


def test_a_multi_city_fleet_end_to_end_count_per_city_equals_the_store(
    cosmos_server, container_name, tmp_path
):
    config = pipeline_file(tmp_path, cosmos_server.endpoint, container_name)
    run = cosmobac("run", str(config), env=ENV)
    # an unnamed sink's consumer: cosmos-<hash of endpoint, database and container>
    assert re.search(r"^cosmos-[0-9a-f]{8}: 8640 rows acknowledged", run.stdout, re.M)
    assert "request_charge" in run.stdout
    expected = store_counts(tmp_path / "edge.db")
    assert set(expected) == {"London", "Tokyo", "Lisbon"}
    for city, n in expected.items():
        counted = cosmobac("cosmos", "count", str(config), "--city", city, env=ENV)
        assert int(counted.stdout) == n, city
    total = cosmobac("cosmos", "count", str(config), "--json", env=ENV)
    assert json.loads(total.stdout) == {"count": sum(expected.values())}

    check = cosmobac("cosmos", "check", str(config), env=ENV)
    lines = check.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok   endpoint",
        "ok   credentials",
        "ok   database",
        "ok   container",
        "ok   partition key",
        "ok   test write",
    ]
    assert int(cosmobac("cosmos", "count", str(config), env=ENV).stdout) == 8640  # deleted again


def test_query_filters_by_city_sensor_and_time_with_parameters(
    cosmos_server, container_name, tmp_path
):
    config = pipeline_file(tmp_path, cosmos_server.endpoint, container_name)
    cosmobac("run", str(config), env=ENV)
    out = cosmobac(
        "cosmos",
        "query",
        str(config),
        "--city",
        "Tokyo",
        "--since",
        "2026-01-01T00:30:00Z",
        "--until",
        "2026-01-01T00:31:00Z",
        "--limit",
        "0",
        env=ENV,
    )
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == 4 * 12  # 4 sensors at 0.2 Hz for one minute
    assert {d["city"] for d in docs} == {"Tokyo"}
    assert all("2026-01-01T00:30:00" <= d["timestamp"] < "2026-01-01T00:31:00" for d in docs)
    assert [d["timestamp"] for d in docs] == sorted(d["timestamp"] for d in docs)
    assert "_rid" not in docs[0]
    sensor = docs[0]["sensor_id"]
    newest = cosmobac(
        "cosmos",
        "query",
        str(config),
        "--sensor",
        sensor,
        "--limit",
        "3",
        "--newest-first",
        env=ENV,
    )
    times = [json.loads(line)["timestamp"] for line in newest.stdout.splitlines()]
    assert len(times) == 3 and times == sorted(times, reverse=True)
    hostile = cosmobac(
        "cosmos", "count", str(config), "--city", "x' OR true OR c.city = '", env=ENV
    )
    assert hostile.stdout.strip() == "0"
    bad = cosmobac("cosmos", "count", str(config), "--since", "yesterday", env=ENV, check=False)
    assert bad.returncode == 2 and "zone" in bad.stderr


def test_check_reports_what_is_wrong(cosmos_server, container_name, tmp_path):
    config = pipeline_file(
        tmp_path, cosmos_server.endpoint, container_name, extra="create_if_missing = false"
    )
    config.write_text(config.read_text().replace("create_if_missing = true\n", ""))
    missing = cosmobac("cosmos", "check", str(config), env=ENV, check=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stdout and "FAIL" in missing.stdout
    # a container with another partition key: check says they must match
    make_sink(cosmos_server.endpoint, container_name, partition_key="/city").connect()
    mismatch = cosmobac("cosmos", "check", str(config), env=ENV, check=False)
    assert mismatch.returncode == 1
    assert "FAIL partition key: container ['/city'], sink ['/sensor_id']" in mismatch.stdout
    assert "test write" not in mismatch.stdout
    other = pipeline_file(
        tmp_path, cosmos_server.endpoint, container_name, extra='partition_key = "/city"'
    )
    no_write = cosmobac("cosmos", "check", str(other), "--no-write", env=ENV)
    assert "--   test write: skipped" in no_write.stdout


def test_emulator_start_status_stop(cosmos_server, tmp_path):
    env = {"COSMOBAC_CACHE_DIR": str(tmp_path / "cache")}
    assert cosmobac("emulator", "status", env=env, check=False).returncode == 3
    started = json.loads(cosmobac("emulator", "start", "--port", "0", "--json", env=env).stdout)
    try:
        assert started["started"] and started["endpoint"].startswith("http://127.0.0.1:")
        again = json.loads(cosmobac("emulator", "start", "--json", env=env).stdout)
        assert again["pid"] == started["pid"] and not again["started"]
        status = json.loads(cosmobac("emulator", "status", "--json", env=env).stdout)
        assert status["running"] and status["reachable"] and status["pid"] == started["pid"]
        # the demo uses the running emulator and leaves it running
        demo = cosmobac("demo", "--dir", str(tmp_path / "demo"), "--duration", "1h", env=env)
        assert f"local Cosmos DB server at {started['endpoint']}" in demo.stdout
        assert "stopped" not in demo.stdout
        saved = (tmp_path / "demo" / "pipeline.toml").read_text()
        assert started["endpoint"] in saved
        counted = cosmobac("cosmos", "count", str(tmp_path / "demo" / "pipeline.toml"), env=env)
        assert int(counted.stdout) == 3 * 4 * 3600 // 5
    finally:
        stopped = cosmobac("emulator", "stop", env=env)
    assert f"stopped {started['endpoint']}" in stopped.stdout
    assert cosmobac("emulator", "status", env=env, check=False).returncode == 3
    assert "not running" in cosmobac("emulator", "stop", env=env).stdout


def test_demo_forwards_to_a_local_server_and_its_pipeline_runs_again(cosmos_server, tmp_path):
    env = {"COSMOBAC_CACHE_DIR": str(tmp_path / "cache")}  # no background emulator here
    demo = cosmobac("demo", "--dir", str(tmp_path / "demo"), "--duration", "2h", env=env)
    rows = 3 * 4 * 2 * 3600 // 5
    assert f"{rows} documents written to cosmobac-demo/readings" in demo.stdout
    assert "rows per city:" in demo.stdout and "the demo's server was stopped" in demo.stdout
    jsonl = (tmp_path / "demo" / "documents.jsonl").read_text().splitlines()
    assert len(jsonl) == rows
    again = cosmobac("run", str(tmp_path / "demo" / "pipeline.toml"), env=env)
    assert "collected 0 new rows" in again.stdout and "cosmos: 0 rows acknowledged" in again.stdout


def test_demo_falls_back_to_jsonl_without_node(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "COSMOBAC_CACHE_DIR": str(tmp_path / "cache")}
    assert shutil.which("node", path=str(bin_dir)) is None
    demo = cosmobac("demo", "--dir", str(tmp_path / "demo"), "--duration", "1h", env=env)
    assert "note: forwarding to JSON lines only: Node.js" in demo.stdout
    assert "Cosmos DB (" not in demo.stdout
    assert "cosmos" not in (tmp_path / "demo" / "pipeline.toml").read_text()
    assert len((tmp_path / "demo" / "documents.jsonl").read_text().splitlines()) == 3 * 4 * 720


@pytest.mark.parametrize("allowed", ["sqlite"])
def test_demo_falls_back_to_jsonl_when_the_plugin_is_not_loaded(tmp_path, allowed):
    env = {"COSMOBAC_LOAD_PLUGINS": allowed, "COSMOBAC_CACHE_DIR": str(tmp_path / "cache")}
    demo = cosmobac("demo", "--dir", str(tmp_path / "demo"), "--duration", "1h", env=env)
    assert "note: forwarding to JSON lines only, no plugin offers the demo another sink" in (
        demo.stdout
    )
    assert "cosmobac-cosmos, which is installed but not loaded" in demo.stdout
