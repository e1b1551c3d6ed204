"""The plugin system: hooks, registry, lazy entry points, errors that name the plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

import cosmobac
from cosmobac import Batch, hookimpl
from cosmobac.cli import cli
from cosmobac.errors import PluginError
from cosmobac.plugins import Plugins
from cosmobac.testing import ListSensor, ListSink, MemoryStore, fresh_plugins, run_cosmobac


class SensorsPlugin:
    @hookimpl
    def register_sensors(self, register):
        register("listed", ListSensor, description="plays back batches")


class StoresPlugin:
    @hookimpl
    def register_stores(self, register):
        register("scratch", MemoryStore)


class TransformsPlugin:
    @hookimpl
    def register_transforms(self, register):
        register("double", lambda: lambda b: b.with_columns(temperature=b["temperature"] * 2))


class SinksPlugin:
    @hookimpl
    def register_sinks(self, register):
        register("listsink", ListSink)


class CommandsPlugin:
    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="hello-test")
        def hello() -> None:
            click.echo("hello from a plugin")


def test_register_sensors_hook(cosmobac_plugins):
    cosmobac_plugins.register(SensorsPlugin(), name="sensors-plugin")
    component = cosmobac_plugins.get("sensor", "listed")
    assert component.plugin == "sensors-plugin" and component.description == "plays back batches"
    assert isinstance(cosmobac_plugins.create("sensor", "listed"), ListSensor)


def test_register_stores_hook(cosmobac_plugins):
    cosmobac_plugins.register(StoresPlugin(), name="stores-plugin")
    assert isinstance(cosmobac_plugins.create("store", "scratch"), MemoryStore)


def test_register_transforms_hook(cosmobac_plugins):
    cosmobac_plugins.register(TransformsPlugin(), name="transforms-plugin")
    double = cosmobac_plugins.create("transform", "double")
    batch = Batch.from_columns(timestamp=[1], sensor_id=["a"], temperature=[2.0])
    assert double(batch)["temperature"].tolist() == [4.0]


def test_register_sinks_hook(cosmobac_plugins):
    cosmobac_plugins.register(SinksPlugin(), name="sinks-plugin")
    assert cosmobac_plugins.get("sink", "listsink").kind == "sink"


def test_register_commands_hook():
    with fresh_plugins(CommandsPlugin()) as plugins:
        group = click.Group(commands=dict(cli.commands))
        plugins.add_commands(group)
        result = CliRunner().invoke(group, ["hello-test"])
    assert result.output == "hello from a plugin\n"


def test_builtins_register_through_the_same_hooks(cosmobac_plugins):
    by_name = {c.name: c for c in cosmobac_plugins.components()}
    assert by_name["jsonl"].plugin == "cosmobac.sinks.jsonl"
    assert by_name["jsonl"].distribution == "cosmobac"
    assert {"jsonl", "stdout", "calibrate", "memory"} <= set(by_name)
    assert by_name["memory"].plugin == "cosmobac.stores.memory"
    assert by_name["memory"].kind == "store"


def test_duplicate_component_names_name_both_plugins(cosmobac_plugins):
    class Again:
        @hookimpl
        def register_sinks(self, register):
            register("jsonl", ListSink)

    cosmobac_plugins.register(Again(), name="again")
    with pytest.raises(PluginError, match="'again' registers sink 'jsonl'.*'cosmobac.sinks.jsonl'"):
        cosmobac_plugins.components()


def test_a_plugin_failing_in_its_hook_is_named(cosmobac_plugins):
    class Broken:
        @hookimpl
        def register_sinks(self, register):
            raise RuntimeError("boom")

    cosmobac_plugins.register(Broken(), name="broken-plugin")
    with pytest.raises(PluginError, match="'broken-plugin' failed in register_sinks.*boom"):
        cosmobac_plugins.components()


def test_unknown_hook_fails_check_pending_naming_the_plugin(cosmobac_plugins):
    class Typo:
        @hookimpl
        def register_sink(self, register):  # missing "s"
            pass

    with pytest.raises(PluginError, match="register_sink"):
        cosmobac_plugins.register(Typo(), name="typo-plugin")


def test_importing_cosmobac_loads_no_plugin():
    code = (
        "import sys, cosmobac, cosmobac.pipeline, cosmobac.plugins as p;"
        "assert p._default is None, 'plugins loaded at import';"
        "assert 'cosmobac.sinks.jsonl' not in sys.modules, 'built-ins imported eagerly';"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def make_distribution(site, name="cosmobac-acme", body=None):
    """A real installed distribution (dist-info with an entry point) in folder ``site``."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(
        body
        or textwrap.dedent(
            """
            from cosmobac import hookimpl
            from cosmobac.testing import ListSink

            class AcmeSink(ListSink):
                '''Keeps documents for ACME.'''

            @hookimpl
            def register_sinks(register):
                register("acme", AcmeSink)
            """
        )
    )
    info = site / f"{module}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[cosmobac]\nacme = {module}\n")
    return module


def run_cli(site, *args, env_extra=None):
    env = {"PYTHONPATH": str(site), **(env_extra or {})}
    return run_cosmobac(*args, env=env, check=False)


def test_downstream_distribution_is_listed_and_usable_in_a_pipeline(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site)
    listed = run_cli(site, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    acme = [c for c in json.loads(listed.stdout) if c["name"] == "acme"]
    assert acme == [
        {
            "name": "acme",
            "kind": "sink",
            "plugin": "acme",
            "distribution": "cosmobac-acme",
            "version": "1.2.3",
            "description": "Keeps documents for ACME.",
        }
    ]
    code = textwrap.dedent(
        """
        from cosmobac import Batch
        from cosmobac.pipeline import Lane, Pipeline
        from cosmobac.plugins import get_plugins
        from cosmobac.testing import MemoryStore
        store = MemoryStore()
        store.append(Batch.from_columns(timestamp=[1, 2], sensor_id=["a", "b"]))
        sink = get_plugins().create("sink", "acme")
        report = Pipeline(store=store, lanes=[Lane("acme", sink)]).forward()
        print(len(sink.written), report.lanes[0].acked)
        """
    )
    import os

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert out.stdout.split() == ["2", "2"], out.stderr


def test_restricting_plugins_with_the_environment_variable(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site)
    names = lambda out: {c["name"] for c in json.loads(out.stdout)}  # noqa: E731
    assert "acme" not in names(
        run_cli(site, "plugins", "--json", env_extra={"COSMOBAC_LOAD_PLUGINS": ""})
    )
    assert "acme" in names(
        run_cli(site, "plugins", "--json", env_extra={"COSMOBAC_LOAD_PLUGINS": "acme"})
    )


def test_restricting_plugins_in_code(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site)
    monkeypatch.syspath_prepend(str(site))
    assert "acme" in {c.name for c in Plugins().components("sink")}
    assert "acme" not in {c.name for c in Plugins(allow=()).components("sink")}


def test_broken_distribution_fails_with_an_error_naming_it(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, body="raise ImportError('missing dependency xyz')\n")
    out = run_cli(site, "plugins")
    assert out.returncode == 1
    assert "plugin 'acme' (distribution cosmobac-acme) failed to load" in out.stderr
    assert "missing dependency xyz" in out.stderr
    assert "Traceback" not in out.stderr


def test_plugins_command_prints_a_table(cosmobac_plugins):
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    header, *rows = result.output.splitlines()
    assert header.split() == ["NAME", "KIND", "PLUGIN", "DISTRIBUTION"]
    assert any(r.split()[:2] == ["jsonl", "sink"] for r in rows)


def test_hookimpl_is_reexported():
    assert cosmobac.hookimpl is hookimpl
