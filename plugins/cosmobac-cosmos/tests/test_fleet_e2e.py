"""The full fleet, end to end (issue 17): city nodes as separate processes on this machine, each its
own SQLite store, its own collector and forwarder (the commands, environment and working directory
``cosmobac compose`` gives its services: :func:`cosmobac.compose.compose_plan`), a simulated fleet at a speed factor, all into one container of the local
Cosmos DB server. Mid-run one node's forwarder is SIGKILLed and restarted, and another node's
connection to the server (through the loopback fault proxy) is cut for a while, then restored.
Then the collectors stop (SIGTERM), the forwarders drain and stop, and every reading of every node
must be in Cosmos DB exactly once: document ids unique, their count the sum of the stores,
``cosmobac verify`` exit 0 on every node, and per-city counts equal to each node's store, as
``cosmobac cosmos count --by city`` shows them.

The figures (nodes, readings, kills, lost, duplicates) are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from cosmobac.compose import compose_plan
from cosmobac_cosmos.emulator import LOCAL_KEY

from .conftest import DATABASE, _container
from .faultproxy import FaultProxy, Rules

CITIES = ("London", "Tokyo", "Lisbon")
SENSORS_PER_CITY = 3
SPEED = 300  # five minutes of sensor time per second
RUN_S = 14.0  # wall-clock seconds the collectors run
KILLED, CUT = "tokyo", "lisbon"  # the node whose forwarder is killed; the node cut off

PIPELINE = """\
# One pipeline file for every node, as the compose file mounts it: what differs between nodes
# comes from the services' environment.
[sensor]
plugin = "simulated"
cities = ["${{COSMOBAC_CITY}}"]
sensors_per_city = "${{COSMOBAC_SENSORS_PER_CITY}}"
seed = 17
rate_hz = 0.25

[store]
plugin = "sqlite"
path = "${{COSMOBAC_DATA}}/edge.db"

[[sinks]]
plugin = "cosmos"
name = "cloud"
endpoint = "${{COSMOS_ENDPOINT}}"
database = "{database}"
container = "{container}"
key = "${{COSMOS_KEY}}"
create_if_missing = true
connection_timeout = 2
read_timeout = 5
write_timeout = 10

[monitoring]
health_file = "${{COSMOBAC_DATA}}/health.json"

[run]
speed = {speed}
interval = "0.2s"
batch_size = 2000
backoff = "0.2s"
max_backoff = "1s"
"""


@attrs.frozen
class Service:
    """A node service as the compose file runs it: ``argv`` (``cosmobac ...``), its environment
    and working directory (the node's volume)."""

    name: str
    role: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


def node_services(
    config: Path, city: str, data: Path, endpoint: str, sensors_per_city: int
) -> list[Service]:
    """The services of one city node exactly as ``cosmobac compose`` writes them
    (:func:`cosmobac.compose.compose_plan`): ``<city>-collector`` running ``cosmobac collect
    CONFIG`` and ``<city>-forwarder`` running ``cosmobac forward --follow CONFIG``, with the
    environment the compose file gives them (COSMOBAC_CITY, COSMOBAC_SENSORS_PER_CITY,
    COSMOBAC_DATA) and the node's volume as working directory (:meth:`NodeService.on_host`).
    What the compose file's env file supplies (COSMOS_ENDPOINT, COSMOS_KEY) comes on top: the
    endpoint per node, so that one node reaches the server through the fault proxy."""
    plan = compose_plan(config, city_names=[city], sensors_per_city=sensors_per_city)
    assert set(plan.required) == {"COSMOS_ENDPOINT", "COSMOS_KEY"}, plan.required
    env_file = {"COSMOS_ENDPOINT": endpoint, "COSMOS_KEY": LOCAL_KEY}
    (node,) = plan.nodes().values()
    services = []
    for service in node:
        host = service.on_host(config, data)
        services.append(
            Service(service.name, service.role, host.argv, {**env_file, **host.env}, host.cwd)
        )
    assert [s.argv[1:3] for s in services] == [("collect", str(config)), ("forward", "--follow")]
    return services


class Process:
    """A service running as a process of this machine (``cosmobac`` is ``python -m cosmobac``)."""

    def __init__(self, service: Service, logs: Path) -> None:
        self.service = service
        self.log = logs / f"{service.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        argv = [sys.executable, "-m", "cosmobac", *self.service.argv[1:]]
        env = {**os.environ, **self.service.env}
        with open(self.log, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(argv)}\n".encode())
            self.proc = subprocess.Popen(
                argv, env=env, cwd=self.service.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code; a process still running after ``timeout`` is asked for its threads'
        stacks (SIGUSR1, see ``cosmobac.cli.main``) and the test fails with its log's end."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2.0)
            raise AssertionError(
                f"{self.service.name} did not end within {timeout:g} s; its log ends:\n"
                + self.tail()
            ) from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within 30 s (cleanup only)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def store_rows(db: Path) -> dict[str, int]:
    """Readings per city in a node's store (read-only)."""
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(con.execute("SELECT city, COUNT(*) FROM readings GROUP BY city").fetchall())
    finally:
        con.close()


def pending(db: Path, consumer: str = "cloud") -> int | None:
    """Rows the node's forwarder has not acknowledged (None before it first read the store)."""
    from cosmobac_sqlite import SQLiteStore

    store = SQLiteStore(str(db), create=False)
    try:
        return store.stats().pending.get(consumer)
    finally:
        store.close()


def cosmobac(
    service: Service, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Another command on the node, with the node's environment (as `docker compose exec`)."""
    return subprocess.run(
        [sys.executable, "-m", "cosmobac", *args],
        env={**os.environ, **service.env},
        cwd=service.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(what: str, ready, timeout: float, processes: Sequence[Process]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            logs = "\n".join(f"== {p.service.name}\n{p.tail()}" for p in processes)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_fleet_of_city_nodes_delivers_every_reading_exactly_once(
    cosmos_server, container_name, tmp_path
):
    started = time.monotonic()
    config = tmp_path / "pipeline.toml"
    config.write_text(
        textwrap.dedent(PIPELINE.format(database=DATABASE, container=container_name, speed=SPEED))
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    with FaultProxy(cosmos_server.host, cosmos_server.port, rules=Rules(), seed=3) as proxy:
        nodes: dict[str, list[Process]] = {}
        data: dict[str, Path] = {}
        for city in CITIES:
            slug = city.lower()
            data[slug] = tmp_path / f"{slug}-data"
            data[slug].mkdir()
            endpoint = proxy.endpoint if slug == CUT else cosmos_server.endpoint
            nodes[slug] = [
                Process(s, logs)
                for s in node_services(config, city, data[slug], endpoint, SENSORS_PER_CITY)
            ]
        everything = [p for ps in nodes.values() for p in ps]
        kills = 0
        cut_for = 0.0
        try:
            for process in everything:
                process.start()
            collectors = [ps[0] for ps in nodes.values()]
            forwarders = {slug: ps[1] for slug, ps in nodes.items()}

            # the killed node's forwarder has delivered some, and has more to deliver
            def delivering() -> bool:
                db = data[KILLED] / "edge.db"
                left = pending(db) if db.exists() else None
                return left is not None and sum(store_rows(db).values()) > left > 0

            wait_until(f"{KILLED} forwarding", delivering, 30, everything)
            time.sleep(1.5)
            wait_until(f"{KILLED} to have rows pending", delivering, 30, everything)
            forwarders[KILLED].signal(signal.SIGKILL)
            assert forwarders[KILLED].wait(10) == -signal.SIGKILL
            kills += 1
            left_at_kill = pending(data[KILLED] / "edge.db")
            time.sleep(1.0)
            forwarders[KILLED].start()

            # cut the other node off: every request through its proxy is dropped unanswered
            proxy.rules = Rules(drop_before=1.0, applies=lambda method, path, headers: True)
            cut_at = time.monotonic()
            time.sleep(5.0)
            dropped = proxy.count("drop_before")
            backlog_while_cut = pending(data[CUT] / "edge.db") or 0
            proxy.rules = Rules()
            cut_for = time.monotonic() - cut_at

            remaining = RUN_S - (time.monotonic() - started)
            if remaining > 0:
                time.sleep(remaining)
            for collector in collectors:
                collector.signal(signal.SIGTERM)
            for collector in collectors:
                assert collector.wait(30) == 0, collector.tail()

            # the forwarders drain, then stop
            def drained() -> bool:
                return all(pending(data[slug] / "edge.db") == 0 for slug in nodes)

            wait_until("the forwarders to drain", drained, 60, everything)
            drained_at = time.monotonic() - started
            for forwarder in forwarders.values():
                forwarder.signal(signal.SIGTERM)
            for forwarder in forwarders.values():
                assert forwarder.wait(30) == 0, forwarder.tail()
        finally:
            for process in everything:
                process.stop()

        # (the proxy still runs: the cut node reaches the server through it)
        # every reading of every node is in Cosmos DB exactly once
        stored = {slug: store_rows(data[slug] / "edge.db") for slug in nodes}
        readings = sum(n for rows in stored.values() for n in rows.values())
        client, container = _container(cosmos_server, container_name)
        with client:
            ids = [
                row["id"]
                for row in container.query_items(
                    "SELECT c.id FROM c", enable_cross_partition_query=True, max_item_count=20_000
                )
            ]
        duplicates = len(ids) - len(set(ids))
        lost = readings - len(set(ids))
        assert duplicates == 0
        assert lost == 0 and len(ids) == readings

        # cosmobac verify on every node, with the node's environment: exit 0
        verified = {}
        for slug, (collector, _) in nodes.items():
            done = cosmobac(collector.service, "verify", str(config), "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            (sink,) = json.loads(done.stdout)["sinks"]
            assert sink["found"] == sink["expected"] == sum(stored[slug].values())
            assert sink["pending"] == sink["missing"] == sink["extra"] == 0
            verified[slug] = sink["sample"]["size"]

        # per-city counts in Cosmos DB equal each node's store, as `cosmos count --by city` shows
        any_node = nodes[CITIES[0].lower()][0].service
        shown = cosmobac(any_node, "cosmos", "count", str(config), "--by", "city")
        assert shown.returncode == 0, shown.stderr
        counted = {
            value: int(n)
            for value, n in (line.rsplit(None, 1) for line in shown.stdout.splitlines())
        }
        expected_counts = {city: n for rows in stored.values() for city, n in rows.items()}
        assert counted == {**expected_counts, "total": readings}

    elapsed = time.monotonic() - started
    assert dropped > 0, "the cut node's forwarder sent nothing while it was cut off"
    print(
        f"\nfleet e2e: nodes {len(nodes)} ({SENSORS_PER_CITY} sensors each, speed {SPEED}), "
        f"readings {readings} ({', '.join(f'{c} {n}' for c, n in expected_counts.items())}), "
        f"documents {len(ids)}, kills {kills} (SIGKILL of the {KILLED} forwarder with "
        f"{left_at_kill} rows pending), cut {cut_for:.1f} s ({CUT}: {dropped} requests dropped, "
        f"backlog {backlog_while_cut}), lost {lost}, duplicates {duplicates}, verify exit 0 on "
        f"{len(verified)} nodes (samples {sum(verified.values())}), drained at {drained_at:.1f} s, "
        f"{elapsed:.1f} s in all\ncosmobac cosmos count --by city:\n{shown.stdout}"
    )
