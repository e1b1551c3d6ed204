"""What a Bacalhau orchestrator's REST API answers, as records: the server version, executions
with their run output, history events, nodes, a job with its executions, a submission's answer,
and cosmobac's per-node view of a job (``NodeOutcome``, ``JobOutcome``, ``DownloadedResult``).

Readers are lenient where the server is inconsistent: keys match without regard to case
(``Stdout`` but ``stderr``), and states are read from the integer or the string form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .model import TERMINAL_JOB_STATES, Job, SpecConfig

__all__ = [
    "DESIRED_STATES",
    "EXECUTION_STATES",
    "NORMAL_EXIT_CODES",
    "TERMINAL_EXECUTION_STATES",
    "DownloadedResult",
    "Execution",
    "HistoryEvent",
    "JobInfo",
    "JobOutcome",
    "Node",
    "NodeOutcome",
    "RunOutput",
    "ServerVersion",
    "SubmitResult",
    "get_key",
    "spec_from_wire",
    "state_name",
]

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
# 0, or -1: a WASM entry point that returned without proc_exit (Bacalhau records -1 and calls the
# execution Completed; a Rust main that returns normally ends so)
NORMAL_EXIT_CODES: Final = (0, -1)


# -- reading the server's objects -------------------------------------------------------------------
def get_key(data: Any, key: str, default: Any = None) -> Any:
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


def state_name(value: Any, names: Mapping[int, str]) -> str:
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


def spec_from_wire(data: Any) -> SpecConfig | None:
    if not isinstance(data, Mapping) or not get_key(data, "Type"):
        return None
    params = get_key(data, "Params") or {}
    return SpecConfig(
        str(get_key(data, "Type")), dict(params) if isinstance(params, Mapping) else {}
    )


@attrs.frozen
class ServerVersion:
    """The orchestrator's build version."""

    major: int
    minor: int
    patch: int
    git_version: str

    @classmethod
    def from_wire(cls, data: Any) -> ServerVersion:
        git = str(get_key(data, "GitVersion") or "")
        match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", git)
        if match:
            return cls(int(match[1]), int(match[2]), int(match[3] or 0), git)
        try:
            major = int(str(get_key(data, "Major") or "").strip() or "x")
            minor = int(re.sub(r"\D.*$", "", str(get_key(data, "Minor") or "")) or "x")
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
        code = get_key(data, "ExitCode")
        return cls(
            stdout=str(get_key(data, "Stdout") or ""),
            stdout_truncated=bool(get_key(data, "StdoutTruncated")),
            stderr=str(get_key(data, "stderr") or ""),
            stderr_truncated=bool(get_key(data, "StderrTruncated")),
            exit_code=int(code) if isinstance(code, int | float) else None,
            error=str(get_key(data, "ErrorMsg") or ""),
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
        compute = get_key(data, "ComputeState") or {}
        desired = get_key(data, "DesiredState") or {}
        return cls(
            id=str(get_key(data, "ID") or ""),
            node_id=str(get_key(data, "NodeID") or ""),
            job_id=str(get_key(data, "JobID") or ""),
            state=state_name(get_key(compute, "StateType"), EXECUTION_STATES),
            message=str(get_key(compute, "Message") or ""),
            desired_state=state_name(get_key(desired, "StateType"), DESIRED_STATES),
            run_output=RunOutput.from_wire(get_key(data, "RunOutput")),
            published_result=spec_from_wire(get_key(data, "PublishedResult")),
            partition_index=int(get_key(data, "PartitionIndex") or 0),
            job_version=int(get_key(data, "JobVersion") or 0),
            modify_time=int(get_key(data, "ModifyTime") or get_key(data, "CreateTime") or 0),
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
        event = get_key(data, "Event") or {}
        return cls(
            seq=int(get_key(data, "SeqNum") or 0),
            type=str(get_key(data, "Type") or ""),
            execution_id=str(get_key(data, "ExecutionID") or ""),
            time=str(get_key(data, "Time") or get_key(event, "Timestamp") or ""),
            message=str(get_key(event, "Message") or ""),
            topic=str(get_key(event, "Topic") or ""),
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
        info = get_key(data, "Info") or {}
        compute = get_key(info, "ComputeNodeInfo") or {}
        connection = get_key(data, "ConnectionState") or {}
        version = get_key(info, "BacalhauVersion") or {}
        return cls(
            id=str(get_key(info, "NodeID") or ""),
            type=str(get_key(info, "NodeType") or ""),
            labels={str(k): str(v) for k, v in (get_key(info, "Labels") or {}).items()},
            membership=str(get_key(data, "Membership") or ""),
            connection=str(get_key(connection, "Status") or get_key(data, "Connection") or ""),
            engines=tuple(str(e) for e in get_key(compute, "ExecutionEngines") or ()),
            publishers=tuple(str(e) for e in get_key(compute, "Publishers") or ()),
            sources=tuple(str(e) for e in get_key(compute, "StorageSources") or ()),
            version=str(get_key(version, "GitVersion") or ""),
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
    stdout_truncated: bool = False  # ``stdout`` is the first 2 KB; the result holds all of it

    @property
    def ok(self) -> bool:
        """Completed with exit code 0, or -1: what Bacalhau records when a WASM entry point
        returns without calling ``proc_exit`` (it calls a non-zero exit *Completed* too, which is
        a failure here)."""
        return (
            self.state == "Completed"
            and self.exit_code in (*NORMAL_EXIT_CODES, None)
            and not self.error
        )

    @property
    def reason(self) -> str:
        """Why the node failed, in a few words ('' when it did not)."""
        if self.ok:
            return ""
        if self.error:
            return self.error
        if self.state == "Completed":
            return f"exited with code {self.exit_code}"
        detail = (
            f" (exit code {self.exit_code})"
            if self.exit_code not in (*NORMAL_EXIT_CODES, None)
            else ""
        )
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
