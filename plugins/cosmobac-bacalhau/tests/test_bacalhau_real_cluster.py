"""The same client, builders and rules against a real Bacalhau orchestrator (v1.7+): opt-in.

    COSMOBAC_BACALHAU_REAL=1 BACALHAU_API_HOST=... [BACALHAU_API_KEY=...] \\
        pytest -m bacalhau_real plugins/cosmobac-bacalhau/tests

needs at least one compute node with the WASM engine and the local publisher reachable from this
machine (``Publishers.Types.Local.Address``); ``bacalhau devstack`` gives such a cluster on one
machine. With ``COSMOBAC_IMAGE`` set (the cosmobac image, pullable by the nodes) and nodes that
accept networked jobs and allow-list ``/var/lib/cosmobac:rw``, the container flows run too.
Without ``COSMOBAC_BACALHAU_REAL=1`` every test here is skipped. See docs/bacalhau.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from bacalhau_support import EXAMPLES

from cosmobac_bacalhau import (
    BacalhauAPIError,
    BacalhauClient,
    Job,
    pipeline_job,
    read_job_file,
    wasm_job,
)
from cosmobac_bacalhau.local import run_local

pytestmark = pytest.mark.bacalhau_real

CSV = b"sensor_id,timestamp,temperature\na,1,20\nb,2,5\na,3,22\na,4,\n"


@pytest.fixture(scope="module")
def real() -> Iterator[BacalhauClient]:
    if os.environ.get("COSMOBAC_BACALHAU_REAL") != "1":
        pytest.skip("a real orchestrator is opt-in: COSMOBAC_BACALHAU_REAL=1 and BACALHAU_API_HOST")
    with BacalhauClient.from_env() as client:
        yield client


def test_the_orchestrator_is_recent_enough_and_has_nodes(real):
    assert real.alive()
    assert real.version().at_least(1, 7)
    nodes = real.nodes()
    assert any("wasm" in [e.lower() for e in n.engines] for n in nodes), nodes


def test_a_wasm_job_gives_what_the_local_runner_gives(real, tmp_path):
    pytest.importorskip("cosmobac_wasm")
    job = wasm_job(
        kernel="moving_average", columns=["temperature"], params=[3], data=CSV, job_type="batch"
    )
    local = run_local(job, result_dir=tmp_path / "local")
    assert local.ok
    submitted = real.submit(job)
    real.wait(submitted.job_id, timeout=600)
    outcome = real.outcome(submitted.job_id)
    assert outcome.ok, outcome.summary()
    fetched = real.download_results(outcome, tmp_path / "real")
    assert fetched and fetched[0].path is not None, fetched
    assert fetched[0].exit_code == 0
    remote = (fetched[0].path / "outputs" / "readings.csv").read_bytes()
    assert remote == (tmp_path / "local" / "outputs" / "readings.csv").read_bytes()


def test_bacalhaus_wasm_example_runs(real):
    job, _ = read_job_file(EXAMPLES / "wasm.yaml")
    submitted = real.submit(job)
    real.wait(submitted.job_id, timeout=600)
    outcome = real.outcome(submitted.job_id)
    assert outcome.ok and outcome.nodes[0].stdout == "Hello, world!\n", outcome.summary()


def test_submit_rules_are_the_servers(real):
    bad = Job(name="cosmobac-probe", type="nightly", tasks=())
    with pytest.raises(BacalhauAPIError) as raised:
        real.submit(bad, validate=False)
    assert raised.value.status == 400


def test_a_schedule_rule_fails_the_job_as_predicted(real):
    job, _ = read_job_file(EXAMPLES / "custom-task-type.yaml")  # judged: rejected, schedule
    submitted = real.submit(job.evolve(name=""), validate=False)
    info = real.wait(submitted.job_id, timeout=300)
    assert info.state == "Failed"


def test_the_fleet_forwarder_runs_as_a_daemon(real):
    image = os.environ.get("COSMOBAC_IMAGE")
    if not image:
        pytest.skip("set COSMOBAC_IMAGE to a cosmobac image the nodes can pull")
    config = (
        b'[store]\nplugin = "sqlite"\npath = "${COSMOBAC_DATA}/edge.db"\n'
        b'[[sinks]]\nplugin = "jsonl"\nname = "probe"\n'
        b'path = "${COSMOBAC_DATA}/probe.jsonl"\n'
    )
    job = pipeline_job(config, image=image, name="cosmobac-forward-probe")
    submitted = real.submit(job, force=True)
    try:
        info = real.wait(submitted.job_id, timeout=600)
        assert info.state == "Running", info
    finally:
        real.stop(submitted.job_id, "cosmobac real-cluster test")
