"""cosmobac without its plugins: the command line works, and asking for what a plugin provides
names the distribution to install.

Run in every session: with the plugins installed, ``COSMOBAC_LOAD_PLUGINS=""`` leaves them out (the
message then says they are not loaded); in ``nox -s core_alone`` they are not installed at all (the
message says what to ``pip install``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import cosmobac
from cosmobac.plugins import BUILTIN_MODULES, PROVIDED_BY
from cosmobac.testing import run_cosmobac

NO_PLUGINS = {"COSMOBAC_LOAD_PLUGINS": ""}


def installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def advice(distribution: str) -> str:
    """What the error says to do about a missing distribution, installed or not."""
    return "not loaded" if installed(distribution) else f"pip install {distribution}"


def test_version_is_the_installed_distributions():
    assert cosmobac.__version__ == metadata.version("cosmobac")


def test_importing_cosmobac_imports_no_plugin():
    code = "import sys, cosmobac, cosmobac.cli; print([m for m in sys.modules if m.startswith('cosmobac_')])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_and_plugins_work_without_plugins():
    help_text = run_cosmobac("--help", env=NO_PLUGINS).stdout
    for command in ("run", "collect", "forward", "status", "plugins", "demo", "evaluate"):
        assert command in help_text
    listed = json.loads(run_cosmobac("plugins", "--json", env=NO_PLUGINS).stdout)
    assert listed, "the built-ins register components"
    assert {c["distribution"] for c in listed} == {"cosmobac"}
    assert {c["plugin"] for c in listed} <= set(BUILTIN_MODULES)


@pytest.mark.parametrize(
    ("table", "distribution"),
    [
        ('[store]\nplugin = "sqlite"\npath = "x.db"', "cosmobac-sqlite"),
        (
            '[store]\nplugin = "sqlite"\npath = "x.db"\n[[sinks]]\nplugin = "cosmos"\n'
            'endpoint = "http://127.0.0.1:1/"\ndatabase = "d"\ncontainer = "c"\nkey = "k"',
            "cosmobac-cosmos",
        ),
    ],
)
def test_a_config_naming_a_missing_plugin_says_which_distribution_to_install(
    tmp_path, table, distribution
):
    config = tmp_path / "pipeline.toml"
    config.write_text(textwrap.dedent(table))
    done = run_cosmobac("forward", config, env=NO_PLUGINS, check=False, cwd=tmp_path)
    assert done.returncode != 0
    assert distribution in done.stderr and advice(distribution) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", sorted(name for kind, name in PROVIDED_BY if kind == "command"))
def test_a_plugin_command_names_its_distribution_when_missing(command):
    distribution = PROVIDED_BY[("command", command)]
    done = run_cosmobac(command, "--help", env=NO_PLUGINS, check=False)
    assert done.returncode == 2
    assert f"no command {command!r}" in done.stderr and advice(distribution) in done.stderr


def test_an_unknown_command_is_still_clicks_usage_error():
    done = run_cosmobac("no-such-command", env=NO_PLUGINS, check=False)
    assert done.returncode == 2 and "No such command" in done.stderr


def test_the_demo_without_a_store_plugin_says_what_to_install(tmp_path):
    done = run_cosmobac("demo", "--dir", tmp_path / "demo", env=NO_PLUGINS, check=False)
    assert done.returncode != 0
    assert "cosmobac-sqlite" in done.stderr and advice("cosmobac-sqlite") in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("cosmobac_sqlite") is not None,
    reason="checks the core-alone install (nox -s core_alone), where no plugin is importable",
)
def test_core_alone_has_no_plugin_distribution_installed():
    for distribution in set(PROVIDED_BY.values()):
        assert not installed(distribution), f"{distribution} is installed in a core-alone session"
