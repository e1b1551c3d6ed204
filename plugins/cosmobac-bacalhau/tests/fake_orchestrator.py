"""``FakeOrchestrator``: the test double of a Bacalhau orchestrator (v1.7–v1.9) on loopback.

A real orchestrator cannot run on the project's machines (docs/bacalhau.md says how to check
against one). This one answers the routes cosmobac uses with the wire shapes of Bacalhau's API as
documented in ../shared/notes/bacalhau.md §3 — PascalCase JSON, job states as strings,
execution states as integers, the lower-case ``stderr`` key of ``RunOutput``, ``Nodes`` (not
``Items``) for the node list, error bodies ``{Status, Message, Code, RequestID, Component,
Hint}`` — and follows Bacalhau's state machine:

* a submitted job is ``Pending``; each ``GET /jobs/{id}`` moves it one step: executions are
  created on the matching nodes (``Running``), then they end and the job becomes ``Completed``
  or ``Failed`` (ops: failed when any node failed); daemon jobs stay ``Running``; no matching
  node fails the job at once;
* each fake node has a behaviour: ``ok`` (exit 0), ``exit:N`` (Completed, exit code N) or
  ``fail:MESSAGE`` (Failed, with ``ErrorMsg``) or ``hang`` (its execution keeps running, so a
  batch or ops job stays ``Running`` until it is stopped); a node may also be given an ``executor``, which
  plays its execution engine: called with the node and the task (wire JSON) it returns the exit
  code, stdout and stderr (a test runs the task's real command there); the execution is then
  Completed with that exit code (a ``fail:`` behaviour still wins);
* ``RunOutput`` holds the first 2 KB of stdout and stderr, with ``StdoutTruncated`` and
  ``StderrTruncated`` set when they are longer; the published result holds all of them;
* completed executions publish a tarball (``stdout``, ``stderr``, ``exitCode``, one folder per
  result path) served, like a compute node's local publisher, without credentials; with an
  ``s3`` or ``s3managed`` publisher the execution's ``PublishedResult`` names the bucket and key
  (``{executionID}`` and ``{jobID}`` in the key filled in) and ``GET /jobs/{id}/results`` hands
  out a pre-signed ``urlDownload`` URL for each, as the orchestrator's result signer does; the
  fake's ``/s3/BUCKET/KEY`` route plays the bucket and refuses a URL without its signature;
* names: on a v1.8+ server an existing name is an update (same ID, new version, rerun) and an
  unchanged spec is refused unless ``Force``; v1.7 has no such semantics;
* with ``users``, every route but the open agent ones needs ``Authorization`` (Bearer API key or
  Basic): 401 without valid credentials, 403 without the capability (``read:job``,
  ``write:job``, ``read:node``, ``*``, ...).

It implements its own checks of a submitted job (it shares no code with cosmobac's validator) and
records every request in :attr:`FakeOrchestrator.requests`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

# Execution ComputeState values (integers on the wire)
RUNNING, COMPLETED, FAILED, CANCELLED, BID_ACCEPTED = 6, 9, 10, 11, 5
RUN_OUTPUT_LIMIT = 2048  # bytes of stdout and stderr kept in RunOutput
OPEN_ROUTES = ("/api/v1/agent/alive", "/api/v1/agent/version", "/api/v1/agent/authconfig")


@dataclass
class FakeNode:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    behaviour: str = "ok"  # ok | exit:N | fail:MESSAGE | hang
    engines: tuple[str, ...] = ("docker", "wasm")
    connected: bool = True
    # the execution engine: (node, task wire JSON) -> (exit code, stdout, stderr)
    executor: Callable[[FakeNode, dict[str, Any]], tuple[int, str, str]] | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "Info": {
                "NodeID": self.id,
                "NodeType": "Compute",
                "Labels": dict(self.labels),
                "SupportedProtocols": ["NCLv1"],
                "ComputeNodeInfo": {
                    "ExecutionEngines": list(self.engines),
                    "Publishers": ["local", "s3", "s3managed", "noop"],
                    "StorageSources": ["inline", "local", "urlDownload", "s3"],
                    "RunningExecutions": 0,
                },
                "BacalhauVersion": {"GitVersion": "v1.9.3"},
            },
            "Membership": "APPROVED",
            "ConnectionState": {"Status": "CONNECTED" if self.connected else "DISCONNECTED"},
        }


@dataclass
class FakeJob:
    spec: dict[str, Any]
    id: str
    version: int = 1
    state: str = "Pending"
    message: str = ""
    step: int = 0
    executions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    create_time: int = 0
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # full stdout, stderr

    @property
    def type(self) -> str:
        return str(self.spec.get("Type"))

    @property
    def name(self) -> str:
        return str(self.spec.get("Name") or self.id)


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.hint = status, message, code, hint


def _match(labels: Mapping[str, str], constraint: Mapping[str, Any]) -> bool:
    key, op = constraint.get("Key", ""), constraint.get("Operator", "")
    values = constraint.get("Values") or []
    have = labels.get(key)
    if op in ("=", "=="):
        return have == values[0]
    if op == "!=":
        return have != values[0]
    if op == "in":
        return have in values
    if op == "notin":
        return have not in values
    if op == "exists":
        return have is not None
    if op == "!":
        return have is None
    if op in ("gt", "lt"):
        try:
            a, b = int(have or ""), int(values[0])
        except ValueError:
            return False
        return a > b if op == "gt" else a < b
    return False


def _selector(text: str) -> list[dict[str, Any]]:
    """The subset of label selector text the fake understands: k=v, k!=v, k in (a,b)."""
    out = []
    for part in re.split(r",(?![^(]*\))", text):
        part = part.strip()
        if m := re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", part):
            out.append(
                {"Key": m[1], "Operator": m[2], "Values": [v.strip() for v in m[3].split(",")]}
            )
        elif m := re.match(r"^([^!=\s]+)\s*(!=|==|=)\s*(\S+)$", part):
            out.append({"Key": m[1], "Operator": m[2], "Values": [m[3]]})
        elif part:
            out.append(
                {
                    "Key": part.lstrip("!"),
                    "Operator": "!" if part.startswith("!") else "exists",
                    "Values": [],
                }
            )
    return out


class FakeOrchestrator:
    """See the module docstring. Use as a context manager; :attr:`url` is its base URL."""

    def __init__(
        self,
        *,
        version: str = "v1.9.3",
        nodes: Sequence[FakeNode] = (),
        users: Mapping[str, Sequence[str]] | None = None,
        basic_users: Mapping[tuple[str, str], Sequence[str]] | None = None,
        page_size: int = 50,
    ) -> None:
        self.version = version
        self.nodes = list(nodes)
        self.api_keys = dict(users or {})
        self.basic_users = dict(basic_users or {})
        self.page_size = page_size
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._clock = 1_700_000_000_000_000_000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> FakeOrchestrator:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def major_minor(self) -> tuple[int, int]:
        m = re.match(r"v?(\d+)\.(\d+)", self.version)
        return (int(m[1]), int(m[2])) if m else (0, 0)

    def _now(self) -> int:
        self._clock += 1_000_000_000
        return self._clock

    # -- HTTP -------------------------------------------------------------------------------------
    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        record = {
            "method": handler.command,
            "path": parsed.path,
            "query": query,
            "headers": dict(handler.headers.items()),
            "body": raw,
        }
        with self.lock:
            self.requests.append(record)
        try:
            if parsed.path.startswith("/results/"):
                self._send_bytes(handler, self._result_tarball(parsed.path))
                return
            if parsed.path.startswith("/s3/"):
                self._send_bytes(handler, self._s3_object(parsed.path, query))
                return
            self._authorize(handler, parsed.path)
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    # Bacalhau's quirk: a request it cannot bind is a 400 "InternalError"
                    raise ApiError(
                        400, "code=400, message=Syntax error: invalid JSON", "InternalError"
                    ) from None
            with self.lock:
                status, payload = self._route(handler.command, parsed.path, query, body)
        except ApiError as exc:
            error = {
                "Status": exc.status,
                "Message": exc.message,
                "RequestID": uuid.uuid4().hex,
                "Code": exc.code,
                "Component": "APIServer",
            }
            if exc.hint:
                error["Hint"] = exc.hint
            self._send_json(handler, exc.status, error)
            return
        self._send_json(handler, status, payload)

    def _send_json(self, handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _send_bytes(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/gzip")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authorize(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if (not self.api_keys and not self.basic_users) or path in OPEN_ROUTES:
            return
        header = handler.headers.get("Authorization") or ""
        capabilities: Sequence[str] | None = None
        if header.startswith("Bearer "):
            capabilities = self.api_keys.get(header[7:])
        elif header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = password = ""
            capabilities = self.basic_users.get((user, password))
        if capabilities is None:
            raise ApiError(401, "missing or invalid credentials", "Unauthorized")
        resource = (
            "job"
            if "/orchestrator/jobs" in path
            else "node"
            if "/orchestrator/nodes" in path
            else "agent"
        )
        action = "read" if handler.command == "GET" else "write"
        wanted = {"*", f"{action}:*", f"{action}:{resource}"}
        if not wanted & set(capabilities):
            raise ApiError(
                403, f"user does not have the {action}:{resource} capability", "Forbidden"
            )

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path == "/api/v1/agent/version" and method == "GET":
            major, minor = self.major_minor
            return 200, {
                "Major": str(major),
                "Minor": str(minor),
                "GitVersion": self.version,
                "GitCommit": "0" * 40,
                "BuildDate": "2025-01-01T00:00:00Z",
                "GOOS": "linux",
                "GOARCH": "amd64",
            }
        if path == "/api/v1/agent/alive" and method == "GET":
            return 200, {"Status": "OK"}
        if path == "/api/v1/orchestrator/nodes" and method == "GET":
            nodes = [
                n.wire()
                for n in self.nodes
                if not query.get("labels")
                or all(_match(n.labels, c) for c in _selector(query["labels"]))
            ]
            return 200, {"Nodes": nodes, "NextToken": ""}
        if path == "/api/v1/orchestrator/jobs":
            if method in ("PUT", "POST"):
                return 200, self._submit(body)
            if method == "GET":
                items = [self._job_wire(j) for j in self.jobs.values()]
                if query.get("labels"):
                    wanted = _selector(query["labels"])
                    items = [
                        i for i in items if all(_match(i.get("Labels") or {}, c) for c in wanted)
                    ]
                return 200, self._page(items, query)
        m = re.match(r"^/api/v1/orchestrator/jobs/([^/]+)(?:/(\w+))?$", path)
        if m:
            job = self._find(m[1])
            sub = m[2]
            if sub is None and method == "GET":
                self._advance(job)
                payload: dict[str, Any] = {"Job": self._job_wire(job)}
                include = (query.get("include") or "").split(",")
                if "executions" in include:
                    payload["Executions"] = {"Items": job.executions, "NextToken": ""}
                if "history" in include:
                    payload["History"] = {"Items": job.history, "NextToken": ""}
                return 200, payload
            if sub is None and method == "DELETE":
                return 200, self._stop(job, body)
            if sub == "executions" and method == "GET":
                return 200, self._page(job.executions, query)
            if sub == "history" and method == "GET":
                return 200, self._page(job.history, query)
            if sub == "results" and method == "GET":
                if job.type not in ("batch", "ops"):
                    raise ApiError(
                        400, f"job type {job.type} does not support results", "BadRequest"
                    )
                items = [
                    self._signed(e["PublishedResult"])
                    for e in job.executions
                    if e["ComputeState"]["StateType"] == COMPLETED and e["PublishedResult"]
                ]
                return 200, self._page(items, query)
        raise ApiError(
            404,
            f"route {method} {path} not found",
            "NotFound",
            "server version may be older than the client's",
        )

    def _page(self, items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        start = int(query.get("next_token") or 0)
        size = int(query.get("limit") or self.page_size)
        end = start + size
        return {"Items": items[start:end], "NextToken": str(end) if end < len(items) else ""}

    # -- jobs -------------------------------------------------------------------------------------
    def _find(self, ref: str) -> FakeJob:
        if ref in self.jobs:
            return self.jobs[ref]
        by_prefix = [j for j in self.jobs.values() if j.id.startswith(ref)]
        if len(by_prefix) == 1:
            return by_prefix[0]
        by_name = [j for j in self.jobs.values() if j.name == ref]
        if by_name:
            return by_name[-1]
        raise ApiError(404, f"job {ref} not found", "NotFound")

    def _check(self, spec: Any) -> list[str]:
        """The fake's own (partial) port of the server's submit checks."""
        if not isinstance(spec, dict):
            return ["missing job"]
        problems = []
        if spec.get("Type") not in ("batch", "ops", "daemon", "service"):
            problems.append(f"invalid job type: {spec.get('Type')!r}")
        tasks = spec.get("Tasks") or []
        if not tasks:
            problems.append("missing job tasks")
        for task in tasks:
            if not str(task.get("Name") or "").strip():
                problems.append("missing task name")
            if not str((task.get("Engine") or {}).get("Type") or "").strip():
                problems.append("engine validation failed: missing spec type")
            for name in task.get("Env") or {}:
                if not re.match(r"^[A-Z][A-Z0-9_]*$", name) or name.startswith("BACALHAU_"):
                    problems.append(f"invalid environment variable name {name!r}")
        return problems

    def _submit(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "Job" not in body:
            raise ApiError(400, "code=400, message=missing Job", "InternalError")
        spec = dict(body["Job"])
        problems = self._check(spec)
        if problems:
            raise ApiError(400, "job validation failed: " + "; ".join(problems), "ValidationError")
        warnings = []
        if spec.get("ID") and spec.get("Type") in ("batch", "ops"):
            warnings.append("job ID is set by the server; the given ID is ignored")
            spec.pop("ID")
        meta = dict(spec.get("Meta") or {})
        reserved = [k for k in meta if k.startswith("bacalhau.org/")]
        if reserved:
            warnings.append(f"removed reserved meta keys {reserved}")
            spec["Meta"] = {k: v for k, v in meta.items() if k not in reserved}
        if len(spec.get("Tasks") or []) > 1:
            warnings.append("only one task is supported per job")
            spec["Tasks"] = spec["Tasks"][:1]
        name = spec.get("Name")
        existing = [j for j in self.jobs.values() if name and j.name == name]
        if existing and self.major_minor >= (1, 8):
            job = existing[-1]
            if job.spec == spec and not body.get("Force"):
                raise ApiError(
                    400, f"no changes detected for new job spec. Job Name: '{name}'", "BadRequest"
                )
            job.spec, job.version = spec, job.version + 1
            job.state, job.step, job.executions, job.message = "Pending", 0, [], ""
        else:
            job = FakeJob(spec=spec, id=f"j-{uuid.uuid4()}", create_time=self._now())
            self.jobs[job.id] = job
        self._event(job, "JobLevel", "Job submitted")
        return {"JobID": job.id, "EvaluationID": str(uuid.uuid4()), "Warnings": warnings}

    def _event(self, job: FakeJob, kind: str, message: str, execution: str = "") -> None:
        job.history.append(
            {
                "SeqNum": len(job.history) + 1,
                "Type": kind,
                "JobID": job.id,
                "JobVersion": job.version,
                "ExecutionID": execution,
                "Event": {"Message": message, "Topic": "Submission"},
                "Time": "2025-01-01T00:00:00Z",
            }
        )

    def _job_wire(self, job: FakeJob) -> dict[str, Any]:
        wire = dict(job.spec)
        wire.update(
            ID=job.id,
            Name=job.name,
            Namespace=wire.get("Namespace") or "default",
            State={"StateType": job.state, "Message": job.message},
            Version=job.version,
            Revision=job.step + 1,
            CreateTime=job.create_time,
            ModifyTime=job.create_time,
        )
        return wire

    def _matching(self, job: FakeJob) -> list[FakeNode]:
        constraints = job.spec.get("Constraints") or []
        engine = ((job.spec.get("Tasks") or [{}])[0].get("Engine") or {}).get("Type")
        nodes = [
            n
            for n in self.nodes
            if n.connected and engine in n.engines and all(_match(n.labels, c) for c in constraints)
        ]
        if job.type in ("batch", "service"):
            nodes = nodes[: int(job.spec.get("Count", 1) or 0)]
        return nodes

    def _advance(self, job: FakeJob) -> None:
        """One step of the state machine per describe."""
        if job.state in ("Completed", "Failed", "Stopped"):
            return
        job.step += 1
        if job.state == "Pending":
            nodes = self._matching(job)
            if not nodes:
                job.state, job.message = "Failed", "not enough nodes to run job"
                self._event(job, "JobLevel", job.message)
                return
            for index, node in enumerate(nodes):
                execution_id = f"e-{uuid.uuid4()}"
                job.executions.append(
                    {
                        "ID": execution_id,
                        "Namespace": "default",
                        "NodeID": node.id,
                        "JobID": job.id,
                        "JobVersion": job.version,
                        "PartitionIndex": index if job.type == "batch" else 0,
                        "DesiredState": {"StateType": 1},
                        "ComputeState": {"StateType": RUNNING, "Message": ""},
                        "RunOutput": None,
                        "PublishedResult": None,
                        "CreateTime": self._now(),
                        "ModifyTime": self._now(),
                    }
                )
                self._event(job, "ExecutionLevel", "Running", execution_id)
            job.state = "Running"
            return
        if job.state == "Running" and job.type in ("batch", "ops"):
            failed = running = 0
            for execution in job.executions:
                node = next(n for n in self.nodes if n.id == execution["NodeID"])
                if execution["ComputeState"]["StateType"] == RUNNING:
                    if node.behaviour == "hang":
                        running += 1
                        continue
                    self._finish(job, execution, node)
                failed += execution["ComputeState"]["StateType"] == FAILED
            if running:  # the job waits for its last executions
                return
            job.state = "Failed" if failed else "Completed"
            if failed:
                job.message = f"{failed} of {len(job.executions)} executions failed"
            self._event(job, "JobLevel", job.state)

    def _finish(self, job: FakeJob, execution: dict[str, Any], node: FakeNode) -> None:
        kind, _, detail = node.behaviour.partition(":")
        task = (job.spec.get("Tasks") or [{}])[0]
        stdout = f"hello from {node.id}\n"
        if kind == "fail":
            execution["ComputeState"] = {"StateType": FAILED, "Message": detail}
            execution["RunOutput"] = {
                "Stdout": "",
                "StdoutTruncated": False,
                "stderr": detail,
                "StderrTruncated": False,
                "ExitCode": 1,
                "ErrorMsg": detail,
            }
            return
        code = int(detail) if kind == "exit" else 0
        stderr = "" if not code else f"exit {code}\n"
        if node.executor is not None:
            code, stdout, stderr = node.executor(node, task)
        job.outputs[execution["ID"]] = (stdout, stderr)
        execution["ComputeState"] = {"StateType": COMPLETED, "Message": ""}
        execution["RunOutput"] = {
            "Stdout": _first(stdout),
            "StdoutTruncated": len(stdout.encode()) > RUN_OUTPUT_LIMIT,
            "stderr": _first(stderr),
            "StderrTruncated": len(stderr.encode()) > RUN_OUTPUT_LIMIT,
            "ExitCode": code,
            "ErrorMsg": "",
        }
        publisher = task.get("Publisher") or {}
        if publisher.get("Type") == "local":
            execution["PublishedResult"] = {
                "Type": "urlDownload",
                "Params": {"URL": f"{self.url}/results/{execution['ID']}.tar.gz"},
            }
        elif publisher.get("Type") in ("s3", "s3managed"):
            params = publisher.get("Params") or {}
            if publisher["Type"] == "s3":
                bucket, key = params["Bucket"], params["Key"]
            else:  # the orchestrator's own bucket and key layout
                bucket, key = "bacalhau-managed", "jobs/{jobID}/{executionID}"
            key = key.replace("{executionID}", execution["ID"]).replace("{jobID}", job.id)
            if not key.endswith(".tar.gz"):
                key += ".tar.gz"
            execution["PublishedResult"] = {
                "Type": publisher["Type"],
                "Params": {**params, "Bucket": bucket, "Key": key},
            }
        execution["ModifyTime"] = self._now()
        self._event(job, "ExecutionLevel", "Completed", execution["ID"])

    def _stop(self, job: FakeJob, body: Any) -> dict[str, Any]:
        job.stop_reason = (body or {}).get("reason", "") if isinstance(body, dict) else ""
        if job.state not in ("Completed", "Failed", "Stopped"):
            job.state, job.message = "Stopped", job.stop_reason or "stopped by user"
            for execution in job.executions:
                if execution["ComputeState"]["StateType"] not in (COMPLETED, FAILED):
                    execution["ComputeState"] = {"StateType": CANCELLED, "Message": "stopped"}
                    execution["DesiredState"] = {"StateType": 2}
        self._event(job, "JobLevel", f"Job stopped: {job.stop_reason}")
        return {"EvaluationID": str(uuid.uuid4())}

    # -- published results ------------------------------------------------------------------------
    def _signed(self, published: dict[str, Any]) -> dict[str, Any]:
        """What ``GET /jobs/{id}/results`` lists for one published result: S3 results become
        pre-signed ``urlDownload`` URLs; others are listed as published."""
        if published["Type"] not in ("s3", "s3managed"):
            return published
        params = published["Params"]
        path = quote(f"/s3/{params['Bucket']}/{params['Key']}")
        signature = hashlib.sha256(path.encode()).hexdigest()
        query = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature={signature}"
        return {"Type": "urlDownload", "Params": {"URL": f"{self.url}{path}?{query}"}}

    def _s3_object(self, path: str, query: dict[str, str]) -> bytes:
        if query.get("X-Amz-Signature") != hashlib.sha256(path.encode()).hexdigest():
            raise ApiError(403, "SignatureDoesNotMatch", "Forbidden")
        key = unquote(path).split("/", 3)[3]
        for job in self.jobs.values():
            for execution in job.executions:
                published = execution.get("PublishedResult") or {}
                if (published.get("Params") or {}).get("Key") == key:
                    return self._tar(job, execution)
        raise ApiError(404, "NoSuchKey", "NotFound")

    def _result_tarball(self, path: str) -> bytes:
        execution_id = path.rsplit("/", 1)[-1].removesuffix(".tar.gz")
        for job in self.jobs.values():
            for execution in job.executions:
                if execution["ID"] == execution_id:
                    return self._tar(job, execution)
        raise ApiError(404, "no such result", "NotFound")

    def _tar(self, job: FakeJob, execution: dict[str, Any]) -> bytes:
        output = execution["RunOutput"]
        stdout, stderr = job.outputs.get(execution["ID"], (output["Stdout"], output["stderr"]))
        task = (job.spec.get("Tasks") or [{}])[0]
        files = {
            "stdout": stdout.encode(),
            "stderr": stderr.encode(),
            "exitCode": str(output["ExitCode"]).encode(),
        }
        for result in task.get("ResultPaths") or []:
            files[f"{result['Name']}/node.txt"] = execution["NodeID"].encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def _first(text: str) -> str:
    """The start of a stream as ``RunOutput`` keeps it (2 KB)."""
    return text.encode()[:RUN_OUTPUT_LIMIT].decode(errors="ignore")
