"""examples/bacalhau-fleet: its specs are clean, and the app drives the fake orchestrator."""

from __future__ import annotations

import functools
import importlib.util
import json
import tomllib
from pathlib import Path

import pytest

from cosmobac.config import parse_config
from cosmobac_bacalhau.client import BacalhauClient
from cosmobac_bacalhau.validate import judge_spec

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "bacalhau-fleet"


@pytest.fixture(scope="module")
def fleet():
    pytest.importorskip("cosmobac_wasm", reason="the smooth job ships the WASM plugin's module")
    spec = importlib.util.spec_from_file_location("fleet_example", EXAMPLE / "fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(
        BacalhauClient,
        "wait",
        functools.partialmethod(BacalhauClient.wait, interval=0.005, max_interval=0.02),
    )


def test_every_spec_of_the_app_is_accepted(fleet, tmp_path, capsys):
    assert fleet.main(["render", str(tmp_path)]) == 0
    names = sorted(p.stem for p in tmp_path.iterdir())
    assert names == ["collector", "forwarder", "smooth", "switch-anomalies", "upload"]
    for path in tmp_path.iterdir():
        report = judge_spec(json.loads(path.read_text()), source=path.name)
        assert report.verdict == "accepted", [str(p) for p in report.problems]


@pytest.mark.parametrize("name", ["collector.toml", "forwarder.toml", "stages/anomalies.toml"])
def test_the_pipeline_files_are_valid(name):
    if "forwarder" in name or "anomalies" in name:
        pytest.importorskip("cosmobac_cosmos", reason="the forwarder writes to Cosmos DB")
    data = tomllib.loads((EXAMPLE / name).read_text())
    env = {
        "CITY": "lisbon",
        "COSMOBAC_DATA": "/data",
        "COSMOS_KEY": "k",
        "COSMOS_ENDPOINT": "https://acct.documents.azure.com:443/",
    }
    config = parse_config(data, source=name, env=env)
    assert config.store is not None


def test_the_app_deploys_and_steers_the_fleet(fleet, fake, capsys):
    api = ["--api", fake.url, "--city", "lisbon", "--city", "porto"]
    assert fleet.main([*api, "deploy"]) == 0
    out = capsys.readouterr().out
    assert "cosmobac-collect: submitted" in out and "cosmobac-forward: submitted" in out
    assert fleet.main([*api, "switch"]) == 0
    assert "node-porto-1: Completed, exit code 0" in capsys.readouterr().out


def test_a_failing_node_is_reported_and_the_others_results_kept(
    fleet, fake, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert fleet.main(["--api", fake.url, "--city", "berlin", "--city", "lisbon", "upload"]) == 1
    out = capsys.readouterr().out
    assert "node-berlin-1: Failed, exit code 1: disk full" in out
    assert (tmp_path / "upload-results" / "node-lisbon-1" / "stdout").exists()
