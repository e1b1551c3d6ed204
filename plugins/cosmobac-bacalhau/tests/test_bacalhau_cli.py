"""``cosmobac bacalhau ...`` end to end, against the fake orchestrator."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click
import pytest
from bacalhau_support import EXAMPLES
from click.testing import CliRunner
from fake_orchestrator import FakeNode, FakeOrchestrator

from cosmobac.cli import cli
from cosmobac.plugins import Plugins
from cosmobac_bacalhau.client import BacalhauClient

IMAGE = "registry.example.com/cosmobac:0.1.0"
CSV = "sensor_id,timestamp,temperature\na,1,20\nb,2,5\na,3,22\n"


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(
        BacalhauClient,
        "wait",
        functools.partialmethod(BacalhauClient.wait, interval=0.005, max_interval=0.02),
    )


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[store]\nplugin = "sqlite"\npath = "${COSMOBAC_DATA}/edge.db"\n'
        '[[sinks]]\nplugin = "jsonl"\npath = "${COSMOBAC_DATA}/out.jsonl"\n'
    )
    return path


def test_register_commands_bacalhau_adds_the_bacalhau_group():
    group = click.Group(name="cosmobac", commands=dict(cli.commands))
    Plugins().add_commands(group)
    bacalhau = group.commands["bacalhau"]
    assert isinstance(bacalhau, click.Group)
    assert set(bacalhau.commands) == {
        "render",
        "validate",
        "submit",
        "status",
        "wait",
        "results",
        "stop",
        "nodes",
        "fleet-status",
        "run-local",
    }
    assert "Bacalhau" in CliRunner().invoke(group, ["bacalhau", "--help"]).output


# -- render and validate ----------------------------------------------------------------------------
def test_render_prints_a_spec_in_the_canonical_wire_format(run):
    code, out, err = run("bacalhau", "render", str(EXAMPLES / "docker-hello.yaml"))
    assert code == 0, err
    job = json.loads(out)
    assert job["Name"] == "A Simple Docker Job" and job["Tasks"][0]["Engine"]["Type"] == "docker"
    code, out, _ = run("bacalhau", "render", "-", "--format", "yaml", stdin=json.dumps(job))
    assert out.startswith("Name: A Simple Docker Job\n")
    code, out, _ = run("bacalhau", "render", "-", "--body", "--force", stdin=json.dumps(job))
    assert json.loads(out)["Force"] is True


def test_render_builds_the_flows(run, pipeline_file, tmp_path):
    code, out, err = run(
        "bacalhau",
        "render",
        "--flow",
        "pipeline",
        "--config",
        str(pipeline_file),
        "--image",
        IMAGE,
        "--city",
        "lisbon",
        "--city",
        "porto",
        "--select",
        "region=eu",
        "--secret",
        "COSMOS_KEY",
    )
    assert code == 0, err
    job = json.loads(out)
    assert job["Name"] == "cosmobac-forward" and job["Type"] == "daemon"
    assert job["Constraints"] == [
        {"Key": "region", "Operator": "=", "Values": ["eu"]},
        {"Key": "city", "Operator": "in", "Values": ["lisbon", "porto"]},
    ]
    assert job["Tasks"][0]["Env"]["COSMOS_KEY"] == "env:COSMOS_KEY"
    code, out, _ = run(
        "bacalhau",
        "render",
        "--flow",
        "upload",
        "--image",
        IMAGE,
        "--cosmos-endpoint",
        "https://a.example:443/",
        "--format",
        "yaml",
    )
    assert code == 0 and "Type: ops" in out
    code, out, _ = run(
        "bacalhau",
        "render",
        "--flow",
        "switch",
        "--config",
        str(pipeline_file),
        "--image",
        IMAGE,
        "--wait",
        "15",
        "-o",
        str(tmp_path / "switch.json"),
    )
    assert code == 0
    params = json.loads((tmp_path / "switch.json").read_text())["Tasks"][0]["Engine"]["Params"]
    assert params["Parameters"][-2:] == ["--wait", "15"]


def test_render_usage_errors(run, pipeline_file, monkeypatch):
    monkeypatch.delenv("COSMOBAC_IMAGE", raising=False)
    code, _, err = run("bacalhau", "render", "--flow", "pipeline", "--config", str(pipeline_file))
    assert code == 2 and "--image" in err
    code, _, err = run("bacalhau", "render")
    assert code == 2 and "give a SPEC file or --flow" in err
    code, _, err = run("bacalhau", "render", str(EXAMPLES / "custom-task-type.yaml"))
    assert code == 1 and "flibble" in err


def test_validate_judges_each_spec_and_fails_when_one_is_rejected(run):
    specs = sorted(str(p) for p in EXAMPLES.iterdir() if p.suffix in (".json", ".yaml"))
    code, out, _ = run("bacalhau", "validate", *specs)
    assert code == 1
    verdicts = dict(line.rsplit(": ", 1) for line in out.splitlines() if not line[0].isspace())
    assert {Path(k).name: v for k, v in verdicts.items()}["wasm_legacy.yaml"] == "normalised"
    assert "Tasks[0].Engine.Type: no Bacalhau node runs engine 'flibble'" in out
    code, out, _ = run(
        "bacalhau",
        "validate",
        str(EXAMPLES / "custom-task-type.yaml"),
        "--engine",
        "flibble",
        "--json",
    )
    assert code == 0 and json.loads(out)["verdict"] == "accepted"
    code, out, _ = run("bacalhau", "validate", "-q", str(EXAMPLES / "docker-hello.yaml"))
    assert out.strip().endswith("docker-hello.yaml: normalised")


# -- the orchestrator --------------------------------------------------------------------------------
def job_file(tmp_path: Path, job_type: str = "ops") -> str:
    path = tmp_path / f"{job_type}.json"
    path.write_text(
        json.dumps(
            {
                "Name": f"probe-{job_type}",
                "Type": job_type,
                "Tasks": [
                    {
                        "Name": "main",
                        "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.37.0"}},
                        **(
                            {
                                "Publisher": {"Type": "local"},
                                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                            }
                            if job_type == "ops"
                            else {}
                        ),
                    }
                ],
            }
        )
    )
    return str(path)


def test_submit_wait_status_results_on_a_partly_failing_fleet(run, fake, tmp_path):
    api = ("bacalhau", "--api", fake.url)
    code, out, err = run(
        *api, "submit", job_file(tmp_path), "--wait", "--results", str(tmp_path / "r")
    )
    assert code == 1  # Berlin failed
    job_id = out.splitlines()[0]
    assert job_id.startswith("j-")
    assert "node-berlin-1: Failed, exit code 1: disk full" in out
    assert "partial failure" in out
    assert (tmp_path / "r" / "node-lisbon-1" / "stdout").exists()
    assert "Running" in err  # progress on stderr
    code, out, _ = run(*api, "status", job_id)
    assert code == 1 and "node-porto-1: Completed, exit code 0" in out
    code, out, _ = run(*api, "status", job_id, "--json", "--history")
    assert code == 1 and '"failed": [\n    "node-berlin-1"\n  ]' in out
    code, out, err = run(*api, "results", job_id, "-o", str(tmp_path / "again"))
    assert code == 1
    assert "node-lisbon-1: " in out and "node-berlin-1: failed: disk full" in err
    code, out, _ = run(*api, "wait", job_id)
    assert code == 1


def test_results_of_a_daemon_job_say_why_there_are_none(run, fake, tmp_path):
    api = ("bacalhau", "--api", fake.url)
    code, out, _ = run(*api, "submit", job_file(tmp_path, "daemon"), "--wait")
    job_id = out.splitlines()[0]
    code, out, err = run(*api, "results", job_id, "-o", str(tmp_path / "r"))
    assert code == 1
    assert f"({job_id}) is a daemon job" in err
    assert "results only for batch and ops jobs" in err
    assert not (tmp_path / "r").exists()


def test_wait_times_out_with_status_3_and_stop_ends_a_daemon(run, fake, tmp_path):
    api = ("bacalhau", "--api", fake.url)
    code, out, _ = run(*api, "submit", job_file(tmp_path, "daemon"))
    job_id = out.strip()
    code, _, err = run(*api, "wait", job_id, "--until", "terminal", "--timeout", "0.1s")
    assert code == 3 and "still Running" in err
    code, out, _ = run(*api, "wait", job_id)  # daemons: until they run everywhere
    assert code == 0
    code, out, _ = run(*api, "stop", job_id, "--reason", "rolling out v2")
    assert code == 0 and "stopping" in out
    assert fake.jobs[job_id].stop_reason == "rolling out v2"


def test_nodes(run, fake):
    code, out, _ = run("bacalhau", "--api", fake.url, "nodes", "--select", "city=porto")
    assert code == 0
    assert out.splitlines()[0].split() == ["NODE", "TYPE", "CONNECTION", "LABELS", "ENGINES"]
    assert "node-porto-1" in out and "node-lisbon-1" not in out
    code, out, _ = run("bacalhau", "--api", fake.url, "nodes", "--json")
    assert [n["id"] for n in json.loads(out)] == ["node-lisbon-1", "node-porto-1", "node-berlin-1"]


def test_errors_are_one_clear_line(run, tmp_path):
    with FakeOrchestrator(nodes=[FakeNode("n")], users={"k" * 24: ["*"]}) as fake:
        code, _, err = run("bacalhau", "--api", fake.url, "submit", job_file(tmp_path))
    assert code == 1 and "HTTP 401" in err and "BACALHAU_API_KEY" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "Type: batch\nTasks:\n- Name: main\n  Engine: {Type: docker}\n  Env: {mode: fast}\n"
    )
    code, _, err = run("bacalhau", "--api", "127.0.0.1:9", "submit", str(bad))
    assert code == 1
    assert "Tasks[0].Env['mode']" in err and "Tasks[0].Engine.Params.Image" in err


# -- run-local -----------------------------------------------------------------------------------------
def test_run_local_runs_a_rendered_wasm_job(run, tmp_path):
    pytest.importorskip("cosmobac_wasm")
    data = tmp_path / "readings.csv"
    data.write_text(CSV)
    spec = tmp_path / "job.json"
    code, _, err = run(
        "bacalhau",
        "render",
        "--flow",
        "wasm",
        "--kernel",
        "moving_average",
        "--columns",
        "temperature",
        "--params",
        "2",
        "--data-file",
        str(data),
        "-o",
        str(spec),
    )
    assert code == 0, err
    code, _out, err = run("bacalhau", "run-local", str(spec), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert "exit code: 0" in err
    assert (tmp_path / "out" / "outputs" / "readings.csv").read_text().splitlines()[3] == "a,3,21"
    code, _, err = run(
        "bacalhau",
        "render",
        "--flow",
        "wasm",
        "--kernel",
        "no_such_kernel",
        "--columns",
        "temperature",
        "--data-file",
        str(data),
        "-o",
        str(tmp_path / "bad.json"),
    )
    code, _, err = run(
        "bacalhau", "run-local", str(tmp_path / "bad.json"), "-o", str(tmp_path / "out2")
    )
    assert code == 2 and "exit code: 2" in err  # the kernel module's "bad arguments"


def test_run_local_explains_a_docker_job(run, tmp_path, pipeline_file):
    spec = tmp_path / "job.json"
    run(
        "bacalhau",
        "render",
        "--flow",
        "pipeline",
        "--config",
        str(pipeline_file),
        "--image",
        IMAGE,
        "-o",
        str(spec),
    )
    code, out, _ = run("bacalhau", "run-local", str(spec), "-o", str(tmp_path / "here"))
    assert code == 0
    assert "docker tasks are not run locally" in out
    assert "-v /var/lib/cosmobac:/data:rw" in out
    assert f"{IMAGE} forward /data/config/pipeline.toml --follow --seed" in out
    assert (tmp_path / "here" / "inputs" / "etc/cosmobac/pipeline.toml").read_text() == (
        pipeline_file.read_text()
    )


def test_a_job_no_node_ran_is_a_failure_too(run, fake, tmp_path):
    spec = json.loads(Path(job_file(tmp_path)).read_text())
    spec["Constraints"] = [{"Key": "city", "Operator": "=", "Values": ["oslo"]}]
    path = tmp_path / "nowhere.json"
    path.write_text(json.dumps(spec))
    api = ("bacalhau", "--api", fake.url)
    code, out, _ = run(*api, "submit", str(path), "--wait")
    assert code == 1 and "Failed: not enough nodes to run job" in out
    job_id = out.splitlines()[0]
    code, _, _ = run(*api, "status", job_id)
    assert code == 1
    code, _, err = run(*api, "results", job_id, "-o", str(tmp_path / "r"))
    assert code == 1 and "not enough nodes" in err
