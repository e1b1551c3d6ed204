"""The job builders: the specs they make (secrets by reference, config shipped as an input, names
unique or stable), the pipeline files they refuse, and the jobs on the fake orchestrator."""

from __future__ import annotations

import json
import sys
import textwrap
import tomllib

import pytest

from cosmobac_bacalhau import dataurl
from cosmobac_bacalhau.builders import (
    DATA,
    LIVE_CONFIG,
    cosmos_upload_config,
    pipeline_job,
    switch_job,
    upload_job,
    wasm_job,
)
from cosmobac_bacalhau.errors import BacalhauAPIError, JobSpecError
from cosmobac_bacalhau.model import Constraint, Job, dumps_json, dumps_yaml, loads_job
from cosmobac_bacalhau.validate import check_job, judge_spec

IMAGE = "registry.example.com/cosmobac:0.1.0"
EDGE = textwrap.dedent(
    """
    [store]
    plugin = "sqlite"
    path = "${COSMOBAC_DATA}/edge.db"

    [[sinks]]
    plugin = "jsonl"
    name = "archive-${CITY}"
    path = "${COSMOBAC_DATA}/archive.jsonl"
    """
).encode()


def inputs(job: Job) -> dict[str, dict]:
    return {s.target: {"type": s.source.type, **s.source.params} for s in job.task.input_sources}


def shipped(job: Job, target: str) -> bytes:
    return dataurl.decode(inputs(job)[target]["URL"])[1]


def assert_clean(job: Job) -> None:
    assert [p for p in check_job(job) if p.severity != "info"] == []
    report = judge_spec(json.loads(dumps_json(job)))
    assert report.verdict == "accepted", [str(p) for p in report.problems]


# -- the pipeline on every node ----------------------------------------------------------------------
def test_the_forwarder_daemon_follows_a_live_config_seeded_from_the_shipped_one(monkeypatch):
    monkeypatch.setenv("CITY", "secret-value-from-this-machine")
    job = pipeline_job(EDGE, image=IMAGE, cities=["lisbon", "porto"], host_env=["CITY"])
    assert (job.name, job.type, job.count) == ("cosmobac-forward", "daemon", None)
    params = job.task.engine.params
    assert params == {
        "Image": IMAGE,
        "Parameters": ["forward", LIVE_CONFIG, "--follow", "--seed", "/etc/cosmobac/pipeline.toml"],
    }
    assert "Entrypoint" not in params  # the image's ENTRYPOINT is cosmobac
    assert shipped(job, "/etc/cosmobac/pipeline.toml") == EDGE  # the file, not env vars
    assert inputs(job)[DATA] == {
        "type": "local",
        "SourcePath": "/var/lib/cosmobac",
        "ReadWrite": True,
        "CreateAs": "dir",
    }
    assert job.task.env == {"COSMOBAC_DATA": DATA, "CITY": "env:CITY"}
    assert job.constraints == (Constraint("city", "in", ("lisbon", "porto")),)
    assert job.task.network.type == "Full"
    assert job.task.publisher is None  # daemons have no results
    assert "secret-value-from-this-machine" not in dumps_json(job)
    assert_clean(job)


def test_secrets_travel_as_references_to_the_nodes_environment(monkeypatch):
    monkeypatch.setenv("COSMOS_KEY", "s3cr3t-account-key")
    config = EDGE + b'\n[[sinks]]\nplugin = "webhook"\nurl = "https://h.example/x"\n'
    config += b'token = "${COSMOS_KEY}"\n'
    job = pipeline_job(config, image=IMAGE, secrets=["COSMOS_KEY"], host_env=["CITY"])
    assert job.task.env["COSMOS_KEY"] == "env:COSMOS_KEY"
    assert "s3cr3t" not in dumps_json(job) and "s3cr3t" not in dumps_yaml(job)


def test_one_shot_jobs_get_unique_names_and_publish_their_output():
    first = pipeline_job(EDGE, image=IMAGE, job_type="ops", stage="run", host_env=["CITY"])
    second = pipeline_job(EDGE, image=IMAGE, job_type="ops", stage="run", host_env=["CITY"])
    assert first.name != second.name and first.name.startswith("cosmobac-run-")
    assert first.task.publisher is not None and first.task.publisher.type == "local"
    assert first.task.engine.params["Parameters"] == ["run", "/etc/cosmobac/pipeline.toml"]
    collect = pipeline_job(EDGE, image=IMAGE, stage="collect", host_env=["CITY"])
    assert collect.name == "cosmobac-collect" and collect.task.network.type == "None"
    assert_clean(first)


@pytest.mark.parametrize(
    ("config", "code"),
    [
        (
            b'[store]\nplugin = "sqlite"\npath = "/data/e.db"\n[[sinks]]\nplugin = "x"\n'
            b'key = "${COSMOS_KEY}"\n',
            "config-variable",
        ),
        (
            b'[store]\nplugin = "sqlite"\npath = "/data/e.db"\n[[sinks]]\nplugin = "cosmos"\n'
            b'key = "AbC123=="\n',
            "config-secret",
        ),
        (b'[store]\nplugin = "sqlite"\npath = "edge.db"\n', "config-store"),
        (b'[store]\nplugin = "sqlite"\npath = "${DATA_DIR:-/var/lib/x}/edge.db"\n', "config-store"),
        (b"[store\n", "config"),
    ],
    ids=[
        "unset variable",
        "literal secret",
        "store in the container",
        "default outside",
        "not TOML",
    ],
)
def test_a_pipeline_file_that_would_not_work_on_the_nodes_is_refused(config, code):
    with pytest.raises(JobSpecError) as raised:
        pipeline_job(config, image=IMAGE)
    assert [p.code for p in raised.value.problems] == [code]


def test_a_store_path_set_on_the_node_is_not_second_guessed():
    config = b'[store]\nplugin = "sqlite"\npath = "${STORE}"\n'
    assert pipeline_job(config, image=IMAGE, host_env=["STORE"]).task.env["STORE"] == "env:STORE"


def test_label_values_are_checked_before_anything_is_sent():
    with pytest.raises(JobSpecError, match="sao-paulo"):
        pipeline_job(EDGE, image=IMAGE, cities=["São Paulo"], host_env=["CITY"])
    job = pipeline_job(
        EDGE, image=IMAGE, selector="region=eu, city notin (berlin)", host_env=["CITY"]
    )
    assert job.constraints == (
        Constraint("region", "=", ("eu",)),
        Constraint("city", "notin", ("berlin",)),
    )


def test_the_config_can_be_a_file(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_bytes(EDGE)
    job = pipeline_job(path, image=IMAGE, host_env=["CITY"])
    assert shipped(job, "/etc/cosmobac/pipeline.toml") == EDGE


# -- upload to Cosmos --------------------------------------------------------------------------------
def test_the_upload_job_forwards_each_nodes_backlog_once():
    job = upload_job(
        image=IMAGE,
        cosmos={
            "endpoint": "https://acct.documents.azure.com:443/",
            "database": "telemetry",
            "container": "readings",
        },
        cities=["lisbon"],
    )
    assert job.type == "ops" and job.name.startswith("cosmobac-upload-")
    assert job.task.engine.params["Parameters"] == ["forward", "/etc/cosmobac/upload.toml"]
    config = tomllib.loads(shipped(job, "/etc/cosmobac/upload.toml").decode())
    assert config["sinks"][0] == {
        "plugin": "cosmos",
        "name": "cosmos",
        "endpoint": "https://acct.documents.azure.com:443/",
        "database": "telemetry",
        "container": "readings",
        "partition_key": "/sensor_id",
        "key": "${COSMOS_KEY}",
    }
    assert config["store"] == {"plugin": "sqlite", "path": "${COSMOBAC_DATA}/edge.db"}
    assert job.task.env["COSMOS_KEY"] == "env:COSMOS_KEY"
    assert job.task.publisher is not None
    assert_clean(job)
    entra = cosmos_upload_config(endpoint="e", database="d", container="c", secret=None)
    assert b'credential = "default"' in entra
    with pytest.raises(ValueError, match="needs a pipeline file or cosmos"):
        upload_job(image=IMAGE)


def test_the_upload_config_is_a_valid_pipeline_for_the_cosmos_plugin():
    pytest.importorskip("cosmobac_cosmos", reason="needs the cosmos plugin")
    from cosmobac.config import parse_config

    text = cosmos_upload_config(endpoint="https://a.example:443/", database="d", container="c")
    config = parse_config(
        tomllib.loads(text.decode()), env={"COSMOBAC_DATA": "/data", "COSMOS_KEY": "k"}
    )
    assert config.sinks[0].plugin == "cosmos"


# -- switching stages ------------------------------------------------------------------------------
def test_the_switch_job_installs_a_new_file_and_waits_for_the_forwarder():
    new = EDGE.replace(b"archive.jsonl", b"archive-2.jsonl")
    job = switch_job(new, image=IMAGE, cities=["porto"], wait=30)
    assert job.type == "ops" and job.name.startswith("cosmobac-switch-")
    params = job.task.engine.params
    assert params["Entrypoint"] == ["python", "-m", "cosmobac.live_config"]
    assert params["Parameters"] == [
        "install",
        "/etc/cosmobac/next.toml",
        LIVE_CONFIG,
        "--wait",
        "30",
    ]
    assert shipped(job, "/etc/cosmobac/next.toml") == new
    assert job.task.timeouts.execution_timeout == 150
    assert_clean(job)
    with pytest.raises(ValueError, match="must be under /data"):
        switch_job(new, image=IMAGE, live_config="/etc/pipeline.toml")
    with pytest.raises(JobSpecError, match="config-secret|a secret is written"):
        switch_job(new + b'\n[x]\npassword = "hunter2"\n', image=IMAGE)


# -- WASM over each node's data -------------------------------------------------------------------
def test_the_wasm_job_ships_the_plugins_module_and_calls_start():
    pytest.importorskip("cosmobac_wasm")
    from cosmobac_wasm import builtin_module_path

    job = wasm_job(
        kernel="moving_average", columns=["temperature", "humidity"], params=[12], cities=["lisbon"]
    )
    params = job.task.engine.params
    assert params == {
        "EntryModule": "/app/cosmobac_kernels.wasm",
        "Entrypoint": "_start",
        "Parameters": ["/inputs/readings.csv", "/outputs/readings.csv"],
    }
    assert shipped(job, "/app/cosmobac_kernels.wasm") == builtin_module_path().read_bytes()
    assert inputs(job)["/inputs"]["ReadWrite"] is False
    assert job.task.env == {
        "KERNEL": "moving_average",
        "COLUMNS": "temperature,humidity",
        "PARAMS": "12",
    }
    assert [(r.name, r.path) for r in job.task.result_paths] == [("outputs", "/outputs")]
    assert job.task.network.type == "None"
    assert_clean(job)
    batch = wasm_job(
        kernel="calibrate",
        columns=["t"],
        params=[1.8, 32.0],
        data=b"t\n1\n",
        job_type="batch",
        outputs=["f"],
        group_by="city",
    )
    assert batch.count == 1 and batch.task.env["PARAMS"] == "1.8,32"
    assert batch.task.env["OUTPUTS"] == "f" and batch.task.env["GROUP_BY"] == "city"
    assert shipped(batch, "/inputs/readings.csv") == b"t\n1\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_by": ""}, "cannot be expressed on Bacalhau"),
        ({"outputs": ["a", "b"]}, "one name per column"),
        ({"output_file": "out/x.csv"}, "without folders"),
    ],
)
def test_wasm_jobs_bacalhau_cannot_run_are_refused(kwargs, message):
    pytest.importorskip("cosmobac_wasm")
    with pytest.raises(ValueError, match=message):
        wasm_job(kernel="calibrate", columns=["t"], **kwargs)


def test_without_the_wasm_plugin_the_builtin_module_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cosmobac_wasm", None)
    with pytest.raises(ImportError, match="pip install cosmobac-wasm"):
        wasm_job(kernel="calibrate", columns=["t"])


def test_builder_jobs_survive_yaml():
    job = switch_job(EDGE, image=IMAGE)
    assert loads_job(dumps_yaml(job))[0] == job


# -- on the fake orchestrator -------------------------------------------------------------------------
def test_a_daemon_is_updated_by_resubmitting_under_its_name(client, fake):
    job = pipeline_job(EDGE, image=IMAGE, host_env=["CITY"])
    first = client.submit(job)
    info = client.wait(first.job_id)
    assert info.state == "Running"  # daemons never end: wait returns when they run everywhere
    assert {e.node_id for e in info.executions} == {n.id for n in fake.nodes}
    with pytest.raises(BacalhauAPIError, match="no changes detected") as raised:
        client.submit(job)
    assert "--force" in str(raised.value)
    assert client.submit(job, force=True).job_id == first.job_id
    changed = pipeline_job(EDGE, image=IMAGE, host_env=["CITY"], cities=["lisbon"])
    assert client.submit(changed).job_id == first.job_id
    assert fake.jobs[first.job_id].version == 3
    assert client.outcome(first.job_id).ok


def test_an_upload_with_one_failing_node_still_collects_the_others(client, tmp_path):
    job = upload_job(
        image=IMAGE,
        cosmos={"endpoint": "https://a.example:443/", "database": "d", "container": "c"},
    )
    submitted = client.submit(job)
    assert client.wait(submitted.job_id).state == "Failed"
    outcome = client.outcome(submitted.job_id)
    assert [n.node_id for n in outcome.failed] == ["node-berlin-1"]
    assert outcome.failed[0].reason == "disk full"
    fetched = client.download_results(outcome, tmp_path)
    assert sorted(f.node_id for f in fetched) == ["node-lisbon-1", "node-porto-1"]
    assert (tmp_path / "node-porto-1" / "stdout").read_text() == "hello from node-porto-1\n"
