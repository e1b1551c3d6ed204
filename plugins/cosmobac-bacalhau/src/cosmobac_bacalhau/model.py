"""The Bacalhau v1 job (servers v1.7 and later), as attrs classes that render the wire format.

Guarantees:

* :meth:`Job.to_wire` gives the JSON shape the orchestrator reads: PascalCase keys exactly as the
  server spells them (``Resources``, not ``ResourcesConfig``; ``InputSources``; ``Timeouts`` in
  whole seconds), empty fields left out;
* reading (:func:`decode_job`, :func:`loads_job`, :func:`read_job_file`) matches keys without
  regard to case, as Go's ``encoding/json`` does, so lower-case YAML reads the same; every key the
  server would ignore, every value of the wrong type and every key spelled differently from the
  canonical form is reported as a :class:`~cosmobac_bacalhau.validate.Problem` naming its field path;
* ``decode_job(job.to_wire())`` gives back an equal job, in JSON and in YAML (property-tested);
* a PUT body (``{"Job": ..., "Force": ...}``) is read as the job it holds.

``Params`` of engines, publishers and sources are free-form (each engine decodes its own); they
travel unchanged.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .errors import JobSpecError
from .problems import Problem

__all__ = [
    "JOB_TYPES",
    "TERMINAL_JOB_STATES",
    "Constraint",
    "InputSource",
    "Job",
    "JobState",
    "Network",
    "Port",
    "Resources",
    "ResultPath",
    "SpecConfig",
    "Task",
    "Timeouts",
    "decode_job",
    "dumps_json",
    "dumps_yaml",
    "loads_job",
    "read_job_file",
    "submit_body",
]

JOB_TYPES: Final = ("batch", "ops", "daemon", "service")
TERMINAL_JOB_STATES: Final = frozenset({"Completed", "Failed", "Stopped"})
JOB_STATE_NAMES: Final = {
    # Job states travel as strings; an integer (older encodings, some tools) is mapped by the
    # order of Go's JobStateType constants (pkg/models/job.go), where Queued follows Pending.
    0: "Undefined",
    1: "Pending",
    2: "Queued",
    3: "Running",
    4: "Completed",
    5: "Failed",
    6: "Stopped",
}

_WIRE: Final = "cosmobac_bacalhau.wire"
_KIND: Final = "cosmobac_bacalhau.kind"
_CLS: Final = "cosmobac_bacalhau.cls"
_ALWAYS: Final = "cosmobac_bacalhau.always"


def _field(
    wire: str,
    kind: str,
    *,
    cls: Callable[[], Any] | None = None,
    always: bool = False,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    converter: Callable[[Any], Any] | None = None,
) -> Any:
    metadata = {_WIRE: wire, _KIND: kind, _CLS: cls, _ALWAYS: always}
    if factory is not None:
        return attrs.field(factory=factory, converter=converter, metadata=metadata)
    return attrs.field(default=default, converter=converter, metadata=metadata)


def _md(wire: str, kind: str, cls: Any = None, *, always: bool = False) -> dict[str, Any]:
    return {_WIRE: wire, _KIND: kind, _CLS: cls, _ALWAYS: always}


def _str(wire: str, *, always: bool = False) -> Any:
    return _field(wire, "str", default="", always=always)


def _int(wire: str) -> Any:
    return _field(wire, "int", default=0)


def _strmap(wire: str) -> Any:
    return _field(wire, "strmap", factory=dict, converter=dict)


def _strlist(wire: str) -> Any:
    return _field(wire, "strlist", factory=tuple, converter=tuple)


@attrs.frozen
class SpecConfig:
    """``{Type, Params}``: an engine, a publisher or an input source. ``Params`` is free-form."""

    type: str = _str("Type", always=True)
    params: Mapping[str, Any] = _field("Params", "anymap", factory=dict, converter=dict)


@attrs.frozen(kw_only=True)
class InputSource:
    """An input mounted into the task at ``target`` (a file or a directory, by source type)."""

    source: SpecConfig = attrs.field(
        factory=SpecConfig, metadata=_md("Source", "obj", SpecConfig, always=True)
    )
    alias: str = _str("Alias")
    target: str = _str("Target")


@attrs.frozen
class ResultPath:
    """A folder published with the results under ``name``. WASM mounts it at ``/<name>``."""

    name: str = _str("Name")
    path: str = _str("Path")


@attrs.frozen(kw_only=True)
class Resources:
    """Requested resources, as text: CPU a Kubernetes quantity (``"500m"``), Memory and Disk
    go-humanize sizes (``"512Mb"``), GPU a whole number. Empty: the node's defaults."""

    cpu: str = _str("CPU")
    memory: str = _str("Memory")
    disk: str = _str("Disk")
    gpu: str = _str("GPU")


@attrs.frozen(kw_only=True)
class Port:
    """A port mapping (Host, Bridge or Full networks only)."""

    name: str = _str("Name")
    static: int = _int("Static")
    target: int = _int("Target")
    host_network: str = _str("HostNetwork")


@attrs.frozen(kw_only=True)
class Network:
    """``Type``: Default, None, Host, Full, HTTP or Bridge. Domains only with HTTP."""

    type: str = _str("Type")
    domains: tuple[str, ...] = _strlist("Domains")
    ports: tuple[Port, ...] = _field("Ports", "objlist", cls=Port, factory=tuple, converter=tuple)


@attrs.frozen(kw_only=True)
class Timeouts:
    """Whole seconds; 0 means the node's default (batch and ops) or none."""

    execution_timeout: int = _int("ExecutionTimeout")
    queue_timeout: int = _int("QueueTimeout")
    total_timeout: int = _int("TotalTimeout")


@attrs.frozen
class Constraint:
    """A node label requirement: ``city in (lisbon, porto)`` is
    ``Constraint("city", "in", ("lisbon", "porto"))``. Operators: ``= == != in notin exists ! gt
    lt``."""

    key: str = _str("Key", always=True)
    operator: str = _str("Operator", always=True)
    values: tuple[str, ...] = _strlist("Values")


@attrs.frozen(kw_only=True)
class JobState:
    """A job's state as the server reports it (read-only; dropped from submissions)."""

    state_type: str = _field("StateType", "state", default="")
    message: str = _str("Message")
    details: Mapping[str, str] = _strmap("Details")


@attrs.frozen(kw_only=True)
class Task:
    """The one task of a job (the server keeps only the first)."""

    name: str = _str("Name", always=True)
    engine: SpecConfig = attrs.field(
        factory=SpecConfig, metadata=_md("Engine", "obj", SpecConfig, always=True)
    )
    publisher: SpecConfig | None = attrs.field(
        default=None, metadata=_md("Publisher", "optobj", SpecConfig)
    )
    env: Mapping[str, str] = _strmap("Env")
    meta: Mapping[str, str] = _strmap("Meta")
    input_sources: tuple[InputSource, ...] = _field(
        "InputSources", "objlist", cls=InputSource, factory=tuple, converter=tuple
    )
    result_paths: tuple[ResultPath, ...] = _field(
        "ResultPaths", "objlist", cls=ResultPath, factory=tuple, converter=tuple
    )
    resources: Resources = attrs.field(
        factory=Resources, metadata=_md("Resources", "obj", Resources)
    )
    network: Network = attrs.field(factory=Network, metadata=_md("Network", "obj", Network))
    timeouts: Timeouts = attrs.field(factory=Timeouts, metadata=_md("Timeouts", "obj", Timeouts))


@attrs.frozen(kw_only=True)
class Job:
    """A Bacalhau v1 job. Build one with the functions of :mod:`cosmobac_bacalhau.builders` or
    read one with :func:`loads_job`; render it with :meth:`to_wire`, :func:`dumps_json` or
    :func:`dumps_yaml`.

    ``count`` is ``None`` when not given: the server then uses 1 for batch and service jobs
    (an explicit 0 means no executions) and 0 for daemon and ops jobs."""

    id: str = _str("ID")
    name: str = _str("Name")
    namespace: str = _str("Namespace")
    type: str = _str("Type")
    priority: int = _int("Priority")
    count: int | None = _field("Count", "optint", default=None)
    constraints: tuple[Constraint, ...] = _field(
        "Constraints", "objlist", cls=Constraint, factory=tuple, converter=tuple
    )
    meta: Mapping[str, str] = _strmap("Meta")
    labels: Mapping[str, str] = _strmap("Labels")
    tasks: tuple[Task, ...] = _field("Tasks", "objlist", cls=Task, factory=tuple, converter=tuple)
    state: JobState | None = attrs.field(default=None, metadata=_md("State", "optobj", JobState))
    version: int = _int("Version")
    revision: int = _int("Revision")
    create_time: int = _int("CreateTime")
    modify_time: int = _int("ModifyTime")

    @property
    def task(self) -> Task:
        """The job's task (the first; the server ignores any other)."""
        if not self.tasks:
            raise ValueError("the job has no task")
        return self.tasks[0]

    def to_wire(self, *, for_submit: bool = False) -> dict[str, Any]:
        """The job as the JSON object the server reads. ``for_submit`` leaves out the read-only
        fields the server ignores on submission (state, versions, times)."""
        data = _encode(self)
        if for_submit:
            for key in READ_ONLY_KEYS:
                data.pop(key, None)
        return data

    @classmethod
    def from_wire(cls, data: Any, *, source: str = "job") -> Job:
        """A job from its wire form (any key case). Raises :class:`JobSpecError` listing every
        value the server could not decode; unknown keys are not errors here (see
        :func:`decode_job` for the full list of findings)."""
        job, problems = decode_job(data, source=source)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise JobSpecError(errors, source=source)
        return job

    def evolve(self, **changes: Any) -> Job:
        """A copy with some fields changed."""
        return attrs.evolve(self, **changes)

    def with_task(self, **changes: Any) -> Job:
        """A copy whose task has some fields changed."""
        return attrs.evolve(self, tasks=(attrs.evolve(self.task, **changes), *self.tasks[1:]))


READ_ONLY_KEYS: Final = ("State", "Version", "Revision", "CreateTime", "ModifyTime")

# Keys people write that the server silently ignores, with what they meant.
_MEANT: Final = {
    "resourcesconfig": "Resources (ResourcesConfig is the Go field name; the server ignores it)",
    "timeout": "Timeouts",
    "inputs": "InputSources",
    "outputs": "ResultPaths",
    "environmentvariables": "Env",
}


# -- encoding ---------------------------------------------------------------------------------------
def _is_empty(value: Any, field: attrs.Attribute[Any]) -> bool:
    kind = field.metadata[_KIND]
    if value is None:
        return True
    if kind in ("str", "state"):
        return value == ""
    if kind == "int":
        return value == 0
    if kind == "optint":
        return False
    if kind in ("strmap", "anymap", "strlist", "objlist"):
        return len(value) == 0
    if kind == "obj":
        return bool(value == field.metadata[_CLS]())
    return False


def _encode(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if not field.metadata[_ALWAYS] and _is_empty(value, field):
            continue
        kind = field.metadata[_KIND]
        wire = field.metadata[_WIRE]
        if kind in ("obj", "optobj"):
            out[wire] = _encode(value)
        elif kind == "objlist":
            out[wire] = [_encode(item) for item in value]
        elif kind == "strlist":
            out[wire] = list(value)
        elif kind in ("strmap", "anymap"):
            out[wire] = _plain(value)
        else:
            out[wire] = value
    return out


def _plain(value: Any) -> Any:
    """A JSON-ready deep copy (tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- decoding ---------------------------------------------------------------------------------------
def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _decode_error(problems: list[Problem], path: str, message: str) -> None:
    problems.append(Problem(path, message, code="decode", stage="submit"))


def _decode_str(value: Any, path: str, problems: list[Problem]) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    hint = "; quote it in YAML" if isinstance(value, bool | int | float) else ""
    _decode_error(
        problems,
        path,
        f"must be text, got {_type_name(value)} ({value!r}){hint}: the server "
        "cannot decode it (HTTP 400)",
    )
    return ""


def _decode_int(value: Any, path: str, problems: list[Problem]) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    _decode_error(
        problems,
        path,
        f"must be a whole number, got {_type_name(value)} ({value!r}): the "
        "server cannot decode it (HTTP 400)",
    )
    return 0


def _decode_strmap(value: Any, path: str, problems: list[Problem]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _decode_error(problems, path, f"must be a mapping of text to text, got {_type_name(value)}")
        return {}
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            _decode_error(problems, f"{path}[{key!r}]", "keys must be text; quote it in YAML")
            continue
        out[key] = _decode_str(item, f"{path}[{key!r}]", problems)
    return out


def _json_value(value: Any, path: str, problems: list[Problem]) -> Any:
    """Free-form params must be JSON values (YAML may hold other things, such as sets)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            _decode_error(problems, path, "NaN and infinities cannot be sent as JSON")
            return None
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                _decode_error(problems, f"{path}[{key!r}]", "keys must be text; quote it in YAML")
                continue
            out[key] = _json_value(item, f"{path}.{key}", problems)
        return out
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    _decode_error(problems, path, f"{_type_name(value)} cannot be sent as JSON")
    return None


def _decode_state(value: Any, path: str, problems: list[Problem]) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return JOB_STATE_NAMES.get(value, f"JobStateType({value})")
    return _decode_str(value, path, problems)


def _decode_obj(cls: type[Any], data: Any, path: str, problems: list[Problem]) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        _decode_error(problems, path or "job", f"must be a mapping, got {_type_name(data)}")
        return cls()
    fields = {f.metadata[_WIRE].lower(): f for f in attrs.fields(cls)}
    kwargs: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            _decode_error(problems, _join(path, repr(key)), "keys must be text")
            continue
        field = fields.get(key.lower())
        if field is None:
            _unknown_key(cls, key, _join(path, key), problems)
            continue
        wire = field.metadata[_WIRE]
        where = _join(path, wire)
        if field.name in seen:
            problems.append(
                Problem(
                    where,
                    f"given twice ({seen[field.name]!r} and {key!r}); the server keeps the last",
                    severity="warning",
                    code="duplicate-key",
                )
            )
        seen[field.name] = key
        if key != wire:
            problems.append(
                Problem(
                    _join(path, key),
                    f"read as {wire!r} (keys match without regard to case, as on the server); "
                    "rendered in the canonical spelling",
                    severity="info",
                    code="key-case",
                )
            )
        kwargs[field.name] = _decode_value(field, value, where, problems)
    return cls(**kwargs)


def _unknown_key(cls: type[Any], key: str, path: str, problems: list[Problem]) -> None:
    known = [f.metadata[_WIRE] for f in attrs.fields(cls)]
    meant = _MEANT.get(key.lower())
    if meant is None:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        meant = close[0] if close else None
    hint = f"; did you mean {meant}?" if meant else f"; known keys: {', '.join(known)}"
    problems.append(
        Problem(
            path,
            f"unknown key {key!r}: the server ignores it{hint}",
            severity="warning",
            code="unknown-key",
        )
    )


def _decode_value(
    field: attrs.Attribute[Any], value: Any, path: str, problems: list[Problem]
) -> Any:
    kind = field.metadata[_KIND]
    cls = field.metadata[_CLS]
    if kind == "str":
        return _decode_str(value, path, problems)
    if kind == "state":
        return _decode_state(value, path, problems)
    if kind == "int":
        return _decode_int(value, path, problems)
    if kind == "optint":
        return None if value is None else _decode_int(value, path, problems)
    if kind == "strmap":
        return _decode_strmap(value, path, problems)
    if kind == "anymap":
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            _decode_error(problems, path, f"must be a mapping, got {_type_name(value)}")
            return {}
        return _json_value(value, path, problems)
    if kind == "strlist":
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            _decode_error(problems, path, f"must be a list of text, got {_type_name(value)}")
            return ()
        return tuple(_decode_str(v, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if kind == "obj":
        return _decode_obj(cls, value, path, problems)
    if kind == "optobj":
        return None if value is None else _decode_obj(cls, value, path, problems)
    if kind == "objlist":
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            _decode_error(problems, path, f"must be a list, got {_type_name(value)}")
            return ()
        return tuple(_decode_obj(cls, v, f"{path}[{i}]", problems) for i, v in enumerate(value))
    raise AssertionError(kind)  # pragma: no cover


def _unwrap(data: Any) -> Any:
    """The job inside a PUT body ``{"Job": {...}, "Force": ...}``, or ``data`` itself."""
    if isinstance(data, Mapping) and data:
        keys = {str(k).lower() for k in data}
        if "job" in keys and keys <= {"job", "force"}:
            for key, value in data.items():
                if str(key).lower() == "job":
                    return value
    return data


def decode_job(data: Any, *, source: str = "job") -> tuple[Job, list[Problem]]:
    """Read a job from its wire form (a mapping as parsed from JSON or YAML, or a PUT body) and
    report every finding: values the server cannot decode (errors), keys it ignores (warnings),
    keys spelled in another case (info). Never raises for content."""
    problems: list[Problem] = []
    data = _unwrap(data)
    if data is None or (isinstance(data, str) and not data.strip()):
        problems.append(
            Problem(
                "",
                f"{source} is empty: a job needs at least Type and Tasks",
                code="empty",
                stage="submit",
            )
        )
        return Job(), problems
    return _decode_obj(Job, data, "", problems), problems


# -- text formats -----------------------------------------------------------------------------------
def dumps_json(job: Job, *, body: bool = False, force: bool = False, indent: int | None = 2) -> str:
    """The job as JSON; ``body=True`` gives the PUT request body ``{"Job": ..., "Force": ...}``."""
    data: Any = submit_body(job, force=force) if body else job.to_wire()
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def submit_body(job: Job, *, force: bool = False) -> dict[str, Any]:
    """The body of ``PUT /api/v1/orchestrator/jobs``. ``Force`` (v1.8+) resubmits an unchanged
    job under an existing name; older servers ignore the key."""
    return {"Job": job.to_wire(for_submit=True), "Force": force}


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise JobSpecError(
            [Problem("", "reading or writing YAML needs PyYAML: pip install pyyaml", code="yaml")]
        ) from None
    return yaml


def _yaml_loader() -> Any:
    yaml = _yaml()

    class Loader(yaml.SafeLoader):  # type: ignore[name-defined]
        """SafeLoader that keeps dates as text, as JSON would carry them."""

    Loader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def _yaml_dumper() -> Any:
    yaml = _yaml()

    class Dumper(yaml.SafeDumper):  # type: ignore[name-defined]
        """SafeDumper that double-quotes text holding the line breaks PyYAML would mangle in
        other styles (NEL, LS, PS)."""

    def text(dumper: Any, value: str) -> Any:
        style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def dumps_yaml(job: Job) -> str:
    """The job as YAML, keys in the canonical spelling and order."""
    yaml = _yaml()
    text: str = yaml.dump(
        job.to_wire(),
        Dumper=_yaml_dumper(),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 30,
    )
    return text


def parse_text(text: str, *, format: str | None = None, source: str = "job") -> Any:
    """The data in JSON or YAML text (``format``: ``"json"``, ``"yaml"``, or None to try JSON
    then YAML). Raises :class:`JobSpecError` when it is neither."""
    if format in (None, "json"):
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            if format == "json":
                raise JobSpecError(
                    [Problem("", f"not valid JSON: {exc}", code="syntax")], source=source
                ) from None
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise JobSpecError(
            [Problem("", f"not valid YAML or JSON: {exc}", code="syntax")], source=source
        ) from None


def loads_job(
    text: str, *, format: str | None = None, source: str = "job"
) -> tuple[Job, list[Problem]]:
    """A job and the findings of reading it, from JSON or YAML text (see :func:`decode_job`)."""
    return decode_job(parse_text(text, format=format, source=source), source=source)


def read_job_file(path: str | os.PathLike[str]) -> tuple[Job, list[Problem]]:
    """A job spec file (``.json``, ``.yaml``/``.yml``; other names are tried as JSON, then YAML)
    and the findings of reading it. ``-`` reads standard input."""
    if str(path) == "-":
        import sys

        return loads_job(sys.stdin.read(), source="<stdin>")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobSpecError(
            [Problem("", f"cannot read the job spec: {exc.strerror}", code="io")], source=str(path)
        ) from None
    suffix = path.suffix.lower()
    format = "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None
    return loads_job(text, format=format, source=str(path))


def wire_fields(cls: type[Any]) -> dict[str, tuple[str, type[Any] | None]]:
    """``{wire key: (python name, nested class or None)}`` of a model class (for tools and tests
    that walk the wire form)."""
    return {f.metadata[_WIRE]: (f.name, f.metadata[_CLS]) for f in attrs.fields(cls)}
