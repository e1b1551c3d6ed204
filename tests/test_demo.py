"""``cosmobac demo`` and the ``register_demo_sinks`` hook, with a real SQLite store."""

from __future__ import annotations

import tomllib

import pytest

from cosmobac import hookimpl
from cosmobac.demo import run_demo
from cosmobac.hookspecs import DemoSink
from cosmobac.testing import ListSink, fresh_plugins

pytestmark = pytest.mark.needs_plugins


class OfferingPlugin:
    """Offers the demo a second JSON-lines file, a sink that fails for good, and one that can't
    run here."""

    def __init__(self, tmp_path):
        self.out = tmp_path / "second.jsonl"
        self.stopped: list[str] = []
        self.broken = ListSink(fail=10**6, permanent=True)

    @hookimpl
    def register_sinks(self, register):
        register("broken", lambda: self.broken)

    @hookimpl
    def register_demo_sinks(self, register):
        def second(echo):
            return DemoSink(
                table={"plugin": "jsonl", "name": "second", "path": str(self.out)},
                saved={"plugin": "jsonl", "name": "second", "path": "${OUT:-second.jsonl}"},
                summary=lambda acked, stats, error: [f"second: {acked} rows, error {error}"],
                stop=lambda: self.stopped.append("second"),
            )

        def broken(echo):
            return DemoSink(
                table={"plugin": "broken"},
                saved={"plugin": "broken"},
                summary=lambda acked, stats, error: [f"broken: {error}"],
                stop=lambda: self.stopped.append("broken"),
            )

        def unavailable(echo):
            echo("note: the unavailable sink needs a thing this machine lacks")
            return None

        register("second", second)
        register("broken", broken)
        register("unavailable", unavailable)


@pytest.fixture
def plugins_with_sqlite(monkeypatch):
    monkeypatch.setenv("COSMOBAC_LOAD_PLUGINS", "sqlite")
    with fresh_plugins(entry_points=True) as plugins:
        yield plugins


def test_register_demo_sinks_adds_sinks_to_the_demo_and_its_saved_pipeline(
    tmp_path, plugins_with_sqlite
):
    plugin = OfferingPlugin(tmp_path)
    plugins_with_sqlite.register(plugin, name="offering")
    lines: list[str] = []
    summary = run_demo(
        tmp_path / "demo", duration="1h", cities=1, sensors_per_city=2, echo=lines.append
    )

    rows = summary["rows"]
    assert rows == 1 * 2 * 720
    assert len(plugin.out.read_text().splitlines()) == rows  # the offered sink got every row
    assert summary["sinks"]["second"] == {"acked": rows, "error": None}
    assert summary["sinks"]["broken"]["error"]  # gave up at once: a permanent failure
    assert f"second: {rows} rows, error None" in lines
    assert any(line.startswith("broken: ") for line in lines)
    assert "note: the unavailable sink needs a thing this machine lacks" in lines
    assert sorted(plugin.stopped) == ["broken", "second"]  # each stop called once

    saved = tomllib.loads((tmp_path / "demo" / "pipeline.toml").read_text())
    # the saved table, not the run's; the failed sink is left out of the file
    assert [s.get("name", s["plugin"]) for s in saved["sinks"]] == ["jsonl", "second"]
    assert saved["sinks"][1]["path"] == "${OUT:-second.jsonl}"


def test_register_demo_sinks_prepare_must_return_a_demo_sink(tmp_path, plugins_with_sqlite):
    class Wrong:
        @hookimpl
        def register_demo_sinks(self, register):
            register("wrong", lambda echo: {"plugin": "jsonl"})

    plugins_with_sqlite.register(Wrong(), name="wrong")
    with pytest.raises(TypeError, match="not a DemoSink"):
        run_demo(tmp_path / "demo", duration="1h", cities=1, sensors_per_city=1, echo=print)


def test_without_demo_sinks_the_demo_says_why(tmp_path, plugins_with_sqlite):
    lines: list[str] = []
    run_demo(tmp_path / "demo", duration="1h", cities=1, sensors_per_city=1, echo=lines.append)
    assert any(
        line.startswith("note: forwarding to JSON lines only, no plugin offers the demo another")
        and "cosmobac-cosmos" in line
        for line in lines
    )
