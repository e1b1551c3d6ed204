"""``cosmobac cosmos scale``: the store's backlog and the forwarder's health file in, a change of the
container's offer out (the offers double in front of the local server), a line and metrics."""

from __future__ import annotations

import functools
import json
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cosmobac.testing import run_cosmobac
from cosmobac_cosmos import scaling
from cosmobac_cosmos.emulator import LOCAL_KEY, LocalServer
from cosmobac_cosmos.live import container_client
from cosmobac_cosmos.scaler import ScalerSettings

from .conftest import DATABASE
from .offers_double import OffersDouble


@pytest.fixture
def double(cosmos_server: LocalServer) -> Iterator[OffersDouble]:
    with OffersDouble(cosmos_server.host, cosmos_server.port) as d:
        yield d


def make_config(tmp_path: Path, endpoint: str, container: str) -> str:
    path = tmp_path / "edge.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 1
            sensors_per_city = 2
            seed = 5
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "cosmos"
            name = "cosmos"
            endpoint = "{endpoint}"
            key = "{LOCAL_KEY}"
            database = "{DATABASE}"
            container = "{container}"
            create_if_missing = true
            throughput = 400
            connection_timeout = 5
            read_timeout = 10
            [run]
            duration = "1m"
            """
        )
    )
    return str(path)


def invoke(*args: str) -> str:
    """``python -m cosmobac *args`` in a process of its own: its standard output."""
    return run_cosmobac(*args, timeout=120).stdout


def offer_value(double: OffersDouble) -> int:
    (offer,) = double.offers.values()
    return int(offer["content"]["offerThroughput"])


def _create(endpoint: str, name: str) -> None:
    from azure.cosmos import CosmosClient, PartitionKey

    with CosmosClient(
        endpoint, LOCAL_KEY, enable_endpoint_discovery=False, connection_timeout=5, read_timeout=10
    ) as client:
        database = client.create_database_if_not_exists(DATABASE)
        database.create_container(
            id=name, partition_key=PartitionKey(path="/city"), offer_throughput=400
        )


@pytest.fixture
def config(tmp_path, double, container_name) -> str:
    path = make_config(tmp_path, double.endpoint, container_name)
    invoke("collect", path)  # 120 rows pending for the cosmos sink
    _create(double.endpoint, container_name)  # through the double: an offer of 400 RU/s
    assert offer_value(double) == 400
    return path


def test_an_old_backlog_raises_the_throughput(config, double):
    time.sleep(1.2)
    args = ["cosmos", "scale", config, "--max", "1000", "--up-backlog-age", "1s",
            "--down-backlog-age", "0s", "--up-ticks", "1", "--once"]  # fmt: skip
    # no forwarder: more throughput would not help
    assert "keep 400 RU/s (not_delivering)" in invoke(*args)
    assert offer_value(double) == 400
    _health(config, datetime.now(UTC), throttled=0)  # a forwarder that writes
    out = invoke(
        "cosmos", "scale", config, "--max", "1000", "--up-backlog-age", "1s", "--down-backlog-age", "0s", "--up-ticks", "1",
        "--once",
    )  # fmt: skip
    assert "cosmos: raise 400 → 600 RU/s (backlog_age); backlog " in out
    assert "429s unknown" in out  # a first look at the health file: no rate yet
    assert offer_value(double) == 600
    # a second look within the cooldown keeps it
    out = invoke(
        "cosmos", "scale", config, "--max", "1000", "--up-backlog-age", "1s", "--down-backlog-age", "0s", "--up-ticks", "1",
        "--once",
    )  # fmt: skip
    assert "keep 600 RU/s (cooldown)" in out and offer_value(double) == 600


def _health(config: str, at: datetime, throttled: int) -> None:
    """The health file a forwarder whose sink wrote at ``at`` would record then."""
    path = scaling.health_file(config)
    wrote = at.isoformat(timespec="seconds")
    sink = {"consumer": "cosmos", "throttled": throttled, "acked": 10, "last_write_at": wrote}
    data = {"time": at.isoformat(timespec="seconds"), "started": at.isoformat(), "pid": 4242}
    path.write_text(json.dumps({**data, "running": True, "sinks": [sink]}))


def test_429s_in_the_forwarders_health_file_raise_the_throughput(config, double):
    args = ["cosmos", "scale", config, "--max", "1000", "--up-ticks", "1", "--once"]
    now = datetime.now(UTC)
    _health(config, now - timedelta(seconds=10), throttled=0)
    assert "keep 400 RU/s (pending); backlog" in invoke(*args)  # a first look: no rate yet
    _health(config, now, throttled=50)  # 50 429s in 10 s
    out = invoke(*args)
    assert "raise 400 → 600 RU/s (throttling)" in out and "429s 5.00/s" in out
    # the same snapshot again (no forwarder rewrote it): no rate
    assert "429s unknown" in invoke(*args)
    assert offer_value(double) == 600


def test_dry_run_changes_nothing(config, double):
    out = invoke(
        "cosmos", "scale", config, "--max", "1000", "--up-backlog-age", "1s", "--down-backlog-age", "0s",
        "--up-ticks", "1", "--once", "--dry-run", "--min", "500",
    )  # fmt: skip
    assert "raise 400 → 500 RU/s (below_minimum)" in out and "dry run: not applied" in out
    assert offer_value(double) == 400


def test_decisions_are_exported_as_metrics(config, double):
    from cosmobac.config import load_config

    sink = load_config(config).sinks[0].build()
    _health(config, datetime.now(UTC), throttled=0)
    metrics = scaling.ScalerMetrics(0, "cosmos")
    try:
        with container_client(sink) as container:
            lines: list[str] = []
            tick = functools.partial(
                scaling.run,
                config=config,
                container=container,
                consumer="cosmos",
                backlog_age=lambda: 600.0,
                settings=ScalerSettings(maximum=2000, up_ticks=1),
                every=0.01,
                once=True,
                dry_run=False,
                timeout=10,
                echo=lines.append,
            )
            tick()  # without metrics
            tick(metrics=metrics)
        port = metrics.server.server_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
        sink.close()
    assert lines[0].startswith("cosmos: raise 400 → 600 RU/s (backlog_age)")
    assert lines[1].startswith("cosmos: keep 600 RU/s (cooldown)")  # the state file kept it
    assert 'cosmobac_scaler_throughput_ru{mode="manual",sink="cosmos"} 600.0' in text
    assert (
        'cosmobac_scaler_decisions_total{direction="keep",reason="cooldown",sink="cosmos"} 1.0'
        in text
    )


def test_the_daemon_ticks_until_sigterm(config, double):
    import signal
    import subprocess
    import sys

    _health(config, datetime.now(UTC), throttled=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "cosmos", "scale", config, "--max", "600",
         "--up-backlog-age", "1s", "--down-backlog-age", "0s", "--up-ticks", "2",
         "--every", "0.3s", "--cooldown", "1h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and offer_value(double) != 600:
            time.sleep(0.1)
        time.sleep(0.7)  # a few more ticks: at the maximum
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert offer_value(double) == 600
    assert sum("raise 400 → 600 RU/s (backlog_age)" in line for line in lines) == 1, out
    assert "keep 600 RU/s (" in lines[-1]
