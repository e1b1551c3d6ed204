"""The fleet view: every node's ``cosmobac status --json``, gathered by one ``ops`` job
(:func:`~cosmobac_bacalhau.builders.status_job`), judged and shown one table per node.

A node is *healthy* when its execution completed with exit code 0 and printed a status document
that reports no problem: ``"healthy": false``, a non-empty ``"problems"`` list or a sink with
``"stopped": true`` make it unhealthy (nodes running an older cosmobac print none of these keys;
their document is taken as it is). A node is unhealthy, with the reason, when its execution
failed, when it printed something that is not a status document, and when it did not answer:
no execution there (a disconnected node that matches the job's constraints) or one still running
when the time is up.

Stdout comes from each execution's ``RunOutput`` (its first 2 KB, see Bacalhau's
``RunCommandResult``); a longer document is read from the node's published result (``stdout``
in the result tarball, which is why the status job publishes with the ``local`` publisher).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from .api_records import JobInfo, JobOutcome, Node, NodeOutcome
from .client import BacalhauClient
from .errors import BacalhauError, WaitTimeout
from .model import Job
from .selectors import format_constraint

__all__ = ["FleetStatus", "NodeStatus", "age_text", "fleet_status", "parse_status"]

_STATUS_KEYS: Final = ("rows", "sinks")  # keys every cosmobac's status document has


@attrs.frozen
class NodeStatus:
    """One node's answer: its status document (``status``), or why there is none (``error``).
    ``problems`` are the reasons the node is unhealthy ('' list when it is healthy)."""

    node_id: str
    status: Mapping[str, Any] | None = None
    error: str = ""
    exit_code: int | None = None

    @property
    def problems(self) -> list[str]:
        if self.status is None:
            return [self.error or "no status"]
        found = []
        if self.error:
            found.append(self.error)
        for problem in _list(self.status.get("problems")):
            if isinstance(problem, Mapping):
                found.append(_problem_text(problem))
            else:
                found.append(str(problem))
        for sink in _list(self.status.get("sinks")):
            if isinstance(sink, Mapping) and sink.get("stopped") is True:
                name = _sink_name(sink)
                if not any(p.startswith(f"{name}:") for p in found):  # not already explained
                    found.append(f"{name}: stopped")
        if self.status.get("healthy") is False and not found:
            found.append("reports itself unhealthy")
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The node's status document with ``healthy`` set to the verdict (and ``error`` when
        the execution failed), or ``{"healthy": false, "error": ...}`` without a document."""
        if self.status is None:
            out: dict[str, Any] = {"healthy": False, "error": self.error or "no status"}
        else:
            out = {**self.status, "healthy": self.healthy}
            if self.error:
                out["error"] = self.error
        if self.exit_code is not None:
            out.setdefault("exit_code", self.exit_code)
        return out


@attrs.frozen
class FleetStatus:
    """Every node's :class:`NodeStatus`, by node ID; ``job_id`` is the status job."""

    job_id: str
    nodes: tuple[NodeStatus, ...]
    message: str = ""  # why no node answered, when none did

    @property
    def healthy(self) -> bool:
        """At least one node answered and every node is healthy."""
        return bool(self.nodes) and all(n.healthy for n in self.nodes)

    @property
    def unhealthy(self) -> list[NodeStatus]:
        return [n for n in self.nodes if not n.healthy]

    def as_json(self) -> dict[str, Any]:
        return {n.node_id: n.as_json() for n in self.nodes}

    def text(self) -> str:
        """One table per node, then a summary line."""
        blocks = [_node_text(node) for node in self.nodes]
        bad = len(self.unhealthy)
        if not self.nodes:
            summary = f"no node answered: {self.message or 'no node ran the status job'}"
        else:
            summary = (
                f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}: "
                f"{len(self.nodes) - bad} healthy, {bad} unhealthy"
            )
        return "\n\n".join([*blocks, summary]) + "\n"


# -- reading one node's answer -----------------------------------------------------------------------
def parse_status(text: str) -> tuple[dict[str, Any] | None, str]:
    """A status document from a node's stdout, or why it is not one."""
    stripped = text.strip()
    if not stripped:
        return None, "printed nothing"
    try:
        data = json.loads(stripped)
    except ValueError:
        first = stripped.splitlines()[0][:120]
        return None, f"printed no status JSON: {first!r}"
    if not isinstance(data, dict) or not any(k in data for k in _STATUS_KEYS):
        return None, "printed JSON that is not a cosmobac status document"
    return data, ""


def node_status(node: NodeOutcome, stdout: str | None = None) -> NodeStatus:
    """One node's :class:`NodeStatus` from its execution (``stdout``: the full output, when it
    was fetched from the result because ``RunOutput`` holds only its start)."""
    text = node.stdout if stdout is None else stdout
    if node.state == "Completed":
        status, why = parse_status(text)
        error = "" if node.ok else f"status exited with code {node.exit_code}"
        if status is not None and status.get("healthy") is False:
            error = ""  # the document says why (a status may exit non-zero when unhealthy)
        if status is None:
            error = "; ".join(e for e in (error, why) if e)
            if node.stdout_truncated and stdout is None:
                error += " (stdout was cut at 2 KB and the full result could not be fetched)"
        return NodeStatus(node.node_id, status, error, node.exit_code)
    if node.state in ("Failed", "Cancelled", "Stopped", "Rejected"):
        return NodeStatus(
            node.node_id, None, f"execution {node.state.lower()}: {node.reason}", node.exit_code
        )
    return NodeStatus(node.node_id, None, f"no answer in time (execution {node.state})")


# -- the whole fleet -----------------------------------------------------------------------------------
def fleet_status(
    client: BacalhauClient,
    job: Job,
    *,
    timeout: float = 120.0,
    on_change: Callable[[JobInfo], None] | None = None,
    stop_late: bool = True,
) -> FleetStatus:
    """Submit the status ``job`` (see :func:`~.builders.status_job`), wait for it up to
    ``timeout`` seconds and gather every node's answer. Nodes still running then are reported
    as not answering (and the job is stopped, unless ``stop_late`` is false); matching nodes
    without an execution (disconnected) as well."""
    submitted = client.submit(job)
    job_id = submitted.job_id
    late = False
    try:
        client.wait(job_id, timeout=timeout, until="terminal", on_change=on_change)
    except WaitTimeout:
        late = True
    outcome = client.outcome(job_id)
    if late and stop_late:
        with contextlib.suppress(BacalhauError):
            client.stop(job_id, "cosmobac fleet-status: no answer in time")
    stdouts = _full_stdouts(client, outcome)
    answers = {n.node_id: node_status(n, stdouts.get(n.node_id)) for n in outcome.nodes}
    for node in _expected_nodes(client, job):
        if node.id not in answers:
            state = node.connection.lower() or "unknown"
            answers[node.id] = NodeStatus(
                node.id, None, f"did not answer: no execution on the node (it is {state})"
            )
    message = "" if answers else (outcome.message or f"the job is {outcome.state}")
    return FleetStatus(job_id, tuple(answers[k] for k in sorted(answers)), message)


def _full_stdouts(client: BacalhauClient, outcome: JobOutcome) -> dict[str, str]:
    """The whole stdout of completed nodes whose ``RunOutput`` holds only its first 2 KB."""
    cut = [n for n in outcome.nodes if n.state == "Completed" and n.stdout_truncated]
    if not cut:
        return {}
    found = {}
    with tempfile.TemporaryDirectory(prefix="cosmobac-fleet-") as folder:
        try:
            downloaded = client.download_results(attrs.evolve(outcome, nodes=tuple(cut)), folder)
        except BacalhauError:
            return {}
        for item in downloaded:
            if item.path is not None:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    found[item.node_id] = (item.path / "stdout").read_text(encoding="utf-8")
    return found


def _expected_nodes(client: BacalhauClient, job: Job) -> list[Node]:
    """Compute nodes matching the job's constraints that can run its engine."""
    selector = ", ".join(format_constraint(c) for c in job.constraints) or None
    engine = job.tasks[0].engine.type if job.tasks else None
    try:
        nodes = client.nodes(labels=selector)
    except BacalhauError:
        return []
    return [
        n
        for n in nodes
        if n.type.lower() in ("compute", "")
        and (not n.engines or engine is None or engine in n.engines)
    ]


# -- text --------------------------------------------------------------------------------------------
def age_text(seconds: float | None) -> str:
    """An age for people: ``45 s``, ``12 min``, ``5 h``, ``3 d``; ``-`` when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    if seconds < 0:
        return f"{age_text(-seconds)} ahead"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _sink_name(sink: Mapping[str, Any]) -> str:
    return str(sink.get("consumer") or sink.get("name") or sink.get("plugin") or "?")


def _problem_text(problem: Mapping[str, Any]) -> str:
    where = problem.get("sink")
    reason = str(problem.get("reason") or "problem")
    detail = problem.get("error")
    if detail is None and problem.get("oldest_pending_age_s") is not None:
        detail = f"oldest pending {age_text(problem.get('oldest_pending_age_s'))}"
        if problem.get("max_backlog_age_s") is not None:
            detail += f", over {age_text(problem.get('max_backlog_age_s'))}"
    text = f"{where}: {reason}" if where else reason
    return f"{text}: {detail}" if detail else text


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def _node_text(node: NodeStatus) -> str:
    verdict = "healthy" if node.healthy else "UNHEALTHY"
    lines = [f"{node.node_id}: {verdict}"]
    status = node.status
    if status is None:
        lines.append(f"  {node.error or 'no status'}")
        return "\n".join(lines)
    size = status.get("file_size")
    size_text = f", file {size / 1e6:.1f} MB" if isinstance(size, int | float) else ""
    lines.append(f"  rows stored: {_cell(status.get('rows'))}{size_text}")
    sinks = [s for s in _list(status.get("sinks")) if isinstance(s, Mapping)]
    if sinks:
        rows: list[Sequence[str]] = [
            ("SINK", "BACKLOG", "OLDEST", "ROWS/S", "DEAD", "STATE", "LAST ERROR")
        ]
        rows.extend(_sink_row(sink, status) for sink in sinks)
        lines.extend(_table(rows))
    else:
        lines.append("  no sinks")
    for problem in node.problems:
        lines.append(f"  problem: {problem}")
    return "\n".join(lines)


def _sink_row(sink: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[str, ...]:
    consumer = _sink_name(sink)
    age = sink.get("oldest_pending_age_s")
    if age is None and "oldest_pending_age_s" not in sink:  # an older node: the store's figure
        by_consumer = status.get("oldest_pending_age_s")
        if isinstance(by_consumer, Mapping):
            age = by_consumer.get(consumer)
    dead = sink.get("dead_letters")
    if dead is None:
        by_consumer = status.get("dead_letters")
        if isinstance(by_consumer, Mapping):
            dead = by_consumer.get(consumer)
    stopped = sink.get("stopped")
    state = sink.get("state")  # ok, retrying or stopped (older nodes: only "stopped")
    if not isinstance(state, str):
        state = "stopped" if stopped is True else "ok" if stopped is False else "-"
    error = sink.get("last_error")
    error_text = "-"
    if error:
        when = sink.get("last_error_at")
        error_text = _short(str(error)) + (f" (at {when})" if when else "")
    return (
        consumer,
        _cell(sink.get("pending")),
        age_text(age),
        _cell(sink.get("rows_per_second")),
        _cell(dead),
        state,
        error_text,
    )
