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
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import httpx

from .api_records import (
    EXECUTION_STATES,
    TERMINAL_EXECUTION_STATES,
    DownloadedResult,
    Execution,
    HistoryEvent,
    JobInfo,
    JobOutcome,
    Node,
    NodeOutcome,
    RunOutput,
    ServerVersion,
    SubmitResult,
    get_key,
    spec_from_wire,
)
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
    Job,
    SpecConfig,
    decode_job,
    submit_body,
)
from .validate import check_job, normalise

__all__ = [
    "EXECUTION_STATES",
    "RESULT_JOB_TYPES",
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
    "no_results_reason",
]

log = logging.getLogger("cosmobac_bacalhau")

API: Final = "/api/v1"
DEFAULT_PORT: Final = 1234
MIN_VERSION: Final = (1, 7)


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
            message = str(
                get_key(body, "Message") or get_key(body, "Error") or response.reason_phrase
            )
            code = get_key(body, "Code")
            hint = get_key(body, "Hint")
            request_id = get_key(body, "RequestID")
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
            items = get_key(page, key) or []
            for item in items:
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            token = get_key(page, "NextToken")
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
        return str(get_key(data, "Status") or "").upper() == "OK"

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
        warnings = tuple(str(w) for w in get_key(data, "Warnings") or ())
        for warning in warnings:
            log.warning("orchestrator: %s", warning)
        return SubmitResult(
            job_id=str(get_key(data, "JobID") or ""),
            evaluation_id=str(get_key(data, "EvaluationID") or ""),
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
        job, _ = decode_job(get_key(data, "Job") or {})
        executions = tuple(
            Execution.from_wire(e) for e in get_key(get_key(data, "Executions"), "Items") or ()
        )
        history = tuple(
            HistoryEvent.from_wire(h) for h in get_key(get_key(data, "History"), "Items") or ()
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
        return [spec for spec in (spec_from_wire(item) for item in items) if spec is not None]

    def stop(self, job_id: str, reason: str = "") -> str:
        """Stop a job (the reason travels in the body, where the server reads it); returns the
        evaluation ID."""
        data = self._request(
            "DELETE",
            f"/orchestrator/jobs/{job_id}",
            params={"namespace": self.namespace},
            body={"reason": reason} if reason else None,
        )
        return str(get_key(data, "EvaluationID") or "")

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
                    stdout_truncated=output.stdout_truncated,
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
        raised, so one unreachable node does not cost the others' results. A daemon or service
        job has no results: :class:`~.errors.BacalhauError` says so."""
        if isinstance(outcome, str):
            outcome = self.outcome(outcome)
        if outcome.type not in RESULT_JOB_TYPES:
            raise BacalhauError(no_results_reason(outcome))
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        listed = self.results(outcome.job_id)
        published = {_spec_key(r) for r in listed}
        signed = [
            url
            for url in (get_key(r.params, "URL") for r in listed if r.type == "urlDownload")
            if isinstance(url, str) and url
        ]
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
            url = None
            if node.result.type in SIGNED_RESULT_TYPES:
                url = _signed_url(node.result, signed)
            elif published and _spec_key(node.result) not in published:
                log.info("result of %s is not in the job's results list", node.execution_id)
            folder = target / _safe_name(node.node_id or node.execution_id)
            if node.partition_index:
                folder = folder.with_name(f"{folder.name}-{node.partition_index}")
            downloads.append(self._download(node, folder, url))
        return downloads

    def _download(self, node: NodeOutcome, folder: Path, signed: str | None) -> DownloadedResult:
        assert node.result is not None
        result = node.result
        url = get_key(result.params, "URL") if result.type == "urlDownload" else signed
        if result.type == "s3PreSigned":
            url = get_key(result.params, "PreSignedURL")
        if not isinstance(url, str) or not url:
            where = ", ".join(f"{k}={v}" for k, v in result.params.items())
            why = (
                "no signed URL for it in the job's results (GET /jobs/{id}/results)"
                if result.type in SIGNED_RESULT_TYPES
                else "cosmobac cannot download that kind of result"
            )
            return DownloadedResult(
                node.node_id,
                node.execution_id,
                None,
                node.exit_code,
                f"published to {result.type} ({where}): {why}; fetch it from there",
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


RESULT_JOB_TYPES: Final = ("batch", "ops")
# results the orchestrator hands out as pre-signed URLs in GET /jobs/{id}/results
SIGNED_RESULT_TYPES: Final = ("s3", "s3managed")


def _signed_url(result: SpecConfig, signed: Sequence[str]) -> str | None:
    """The pre-signed URL of an S3 result: the listed URL whose path ends with the result's key
    (the results list carries no execution or node ID, and the signature varies)."""
    key = get_key(result.params, "Key")
    if not isinstance(key, str) or not key.strip("/"):
        return None
    suffix = "/" + key.strip("/")
    bucket = get_key(result.params, "Bucket")
    matches = []
    for url in signed:
        parsed = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parsed.path)
        if not path.endswith(suffix):
            continue
        # path-style (host/BUCKET/KEY) or virtual-hosted (BUCKET.host/KEY) addressing
        if isinstance(bucket, str) and bucket and bucket not in parsed.netloc + path:
            continue
        matches.append(url)
    return matches[0] if len(matches) == 1 else None


def no_results_reason(outcome: JobOutcome) -> str:
    """Why a job of a type other than batch or ops has no results to fetch."""
    return (
        f"job {outcome.name or outcome.job_id} ({outcome.job_id}) is a {outcome.type or 'untyped'} "
        "job: Bacalhau publishes results only for batch and ops jobs (GET /jobs/{id}/results "
        "refuses the others), so there is nothing to fetch; a long-running job's data leaves "
        "through the workload itself (for the cosmobac forwarder: its sinks). Use "
        "'cosmobac bacalhau status' to see its nodes."
    )


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
