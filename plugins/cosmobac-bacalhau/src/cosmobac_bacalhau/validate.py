"""Bacalhau's job rules, ported: every problem at once, each naming its field path.

Three kinds of rules, all checked here before anything is sent:

* **submit**: the orchestrator refuses the job with HTTP 400 (job type, counts, task name,
  engine type, env names, timeouts, resources, inputs, result paths, network, constraint
  operators);
* **schedule**: accepted, then the job fails when it is scheduled (label syntax of constraint
  values such as ``São Paulo``, ``gt``/``lt`` values, engine, source and publisher types no node
  supports);
* **execute**: accepted and scheduled, then the execution fails on the node (docker ``Image``
  and ``WorkingDirectory``; WASM ``EntryModule`` that resolves to no input, a missing or
  unexported ``Entrypoint``; ``urlDownload`` URLs; S3 buckets; local paths).

The engines' parameter rules are in :mod:`.engine_rules`; :func:`normalise` (in :mod:`.normaliser`)
does what the server's transformers would do to a spec (and what cosmobac prefers to send):
canonical key spelling, the pre-1.7 WASM shape turned into the current one, read-only fields
dropped; the type names and size grammar are in :mod:`.vocabulary`. :func:`judge_spec` reads a spec, normalises and validates it, and says
whether it is *accepted*, *normalised* or *rejected*.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlparse

import attrs

from . import dataurl
from .engine_rules import docker_rules, resolve_module, wasm_rules
from .model import JOB_TYPES, Job, Network, Port, ResultPath, SpecConfig, Task, decode_job
from .normaliser import normalise
from .problems import Collector, Problem
from .selectors import OPERATORS, label_key_problem, label_value_problem
from .vocabulary import (
    CPU_QUANTITY,
    ENGINES,
    MAX_BODY,
    NETWORK_TYPES,
    PUBLISHERS,
    SOURCES,
    canonical_name,
    params_by_name,
    parse_bytes,
)

__all__ = [
    "ENGINES",
    "NETWORK_TYPES",
    "PUBLISHERS",
    "SOURCES",
    "SpecReport",
    "check_job",
    "judge_spec",
    "normalise",
    "parse_bytes",
    "resolve_module",
    "result_path",
    "validate_job",
]

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_HOST_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Bacalhau's domain pattern (pkg/models/network.go), matched anywhere in the lower-cased domain
_DOMAIN = re.compile(r"\b([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}\b", re.ASCII)
_PORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRETISH = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|CONNECTION_STRING")

Verdict = Literal["accepted", "normalised", "rejected"]


# -- validation -------------------------------------------------------------------------------------
def validate_job(job: Job, *, engines: Sequence[str] = ENGINES) -> list[Problem]:
    """Every problem of ``job`` by Bacalhau's rules (errors, warnings and notes), in field order.
    ``engines``: the engine types the cluster runs (a custom build may add some)."""
    out = Collector()
    if not job.type:
        out.error("Type", f"missing job type; one of {', '.join(JOB_TYPES)}", "job-type-missing")
    elif job.type not in JOB_TYPES:
        hint = f" (write {job.type.lower()!r})" if job.type.lower() in JOB_TYPES else ""
        out.error(
            "Type",
            f"invalid job type {job.type!r}{hint}; one of {', '.join(JOB_TYPES)}",
            "job-type-invalid",
        )
    if "\0" in job.name:
        out.error("Name", "job name contains a NUL character", "name-null")
    elif not job.name.strip():
        out.info(
            "Name",
            "no name: the server names the job by its ID (unique per submission)",
            "name-missing",
        )
    if job.count is not None:
        if job.count < 0:
            out.error("Count", f"must be ≥ 0, got {job.count}", "count-negative")
        elif job.type in ("daemon", "ops") and job.count > 1:
            out.error(
                "Count",
                f"{job.type} jobs run once on every matching node: Count must be "
                f"0 or 1 (or left out), got {job.count}",
                "count-daemon",
            )
        elif job.type in ("batch", "service") and job.count == 0:
            out.warn(
                "Count",
                "an explicit 0 starts no execution (it means 'stop all'); leave "
                "Count out or give 1 or more",
                "count-zero",
            )
    if job.state is not None or job.version or job.revision or job.create_time:
        out.warn("State", "read-only fields are ignored on submission", "read-only")
    reserved = [k for k in job.meta if k.startswith("bacalhau.org/")]
    if reserved:
        out.warn(
            "Meta",
            f"keys starting with bacalhau.org/ are reserved; the server removes "
            f"{', '.join(reserved)}",
            "meta-reserved",
        )
    for i, constraint in enumerate(job.constraints):
        _constraint(
            out, f"Constraints[{i}]", constraint.key, constraint.operator, constraint.values
        )
    if not job.tasks:
        out.error("Tasks", "missing job tasks: a job needs exactly one task", "tasks-missing")
    elif len(job.tasks) > 1:
        out.error(
            "Tasks",
            f"{len(job.tasks)} tasks given; only one task per job is supported "
            "(the server would drop the others with a mere warning)",
            "tasks-many",
        )
    for i, task in enumerate(job.tasks):
        _task(out, job, task, f"Tasks[{i}]", engines)
    size = len(json.dumps(job.to_wire(for_submit=True)).encode())
    if size > MAX_BODY - 1024:
        out.error(
            "",
            f"the spec is {size / 1e6:.1f} MB; the API accepts request bodies up to "
            "10 MB: ship large inputs by URL, S3 or a local path, not inline",
            "body-too-large",
        )
    return out.problems


def _constraint(out: Collector, path: str, key: str, operator: str, values: Sequence[str]) -> None:
    if operator not in OPERATORS:
        out.error(
            f"{path}.Operator",
            f"unknown operator {operator!r}; one of {' '.join(OPERATORS)}",
            "constraint-operator",
        )
        return
    count = len(values)
    if operator in ("in", "notin") and count < 1:
        out.error(f"{path}.Values", f"{operator!r} needs at least one value", "constraint-values")
    elif operator in ("exists", "!") and count:
        out.error(
            f"{path}.Values", f"{operator!r} takes no values, got {count}", "constraint-values"
        )
    elif operator not in ("in", "notin", "exists", "!") and count != 1:
        out.error(
            f"{path}.Values",
            f"{operator!r} needs exactly one value, got {count}",
            "constraint-values",
        )
    why = label_key_problem(key)
    if why:
        out.error(f"{path}.Key", why, "constraint-key", "schedule")
    for j, value in enumerate(values):
        why = label_value_problem(value)
        if why:
            out.error(f"{path}.Values[{j}]", why, "constraint-value-syntax", "schedule")
        elif operator in ("gt", "lt") and not re.fullmatch(r"[+-]?\d+", value):
            out.error(
                f"{path}.Values[{j}]",
                f"{operator!r} compares whole numbers; got {value!r}",
                "constraint-integer",
                "schedule",
            )


def _task(out: Collector, job: Job, task: Task, path: str, engines: Sequence[str]) -> None:
    if "\0" in task.name:
        out.error(f"{path}.Name", "task name contains a NUL character", "task-name-null")
    elif not task.name.strip():
        out.error(f"{path}.Name", "missing task name (e.g. main)", "task-name-missing")
    engine = task.engine
    if not engine.type.strip():
        out.error(
            f"{path}.Engine.Type",
            f"missing engine type; one of {', '.join(engines)}",
            "engine-type-missing",
        )
    elif engine.type not in engines:
        out.error(
            f"{path}.Engine.Type",
            f"no Bacalhau node runs engine {engine.type!r} (the "
            "server accepts the job, then fails it: 'not enough nodes to run job'); one of "
            f"{', '.join(engines)}",
            "engine-type-unknown",
            "schedule",
        )
    elif engine.type == "noop":
        out.warn(
            f"{path}.Engine.Type", "noop is Bacalhau's test engine: it runs nothing", "engine-noop"
        )
    _env(out, task, path)
    _timeouts(out, task, path)
    _resources(out, task, path)
    _inputs(out, task, path)
    _results(out, job, task, path)
    _publisher(out, job, task, path)
    _network(out, task.network, f"{path}.Network")
    if engine.type == "docker":
        docker_rules(out, engine, f"{path}.Engine.Params")
    elif engine.type == "wasm":
        wasm_rules(out, task, path)


def _env(out: Collector, task: Task, path: str) -> None:
    for name, value in task.env.items():
        where = f"{path}.Env[{name!r}]"
        if not name:
            out.error(where, "empty environment variable name", "env-name")
        elif name.upper().startswith("BACALHAU_"):
            out.error(
                where,
                f"{name!r}: names starting with BACALHAU_ are reserved for the "
                "variables Bacalhau sets",
                "env-reserved",
            )
        elif not _ENV_NAME.match(name):
            out.error(
                where,
                f"{name!r}: names must be upper case letters, digits and '_', "
                f"starting with a letter (e.g. {re.sub(r'[^A-Z0-9_]', '_', name.upper())!r})",
                "env-name",
            )
        if not value:
            out.error(where, "the value must not be empty", "env-value-empty")
        elif value.startswith("env:"):
            host = value[4:]
            if not _HOST_VAR.match(host):
                out.error(
                    where,
                    f"{value!r}: env: must be followed by a host variable name",
                    "env-host-ref",
                )
        elif _SECRETISH.search(name.upper()):
            out.warn(
                where,
                f"{name} looks like a secret written into the spec; write "
                f"'env:{name}' to take it from the compute node's environment (allow-list "
                "it with Compute.Env.AllowList)",
                "env-secret-literal",
            )


def _timeouts(out: Collector, task: Task, path: str) -> None:
    t = task.timeouts
    for name, value in (
        ("ExecutionTimeout", t.execution_timeout),
        ("QueueTimeout", t.queue_timeout),
        ("TotalTimeout", t.total_timeout),
    ):
        if value < 0:
            out.error(
                f"{path}.Timeouts.{name}", f"must be ≥ 0 seconds, got {value}", "timeout-negative"
            )
    if t.total_timeout > 0 and t.execution_timeout + t.queue_timeout > t.total_timeout:
        out.error(
            f"{path}.Timeouts.TotalTimeout",
            f"ExecutionTimeout + QueueTimeout "
            f"({t.execution_timeout} + {t.queue_timeout} s) exceed TotalTimeout "
            f"({t.total_timeout} s)",
            "timeout-total",
        )


def _resources(out: Collector, task: Task, path: str) -> None:
    r = task.resources
    where = f"{path}.Resources"
    cpu = r.cpu.lower().replace(" ", "")
    if cpu and not CPU_QUANTITY.match(cpu):
        out.error(
            f"{where}.CPU",
            f"{r.cpu!r} is not a CPU quantity (e.g. '500m', '0.5', '2')",
            "resources-cpu",
        )
    elif "M" in r.cpu:
        out.warn(
            f"{where}.CPU",
            f"the server lower-cases {r.cpu!r} to {cpu!r}: millicores",
            "resources-cpu-case",
        )
    for name, value in (("Memory", r.memory), ("Disk", r.disk)):
        if value:
            try:
                parse_bytes(value)
            except ValueError:
                out.error(
                    f"{where}.{name}",
                    f"{value!r} is not a size (e.g. '512Mb', '1GiB')",
                    f"resources-{name.lower()}",
                )
    if r.gpu and not r.gpu.strip().isdigit():
        out.error(f"{where}.GPU", f"{r.gpu!r} is not a whole number of GPUs", "resources-gpu")


def _inputs(out: Collector, task: Task, path: str) -> None:
    aliases: dict[str, int] = {}
    targets: dict[str, int] = {}
    for i, source in enumerate(task.input_sources):
        where = f"{path}.InputSources[{i}]"
        if not source.target.strip():
            out.error(
                f"{where}.Target",
                "missing target: the path the input is mounted at",
                "input-target-missing",
            )
        elif source.target in targets:
            out.error(
                f"{where}.Target",
                f"target {source.target!r} is already used by "
                f"InputSources[{targets[source.target]}]",
                "input-target-duplicate",
            )
        else:
            targets[source.target] = i
        if source.alias:
            if source.alias in aliases:
                out.error(
                    f"{where}.Alias",
                    f"alias {source.alias!r} is already used by "
                    f"InputSources[{aliases[source.alias]}]",
                    "input-alias-duplicate",
                )
            else:
                aliases[source.alias] = i
        spec = source.source
        kind = spec.type
        if not kind.strip():
            out.error(
                f"{where}.Source.Type",
                f"missing source type; one of {', '.join(SOURCES)}",
                "input-source-type-missing",
            )
            continue
        if kind not in SOURCES:
            out.error(
                f"{where}.Source.Type",
                f"no node can fetch a {kind!r} source; one of {', '.join(SOURCES)}",
                "input-source-type-unknown",
                "schedule",
            )
            continue
        _sourceparams_by_name(out, spec, f"{where}.Source.Params")


def _sourceparams_by_name(out: Collector, spec: SpecConfig, where: str) -> None:
    params = params_by_name(spec)

    def get(name: str) -> Any:
        return params.get(name.lower(), (name, None))[1]

    kind = spec.type
    if kind == "inline":
        url = get("URL")
        try:
            dataurl.decode(url)
        except ValueError as exc:
            out.error(f"{where}.URL", str(exc), "inline-url", "execute")
    elif kind == "urlDownload":
        url = get("URL")
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            out.error(
                f"{where}.URL",
                f"{url!r}: only http and https URLs can be downloaded",
                "url-download",
                "execute",
            )
        elif not PurePosixPath(parsed.path).name:
            out.error(
                f"{where}.URL",
                f"{url!r}: the URL path must end in a file name",
                "url-download",
                "execute",
            )
    elif kind in ("s3", "s3PreSigned"):
        if not isinstance(get("Bucket"), str) or not get("Bucket"):
            out.error(f"{where}.Bucket", "an S3 source needs a Bucket", "s3-bucket", "execute")
        if kind == "s3PreSigned" and not get("PreSignedURL"):
            out.error(
                f"{where}.PreSignedURL",
                "an s3PreSigned source needs PreSignedURL",
                "s3-presigned-url",
                "execute",
            )
    elif kind == "ipfs":
        if not isinstance(get("CID"), str) or not get("CID"):
            out.error(f"{where}.CID", "an ipfs source needs a CID", "ipfs-cid", "execute")
    elif kind in ("local", "localDirectory"):
        source_path = get("SourcePath")
        if not isinstance(source_path, str) or not source_path.startswith("/"):
            out.error(
                f"{where}.SourcePath",
                f"{source_path!r}: a local source needs the absolute "
                "path on the compute node (allow-listed with Compute.AllowListedLocalPaths)",
                "local-path",
                "execute",
            )
        create_as = get("CreateAs")
        if create_as not in (None, "", "dir", "file", "noCreate"):
            out.error(
                f"{where}.CreateAs",
                f"{create_as!r}: one of dir, file, noCreate",
                "local-createas",
                "execute",
            )
        read_write = get("ReadWrite")
        if read_write not in (None, True, False, "true", "false"):
            out.error(
                f"{where}.ReadWrite", f"{read_write!r}: true or false", "local-readwrite", "execute"
            )
        if kind == "localDirectory":
            out.info(
                f"{where.rsplit('.Params', 1)[0]}.Type",
                "localDirectory is the deprecated name of 'local' (the only one v1.7.0 accepts)",
                "local-deprecated",
            )


def _results(out: Collector, job: Job, task: Task, path: str) -> None:
    names: dict[str, int] = {}
    paths: dict[str, int] = {}
    for i, result in enumerate(task.result_paths):
        where = f"{path}.ResultPaths[{i}]"
        if not result.name.strip():
            out.error(
                f"{where}.Name",
                "missing name (the folder name in the results)",
                "result-name-missing",
            )
        elif result.name in names:
            out.error(
                f"{where}.Name",
                f"name {result.name!r} is already used by ResultPaths[{names[result.name]}]",
                "result-name-duplicate",
            )
        else:
            names[result.name] = i
        if not result.path.strip():
            out.error(f"{where}.Path", "missing path", "result-path-missing")
        elif not result.path.startswith("/"):
            out.error(
                f"{where}.Path",
                f"{result.path!r} must be absolute (e.g. '/{result.path}')",
                "result-path-relative",
            )
        elif result.path in paths:
            out.error(
                f"{where}.Path",
                f"path {result.path!r} is already used by ResultPaths[{paths[result.path]}]",
                "result-path-duplicate",
            )
        else:
            paths[result.path] = i
    if task.result_paths and job.type in ("daemon", "service"):
        out.warn(
            f"{path}.ResultPaths",
            f"{job.type} jobs have no results endpoint: data must "
            "leave through the workload itself",
            "results-daemon",
        )


def _publisher(out: Collector, job: Job, task: Task, path: str) -> None:
    publisher = task.publisher
    where = f"{path}.Publisher"
    if publisher is None or not publisher.type.strip():
        if task.result_paths:
            # Bacalhau's full Task.Validate: 'publisher must be set if result paths are set'.
            # Only batch and ops jobs can get one from the orchestrator's JobDefaults, and the
            # shipped defaults set none.
            fallback = (
                " (an orchestrator whose JobDefaults set a batch/ops publisher would fill it in; "
                "the shipped defaults set none)"
                if job.type in ("batch", "ops")
                else f" ({job.type or 'this'} jobs get no default publisher)"
            )
            out.error(
                where,
                "ResultPaths without a Publisher are refused ('publisher must be set if "
                f"result paths are set'){fallback}; set one, e.g. {{Type: local}}",
                "publisher-missing",
            )
        return
    if publisher.type not in PUBLISHERS:
        out.error(
            f"{where}.Type",
            f"no node publishes to {publisher.type!r}; one of {', '.join(PUBLISHERS)}",
            "publisher-type-unknown",
            "schedule",
        )
        return
    if publisher.type == "s3":
        params = params_by_name(publisher)
        for name in ("Bucket", "Key"):
            value = params.get(name.lower(), (name, None))[1]
            if not isinstance(value, str) or not value:
                out.error(
                    f"{where}.Params.{name}",
                    f"an s3 publisher needs {name}",
                    "publisher-s3",
                    "execute",
                )


def _network(out: Collector, network: Network, where: str) -> None:
    kind = network.type or "Default"
    canonical = canonical_name(kind, NETWORK_TYPES)
    if canonical is None:
        out.error(
            f"{where}.Type",
            f"invalid network type {network.type!r}; one of {', '.join(NETWORK_TYPES)}",
            "network-type",
        )
        return
    if network.domains and canonical != "HTTP":
        out.error(f"{where}.Domains", "Domains are only allowed with Type HTTP", "network-domains")
    for i, domain in enumerate(network.domains):
        _domain(out, domain, f"{where}.Domains[{i}]")
    if network.ports and canonical not in ("Host", "Bridge", "Full"):
        out.error(
            f"{where}.Ports",
            "Ports are only allowed with Type Host, Bridge or Full",
            "network-ports",
        )
        return
    names: dict[str, int] = {}
    for i, port in enumerate(network.ports):
        _port(out, port, canonical, f"{where}.Ports[{i}]", names, i)


def _domain(out: Collector, domain: str, where: str) -> None:
    """Bacalhau lower-cases and trims each domain, then accepts it when its domain pattern
    matches somewhere in it (Go's MatchString is not anchored) or it is an IP address; a
    leading '.' (``.example.org``) is its wildcard for every subdomain."""
    text = domain.strip().lower()
    if _DOMAIN.search(text):
        return
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return
    out.error(
        where,
        f"invalid domain {domain!r}: give a DNS name such as 'example.org', '.example.org' "
        "for it and every subdomain, or an IP address",
        "network-domain",
    )


def _port(
    out: Collector, port: Port, network: str, where: str, names: dict[str, int], index: int
) -> None:
    if not port.name.strip():
        out.error(
            f"{where}.Name",
            "missing port name: the job reads its port from BACALHAU_PORT_<name>",
            "network-port-name",
        )
    elif not _PORT_NAME.match(port.name):
        out.error(
            f"{where}.Name",
            f"{port.name!r}: a port name is letters, digits and '_', not starting with a digit "
            f"(it names BACALHAU_PORT_<name>; e.g. {re.sub(r'[^A-Za-z0-9_]', '_', port.name)!r})",
            "network-port-name",
        )
    elif port.name in names:
        out.error(
            f"{where}.Name",
            f"port name {port.name!r} is already used by Ports[{names[port.name]}]",
            "network-port-duplicate",
        )
    else:
        names[port.name] = index
    for name, value in (("Static", port.static), ("Target", port.target)):
        if not 0 <= value <= 65535:
            out.error(
                f"{where}.{name}",
                f"{value} is not a port number (1-65535, or 0 to leave it out)",
                "network-port-range",
            )
    if network == "Host" and port.target and port.target != port.static:
        out.error(
            f"{where}.Target",
            "a Host network maps no ports: the task listens on the node's own port, so Target "
            "must be left out (or equal Static)",
            "network-port-host-target",
        )


# -- a whole spec -----------------------------------------------------------------------------------
@attrs.frozen
class SpecReport:
    """What cosmobac makes of a spec: the job as read, the job as it would be sent, every finding,
    and the verdict (``accepted``: sent as written; ``normalised``: sent after changes that the
    notes list; ``rejected``: has errors)."""

    source: str
    original: Job
    job: Job
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "info"]

    @property
    def verdict(self) -> Verdict:
        if self.errors:
            return "rejected"
        if any(p.code in ("key-case", "normalised") for p in self.problems):
            return "normalised"
        return "accepted"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "verdict": self.verdict,
            "problems": [p.as_json() for p in self.problems],
        }


def judge_spec(data: Any, *, source: str = "job", engines: Sequence[str] = ENGINES) -> SpecReport:
    """Read (any key case, PUT body or bare job), normalise and validate a spec."""
    original, problems = decode_job(data, source=source)
    if any(p.code == "empty" for p in problems):
        return SpecReport(source, original, original, tuple(problems))
    job, notes = normalise(original)
    return SpecReport(
        source, original, job, (*problems, *notes, *validate_job(job, engines=engines))
    )


def check_job(job: Job, *, engines: Sequence[str] = ENGINES) -> list[Problem]:
    """Validate a job built in code (no decoding involved): the problems of its normalised form."""
    normalised, notes = normalise(job)
    return [*notes, *validate_job(normalised, engines=engines)]


def result_path(name: str) -> ResultPath:
    """A result path portable between docker and WASM: ``/<name>`` published as ``name``."""
    return ResultPath(name=name.strip("/"), path="/" + name.strip("/"))
