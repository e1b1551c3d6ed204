"""The REST client against the fake orchestrator: versions, submissions, states, waiting with
backoff, per-node outcomes, results, auth and error bodies."""

from __future__ import annotations

import base64
import io
import json
import socket
import tarfile

import httpx
import pytest
from fake_orchestrator import FakeNode, FakeOrchestrator

from cosmobac_bacalhau.client import (
    BacalhauClient,
    Execution,
    ServerVersion,
    _extract,
)
from cosmobac_bacalhau.errors import (
    BacalhauAPIError,
    BacalhauAuthError,
    BacalhauConnectionError,
    BacalhauError,
    BacalhauNotFound,
    BacalhauVersionError,
    JobSpecError,
    WaitTimeout,
)
from cosmobac_bacalhau.model import Constraint, InputSource, Job, SpecConfig, Task
from cosmobac_bacalhau.validate import result_path


def docker(job_type: str = "ops", name: str = "probe", **task: object) -> Job:
    if job_type in ("batch", "ops"):
        task.setdefault("publisher", SpecConfig("local"))
    return Job(
        name=name,
        type=job_type,
        tasks=[
            Task(
                name="main",
                engine=SpecConfig("docker", {"Image": "busybox:1.37.0", "Parameters": ["true"]}),
                result_paths=[result_path("outputs")] if job_type in ("batch", "ops") else (),
                **task,  # type: ignore[arg-type]
            )
        ],
    )


def no_sleep(seconds: float) -> None:
    pass


def bodies(fake: FakeOrchestrator, method: str, path: str) -> list[dict]:
    return [
        json.loads(r["body"])
        for r in fake.requests
        if r["method"] == method and r["path"] == path and r["body"]
    ]


# -- versions ---------------------------------------------------------------------------------------
def test_versions_below_1_7_are_refused_or_warned(caplog):
    with FakeOrchestrator(version="v1.6.2") as fake:
        with pytest.raises(BacalhauVersionError, match="need v1.7 or later"):
            BacalhauClient(fake.url).nodes()
        BacalhauClient(fake.url, allow_old=True).nodes()
    assert "going on: allow_old" in caplog.text


def test_a_1_7_server_gets_local_directory_and_no_duplicate_daemons():
    local = SpecConfig("local", {"SourcePath": "/var/lib/cosmobac", "ReadWrite": True})

    with FakeOrchestrator(version="v1.7.0", nodes=[FakeNode("n1")]) as fake:
        client = BacalhauClient(fake.url, sleep=no_sleep)
        job = docker(
            "daemon", name="forwarder", input_sources=[InputSource(source=local, target="/data")]
        )
        client.submit(job)
        sent = bodies(fake, "PUT", "/api/v1/orchestrator/jobs")[-1]
        assert sent["Job"]["Tasks"][0]["InputSources"][0]["Source"]["Type"] == "localDirectory"
        with pytest.raises(BacalhauError, match="does not update jobs by name"):
            client.submit(job)


def test_server_versions_are_read_from_any_form():
    assert ServerVersion.from_wire({"GitVersion": "v1.9.3"}).at_least(1, 9)
    assert str(ServerVersion.from_wire({"Major": "1", "Minor": "8+"})) == "v1.8"
    assert not ServerVersion.from_wire({"GitVersion": "dev"}).known


def test_the_client_sends_no_version_header_and_names_itself(client, fake):
    client.nodes()
    headers = fake.requests[-1]["headers"]
    assert "X-Bacalhau-Git-Version" not in headers
    assert headers["User-Agent"].startswith("cosmobac/")


# -- submissions and states ------------------------------------------------------------------------
def test_a_job_with_problems_is_not_sent(client, fake):
    with pytest.raises(JobSpecError) as raised:
        client.submit(docker().with_task(env={"x": "1"}))
    assert "Tasks[0].Env['x']" in str(raised.value)
    assert fake.requests == []


def test_the_servers_own_refusal_becomes_an_api_error(client):
    with pytest.raises(BacalhauAPIError) as raised:
        client.submit(docker().with_task(env={"x": "1"}), validate=False)
    error = raised.value
    assert (error.status, error.code) == (400, "ValidationError")
    assert "invalid environment variable name" in error.message
    assert error.request_id


def test_a_request_the_server_cannot_bind_is_400_with_internal_error(client):
    with pytest.raises(BacalhauAPIError) as raised:
        client._request("PUT", "/orchestrator/jobs", body={"NotAJob": 1})
    assert (raised.value.status, raised.value.code) == (400, "InternalError")


def test_batch_job_goes_pending_running_completed(client, fake):
    submitted = client.submit(docker("batch", name="once"))
    seen = []
    info = client.wait(submitted.job_id, on_change=lambda i: seen.append(i.state))
    assert seen == ["Running", "Completed"]  # Pending only until the first look
    assert fake.jobs[submitted.job_id].history[0]["Event"]["Message"] == "Job submitted"
    assert info.state == "Completed" and len(info.executions) == 1
    assert client.describe("once").job.id == submitted.job_id  # by name
    assert client.describe(submitted.job_id[:10]).job.name == "once"  # by ID prefix
    assert [e.type for e in client.history(submitted.job_id)][:1] == ["JobLevel"]


def test_no_matching_node_fails_the_job_at_once(client):
    job = docker().evolve(constraints=[Constraint("city", "=", ("oslo",))])
    submitted = client.submit(job)
    info = client.wait(submitted.job_id)
    assert (info.state, info.message) == ("Failed", "not enough nodes to run job")


def test_an_ops_job_reports_each_node_and_the_partial_failure(client, tmp_path):
    submitted = client.submit(docker())
    client.wait(submitted.job_id)
    outcome = client.outcome(submitted.job_id)
    assert outcome.state == "Failed" and not outcome.ok
    assert [(n.node_id, n.state, n.exit_code) for n in outcome.nodes] == [
        ("node-berlin-1", "Failed", 1),
        ("node-lisbon-1", "Completed", 0),
        ("node-porto-1", "Completed", 0),
    ]
    assert [n.reason for n in outcome.failed] == ["disk full"]
    assert "partial failure: 1 of 3 nodes failed" in outcome.summary()
    fetched = client.download_results(outcome, tmp_path)
    assert [(f.node_id, f.exit_code, f.error) for f in fetched] == [
        ("node-lisbon-1", 0, ""),
        ("node-porto-1", 0, ""),
    ]
    assert (tmp_path / "node-lisbon-1" / "outputs" / "node.txt").read_text() == "node-lisbon-1"
    assert len(client.results(submitted.job_id)) == 2


def test_a_non_zero_exit_code_is_a_failure_although_bacalhau_says_completed(tmp_path):
    nodes = [FakeNode("a"), FakeNode("b", behaviour="exit:5")]
    with FakeOrchestrator(nodes=nodes) as fake, BacalhauClient(fake.url, sleep=no_sleep) as client:
        submitted = client.submit(docker())
        assert client.wait(submitted.job_id).state == "Completed"
        outcome = client.outcome(submitted.job_id)
        assert not outcome.ok
        assert [(n.node_id, n.reason) for n in outcome.failed] == [("b", "exited with code 5")]
        fetched = {f.node_id: f for f in client.download_results(submitted.job_id, tmp_path)}
        assert fetched["b"].exit_code == 5  # read from the result's exitCode file too


def test_an_entry_point_that_returned_normally_counts_as_completed(tmp_path):
    """Bacalhau records exit code -1 when a WASM entry point returns without proc_exit (a Rust
    main that returns): the execution is Completed, and so is the node here."""
    nodes = [FakeNode("a"), FakeNode("b", behaviour="exit:-1")]
    with FakeOrchestrator(nodes=nodes) as fake, BacalhauClient(fake.url, sleep=no_sleep) as client:
        submitted = client.submit(docker())
        assert client.wait(submitted.job_id).state == "Completed"
        outcome = client.outcome(submitted.job_id)
        assert [(n.node_id, n.exit_code, n.reason) for n in outcome.nodes] == [
            ("a", 0, ""),
            ("b", -1, ""),
        ]
        assert outcome.ok and outcome.failed == []
        assert [n.node_id for n in outcome.completed] == ["a", "b"]
        fetched = {f.node_id: f for f in client.download_results(submitted.job_id, tmp_path)}
        assert fetched["b"].exit_code == -1 and fetched["b"].error == ""


@pytest.mark.parametrize(
    "publisher",
    [
        SpecConfig("s3", {"Bucket": "fleet-results", "Key": "runs/{jobID}/{executionID}"}),
        SpecConfig("s3managed"),
    ],
    ids=["s3", "s3managed"],
)
def test_results_published_to_s3_are_fetched_through_the_signed_urls(tmp_path, publisher):
    """The executions name a bucket and key; GET /jobs/{id}/results hands out pre-signed URLs,
    which are fetched without the orchestrator's credentials."""
    nodes = [FakeNode("a"), FakeNode("b", behaviour="fail:disk full")]
    with (
        FakeOrchestrator(nodes=nodes, users={"k" * 24: ["*"]}) as fake,
        BacalhauClient(fake.url, api_key="k" * 24, sleep=no_sleep) as client,
    ):
        submitted = client.submit(docker(publisher=publisher))
        client.wait(submitted.job_id)
        outcome = client.outcome(submitted.job_id)
        assert outcome.nodes[0].result is not None
        assert outcome.nodes[0].result.type == publisher.type
        fetched = {f.node_id: f for f in client.download_results(outcome, tmp_path)}
        assert set(fetched) == {"a"}  # the failed node published nothing
        assert fetched["a"].error == "" and fetched["a"].exit_code == 0
        assert (tmp_path / "a" / "outputs" / "node.txt").read_text() == "a"
        s3_gets = [r for r in fake.requests if r["path"].startswith("/s3/")]
        assert len(s3_gets) == 1 and "X-Amz-Signature" in s3_gets[0]["query"]
        assert "authorization" not in {k.lower() for k in s3_gets[0]["headers"]}


def test_an_s3_result_missing_from_the_signed_list_is_reported_not_guessed(tmp_path, monkeypatch):
    with (
        FakeOrchestrator(nodes=[FakeNode("a")]) as fake,
        BacalhauClient(fake.url, sleep=no_sleep) as client,
    ):
        submitted = client.submit(docker(publisher=SpecConfig("s3", {"Bucket": "b", "Key": "k"})))
        client.wait(submitted.job_id)
        monkeypatch.setattr(client, "results", lambda job_id: [])
        (fetched,) = client.download_results(submitted.job_id, tmp_path)
        assert fetched.path is None
        assert "no signed URL for it" in fetched.error and "Bucket=b" in fetched.error


def test_stop_sends_the_reason_in_the_body(client, fake):
    submitted = client.submit(docker("daemon", name="d"))
    client.wait(submitted.job_id)
    client.stop(submitted.job_id, "maintenance window")
    assert fake.jobs[submitted.job_id].stop_reason == "maintenance window"
    request = next(r for r in fake.requests if r["method"] == "DELETE")
    assert "reason" not in request["query"]
    info = client.describe(submitted.job_id)
    assert info.state == "Stopped"
    assert {e.state for e in info.executions} == {"Cancelled"}  # integer 11 on the wire


def test_daemons_have_no_results_endpoint(client):
    submitted = client.submit(docker("daemon", name="d"))
    with pytest.raises(BacalhauAPIError, match="does not support results"):
        client.results(submitted.job_id)


def test_downloading_the_results_of_a_daemon_says_why_there_are_none(client, tmp_path):
    submitted = client.submit(docker("daemon", name="d"))
    client.wait(submitted.job_id)
    with pytest.raises(BacalhauError, match="is a daemon job: Bacalhau publishes results only"):
        client.download_results(submitted.job_id, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_lists_follow_next_tokens():
    with FakeOrchestrator(nodes=[FakeNode("n")], page_size=2) as fake:
        client = BacalhauClient(fake.url)
        for i in range(5):
            client.submit(docker(name=f"job-{i}").evolve(labels={"app": "cosmobac"}))
        assert len(client.list_jobs()) == 5
        assert len(client.list_jobs(limit=3)) == 3
        assert len(client.list_jobs(labels="app=cosmobac")) == 5
        assert client.list_jobs(labels="app=other") == []
        pages = [
            r
            for r in fake.requests
            if r["path"] == "/api/v1/orchestrator/jobs" and r["method"] == "GET"
        ]
        assert [p["query"].get("next_token") for p in pages[:3]] == [None, "2", "4"]


def test_nodes_are_read_from_the_nodes_key(client, fake):
    nodes = client.nodes(labels="city in (lisbon, porto)")
    assert [n.id for n in nodes] == ["node-lisbon-1", "node-porto-1"]
    assert nodes[0].labels == {"city": "lisbon", "region": "eu"}
    assert nodes[0].engines == ("docker", "wasm") and nodes[0].connection == "CONNECTED"
    assert fake.requests[-1]["query"]["labels"] == "city in (lisbon, porto)"


def test_execution_states_are_read_as_integers_or_strings():
    raw = {
        "ID": "e1",
        "NodeID": "n",
        "ComputeState": {"StateType": 9},
        "RunOutput": {"Stdout": "o", "stderr": "e", "ExitCode": 2},
    }
    execution = Execution.from_wire(raw)
    assert (execution.state, execution.terminal) == ("Completed", True)
    assert (execution.run_output.stdout, execution.run_output.stderr) == ("o", "e")
    raw["ComputeState"] = {"StateType": "ExecutionStateRunning"}
    assert Execution.from_wire(raw).state == "Running"


# -- waiting -----------------------------------------------------------------------------------------
def test_wait_backs_off_while_nothing_changes_and_gives_up_at_its_timeout():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with FakeOrchestrator(nodes=[FakeNode("n")]) as fake:
        client = BacalhauClient(fake.url, sleep=sleep, clock=lambda: now[0])
        submitted = client.submit(docker("daemon", name="d"))
        with pytest.raises(WaitTimeout) as raised:
            client.wait(submitted.job_id, until="terminal", timeout=30, interval=1, max_interval=4)
    assert raised.value.last.state == "Running"
    assert slept[:5] == [1, 1.5, 2.25, 3.375, 4]  # grows by half, capped
    assert sum(slept) == pytest.approx(30)


# -- auth and errors ---------------------------------------------------------------------------------
KEY = "P7D4CBB284634DD081FAC33868436ECC"


@pytest.fixture
def guarded():
    with FakeOrchestrator(
        nodes=[FakeNode("n")],
        users={KEY: ["read:job", "write:job", "read:node"]},
        basic_users={("alice", "wonderland"): ["read:*"]},
    ) as fake:
        yield fake


def test_without_credentials_401_names_the_variables(guarded):
    client = BacalhauClient(guarded.url)
    assert client.version().at_least(1, 9)  # the version route is open
    with pytest.raises(BacalhauAuthError) as raised:
        client.nodes()
    assert raised.value.status == 401
    assert "BACALHAU_API_KEY" in str(raised.value)
    with pytest.raises(BacalhauAuthError, match="401"):
        BacalhauClient(guarded.url, api_key="wrong" * 5).nodes()


def test_basic_auth_without_the_capability_is_403(guarded):
    client = BacalhauClient.from_env(
        {
            "BACALHAU_API_HOST": guarded.url,
            "BACALHAU_API_USERNAME": "alice",
            "BACALHAU_API_PASSWORD": "wonderland",
        }
    )
    assert [n.id for n in client.nodes()] == ["n"]
    header = guarded.requests[-1]["headers"]["Authorization"]
    assert base64.b64decode(header[6:]) == b"alice:wonderland"
    with pytest.raises(BacalhauAuthError) as raised:
        client.submit(docker())
    assert raised.value.status == 403 and "write:job" in str(raised.value)


def test_an_api_key_is_a_bearer_token_and_never_sent_to_result_servers(guarded, tmp_path):
    host, port = guarded.url.removeprefix("http://").split(":")
    client = BacalhauClient.from_env(
        {"BACALHAU_API_HOST": host, "BACALHAU_API_PORT": port, "BACALHAU_API_KEY": KEY},
        sleep=no_sleep,
    )
    submitted = client.submit(docker())
    client.wait(submitted.job_id)
    client.download_results(submitted.job_id, tmp_path)
    assert guarded.requests[-1]["path"].startswith("/results/")
    assert "Authorization" not in guarded.requests[-1]["headers"]
    assert guarded.requests[-3]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_from_env_reads_the_cli_variables():
    client = BacalhauClient.from_env(
        {
            "BACALHAU_API_HOST": "orchestrator.example",
            "BACALHAU_API_PORT": "443",
            "BACALHAU_API_TLS_USETLS": "true",
        }
    )
    assert client.base_url == "https://orchestrator.example:443"
    assert BacalhauClient.from_env({}).base_url == "http://127.0.0.1:1234"


def test_not_found_and_unknown_routes(client):
    with pytest.raises(BacalhauNotFound, match="job nope not found"):
        client.describe("nope")
    with pytest.raises(BacalhauNotFound, match="server version may be older"):
        client._request("GET", "/orchestrator/jobs/x/versions/extra")


def test_error_bodies_that_are_not_json_and_answers_that_are_not_json():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/version"):
            return httpx.Response(200, json={"GitVersion": "v1.9.3"})
        if request.url.path.endswith("/nodes"):
            return httpx.Response(502, text="<html>bad gateway</html>")
        return httpx.Response(200, text="not json")

    client = BacalhauClient("http://orchestrator.test", transport=httpx.MockTransport(handler))
    with pytest.raises(BacalhauAPIError) as raised:
        client.nodes()
    assert raised.value.status == 502 and "bad gateway" in str(raised.value)
    with pytest.raises(BacalhauError, match="not JSON"):
        client.describe("j-1")


def test_an_unreachable_orchestrator_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = BacalhauClient(f"http://127.0.0.1:{port}")
    with pytest.raises(BacalhauConnectionError, match="BACALHAU_API_HOST"):
        client.nodes()
    assert client.alive() is False


def test_alive(client):
    assert client.alive() is True


def test_result_archives_cannot_write_outside_their_folder(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="unsafe path"):
        _extract(buffer.getvalue(), tmp_path / "node")
    assert not (tmp_path / "escape").exists()


def test_an_unreachable_result_is_reported_not_raised(client, fake, tmp_path):
    submitted = client.submit(docker("batch", name="b"))
    client.wait(submitted.job_id)
    execution = fake.jobs[submitted.job_id].executions[0]
    execution["PublishedResult"]["Params"]["URL"] = fake.url + "/results/missing.tar.gz"
    fetched = client.download_results(submitted.job_id, tmp_path)
    assert fetched[0].path is None and "cannot fetch" in fetched[0].error
    execution["PublishedResult"] = {"Type": "ipfs", "Params": {"CID": "QmResult"}}
    fetched = client.download_results(submitted.job_id, tmp_path)
    assert fetched[0].error == (
        "published to ipfs (CID=QmResult): cosmobac cannot download that kind of result; "
        "fetch it from there"
    )
