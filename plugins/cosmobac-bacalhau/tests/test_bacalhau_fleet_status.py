"""``cosmobac bacalhau fleet-status`` and ``status_job``, against the fake orchestrator.

The fake's nodes run the status job's real command: an executor that plays the docker engine
(inline inputs written out, the ``local`` data folder mapped to the node's folder in tmp_path,
``env:`` values from the node's environment) runs ``python -m cosmobac status --json ...`` on a
real SQLite store that ``cosmobac collect`` filled. One unhealthy node's document is written by
hand (a stopped Cosmos sink, and longer than the API's 2 KB of stdout); another node is
unhealthy for real (its rows waited longer than its ``max_backlog_age``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_orchestrator import FakeNode, FakeOrchestrator

from cosmobac.testing import run_cosmobac
from cosmobac_bacalhau import dataurl
from cosmobac_bacalhau.api_records import NodeOutcome
from cosmobac_bacalhau.builders import CONFIG_DIR, LIVE_CONFIG, status_job
from cosmobac_bacalhau.client import BacalhauClient
from cosmobac_bacalhau.errors import JobSpecError
from cosmobac_bacalhau.fleet import NodeStatus, age_text, node_status, parse_status

IMAGE = "registry.example.com/cosmobac:0.1.0"

PIPELINE = textwrap.dedent(
    """
    [sensor]
    plugin = "simulated"
    cities = 2
    sensors_per_city = 2
    seed = 3
    rate_hz = 0.1
    [store]
    plugin = "sqlite"
    path = "${COSMOBAC_DATA}/edge.db"
    [[sinks]]
    plugin = "jsonl"
    name = "archive"
    path = "${COSMOBAC_DATA}/archive.jsonl"
    """
)

Executor = Callable[[FakeNode, dict[str, Any]], tuple[int, str, str]]


def docker_like(data: Path, root: Path, node_env: dict[str, str] | None = None) -> Executor:
    """A node's docker engine, for the cosmobac image (ENTRYPOINT ``cosmobac``): the task's
    command runs here as ``python -m cosmobac``, with the container's paths mapped to ``data``
    (the node folder behind the ``local`` input) and ``root`` (where inline inputs land)."""

    def execute(node: FakeNode, task: dict[str, Any]) -> tuple[int, str, str]:
        assert task["Engine"]["Type"] == "docker"
        mounts: dict[str, Path] = {}
        for item in task.get("InputSources") or []:
            source, target = item["Source"], item["Target"]
            if source["Type"] == "inline":
                _, payload = dataurl.decode(source["Params"]["URL"])
                path = root / target.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payload)
                mounts[target] = path
            elif source["Type"] in ("local", "localDirectory"):
                mounts[target] = data

        def host(value: str) -> str:
            for target in sorted(mounts, key=len, reverse=True):
                if value == target or value.startswith(target + "/"):
                    return str(mounts[target]) + value[len(target) :]
            return value

        env = {
            name: (node_env or {}).get(value[4:], "") if value.startswith("env:") else host(value)
            for name, value in (task.get("Env") or {}).items()
        }
        argv = [host(p) for p in task["Engine"]["Params"]["Parameters"]]
        done = subprocess.run(
            [sys.executable, "-m", "cosmobac", *argv],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    return execute


def canned(document: Any, code: int = 0) -> Executor:
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    return lambda node, task: (code, text + "\n", "")


def unhealthy_document() -> dict[str, Any]:
    """A node whose Cosmos sink gave up, with many more sinks: more than RunOutput's 2 KB."""
    sinks = [
        {
            "plugin": "cosmos",
            "consumer": "cosmos-1a2b3c4d",
            "resuming": True,
            "after_row": 17,
            "pending": 1183,
            "oldest_pending_age_s": 7260.0,
            "dead_letters": 4,
            "rows_per_second": None,
            "last_error": "HTTP 403 Forbidden: the key was revoked",
            "last_error_at": "2026-12-05T09:10:11+00:00",
            "stopped": True,
        }
    ]
    for i in range(12):
        sinks.append(
            {
                "plugin": "jsonl",
                "consumer": f"archive-{i:02d}",
                "resuming": True,
                "after_row": 1200,
                "pending": 0,
                "oldest_pending_age_s": None,
                "dead_letters": 0,
                "rows_per_second": 41.5,
                "last_error": None,
                "last_error_at": None,
                "stopped": False,
            }
        )
    return {
        "healthy": False,
        "problems": [
            {
                "sink": "cosmos-1a2b3c4d",
                "reason": "sink failed permanently",
                "error": "HTTP 403 Forbidden: the key was revoked",
            }
        ],
        "rows": 1200,
        "file_size": 2_500_000,
        "pending": {s["consumer"]: s["pending"] for s in sinks},
        "oldest_pending_age_s": {"cosmos-1a2b3c4d": 7260.0},
        "dead_letters": {s["consumer"]: s["dead_letters"] for s in sinks},
        "sinks": sinks,
    }


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(
        BacalhauClient,
        "wait",
        functools.partialmethod(BacalhauClient.wait, interval=0.005, max_interval=0.02),
    )


@pytest.fixture
def lisbon(tmp_path: Path) -> FakeNode:
    """A node with a real store: 480 readings collected, the first 240 forwarded."""
    data = tmp_path / "lisbon" / "data"
    (data / "config").mkdir(parents=True)
    config = data / "config" / "pipeline.toml"
    config.write_text(PIPELINE)
    env = {"COSMOBAC_DATA": str(data)}
    run_cosmobac("collect", config, "--duration", "10m", env=env)
    run_cosmobac("forward", config, env=env)
    run_cosmobac("collect", config, "--duration", "20m", env=env)
    return FakeNode(
        "node-lisbon-1",
        {"city": "lisbon", "region": "eu"},
        executor=docker_like(data, tmp_path / "lisbon" / "root"),
    )


@pytest.fixture
def fleet(lisbon: FakeNode) -> list[FakeNode]:
    return [
        lisbon,
        FakeNode(
            "node-porto-1", {"city": "porto", "region": "eu"}, executor=canned(unhealthy_document())
        ),
        FakeNode("node-berlin-1", {"city": "berlin", "region": "eu"}, "fail:disk full"),
        FakeNode(
            "node-madrid-1",
            {"city": "madrid", "region": "eu"},
            executor=canned("Traceback (most recent call last):\n  ...\nKeyError: 'store'", 1),
        ),
        FakeNode("node-faro-1", {"city": "faro", "region": "eu"}, connected=False),
        FakeNode("node-oslo-1", {"city": "oslo", "region": "north"}),
    ]


# -- the job --------------------------------------------------------------------------------------
def test_status_job_runs_status_json_on_the_nodes_live_pipeline_file():
    job = status_job(image=IMAGE, selector="region=eu", cities=["lisbon", "porto"])
    assert job.type == "ops" and job.name.startswith("cosmobac-status-")
    assert job.labels["flow"] == "status" and job.meta["cosmobac/flow"] == "status"
    assert [(c.key, c.operator, c.values) for c in job.constraints] == [
        ("region", "=", ("eu",)),
        ("city", "in", ("lisbon", "porto")),
    ]
    task = job.task
    assert task.engine.type == "docker" and task.engine.params["Image"] == IMAGE
    assert task.engine.params["Parameters"] == ["status", "--json", LIVE_CONFIG]
    assert task.publisher is not None and task.publisher.type == "local"  # full stdout published
    assert task.network is not None and task.network.type == "None"
    [folder] = task.input_sources
    assert folder.target == "/data" and folder.source.type == "local"
    assert folder.source.params["SourcePath"] == "/var/lib/cosmobac"
    assert task.env == {"COSMOBAC_DATA": "/data"}


def test_status_job_ships_a_pipeline_file_or_reads_another_node_path(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text(PIPELINE.replace('name = "archive"', 'name = "archive"\nkey = "${KEY}"'))
    job = status_job(config, image=IMAGE, secrets=["KEY"], data_dir="/srv/cosmobac", name="s")
    shipped = f"{CONFIG_DIR}/status.toml"
    assert job.name == "s"
    assert job.task.engine.params["Parameters"] == ["status", "--json", shipped]
    inline, folder = job.task.input_sources
    assert inline.target == shipped
    assert dataurl.decode(inline.source.params["URL"])[1] == config.read_bytes()
    assert folder.source.params["SourcePath"] == "/srv/cosmobac"
    assert job.task.env == {"COSMOBAC_DATA": "/data", "KEY": "env:KEY"}
    other = status_job(image=IMAGE, node_config="/data/other.toml")
    assert other.task.engine.params["Parameters"][-1] == "/data/other.toml"
    with pytest.raises(ValueError, match="absolute"):
        status_job(image=IMAGE, node_config="pipeline.toml")
    with pytest.raises(JobSpecError, match="the pipeline file needs the variable KEY"):
        status_job(config, image=IMAGE)  # the file's variable is not passed


# -- reading answers ------------------------------------------------------------------------------
def test_a_document_of_an_older_node_without_health_keys_is_read_as_it_is():
    old = {"rows": 5, "pending": {"a": 2}, "oldest_pending_age_s": {"a": 150.0}, "sinks": []}
    old["sinks"] = [{"plugin": "jsonl", "consumer": "a", "pending": 2}]
    node = NodeStatus("n", old, "", 0)
    assert node.healthy and node.problems == []
    assert node.as_json() == {**old, "healthy": True, "exit_code": 0}
    assert parse_status("") == (None, "printed nothing")
    assert parse_status("[1]") == (None, "printed JSON that is not a cosmobac status document")
    assert parse_status("oops\nmore")[1] == "printed no status JSON: 'oops'"
    stopped = {"rows": 1, "sinks": [{"consumer": "c", "stopped": True}]}
    assert NodeStatus("n", stopped).problems == ["c: stopped"]
    assert NodeStatus("n", {"rows": 1, "healthy": False}).problems == ["reports itself unhealthy"]
    backlog = {
        "rows": 1,
        "problems": [
            {
                "sink": "c",
                "reason": "backlog too old",
                "oldest_pending_age_s": 1234.5,
                "max_backlog_age_s": 900,
            }
        ],
    }
    assert NodeStatus("n", backlog).problems == [
        "c: backlog too old: oldest pending 21 min, over 15 min"
    ]


def test_executions_that_did_not_end_or_failed_are_unhealthy():
    def outcome(state: str, **kw: Any) -> NodeOutcome:
        fields: dict[str, Any] = {"exit_code": None, "error": "", "stdout": "", "stderr": ""}
        fields.update(kw)
        return NodeOutcome(node_id="n", execution_id="e", state=state, result=None, **fields)

    assert node_status(outcome("Running")).error == "no answer in time (execution Running)"
    assert node_status(outcome("Failed", error="disk full")).error == "execution failed: disk full"
    ok = node_status(outcome("Completed", exit_code=0, stdout='{"rows": 1, "sinks": []}'))
    assert ok.healthy
    says_why = '{"rows": 1, "healthy": false, "problems": ["backlog too old"]}'
    unhealthy = node_status(outcome("Completed", exit_code=1, stdout=says_why))
    assert unhealthy.problems == ["backlog too old"]  # the exit code needs no explaining
    assert unhealthy.as_json()["exit_code"] == 1
    failing = node_status(outcome("Completed", exit_code=1, stdout='{"rows": 1, "sinks": []}'))
    assert failing.problems == ["status exited with code 1"]
    cut = node_status(outcome("Completed", exit_code=0, stdout='{"rows": 1', stdout_truncated=True))
    assert not cut.healthy and "cut at 2 KB" in cut.error


def test_age_text():
    assert [age_text(s) for s in (None, 5, 100, 600, 7260, 3 * 86400, -7200)] == [
        "-",
        "5 s",
        "100 s",
        "10 min",
        "2 h",
        "3 d",
        "2 h ahead",
    ]


# -- the command ----------------------------------------------------------------------------------
def test_fleet_status_prints_a_table_per_node_and_fails_when_a_node_is_unhealthy(
    run, fleet, monkeypatch
):
    monkeypatch.setenv("COSMOBAC_IMAGE", IMAGE)
    with FakeOrchestrator(nodes=fleet) as fake:
        code, out, err = run("bacalhau", "--api", fake.url, "fleet-status", "--select", "region=eu")
        [job] = fake.jobs.values()
    assert code == 1, err
    assert job.type == "ops"
    [task] = job.spec["Tasks"]
    assert task["Engine"]["Params"]["Parameters"] == ["status", "--json", LIVE_CONFIG]
    assert job.spec["Constraints"] == [{"Key": "region", "Operator": "=", "Values": ["eu"]}]
    porto = next(e for e in job.executions if e["NodeID"] == "node-porto-1")
    assert porto["RunOutput"]["StdoutTruncated"]  # read from the published result instead
    assert "Running" in err  # progress on stderr

    blocks = {b.split(":", 1)[0]: b for b in out.strip().split("\n\n")}
    assert set(blocks) == {
        "node-lisbon-1",
        "node-porto-1",
        "node-berlin-1",
        "node-madrid-1",
        "node-faro-1",
        "5 nodes",
    }
    lisbon = blocks["node-lisbon-1"].splitlines()
    assert lisbon[0] == "node-lisbon-1: healthy"
    assert lisbon[1].startswith("  rows stored: 480, file ")
    assert lisbon[2].split() == [
        "SINK",
        "BACKLOG",
        "OLDEST",
        "ROWS/S",
        "DEAD",
        "STATE",
        "LAST",
        "ERROR",
    ]
    # a real status of today's format: the forwarder ended, so 0 rows/s; the age is how long
    # the oldest pending row has waited in the store
    assert re.fullmatch(r"  archive  240      \d+ s  +0 +0 +ok +-", lisbon[3]), lisbon[3]
    assert len(lisbon) == 4
    porto_text = blocks["node-porto-1"]
    assert porto_text.startswith("node-porto-1: UNHEALTHY\n  rows stored: 1200, file 2.5 MB")
    cosmos = next(line for line in porto_text.splitlines() if "cosmos-1a2b3c4d " in line)
    assert cosmos.split()[:6] == ["cosmos-1a2b3c4d", "1183", "2", "h", "-", "4"]
    assert (
        "stopped  HTTP 403 Forbidden: the key was revoked (at 2026-12-05T09:10:11+00:00)" in cosmos
    )
    assert "archive-11       0        -       41.5    0     ok       -" in porto_text
    assert (
        "  problem: cosmos-1a2b3c4d: sink failed permanently: HTTP 403 Forbidden: the key was "
        "revoked" in porto_text
    )
    assert "cosmos-1a2b3c4d: stopped" not in porto_text  # already explained by the problem
    assert blocks["node-berlin-1"] == "node-berlin-1: UNHEALTHY\n  execution failed: disk full"
    assert blocks["node-madrid-1"] == (
        "node-madrid-1: UNHEALTHY\n  status exited with code 1; printed no status JSON: "
        "'Traceback (most recent call last):'"
    )
    assert blocks["node-faro-1"] == (
        "node-faro-1: UNHEALTHY\n  did not answer: no execution on the node (it is disconnected)"
    )
    assert out.endswith("5 nodes: 1 healthy, 4 unhealthy\n")


def test_fleet_status_json_gives_each_nodes_status_or_error(run, fleet):
    with FakeOrchestrator(nodes=fleet) as fake:
        code, out, _ = run(
            "bacalhau", "--api", fake.url, "fleet-status", "--json", "--image", IMAGE
        )
    assert code == 1
    report = json.loads(out)
    assert sorted(report) == [
        "node-berlin-1",
        "node-faro-1",
        "node-lisbon-1",
        "node-madrid-1",
        "node-oslo-1",
        "node-porto-1",
    ]
    lisbon = report["node-lisbon-1"]
    assert lisbon["healthy"] is True and lisbon["exit_code"] == 0 and lisbon["rows"] == 480
    assert [(s["consumer"], s["pending"]) for s in lisbon["sinks"]] == [("archive", 240)]
    assert report["node-porto-1"] == {**unhealthy_document(), "exit_code": 0}
    assert report["node-berlin-1"] == {
        "healthy": False,
        "error": "execution failed: disk full",
        "exit_code": 1,
    }
    assert report["node-faro-1"]["healthy"] is False
    # oslo's executor is the fake's default: it ran, but printed no status document
    assert report["node-oslo-1"] == {
        "healthy": False,
        "error": "printed no status JSON: 'hello from node-oslo-1'",
        "exit_code": 0,
    }


def test_fleet_status_of_healthy_nodes_exits_0(run, lisbon, tmp_path):
    with FakeOrchestrator(nodes=[lisbon, FakeNode("node-porto-1", {"city": "porto"})]) as fake:
        code, out, err = run(
            "bacalhau", "--api", fake.url, "fleet-status", "--city", "lisbon", "--image", IMAGE
        )
        [job] = fake.jobs.values()
    assert code == 0, err
    assert job.spec["Constraints"] == [{"Key": "city", "Operator": "in", "Values": ["lisbon"]}]
    assert out.startswith("node-lisbon-1: healthy\n")
    assert out.endswith("\n\n1 node: 1 healthy, 0 unhealthy\n")


def test_a_real_node_whose_backlog_waited_too_long_is_unhealthy(run, lisbon, tmp_path):
    """Both nodes answer with a real ``cosmobac status --json``; Coimbra's rows have waited in
    its store longer than its ``[monitoring] max_backlog_age``."""
    data = tmp_path / "coimbra" / "data"
    (data / "config").mkdir(parents=True)
    config = data / "config" / "pipeline.toml"
    config.write_text(PIPELINE + '\n[monitoring]\nmax_backlog_age = "1s"\n')
    env = {"COSMOBAC_DATA": str(data)}
    run_cosmobac("collect", config, "--duration", "10m", env=env)
    run_cosmobac("forward", config, env=env)  # then the uploader stops; rows keep coming
    run_cosmobac("collect", config, "--duration", "20m", env=env)
    time.sleep(1.5)  # the new rows wait in the outbox longer than max_backlog_age
    coimbra = FakeNode(
        "node-coimbra-1",
        {"city": "coimbra"},
        executor=docker_like(data, tmp_path / "coimbra" / "root"),
    )
    with FakeOrchestrator(nodes=[lisbon, coimbra]) as fake:
        code, out, err = run("bacalhau", "--api", fake.url, "fleet-status", "--image", IMAGE)
    assert code == 1, err
    blocks = {b.split(":", 1)[0]: b for b in out.strip().split("\n\n")}
    assert blocks["node-lisbon-1"].startswith("node-lisbon-1: healthy\n")
    assert blocks["node-coimbra-1"].startswith("node-coimbra-1: UNHEALTHY\n")
    assert "problem: archive: backlog too old" in blocks["node-coimbra-1"]
    assert out.endswith("2 nodes: 1 healthy, 1 unhealthy\n")


def test_a_node_still_running_at_the_timeout_did_not_answer_and_the_job_is_stopped(run, lisbon):
    nodes = [lisbon, FakeNode("node-porto-1", {"city": "porto"}, "hang")]
    with FakeOrchestrator(nodes=nodes) as fake:
        code, out, err = run(
            "bacalhau", "--api", fake.url, "fleet-status", "--image", IMAGE, "--timeout", "1s"
        )
        [job] = fake.jobs.values()
    assert code == 1, err
    assert "node-lisbon-1: healthy\n" in out
    assert "node-porto-1: UNHEALTHY\n  no answer in time (execution Running)" in out
    assert out.endswith("2 nodes: 1 healthy, 1 unhealthy\n")
    assert job.state == "Stopped" and job.stop_reason == "cosmobac fleet-status: no answer in time"


def test_fleet_status_with_no_matching_node_fails(run, monkeypatch):
    monkeypatch.setenv("COSMOBAC_IMAGE", IMAGE)
    with FakeOrchestrator(nodes=[FakeNode("node-porto-1", {"city": "porto"})]) as fake:
        code, out, _ = run("bacalhau", "--api", fake.url, "fleet-status", "--city", "lisbon")
    assert code == 1
    assert out == "no node answered: not enough nodes to run job\n"


def test_fleet_status_usage_errors(run, tmp_path, monkeypatch):
    monkeypatch.delenv("COSMOBAC_IMAGE", raising=False)
    config = tmp_path / "edge.toml"
    config.write_text(PIPELINE)
    code, _, err = run(
        "bacalhau", "fleet-status", "--image", IMAGE, "--config", str(config), "--node-config", "/x"
    )
    assert code == 2 and "not both" in err
    code, _, err = run("bacalhau", "fleet-status")
    assert code == 2 and "--image" in err


# -- the fleet source a fleet view polls ------------------------------------------------------------
def test_register_fleet_sources_offers_bacalhau_with_its_keys(monkeypatch):
    from cosmobac.config import ComponentConfig
    from cosmobac.errors import ConfigError
    from cosmobac.interfaces import FleetSource
    from cosmobac.plugins import get_plugins

    component = get_plugins().get("fleet", "bacalhau")
    assert {"api", "select", "city", "image", "timeout"} <= set(component.accepted_keys() or ())
    monkeypatch.setenv("COSMOBAC_IMAGE", IMAGE)
    table = {"plugin": "bacalhau", "api": "http://127.0.0.1:1", "select": "region=eu"}
    source = ComponentConfig.from_table("fleet", table, where="--fleet").build()
    assert isinstance(source, FleetSource) and source.select == ("region=eu",)
    with pytest.raises(ConfigError, match=r"--fleet \(plugin 'bacalhau'\): .*colour"):
        ComponentConfig.from_table(
            "fleet", {"plugin": "bacalhau", "colour": "red"}, where="--fleet"
        ).build()
    monkeypatch.delenv("COSMOBAC_IMAGE")
    with pytest.raises(ConfigError, match="image"):
        ComponentConfig.from_table("fleet", {"plugin": "bacalhau"}, where="--fleet").build()


def test_the_bacalhau_fleet_source_polls_every_node_through_the_status_job(lisbon, tmp_path):
    from cosmobac_bacalhau.fleet_source import BacalhauFleetSource

    nodes = [lisbon, FakeNode("node-berlin-1", {"city": "berlin"}, "fail:disk full")]
    with FakeOrchestrator(nodes=nodes) as fake:
        source = BacalhauFleetSource(api=fake.url, image=IMAGE, timeout="30s")
        found = {node.node_id: node for node in source.poll()}
        again = {node.node_id: node for node in source.poll()}  # each poll runs the job anew
        assert len(fake.jobs) == 2
    assert set(found) == set(again) == {"node-lisbon-1", "node-berlin-1"}
    assert found["node-lisbon-1"].healthy and found["node-lisbon-1"].status is not None
    assert found["node-lisbon-1"].status["rows"] == 480
    berlin = found["node-berlin-1"]
    assert not berlin.healthy and berlin.status is None
    assert berlin.problems == ("execution failed: disk full",)


def test_the_dashboard_shows_a_bacalhau_fleet_polled_through_the_source(lisbon, tmp_path):
    """``cosmobac dashboard --fleet bacalhau``: a real dashboard process polls the fake
    orchestrator, whose nodes really run ``cosmobac status --json``."""
    import socket
    import urllib.request

    pytest.importorskip("starlette")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nodes = [lisbon, FakeNode("node-berlin-1", {"city": "berlin"}, "fail:disk full")]
    with FakeOrchestrator(nodes=nodes) as fake:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "cosmobac", "dashboard", "--fleet", "bacalhau",
                "--fleet-option", f"api={fake.url}", "--fleet-option", f"image={IMAGE}",
                "--fleet-every", "1s", "--port", str(port),
            ],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            data: dict[str, Any] = {}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(data.get("nodes", ())) < 2:
                assert proc.poll() is None, proc.communicate()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/nodes") as answer:
                        data = json.load(answer)
                except OSError:
                    pass
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health?node=1") as answer:
                lisbon_health = json.load(answer)
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    rows = {n["name"]: n for n in data["nodes"]}
    assert set(rows) == {"node-berlin-1", "node-lisbon-1"}
    assert rows["node-lisbon-1"]["healthy"] and rows["node-lisbon-1"]["rows"] == 480
    assert rows["node-lisbon-1"]["pending"] == 240  # collected 480, forwarded the first 240
    berlin = rows["node-berlin-1"]
    assert (
        not berlin["healthy"] and berlin["problems"][0]["reason"] == "execution failed: disk full"
    )
    assert lisbon_health["name"] == "node-lisbon-1" and lisbon_health["remote"] is True
    assert [s["consumer"] for s in lisbon_health["sinks"]] == ["archive"]
