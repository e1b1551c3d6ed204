"""``run_local``: a Bacalhau WASM job on this machine, with Bacalhau's semantics, in the WASM
plugin's sandbox; with the shipped kernels and Bacalhau's own example jobs."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest
from bacalhau_support import EXAMPLES

from cosmobac_bacalhau import dataurl
from cosmobac_bacalhau.builders import inline_file, node_folder, pipeline_job, wasm_job
from cosmobac_bacalhau.errors import JobSpecError
from cosmobac_bacalhau.local import LocalRunError, explain_docker, run_local
from cosmobac_bacalhau.model import (
    Constraint,
    InputSource,
    Job,
    Resources,
    SpecConfig,
    Task,
    read_job_file,
)
from cosmobac_bacalhau.validate import result_path

wasmtime = pytest.importorskip("wasmtime")
pytest.importorskip("cosmobac_wasm")

CSV = b"sensor_id,timestamp,temperature\na,1,20\nb,2,5\na,3,22\na,4,\n"

# argv to stdout, the environment to stderr (NUL-separated, as WASI hands them over), exit 0
ARGV_ENV = """
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $as (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $ag (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $es (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $eg (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $dump (param $fd i32)
    (i32.store (i32.const 16) (i32.const 8192))
    (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $w (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 32))))
  (func (export "_start")
    (drop (call $as (i32.const 0) (i32.const 4)))
    (drop (call $ag (i32.const 1024) (i32.const 8192)))
    (call $dump (i32.const 1))
    (drop (call $es (i32.const 0) (i32.const 4)))
    (drop (call $eg (i32.const 1024) (i32.const 8192)))
    (call $dump (i32.const 2))
    (call $exit (i32.const 0))))
"""
RETURNS = '(module (memory (export "memory") 1) (func (export "_start")))'
TRAPS = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
SPINS = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
BIG_MEMORY = '(module (memory (export "memory") 64) (func (export "_start")))'
MKDIR = """
(module
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "sub")
  (func (export "_start")
    (drop (call $mkdir (i32.const 4) (i32.const 64) (i32.const 3)))  ;; fd 4: /outputs
    (call $exit (i32.const 0))))
"""


def module_job(wat: str, *, params: list[str] | None = None, **task: object) -> Job:
    wasm = wasmtime.wat2wasm(wat)
    sources = [inline_file(bytes(wasm), "/app/m.wasm", "application/wasm")]
    sources += list(task.pop("input_sources", ()))  # type: ignore[call-overload]
    return Job(
        name="local",
        type="ops",
        tasks=[
            Task(
                name="main",
                engine=SpecConfig(
                    "wasm",
                    {
                        "EntryModule": "/app/m.wasm",
                        "Entrypoint": "_start",
                        "Parameters": params or ["one", "two"],
                    },
                ),
                input_sources=sources,
                publisher=SpecConfig("local"),
                result_paths=[result_path("outputs")],
                **task,  # type: ignore[arg-type]
            )
        ],
    )


def test_bacalhaus_own_wasm_examples_run(tmp_path):
    for name in ("wasm.yaml", "wasm_legacy.yaml"):  # the legacy one after normalisation
        job, _ = read_job_file(EXAMPLES / name)
        result = run_local(job, result_dir=tmp_path / name)
        assert result.ok, result.error
        assert result.stdout.read_text() == "Hello, world!\n"
        assert (tmp_path / name / "exitCode").read_text() == "0\n"


def test_the_shipped_kernels_run_over_inline_data(tmp_path):
    job = wasm_job(kernel="moving_average", columns=["temperature"], params=[3], data=CSV)
    result = run_local(job, result_dir=tmp_path / "r")
    assert result.ok, result.error
    assert [p.name for p in result.outputs] == ["readings.csv"]
    out = (tmp_path / "r" / "outputs" / "readings.csv").read_text().splitlines()
    assert out == ["sensor_id,timestamp,temperature", "a,1,20", "b,2,5", "a,3,21", "a,4,21"]
    assert "moving_average over 1 column(s) of 4 rows" in result.stderr.read_text()


def test_a_node_folder_is_mapped_to_a_local_one(tmp_path):
    node = tmp_path / "node" / "export"
    node.mkdir(parents=True)
    (node / "readings.csv").write_bytes(CSV)
    job = wasm_job(
        kernel="calibrate",
        columns=["temperature"],
        params=[2, 1],
        data="/var/lib/cosmobac/export",
        cities=["lisbon"],
    )
    result = run_local(
        job, result_dir=tmp_path / "r", path_map={"/var/lib/cosmobac": tmp_path / "node"}
    )
    assert result.ok
    assert (tmp_path / "r/outputs/readings.csv").read_text().splitlines()[1] == "a,1,41"
    with pytest.raises(LocalRunError, match="--map /var/lib/cosmobac/export=LOCAL_FOLDER"):
        run_local(job, result_dir=tmp_path / "r2")


def test_inputs_are_read_only_as_on_bacalhau(tmp_path):
    job = wasm_job(kernel="calibrate", columns=["temperature"], params=[1, 0], data=CSV)
    job = job.with_task(
        engine=SpecConfig(
            "wasm",
            {**job.task.engine.params, "Parameters": ["/inputs/readings.csv", "/inputs/new.csv"]},
        )
    )
    result = run_local(job, result_dir=tmp_path / "r")
    assert result.exit_code == 4  # the kernel module's "output not writable"
    assert "cannot create output /inputs/new.csv" in result.stderr.read_text()


def test_argv_starts_empty_and_the_environment_has_bacalhaus_variables(tmp_path):
    job = module_job(ARGV_ENV, env={"MODE": "fast", "CITY": "env:NODE_CITY"})
    result = run_local(
        job, result_dir=tmp_path / "r", env={"NODE_CITY": "lisbon"}, execution_id="e-123"
    )
    assert result.ok
    assert result.stdout.read_bytes().split(b"\0")[:-1] == [b"", b"one", b"two"]
    env = dict(item.split("=", 1) for item in result.stderr.read_text().split("\0")[:-1])
    assert env == {
        "MODE": "fast",
        "CITY": "lisbon",
        "BACALHAU_EXECUTION_ID": "e-123",
        "BACALHAU_JOB_ID": "j-e-123",
        "BACALHAU_JOB_TYPE": "ops",
        "BACALHAU_PARTITION_INDEX": "0",
        "BACALHAU_PARTITION_COUNT": "0",
    }
    with pytest.raises(LocalRunError, match="NODE_CITY is not set here"):
        run_local(job, result_dir=tmp_path / "r2", env={})


@pytest.mark.parametrize(
    ("wat", "exit_code", "error"),
    [
        (RETURNS, -1, None),  # Bacalhau records -1 for a _start that returns
        (TRAPS, 1, "trap"),
        (MKDIR, 0, "only files directly in an output folder"),
        (BIG_MEMORY, 1, "memory cap"),
    ],
    ids=["returns", "traps", "makes a folder", "over its memory"],
)
def test_exit_codes_and_failures_follow_bacalhau(tmp_path, wat, exit_code, error):
    job = module_job(wat, resources=Resources(memory="1Mb"))
    result = run_local(job, result_dir=tmp_path / "r")
    assert result.exit_code == exit_code
    assert (tmp_path / "r" / "exitCode").read_text() == f"{exit_code}\n"
    if error is None:
        # Bacalhau calls such an execution Completed (only ErrorMsg fails one): so does cosmobac
        assert result.error is None and result.ok
    else:
        assert error in result.error and not result.ok


def test_the_time_limit_stops_a_spinning_module(tmp_path):
    result = run_local(module_job(SPINS), result_dir=tmp_path / "r", timeout=0.2)
    assert result.exit_code == 1 and "budget exhausted" in result.error


def test_any_input_can_be_given_by_hand(tmp_path):
    url = InputSource(
        source=SpecConfig("urlDownload", {"URL": "https://h.example/r.csv"}), target="/inputs"
    )
    job = module_job(ARGV_ENV, input_sources=[url])
    with pytest.raises(LocalRunError, match="--input /inputs=PATH"):
        run_local(job, result_dir=tmp_path / "r")
    (tmp_path / "data").mkdir()
    assert run_local(job, result_dir=tmp_path / "r", inputs={"/inputs": tmp_path / "data"}).ok


def test_a_gzip_inline_input_is_a_folder_and_a_module_folder_needs_one_module(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("readings.csv")
        info.size = len(CSV)
        archive.addfile(info, io.BytesIO(CSV))
    job = wasm_job(kernel="calibrate", columns=["temperature"], params=[1, 0], data=b"x")
    folder = InputSource(
        source=SpecConfig("inline", {"URL": dataurl.encode(buffer.getvalue(), "application/gzip")}),
        target="/inputs",
    )
    modules = tmp_path / "modules"
    modules.mkdir()
    from cosmobac_wasm import builtin_module_path

    (modules / "k.wasm").write_bytes(builtin_module_path().read_bytes())
    job = job.with_task(
        input_sources=(job.task.input_sources[0], folder),
        engine=SpecConfig("wasm", {**job.task.engine.params, "EntryModule": "/app/m"}),
    )
    job = job.with_task(
        input_sources=(
            *job.task.input_sources,
            InputSource(
                source=SpecConfig("urlDownload", {"URL": "https://h.example/k.wasm"}),
                target="/app/m",
            ),
        )
    )
    result = run_local(job, result_dir=tmp_path / "r", inputs={"/app/m": modules})
    assert result.ok, result.error
    (modules / "second.wasm").write_bytes(b"")
    with pytest.raises(LocalRunError, match="exactly one"):
        run_local(job, result_dir=tmp_path / "r2", inputs={"/app/m": modules})


def test_what_cannot_run_here_is_refused_with_the_reason(tmp_path, monkeypatch):
    job = module_job(RETURNS)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(LocalRunError, match="not empty"):
        run_local(job, result_dir=tmp_path / "full")
    with pytest.raises(JobSpecError, match="Env"):
        run_local(job.with_task(env={"bad name": "1"}), result_dir=tmp_path / "a")
    scheduled_only = job.evolve(constraints=[Constraint("city", "=", ("São Paulo",))])
    assert run_local(scheduled_only, result_dir=tmp_path / "b").exit_code == -1
    monkeypatch.setitem(sys.modules, "cosmobac_wasm", None)
    with pytest.raises(LocalRunError, match="pip install cosmobac-wasm"):
        run_local(job, result_dir=tmp_path / "c")


def test_docker_tasks_are_explained_not_faked(tmp_path):
    config = b'[store]\nplugin = "sqlite"\npath = "${COSMOBAC_DATA}/edge.db"\n'
    job = pipeline_job(config, image="cosmobac:test", secrets=["COSMOS_KEY"], host_env=["CITY"])
    with pytest.raises(LocalRunError, match="docker tasks are not run locally") as raised:
        run_local(job, result_dir=tmp_path / "r")
    text = str(raised.value)
    assert "env COSMOS_KEY: the node's $COSMOS_KEY (allow-listed)" in text
    assert "input /data: the node folder /var/lib/cosmobac (rw)" in text
    explained = explain_docker(
        job.with_task(
            input_sources=(*job.task.input_sources, node_folder("/srv/in", "/in", read_write=False))
        ),
        inputs_dir=tmp_path / "in",
    )
    assert "-e COSMOS_KEY" in explained and "-v /srv/in:/in:ro" in explained
    assert (tmp_path / "in/etc/cosmobac/pipeline.toml").read_bytes() == config


def test_a_file_input_inside_a_folder_input_cannot_be_mounted_here(tmp_path):
    job = module_job(
        RETURNS,
        input_sources=[
            InputSource(source=SpecConfig("local", {"SourcePath": str(tmp_path)}), target="/app")
        ],
    )
    with pytest.raises(LocalRunError, match="inside the folder input /app"):
        run_local(job, result_dir=tmp_path / "r")


def test_results_land_in_the_published_layout(tmp_path):
    result = run_local(module_job(ARGV_ENV), result_dir=tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "exitCode",
        "outputs",
        "stderr",
        "stdout",
    ]
    assert isinstance(result.result_dir, Path)
