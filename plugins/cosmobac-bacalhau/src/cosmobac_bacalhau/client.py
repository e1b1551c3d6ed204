"""A small REST client for a Bacalhau orchestrator (v1.7 and later), on httpx.

Guarantees:

* the server's version is read once (``GET /api/v1/agent/version``, which needs no credentials)
  before anything else; below v1.7 the client refuses (or, with ``allow_old``, warns), since the
  job shapes it sends need v1.7; ``local`` input sources are sent as ``localDirectory`` to v1.7
  servers, which know only that name;
* every job is normalised and validated before it is sent (:func:`~.validate.check_job`);
* credentials come from the variables the Bacalhau CLI reads: ``BACALHAU_API_KEY`` (``Bearer``)
  or ``BACALHAU_API_USERNAME``/``BACALHAU_API_PASSWORD`` (``Basic``); they are sent to the
  orchestrator only, never to the compute nodes that serve results;
* an error answer becomes :class:`~.errors.BacalhauAPIError` (401/403:
  :class:`~.errors.BacalhauAuthError`; 404: :class:`~.errors.BacalhauNotFound`) carrying the
  server's message, code, hint and request id; a refused connection or a timeout becomes
  :class:`~.errors.BacalhauConnectionError` naming the address;
* job states are read as strings and execution states as integers (each also in the other form);
* :meth:`BacalhauClient.outcome` reports every node's execution: a job Bacalhau calls
  *Completed* whose program exited non-zero is a failure here, and a *Failed* ops job still
  lists the nodes that completed, whose results :meth:`~BacalhauClient.download_results` fetches.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import httpx

from .errors import (
    BacalhauAPIError,
    BacalhauAuthError,
    BacalhauConnectionError,
    BacalhauError,
    BacalhauNotFound,
    BacalhauVersionError,
    JobSpecError,
    WaitTimeout,
)
from .model import (
    JOB_STATE_NAMES,
    TERMINAL_JOB_STATES,
    Job,
    SpecConfig,
    decode_job,
    submit_body,
)
from .validate import check_job, normalise

__all__ = [
    "EXECUTION_STATES",
    "BacalhauClient",
    "Execution",
    "HistoryEvent",
    "JobInfo",
    "JobOutcome",
    "Node",
    "NodeOutcome",
    "RunOutput",
    "ServerVersion",
    "SubmitResult",
]

log = logging.getLogger("cosmobac_bacalhau")

API: Final = "/api/v1"
DEFAULT_PORT: Final = 1234
MIN_VERSION: Final = (1, 7)

EXECUTION_STATES: Final = {
    0: "Undefined",
    1: "New",
    2: "AskForBid",
    3: "AskForBidAccepted",
    4: "AskForBidRejected",
    5: "BidAccepted",
    6: "Running",
    7: "Publishing",
    8: "BidRejected",
    9: "Completed",
    10: "Failed",
    11: "Cancelled",
}
TERMINAL_EXECUTION_STATES: Final = frozenset(
    {"AskForBidRejected", "BidRejected", "Completed", "Failed", "Cancelled"}
)
DESIRED_STATES: Final = {0: "Pending", 1: "Running", 2: "Stopped"}


# -- reading the server's objects -------------------------------------------------------------------
def _get(data: Any, key: str, default: Any = None) -> Any:
    """``data[key]``, matching the key without regard to case (the server mixes ``Stdout`` and
    ``stderr``)."""
    if not isinstance(data, Mapping):
        return default
    if key in data:
        return data[key]
    lowered = key.lower()
    for name, value in data.items():
        if isinstance(name, str) and name.lower() == lowered:
            return value
    return default


def _state_name(value: Any, names: Mapping[int, str]) -> str:
    """A state as its name, from the integer or the string form (``"Completed"``,
    ``"ExecutionStateCompleted"``, ``9``)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return names.get(value, f"State({value})")
    text = str(value or "")
    for prefix in ("ExecutionState", "JobStateType", "ExecutionDesiredState"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    for name in names.values():
        if name.lower() == text.lower():
            return name
    return text or names.get(0, "Undefined")


def _spec(data: Any) -> SpecConfig | None:
    if not isinstance(data, Mapping) or not _get(data, "Type"):
        return None
    params = _get(data, "Params") or {}
    return SpecConfig(str(_get(data, "Type")), dict(params) if isinstance(params, Mapping) else {})


@attrs.frozen
class ServerVersion:
    """The orchestrator's build version."""

    major: int
    minor: int
    patch: int
    git_version: str

    @classmethod
    def from_wire(cls, data: Any) -> ServerVersion:
        git = str(_get(data, "GitVersion") or "")
        match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", git)
        if match:
            return cls(int(match[1]), int(match[2]), int(match[3] or 0), git)
        try:
            major = int(str(_get(data, "Major") or "").strip() or "x")
            minor = int(re.sub(r"\D.*$", "", str(_get(data, "Minor") or "")) or "x")
        except ValueError:
            return cls(0, 0, 0, git or "unknown")
        return cls(major, minor, 0, git or f"v{major}.{minor}")

    @property
    def known(self) -> bool:
        return (self.major, self.minor) != (0, 0)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return self.git_version or f"v{self.major}.{self.minor}.{self.patch}"


@attrs.frozen
class RunOutput:
    """The first 2 KB of stdout and stderr, the exit code and the runtime error of an execution."""

    stdout: str = ""
    stdout_truncated: bool = False
    stderr: str = ""
    stderr_truncated: bool = False
    exit_code: int | None = None
    error: str = ""

    @classmethod
    def from_wire(cls, data: Any) -> RunOutput | None:
        if not isinstance(data, Mapping):
            return None
        code = _get(data, "ExitCode")
        return cls(
            stdout=str(_get(data, "Stdout") or ""),
            stdout_truncated=bool(_get(data, "StdoutTruncated")),
            stderr=str(_get(data, "stderr") or ""),
            stderr_truncated=bool(_get(data, "StderrTruncated")),
            exit_code=int(code) if isinstance(code, int | float) else None,
            error=str(_get(data, "ErrorMsg") or ""),
        )


@attrs.frozen
class Execution:
    """One execution of a job on one node."""

    id: str
    node_id: str
    job_id: str
    state: str  # ComputeState, by name: Completed, Failed, Running, ...
    message: str
    desired_state: str
    run_output: RunOutput | None
    published_result: SpecConfig | None
    partition_index: int
    job_version: int
    modify_time: int
    raw: Mapping[str, Any] = attrs.field(repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Execution:
        compute = _get(data, "ComputeState") or {}
        desired = _get(data, "DesiredState") or {}
        return cls(
            id=str(_get(data, "ID") or ""),
            node_id=str(_get(data, "NodeID") or ""),
            job_id=str(_get(data, "JobID") or ""),
            state=_state_name(_get(compute, "StateType"), EXECUTION_STATES),
            message=str(_get(compute, "Message") or ""),
            desired_state=_state_name(_get(desired, "StateType"), DESIRED_STATES),
            run_output=RunOutput.from_wire(_get(data, "RunOutput")),
            published_result=_spec(_get(data, "PublishedResult")),
            partition_index=int(_get(data, "PartitionIndex") or 0),
            job_version=int(_get(data, "JobVersion") or 0),
            modify_time=int(_get(data, "ModifyTime") or _get(data, "CreateTime") or 0),
            raw=dict(data),
        )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_EXECUTION_STATES


@attrs.frozen
class HistoryEvent:
    """One entry of a job's history."""

    seq: int
    type: str
    execution_id: str
    time: str
    message: str
    topic: str
    raw: Mapping[str, Any] = attrs.field(repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> HistoryEvent:
        event = _get(data, "Event") or {}
        return cls(
            seq=int(_get(data, "SeqNum") or 0),
            type=str(_get(data, "Type") or ""),
            execution_id=str(_get(data, "ExecutionID") or ""),
            time=str(_get(data, "Time") or _get(event, "Timestamp") or ""),
            message=str(_get(event, "Message") or ""),
            topic=str(_get(event, "Topic") or ""),
            raw=dict(data),
        )


@attrs.frozen
class Node:
    """A node as the orchestrator knows it."""

    id: str
    type: str
    labels: Mapping[str, str]
    membership: str
    connection: str
    engines: tuple[str, ...]
    publishers: tuple[str, ...]
    sources: tuple[str, ...]
    version: str
    raw: Mapping[str, Any] = attrs.field(repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Node:
        info = _get(data, "Info") or {}
        compute = _get(info, "ComputeNodeInfo") or {}
        connection = _get(data, "ConnectionState") or {}
        version = _get(info, "BacalhauVersion") or {}
        return cls(
            id=str(_get(info, "NodeID") or ""),
            type=str(_get(info, "NodeType") or ""),
            labels={str(k): str(v) for k, v in (_get(info, "Labels") or {}).items()},
            membership=str(_get(data, "Membership") or ""),
            connection=str(_get(connection, "Status") or _get(data, "Connection") or ""),
            engines=tuple(str(e) for e in _get(compute, "ExecutionEngines") or ()),
            publishers=tuple(str(e) for e in _get(compute, "Publishers") or ()),
            sources=tuple(str(e) for e in _get(compute, "StorageSources") or ()),
            version=str(_get(version, "GitVersion") or ""),
            raw=dict(data),
        )


@attrs.frozen
class JobInfo:
    """A job with its executions and history, as ``describe`` returns it."""

    job: Job
    executions: tuple[Execution, ...] = ()
    history: tuple[HistoryEvent, ...] = ()

    @property
    def state(self) -> str:
        return self.job.state.state_type if self.job.state else "Undefined"

    @property
    def message(self) -> str:
        return self.job.state.message if self.job.state else ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_JOB_STATES


@attrs.frozen
class SubmitResult:
    """What the orchestrator said to a submission."""

    job_id: str
    evaluation_id: str
    warnings: tuple[str, ...]
    name: str


@attrs.frozen
class NodeOutcome:
    """One node's part of a job: its latest execution there."""

    node_id: str
    execution_id: str
    state: str
    exit_code: int | None
    error: str
    stdout: str
    stderr: str
    result: SpecConfig | None
    partition_index: int = 0

    @property
    def ok(self) -> bool:
        """Completed with exit code 0 (Bacalhau calls a non-zero exit *Completed* too)."""
        return self.state == "Completed" and self.exit_code in (0, None) and not self.error

    @property
    def reason(self) -> str:
        """Why the node failed, in a few words ('' when it did not)."""
        if self.ok:
            return ""
        if self.error:
            return self.error
        if self.state == "Completed":
            return f"exited with code {self.exit_code}"
        detail = f" (exit code {self.exit_code})" if self.exit_code not in (None, 0) else ""
        return f"{self.state}{detail}"


@attrs.frozen
class JobOutcome:
    """A job's state and every node's outcome. ``ok``: the job completed and every node exited
    with 0. A partial failure keeps the completed nodes (with their published results) in
    :attr:`completed` and lists the others with a reason in :attr:`failed`."""

    job_id: str
    name: str
    type: str
    state: str
    message: str
    nodes: tuple[NodeOutcome, ...]

    @property
    def failed(self) -> list[NodeOutcome]:
        return [n for n in self.nodes if n.state in TERMINAL_EXECUTION_STATES and not n.ok]

    @property
    def completed(self) -> list[NodeOutcome]:
        return [n for n in self.nodes if n.ok]

    @property
    def running(self) -> list[NodeOutcome]:
        return [n for n in self.nodes if n.state not in TERMINAL_EXECUTION_STATES]

    @property
    def ok(self) -> bool:
        if self.type in ("daemon", "service"):
            return self.state == "Running" and not self.failed
        return self.state == "Completed" and bool(self.nodes) and not self.failed

    def summary(self) -> str:
        lines = [
            f"job {self.name or self.job_id} ({self.job_id}, {self.type}): {self.state}"
            + (f": {self.message}" if self.message else "")
        ]
        for node in self.nodes:
            code = "" if node.exit_code is None else f", exit code {node.exit_code}"
            why = f": {node.reason}" if node.reason else ""
            lines.append(f"  {node.node_id}: {node.state}{code}{why}")
        if self.failed and self.completed:
            lines.append(
                f"partial failure: {len(self.failed)} of {len(self.nodes)} nodes failed; "
                "the results of the others are still available"
            )
        return "\n".join(lines)


@attrs.frozen
class DownloadedResult:
    """Where one node's result went (``path``), or why it could not be fetched (``error``)."""

    node_id: str
    execution_id: str
    path: Path | None
    exit_code: int | None = None
    error: str = ""


# -- the client -------------------------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _user_agent() -> str:
    try:
        return f"cosmobac/{metadata.version('cosmobac')}"
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "cosmobac"


class BacalhauClient:
    """A client for one orchestrator. Use :meth:`from_env` to honour the Bacalhau CLI's
    variables, or give ``base_url`` and credentials. ``transport`` is for tests (an httpx
    transport); ``sleep``/``clock`` drive :meth:`wait`."""

    def __init__(
        self,
        base_url: str = f"http://127.0.0.1:{DEFAULT_PORT}",
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        namespace: str = "default",
        timeout: float = 30.0,
        verify: bool | str = True,
        allow_old: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.namespace = namespace
        self.allow_old = allow_old
        self.sleep = sleep
        self.clock = clock
        headers = {"User-Agent": _user_agent(), "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if api_key:
            if username or password:
                log.warning("both an API key and a username are set; using the API key")
            headers["Authorization"] = f"Bearer {api_key}"
        elif username or password:
            auth = httpx.BasicAuth(username or "", password or "")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            auth=auth,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )
        self._results_http = httpx.Client(  # compute nodes: never the orchestrator's credentials
            timeout=timeout, verify=verify, transport=transport, follow_redirects=True
        )
        self._version: ServerVersion | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> BacalhauClient:
        """A client for the orchestrator the Bacalhau CLI would talk to: ``BACALHAU_API_HOST``
        (a host, or a URL), ``BACALHAU_API_PORT`` (1234), ``BACALHAU_API_TLS_USETLS``,
        ``BACALHAU_API_TLS_INSECURE``, ``BACALHAU_API_TLS_CACERT``, and the credentials
        ``BACALHAU_API_KEY`` or ``BACALHAU_API_USERNAME``/``BACALHAU_API_PASSWORD``. Keyword
        arguments override."""
        env = os.environ if env is None else env
        host = (env.get("BACALHAU_API_HOST") or "127.0.0.1").strip()
        if "://" in host:
            url = host
        else:
            scheme = "https" if _truthy(env.get("BACALHAU_API_TLS_USETLS")) else "http"
            port = (env.get("BACALHAU_API_PORT") or str(DEFAULT_PORT)).strip()
            url = f"{scheme}://{host}:{port}"
        verify: bool | str = True
        if env.get("BACALHAU_API_TLS_CACERT"):
            verify = env["BACALHAU_API_TLS_CACERT"]
        if _truthy(env.get("BACALHAU_API_TLS_INSECURE")):
            verify = False
        settings: dict[str, Any] = {
            "api_key": env.get("BACALHAU_API_KEY") or None,
            "username": env.get("BACALHAU_API_USERNAME") or None,
            "password": env.get("BACALHAU_API_PASSWORD") or None,
            "verify": verify,
        }
        base_url = kwargs.pop("base_url", url)
        settings.update(kwargs)
        return cls(base_url, **settings)

    def close(self) -> None:
        self._http.close()
        self._results_http.close()

    def __enter__(self) -> BacalhauClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        check_version: bool = True,
    ) -> Any:
        if check_version:
            self.version()
        url = f"{API}{path}"
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = self._http.request(method, url, params=query, json=body)
        except httpx.TimeoutException as exc:
            raise BacalhauConnectionError(
                f"{method} {self.base_url}{url}: no answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise BacalhauConnectionError(
                f"cannot reach the Bacalhau orchestrator at {self.base_url}: {exc}. Set "
                "BACALHAU_API_HOST (and BACALHAU_API_PORT) or pass --api"
            ) from exc
        if response.status_code >= 400:
            raise self._error(response, method, url)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise BacalhauError(
                f"{method} {url}: the server answered HTTP {response.status_code} with a body "
                f"that is not JSON: {response.text[:200]!r}"
            ) from None

    def _error(self, response: httpx.Response, method: str, path: str) -> BacalhauAPIError:
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            message = str(_get(body, "Message") or _get(body, "Error") or response.reason_phrase)
            code = _get(body, "Code")
            hint = _get(body, "Hint")
            request_id = _get(body, "RequestID")
        else:
            message = response.text.strip()[:500] or response.reason_phrase
            code = hint = request_id = None
        kwargs: dict[str, Any] = {
            "code": code,
            "hint": hint,
            "request_id": request_id,
            "method": method,
            "path": path,
            "body": body,
        }
        if status == 401:
            kwargs["hint"] = hint or (
                "give credentials: BACALHAU_API_KEY, or "
                "BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD"
            )
            return BacalhauAuthError(status, message, **kwargs)
        if status == 403:
            kwargs["hint"] = hint or "the credentials lack the capability this call needs"
            return BacalhauAuthError(status, message, **kwargs)
        if status == 404:
            return BacalhauNotFound(status, message, **kwargs)
        if "no changes detected" in message.lower():
            kwargs["hint"] = hint or (
                "the job is unchanged: submit with force (--force) to run "
                "it again under the same name"
            )
        return BacalhauAPIError(status, message, **kwargs)

    def _pages(
        self, path: str, key: str, params: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> Iterator[Any]:
        token = None
        count = 0
        while True:
            page = self._request("GET", path, params={**(params or {}), "next_token": token})
            items = _get(page, key) or []
            for item in items:
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            token = _get(page, "NextToken")
            if not token or not items:
                return

    # -- agent ------------------------------------------------------------------------------------
    def version(self) -> ServerVersion:
        """The server's version (read once). Raises :class:`BacalhauVersionError` below v1.7
        unless the client was made with ``allow_old``."""
        if self._version is None:
            data = self._request("GET", "/agent/version", check_version=False)
            version = ServerVersion.from_wire(data)
            if not version.known:
                log.warning(
                    "the orchestrator reports no usable version (%s); assuming a current build",
                    version,
                )
            elif not version.at_least(*MIN_VERSION):
                message = (
                    f"the orchestrator at {self.base_url} runs Bacalhau {version}; cosmobac's "
                    "jobs need v1.7 or later (the WASM engine parameters and the task Env "
                    "changed then). Upgrade the orchestrator"
                )
                if not self.allow_old:
                    raise BacalhauVersionError(message)
                log.warning("%s (going on: allow_old)", message)
            self._version = version
        return self._version

    def alive(self) -> bool:
        """True when the orchestrator answers ``/agent/alive``."""
        try:
            data = self._request("GET", "/agent/alive", check_version=False)
        except BacalhauError:
            return False
        return str(_get(data, "Status") or "").upper() == "OK"

    # -- jobs -------------------------------------------------------------------------------------
    def prepare(self, job: Job, *, validate: bool = True) -> Job:
        """The job as it will be sent to this server: normalised, checked, adapted to its
        version."""
        normalised, _ = normalise(job)
        if validate:
            problems = [p for p in check_job(job) if p.severity == "error"]
            if problems:
                raise JobSpecError(problems, source=f"job {job.name or '(unnamed)'}")
        version = self.version()
        if version.known and not version.at_least(1, 8):
            normalised = _local_directory(normalised)
        return normalised

    def submit(self, job: Job, *, force: bool = False, validate: bool = True) -> SubmitResult:
        """Submit a job; ``force`` reruns an unchanged job under an existing name (v1.8+).
        Raises :class:`JobSpecError` with every problem before anything is sent."""
        prepared = self.prepare(job, validate=validate)
        version = self.version()
        if (
            version.known
            and not version.at_least(1, 8)
            and prepared.type in ("daemon", "service")
            and prepared.name
        ):
            self._refuse_duplicate(prepared.name)
        data = self._request(
            "PUT",
            "/orchestrator/jobs",
            params={"namespace": prepared.namespace or None},
            body=submit_body(prepared, force=force),
        )
        warnings = tuple(str(w) for w in _get(data, "Warnings") or ())
        for warning in warnings:
            log.warning("orchestrator: %s", warning)
        return SubmitResult(
            job_id=str(_get(data, "JobID") or ""),
            evaluation_id=str(_get(data, "EvaluationID") or ""),
            warnings=warnings,
            name=prepared.name,
        )

    def _refuse_duplicate(self, name: str) -> None:
        """v1.7 has no update semantics: a second daemon under the same name would run twice."""
        try:
            info = self.describe(name, include=())
        except BacalhauNotFound:
            return
        if not info.terminal:
            raise BacalhauError(
                f"a job named {name!r} is {info.state} ({info.job.id}); this v1.7 orchestrator "
                "does not update jobs by name: stop it first (cosmobac bacalhau stop "
                f"{info.job.id})"
            )

    def describe(
        self, job_id: str, *, include: Sequence[str] = ("executions", "history")
    ) -> JobInfo:
        """A job (by ID, unique ID prefix or name) with its executions and history."""
        data = self._request(
            "GET",
            f"/orchestrator/jobs/{job_id}",
            params={"namespace": self.namespace, "include": ",".join(include) or None},
        )
        job, _ = decode_job(_get(data, "Job") or {})
        executions = tuple(
            Execution.from_wire(e) for e in _get(_get(data, "Executions"), "Items") or ()
        )
        history = tuple(
            HistoryEvent.from_wire(h) for h in _get(_get(data, "History"), "Items") or ()
        )
        return JobInfo(job, executions, history)

    def list_jobs(
        self, *, labels: str | None = None, limit: int | None = None, namespace: str | None = None
    ) -> list[Job]:
        """Jobs of the namespace (``"*"``: all), newest first; ``labels`` is a selector on the
        jobs' labels (``app=cosmobac``)."""
        items = self._pages(
            "/orchestrator/jobs",
            "Items",
            {"namespace": namespace or self.namespace, "labels": labels, "reverse": "true"},
            limit,
        )
        return [decode_job(item)[0] for item in items]

    def executions(self, job_id: str) -> list[Execution]:
        """Every execution of a job (one per node for ops and daemon jobs)."""
        items = self._pages(
            f"/orchestrator/jobs/{job_id}/executions", "Items", {"namespace": self.namespace}
        )
        return [Execution.from_wire(item) for item in items]

    def history(self, job_id: str, *, since: int | None = None) -> list[HistoryEvent]:
        """The job's history events (job and execution level)."""
        items = self._pages(
            f"/orchestrator/jobs/{job_id}/history",
            "Items",
            {"namespace": self.namespace, "since": since},
        )
        return [HistoryEvent.from_wire(item) for item in items]

    def results(self, job_id: str) -> list[SpecConfig]:
        """The published results of the job's completed executions (batch and ops jobs only)."""
        items = self._pages(
            f"/orchestrator/jobs/{job_id}/results", "Items", {"namespace": self.namespace}
        )
        return [spec for spec in (_spec(item) for item in items) if spec is not None]

    def stop(self, job_id: str, reason: str = "") -> str:
        """Stop a job (the reason travels in the body, where the server reads it); returns the
        evaluation ID."""
        data = self._request(
            "DELETE",
            f"/orchestrator/jobs/{job_id}",
            params={"namespace": self.namespace},
            body={"reason": reason} if reason else None,
        )
        return str(_get(data, "EvaluationID") or "")

    def nodes(self, *, labels: str | None = None, status: str | None = None) -> list[Node]:
        """The cluster's nodes (``labels``: a selector such as ``city in (lisbon)``; ``status``:
        CONNECTED or DISCONNECTED)."""
        items = self._pages(
            "/orchestrator/nodes", "Nodes", {"labels": labels, "filter-status": status}
        )
        return [Node.from_wire(item) for item in items]

    # -- following a job --------------------------------------------------------------------------
    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        until: Literal["terminal", "running"] | None = None,
        interval: float = 0.5,
        max_interval: float = 10.0,
        on_change: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Poll the job until it is terminal (Completed, Failed, Stopped) or, with
        ``until="running"``, until every node's execution runs (the default for daemon and
        service jobs, which never end). The delay between polls grows from ``interval`` by half
        each time the state stays the same, up to ``max_interval``. Raises :class:`WaitTimeout`
        after ``timeout`` seconds."""
        deadline = self.clock() + timeout
        delay = interval
        last: tuple[Any, ...] | None = None
        info: JobInfo | None = None
        while True:
            info = self.describe(job_id, include=("executions",))
            mode = until or ("running" if info.job.type in ("daemon", "service") else "terminal")
            key = (info.state, tuple((e.id, e.state) for e in info.executions))
            if key != last:
                if on_change is not None:
                    on_change(info)
                delay = interval
                last = key
            else:
                delay = min(max_interval, delay * 1.5)
            if info.terminal:
                return info
            if (
                mode == "running"
                and info.state == "Running"
                and info.executions
                and all(e.state in ("Running", *TERMINAL_EXECUTION_STATES) for e in info.executions)
            ):
                return info
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise WaitTimeout(
                    f"job {job_id} is still {info.state} after {timeout:g} s", last=info
                )
            self.sleep(min(delay, remaining))

    def outcome(self, job_id: str) -> JobOutcome:
        """The job's state and each node's latest execution, with exit codes and reasons."""
        info = self.describe(job_id, include=())
        executions = self.executions(info.job.id or job_id)
        version = info.job.version
        if version:
            executions = [e for e in executions if not e.job_version or e.job_version == version]
        latest: dict[tuple[str, int], Execution] = {}
        for execution in executions:
            key = (execution.node_id, execution.partition_index)
            if key not in latest or execution.modify_time >= latest[key].modify_time:
                latest[key] = execution
        nodes = []
        for execution in sorted(latest.values(), key=lambda e: (e.node_id, e.partition_index)):
            output = execution.run_output or RunOutput()
            error = output.error
            if execution.state == "Failed" and not error:
                error = execution.message or "failed"
            nodes.append(
                NodeOutcome(
                    node_id=execution.node_id,
                    execution_id=execution.id,
                    state=execution.state,
                    exit_code=output.exit_code if execution.run_output else None,
                    error=error,
                    stdout=output.stdout,
                    stderr=output.stderr,
                    result=execution.published_result,
                    partition_index=execution.partition_index,
                )
            )
        return JobOutcome(
            job_id=info.job.id or job_id,
            name=info.job.name,
            type=info.job.type,
            state=info.state,
            message=info.message,
            nodes=tuple(nodes),
        )

    def download_results(
        self, outcome: JobOutcome | str, destination: str | os.PathLike[str]
    ) -> list[DownloadedResult]:
        """Fetch and unpack the published result of every completed node into
        ``destination/<node id>/`` (``stdout``, ``stderr``, ``exitCode``, one folder per result
        path). Nodes that failed are skipped; a result that cannot be fetched is reported, not
        raised, so one unreachable node does not cost the others' results."""
        if isinstance(outcome, str):
            outcome = self.outcome(outcome)
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        published = (
            {_spec_key(r) for r in self.results(outcome.job_id)}
            if outcome.type in ("batch", "ops")
            else set()
        )
        downloads = []
        for node in outcome.nodes:
            if node.state != "Completed":
                continue
            if node.result is None:
                downloads.append(
                    DownloadedResult(
                        node.node_id,
                        node.execution_id,
                        None,
                        node.exit_code,
                        "no published result (the job has no Publisher)",
                    )
                )
                continue
            if published and _spec_key(node.result) not in published:
                log.info("result of %s is not in the job's results list", node.execution_id)
            folder = target / _safe_name(node.node_id or node.execution_id)
            if node.partition_index:
                folder = folder.with_name(f"{folder.name}-{node.partition_index}")
            downloads.append(self._download(node, folder))
        return downloads

    def _download(self, node: NodeOutcome, folder: Path) -> DownloadedResult:
        assert node.result is not None
        result = node.result
        url = _get(result.params, "URL") if result.type == "urlDownload" else None
        if result.type == "s3PreSigned":
            url = _get(result.params, "PreSignedURL")
        if not isinstance(url, str) or not url:
            where = ", ".join(f"{k}={v}" for k, v in result.params.items())
            return DownloadedResult(
                node.node_id,
                node.execution_id,
                None,
                node.exit_code,
                f"published to {result.type} ({where}): fetch it from there",
            )
        try:
            response = self._results_http.get(url)
            response.raise_for_status()
            _extract(response.content, folder)
        except (httpx.HTTPError, tarfile.TarError, OSError, ValueError) as exc:
            return DownloadedResult(
                node.node_id, node.execution_id, None, node.exit_code, f"cannot fetch {url}: {exc}"
            )
        code = node.exit_code
        with contextlib.suppress(OSError, ValueError):
            code = int((folder / "exitCode").read_text().strip())
        return DownloadedResult(node.node_id, node.execution_id, folder, code)


def _spec_key(spec: SpecConfig) -> str:
    import json

    return json.dumps({"Type": spec.type, "Params": dict(spec.params)}, sort_keys=True)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "node"


def _extract(payload: bytes, folder: Path) -> None:
    """Unpack a result tarball (gzip) safely: no absolute paths, no '..', no links out."""
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as archive:
        members = []
        for member in archive.getmembers():
            destination = (root / member.name).resolve()
            if not destination.is_relative_to(root) or member.issym() or member.islnk():
                raise ValueError(f"unsafe path in the result archive: {member.name!r}")
            if member.isfile() or member.isdir():
                members.append(member)
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: also drops modes and owners
            archive.extractall(root, members=members, filter="data")
        else:  # pragma: no cover - older 3.11 patch releases; members were checked above
            archive.extractall(root, members=members)


def _local_directory(job: Job) -> Job:
    """v1.7 knows the local source only as ``localDirectory``."""
    tasks = []
    for task in job.tasks:
        sources = tuple(
            attrs.evolve(s, source=attrs.evolve(s.source, type="localDirectory"))
            if s.source.type == "local"
            else s
            for s in task.input_sources
        )
        tasks.append(attrs.evolve(task, input_sources=sources))
    return attrs.evolve(job, tasks=tuple(tasks))


JOB_STATES: Final = tuple(JOB_STATE_NAMES.values())
