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

:func:`normalise` does what the server's transformers would do to a spec (and what cosmobac
prefers to send): canonical key spelling, the pre-1.7 WASM shape turned into the current one,
read-only fields dropped. :func:`judge_spec` reads a spec, normalises and validates it, and says
whether it is *accepted*, *normalised* or *rejected*.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Final, Literal
from urllib.parse import urlparse

import attrs

from . import dataurl
from .model import (
    JOB_TYPES,
    InputSource,
    Job,
    Network,
    ResultPath,
    SpecConfig,
    Task,
    decode_job,
)
from .problems import Problem
from .selectors import OPERATORS, label_key_problem, label_value_problem
from .wasmbin import WasmFormatError, exported_functions

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
    "validate_job",
]

ENGINES: Final = ("docker", "wasm", "noop")
SOURCES: Final = (
    "inline",
    "urlDownload",
    "s3",
    "s3PreSigned",
    "ipfs",
    "local",
    "localDirectory",
    "noop",
    "s3managed",
)
PUBLISHERS: Final = ("local", "s3", "s3managed", "ipfs", "noop")
NETWORK_TYPES: Final = ("Default", "None", "Host", "Full", "HTTP", "Bridge")
MAX_BODY: Final = 10 * 1024 * 1024  # the API's request body limit
WASM_MEMORY_LIMIT: Final = 4 * 1024**3

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_HOST_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRETISH = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|CONNECTION_STRING")
_CPU = re.compile(r"^(\d+(\.\d*)?|\.\d+)m?$")
_BYTES = re.compile(r"^(\d[\d,]*(\.\d*)?|\.\d+)([kmgtpezy]i?b?|b)?$")
_UNITS: Final = {
    "": 1,
    "b": 1,
    **{f"{u}{s}": 1000 ** (i + 1) for i, u in enumerate("kmgtpezy") for s in ("", "b")},
    **{f"{u}i{s}": 1024 ** (i + 1) for i, u in enumerate("kmgtpezy") for s in ("", "b")},
}

Verdict = Literal["accepted", "normalised", "rejected"]


def _canonical(value: str, choices: Iterable[str]) -> str | None:
    for choice in choices:
        if choice.lower() == value.strip().lower():
            return choice
    return None


def parse_bytes(text: str) -> int:
    """Bytes in a go-humanize size as the server reads it (after lower-casing and removing
    spaces): ``"512Mb"`` is 512·10⁶, ``"1GiB"`` 2³⁰. ``ValueError`` when it is not a size."""
    value = text.lower().replace(" ", "").replace("\n", "")
    match = _BYTES.match(value)
    if not match:
        raise ValueError(text)
    number = float(match[1].replace(",", ""))
    return int(number * _UNITS[match[3] or ""])


def _params(spec: SpecConfig) -> dict[str, tuple[str, Any]]:
    """Params keyed by lower-case name (engines decode them without regard to case)."""
    return {str(k).lower(): (str(k), v) for k, v in spec.params.items()}


def _str_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


# -- normalisation ----------------------------------------------------------------------------------
def normalise(job: Job) -> tuple[Job, list[Problem]]:
    """The job as cosmobac sends it, and a note (severity ``info``, code ``normalised``) for each
    change that alters what the spec says: type spellings, trimmed targets, the pre-1.7 WASM
    shape, read-only fields, reserved ``Meta`` keys. Server defaults (``Namespace``, ``Count``)
    are filled in silently."""
    notes: list[Problem] = []

    def note(path: str, message: str) -> None:
        notes.append(Problem(path, message, severity="info", code="normalised"))

    changes: dict[str, Any] = {}
    if not job.namespace:
        changes["namespace"] = "default"
    if job.count is None and job.type in ("batch", "service"):
        changes["count"] = 1
    if job.state is not None or job.version or job.revision or job.create_time or job.modify_time:
        note(
            "State",
            "read-only fields (State, Version, Revision, times) dropped: the server "
            "ignores them on submission",
        )
        changes.update(state=None, version=0, revision=0, create_time=0, modify_time=0)
    if job.id and job.type in ("batch", "ops"):
        note("ID", "dropped: the server assigns batch and ops job IDs itself")
        changes["id"] = ""
    reserved = [k for k in job.meta if k.startswith("bacalhau.org/")]
    if reserved:
        note("Meta", f"reserved keys {', '.join(reserved)} dropped (the server removes them)")
        changes["meta"] = {k: v for k, v in job.meta.items() if k not in reserved}
    tasks = []
    for i, task in enumerate(job.tasks):
        tasks.append(_normalise_task(task, f"Tasks[{i}]", note))
    changes["tasks"] = tuple(tasks)
    return attrs.evolve(job, **changes), notes


def _normalise_spec(spec: SpecConfig, choices: Sequence[str], path: str, note: Any) -> SpecConfig:
    canonical = _canonical(spec.type, choices)
    if canonical is not None and canonical != spec.type:
        note(f"{path}.Type", f"{spec.type!r} written as {canonical!r}")
        return attrs.evolve(spec, type=canonical)
    return spec


def _normalise_task(task: Task, path: str, note: Any) -> Task:
    engine = _normalise_spec(task.engine, ENGINES, f"{path}.Engine", note)
    publisher = (
        None
        if task.publisher is None
        else _normalise_spec(task.publisher, PUBLISHERS, f"{path}.Publisher", note)
    )
    inputs = []
    for i, source in enumerate(task.input_sources):
        where = f"{path}.InputSources[{i}]"
        spec = _normalise_spec(source.source, SOURCES, f"{where}.Source", note)
        target, alias = source.target.strip(), source.alias.strip()
        if (target, alias) != (source.target, source.alias):
            note(
                where,
                "leading and trailing spaces of Target and Alias removed (as the server does)",
            )
        inputs.append(InputSource(source=spec, alias=alias, target=target))
    network = task.network
    canonical = _canonical(network.type, NETWORK_TYPES) if network.type else None
    if canonical is not None and canonical != network.type:
        note(f"{path}.Network.Type", f"{network.type!r} written as {canonical!r}")
        network = attrs.evolve(network, type=canonical)
    resources = task.resources
    clean = {
        name: getattr(resources, name).lower().replace(" ", "").replace("\n", "")
        for name in ("cpu", "memory", "disk", "gpu")
    }
    resources = attrs.evolve(resources, **clean)
    task = attrs.evolve(
        task,
        engine=engine,
        publisher=publisher,
        input_sources=tuple(inputs),
        network=network,
        resources=resources,
    )
    if engine.type == "wasm":
        task = _normalise_wasm(task, path, note)
    return task


def _normalise_wasm(task: Task, path: str, note: Any) -> Task:
    """The pre-1.7 WASM engine shape (EntryModule and ImportModules as embedded input sources,
    ``EntryPoint``, ``EnvironmentVariables``) turned into the current one, as the server's
    ``LegacyWasmModuleTransformer`` does, except that environment variables are moved into the
    task's ``Env`` instead of being dropped."""
    where = f"{path}.Engine.Params"
    params = dict(task.engine.params)
    lower = {k.lower(): k for k in params}
    inputs = list(task.input_sources)
    env = dict(task.env)
    if "entrypoint" in lower and lower["entrypoint"] != "Entrypoint":
        key = lower["entrypoint"]
        params["Entrypoint"] = params.pop(key)
        note(f"{where}.{key}", f"{key!r} written as 'Entrypoint'")
    entry_key = lower.get("entrymodule")
    if entry_key is not None and isinstance(params[entry_key], Mapping):
        embedded = params.pop(entry_key)
        source = _embedded_source(embedded, "/wasm/entry.wasm")
        inputs.append(source)
        params["EntryModule"] = source.target
        note(
            f"{where}.{entry_key}",
            "pre-1.7 form (an embedded input source) turned into an input source at "
            f"{source.target!r} named by EntryModule, as v1.7+ servers do",
        )
    imports_key = lower.get("importmodules")
    if imports_key is not None:
        imports = params.pop(imports_key)
        names: list[Any] = []
        for i, item in enumerate(imports or []):
            if isinstance(item, Mapping):
                source = _embedded_source(item, f"/wasm/imports/module_{i}.wasm")
                inputs.append(source)
                names.append(source.target)
                note(
                    f"{where}.{imports_key}[{i}]",
                    f"pre-1.7 embedded input source moved to InputSources at {source.target!r}",
                )
            else:
                names.append(item)
        if names:
            params["ImportModules"] = names
        elif imports is not None:
            note(f"{where}.{imports_key}", "empty ImportModules removed")
    env_key = lower.get("environmentvariables")
    if env_key is not None:
        legacy_env = params.pop(env_key)
        if isinstance(legacy_env, Mapping) and legacy_env:
            for name, value in legacy_env.items():
                env.setdefault(str(name), str(value))
            note(
                f"{where}.{env_key}",
                "pre-1.7 engine environment moved into the task's Env (a v1.7+ server would "
                "silently drop it)",
            )
        else:
            note(f"{where}.{env_key}", "empty pre-1.7 EnvironmentVariables removed")
    params_key = lower.get("parameters")
    if params_key is not None and params[params_key] is None:
        params.pop(params_key)
        note(f"{where}.{params_key}", "null Parameters removed")
    return attrs.evolve(
        task,
        engine=attrs.evolve(task.engine, params=params),
        input_sources=tuple(inputs),
        env=env,
    )


def _embedded_source(data: Mapping[str, Any], default_target: str) -> InputSource:
    from .model import _decode_obj

    problems: list[Problem] = []
    source = _decode_obj(InputSource, data, "", problems)
    if not source.target.strip():
        source = attrs.evolve(source, target=default_target)
    if not source.source.type:
        # pre-1.7 specs often left the type out of an inline module
        url = source.source.params.get("URL")
        if isinstance(url, str) and url.lower().startswith("data:"):
            source = attrs.evolve(source, source=attrs.evolve(source.source, type="inline"))
    return source


# -- validation -------------------------------------------------------------------------------------
@attrs.define
class _Collector:
    problems: list[Problem] = attrs.field(factory=list)

    def error(self, path: str, message: str, code: str, stage: str = "submit") -> None:
        self.problems.append(Problem(path, message, "error", code, stage))  # type: ignore[arg-type]

    def warn(self, path: str, message: str, code: str, stage: str = "client") -> None:
        self.problems.append(Problem(path, message, "warning", code, stage))  # type: ignore[arg-type]

    def info(self, path: str, message: str, code: str) -> None:
        self.problems.append(Problem(path, message, "info", code, "client"))


def validate_job(job: Job, *, engines: Sequence[str] = ENGINES) -> list[Problem]:
    """Every problem of ``job`` by Bacalhau's rules (errors, warnings and notes), in field order.
    ``engines``: the engine types the cluster runs (a custom build may add some)."""
    out = _Collector()
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


def _constraint(out: _Collector, path: str, key: str, operator: str, values: Sequence[str]) -> None:
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


def _task(out: _Collector, job: Job, task: Task, path: str, engines: Sequence[str]) -> None:
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
    _publisher(out, task, path)
    _network(out, task.network, f"{path}.Network")
    if engine.type == "docker":
        _docker(out, engine, f"{path}.Engine.Params")
    elif engine.type == "wasm":
        _wasm(out, task, path)


def _env(out: _Collector, task: Task, path: str) -> None:
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


def _timeouts(out: _Collector, task: Task, path: str) -> None:
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


def _resources(out: _Collector, task: Task, path: str) -> None:
    r = task.resources
    where = f"{path}.Resources"
    cpu = r.cpu.lower().replace(" ", "")
    if cpu and not _CPU.match(cpu):
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


def _inputs(out: _Collector, task: Task, path: str) -> None:
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
        _source_params(out, spec, f"{where}.Source.Params")


def _source_params(out: _Collector, spec: SpecConfig, where: str) -> None:
    params = _params(spec)

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


def _results(out: _Collector, job: Job, task: Task, path: str) -> None:
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


def _publisher(out: _Collector, task: Task, path: str) -> None:
    publisher = task.publisher
    where = f"{path}.Publisher"
    if publisher is None or not publisher.type.strip():
        if task.result_paths:
            out.warn(
                where,
                "ResultPaths without a Publisher: accepted only where the "
                "orchestrator has a default publisher (else 'publisher must be set if result "
                "paths are set'); set e.g. {Type: local}",
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
        params = _params(publisher)
        for name in ("Bucket", "Key"):
            value = params.get(name.lower(), (name, None))[1]
            if not isinstance(value, str) or not value:
                out.error(
                    f"{where}.Params.{name}",
                    f"an s3 publisher needs {name}",
                    "publisher-s3",
                    "execute",
                )


def _network(out: _Collector, network: Network, where: str) -> None:
    kind = network.type or "Default"
    if _canonical(kind, NETWORK_TYPES) is None:
        out.error(
            f"{where}.Type",
            f"invalid network type {network.type!r}; one of {', '.join(NETWORK_TYPES)}",
            "network-type",
        )
        return
    canonical = _canonical(kind, NETWORK_TYPES)
    if network.domains and canonical != "HTTP":
        out.error(f"{where}.Domains", "Domains are only allowed with Type HTTP", "network-domains")
    if network.ports and canonical not in ("Host", "Bridge", "Full"):
        out.error(
            f"{where}.Ports",
            "Ports are only allowed with Type Host, Bridge or Full",
            "network-ports",
        )


_DOCKER_KEYS: Final = (
    "Image",
    "Entrypoint",
    "Parameters",
    "EnvironmentVariables",
    "WorkingDirectory",
)
_WASM_KEYS: Final = ("EntryModule", "Entrypoint", "Parameters", "ImportModules")


def _unknown_params(out: _Collector, spec: SpecConfig, known: Sequence[str], where: str) -> None:
    lowered = {k.lower() for k in known}
    for key in spec.params:
        if key.lower() not in lowered:
            out.warn(
                f"{where}.{key}",
                f"unknown {spec.type} parameter {key!r} (ignored); known: {', '.join(known)}",
                "params-unknown",
            )


def _docker(out: _Collector, engine: SpecConfig, where: str) -> None:
    params = _params(engine)
    image = params.get("image", ("Image", None))[1]
    if not isinstance(image, str) or not image.strip():
        out.error(f"{where}.Image", "a docker task needs an Image", "docker-image", "execute")
    else:
        name = image.rsplit("/", 1)[-1]
        if "@" not in name and (":" not in name or name.endswith(":latest")):
            out.warn(
                f"{where}.Image",
                f"{image!r} is not pinned (no tag, or :latest): nodes may "
                "run different images; pin a version or digest",
                "docker-latest",
            )
    for key in ("Entrypoint", "Parameters"):
        value = params.get(key.lower(), (key, None))[1]
        if value is not None and not _str_list(value):
            out.error(f"{where}.{key}", "must be a list of text", "docker-list", "execute")
    env = params.get("environmentvariables", ("EnvironmentVariables", None))[1]
    if env is not None:
        if not _str_list(env):
            out.error(
                f"{where}.EnvironmentVariables",
                "must be a list of 'NAME=value' texts",
                "docker-env",
                "execute",
            )
        else:
            for j, item in enumerate(env):
                name, sep, _ = item.partition("=")
                if not sep or not name:
                    out.error(
                        f"{where}.EnvironmentVariables[{j}]",
                        f"{item!r} is not NAME=value",
                        "docker-env",
                        "execute",
                    )
                elif name.upper().startswith("BACALHAU_"):
                    out.error(
                        f"{where}.EnvironmentVariables[{j}]",
                        f"{name}: BACALHAU_ names are reserved",
                        "docker-env",
                        "execute",
                    )
    workdir = params.get("workingdirectory", ("WorkingDirectory", None))[1]
    if workdir not in (None, "") and (not isinstance(workdir, str) or not workdir.startswith("/")):
        out.error(
            f"{where}.WorkingDirectory",
            f"{workdir!r} must be an absolute path",
            "docker-workdir",
            "execute",
        )
    _unknown_params(out, engine, _DOCKER_KEYS, where)


def resolve_module(task: Task, module_path: str) -> tuple[InputSource, str] | None:
    """The input source holding ``module_path`` (leading ``/`` ignored, as Bacalhau's mount
    FS does) and the path inside it (``""`` when the target is the module itself)."""
    wanted = module_path.strip().lstrip("/")
    best: tuple[InputSource, str] | None = None
    for source in task.input_sources:
        target = source.target.strip().lstrip("/").rstrip("/")
        if wanted == target:
            return source, ""
        if (
            target
            and wanted.startswith(target + "/")
            and (best is None or len(target) > len(best[0].target.strip("/")))
        ):
            best = (source, wanted[len(target) + 1 :])
    return best


def _wasm(out: _Collector, task: Task, path: str) -> None:
    where = f"{path}.Engine.Params"
    params = _params(task.engine)
    entry = params.get("entrymodule", ("EntryModule", None))[1]
    entrypoint = params.get("entrypoint", ("Entrypoint", None))
    if isinstance(entry, Mapping):
        out.warn(
            f"{where}.EntryModule",
            "the pre-1.7 form (an embedded input source); "
            "cosmobac normalises it, a v1.7+ server converts it",
            "wasm-legacy",
        )
    elif not isinstance(entry, str) or not entry.strip():
        out.error(
            f"{where}.EntryModule",
            "a WASM task needs EntryModule: the Target of the input source holding the module",
            "wasm-entry-module-missing",
            "execute",
        )
    else:
        _wasm_module(out, task, entry, entrypoint[1], where)
    if entrypoint[0] != "Entrypoint" and entrypoint[1] is not None:
        out.warn(
            f"{where}.{entrypoint[0]}", "pre-1.7 spelling; v1.7+ reads 'Entrypoint'", "wasm-legacy"
        )
    if not isinstance(entrypoint[1], str) or not entrypoint[1].strip():
        out.error(
            f"{where}.Entrypoint",
            "missing: the server sets no default; give the exported "
            "function to call, normally '_start'",
            "wasm-entrypoint-missing",
            "execute",
        )
    for key in ("Parameters", "ImportModules"):
        value = params.get(key.lower(), (key, None))[1]
        if (
            value is not None
            and not _str_list(value)
            and not (key == "ImportModules" and isinstance(value, list))
        ):
            out.error(f"{where}.{key}", "must be a list of text", "wasm-list", "execute")
    for j, name in enumerate(params.get("importmodules", ("ImportModules", None))[1] or []):
        if isinstance(name, str) and resolve_module(task, name) is None:
            out.error(
                f"{where}.ImportModules[{j}]",
                f"{name!r} is not the Target of any input source",
                "wasm-import-module-unresolved",
                "execute",
            )
        elif isinstance(name, Mapping):
            out.warn(
                f"{where}.ImportModules[{j}]",
                "the pre-1.7 form (an embedded input source)",
                "wasm-legacy",
            )
    if "environmentvariables" in params:
        out.warn(
            f"{where}.{params['environmentvariables'][0]}",
            "v1.7+ servers silently drop engine EnvironmentVariables: use the task's Env",
            "wasm-env-params",
        )
    _unknown_params(
        out,
        attrs.evolve(
            task.engine,
            params={
                k: v
                for k, v in task.engine.params.items()
                if k.lower() not in ("environmentvariables",)
            },
        ),
        _WASM_KEYS,
        where,
    )
    for i, result in enumerate(task.result_paths):
        if result.name and result.path and result.name != result.path.lstrip("/"):
            out.warn(
                f"{path}.ResultPaths[{i}]",
                f"a WASM task sees this output at "
                f"'/{result.name}', not at {result.path!r}: use Name = the Path without its "
                f"leading '/' (here {result.path.lstrip('/')!r})",
                "wasm-result-name",
            )
    memory = task.resources.memory
    if memory:
        try:
            size = parse_bytes(memory)
        except ValueError:
            size = 0
        if size > WASM_MEMORY_LIMIT:
            out.error(
                f"{path}.Resources.Memory",
                f"{memory!r} is more than the 4 GiB a wasm32 module can address",
                "wasm-memory",
                "execute",
            )


def _wasm_module(out: _Collector, task: Task, entry: str, entrypoint: Any, where: str) -> None:
    found = resolve_module(task, entry)
    targets = ", ".join(repr(s.target) for s in task.input_sources) or "none"
    if found is None:
        out.error(
            f"{where}.EntryModule",
            f"{entry!r} is not the Target of any input source "
            f"(targets: {targets}); add the module as an input and name its Target",
            "wasm-entry-module-unresolved",
            "execute",
        )
        return
    source, inner = found
    spec = source.source
    if spec.type in ("urlDownload", "s3") and not inner:
        url = str(spec.params.get("URL") or spec.params.get("Key") or "")
        if url and not url.lower().rstrip("/").endswith(".wasm") and not url.endswith("/"):
            out.warn(
                f"{where}.EntryModule",
                f"{entry!r} is a folder (a {spec.type} target); "
                "it must hold exactly one .wasm file, and this source's file name does not "
                "end in .wasm",
                "wasm-entry-dir",
            )
    if spec.type != "inline" or inner or not isinstance(entrypoint, str) or not entrypoint:
        return
    try:
        media_type, payload = dataurl.decode(str(spec.params.get("URL")))
    except ValueError:
        return  # reported by the source check
    if media_type == "application/gzip":
        return
    try:
        exports = exported_functions(payload)
    except WasmFormatError as exc:
        out.error(
            f"{where}.EntryModule",
            f"the inline module is not WebAssembly: {exc}",
            "wasm-module-invalid",
            "execute",
        )
        return
    if entrypoint not in exports:
        names = ", ".join(sorted(exports)) or "none"
        out.error(
            f"{where}.Entrypoint",
            f"the module exports no function {entrypoint!r} (it exports: {names})",
            "wasm-entrypoint-export",
            "execute",
        )
    elif exports[entrypoint] != ((), ()):
        params, results = exports[entrypoint]
        out.error(
            f"{where}.Entrypoint",
            f"{entrypoint} must take no parameters and return "
            f"nothing; it is ({', '.join(params)}) -> ({', '.join(results)})",
            "wasm-entrypoint-signature",
            "execute",
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
