"""``cosmobac dashboard --fleet SOURCE``: a fleet known through a fleet source, not its stores."""

from __future__ import annotations

import threading

import pytest

from cosmobac import hookimpl
from cosmobac.interfaces import FleetNode
from cosmobac.testing import fresh_plugins

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from cosmobac.dashboard.app import create_app
from cosmobac.dashboard.fleet import RemoteFleet

STATUS = {
    "rows": 1200,
    "healthy": False,
    "problems": [{"sink": "hook", "reason": "sink failed permanently", "error": "HTTP 401"}],
    "forwarder": {"running": True, "pid": 7, "started": None, "last_seen": None},
    "sinks": [
        {"consumer": "archive", "plugin": "jsonl", "pending": 3, "dead_letters": 1,
         "rows_per_second": 2.5, "state": "ok"},
        {"consumer": "hook", "plugin": "webhook", "pending": 40, "dead_letters": 0,
         "rows_per_second": 0.0, "state": "stopped"},
    ],
}  # fmt: skip


class Source:
    """A fleet of three: healthy, a stopped sink, and one that did not answer."""

    def __init__(self) -> None:
        self.polls = 0
        self.polled = threading.Event()

    def poll(self) -> list[FleetNode]:
        self.polls += 1
        self.polled.set()
        return [
            FleetNode("edge-b", STATUS, ("hook: sink failed permanently: HTTP 401",)),
            FleetNode("edge-a", {"rows": 10, "healthy": True, "sinks": []}),
            FleetNode("edge-c", None, ("did not answer: no execution on the node",)),
        ]


class Broken:
    def poll(self) -> list[FleetNode]:
        raise ConnectionError("orchestrator unreachable")


def client_for(source) -> TestClient:
    fleet = RemoteFleet(source, name="test", every=60.0)
    return TestClient(create_app((), fleet=fleet))


def test_the_fleet_page_lists_every_node_the_source_reports():
    source = Source()
    with client_for(source) as client:
        assert source.polled.wait(10)
        data = client.get("/api/nodes").json()
    assert data["mode"] == "fleet" and data["source"] == "test" and data["error"] is None
    rows = {n["name"]: n for n in data["nodes"]}
    assert list(rows) == ["edge-a", "edge-b", "edge-c"]  # by node id
    assert rows["edge-a"]["healthy"] and rows["edge-a"]["rows"] == 10
    b = rows["edge-b"]
    assert (b["healthy"], b["rows"], b["pending"], b["dead_letters"]) == (False, 1200, 43, 1)
    assert b["rows_per_second"] == 2.5 and b["forwarder"]["running"] is True
    assert b["problems"] == [{"sink": "", "reason": "hook: sink failed permanently: HTTP 401"}]
    c = rows["edge-c"]
    assert c["rows"] is None and c["forwarder"]["running"] is False and not c["healthy"]


def test_opening_a_node_shows_its_status_and_not_its_series():
    source = Source()
    with client_for(source) as client:
        assert source.polled.wait(10)
        health = client.get("/api/health?node=1").json()
        series = client.get("/api/series?node=1&city=x")
        missing = client.get("/api/health?node=7")
    assert health["name"] == "edge-b" and health["remote"] is True
    assert [s["consumer"] for s in health["sinks"]] == ["archive", "hook"]
    assert health["healthy"] is False and health["rows"] == 1200
    assert series.status_code == 400 and "store is on the node" in series.json()["error"]
    assert missing.status_code == 400 and missing.json()["parameter"] == "node"


def test_a_source_that_fails_is_shown_and_polled_again():
    with client_for(Broken()) as client:
        for _ in range(100):
            data = client.get("/api/nodes").json()
            if data["error"]:
                break
            threading.Event().wait(0.05)
    assert data["nodes"] == [] and "orchestrator unreachable" in data["error"]


class TestFleet:
    @hookimpl
    def register_fleet_sources(self, register):
        register("three", Source)


def test_the_command_builds_the_source_from_fleet_options_and_names_bad_ones(monkeypatch):
    from click.testing import CliRunner

    from cosmobac.dashboard.commands import dashboard_command

    started = {}

    def run(app, **kwargs):
        started["fleet"] = app.state.fleet
        started.update(kwargs)

    monkeypatch.setattr("uvicorn.run", run)
    runner = CliRunner()
    with fresh_plugins(TestFleet()):
        ok = runner.invoke(dashboard_command, ["--fleet", "three", "--port", "0"])
        bad = runner.invoke(dashboard_command, ["--fleet", "three", "--fleet-option", "zone=x"])
        both = runner.invoke(dashboard_command, ["a.toml", "--fleet", "three"])
        none = runner.invoke(dashboard_command, [])
        loose = runner.invoke(dashboard_command, ["--fleet", "three", "--fleet-option", "zone"])
    assert ok.exit_code == 0, ok.output
    assert isinstance(started["fleet"], RemoteFleet) and started["host"] == "127.0.0.1"
    assert "the three fleet (polled every 30 s)" in ok.output
    assert bad.exit_code == 2 and "zone" in bad.output
    assert both.exit_code == 2 and "one of them" in both.output
    assert none.exit_code == 2
    assert loose.exit_code == 2 and "KEY=VALUE" in loose.output
