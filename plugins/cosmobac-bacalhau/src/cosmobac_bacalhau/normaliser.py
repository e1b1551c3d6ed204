"""What the server's transformers would do to a spec, done before it is sent: canonical type
spellings, trimmed input targets, the pre-1.7 WASM engine shape turned into the current one,
read-only fields and reserved ``Meta`` keys dropped, server defaults filled in. Each change that
alters what the spec says is reported as a note."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .model import InputSource, Job, SpecConfig, Task
from .problems import Problem
from .vocabulary import ENGINES, NETWORK_TYPES, PUBLISHERS, SOURCES, canonical_name

__all__ = ["normalise"]


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
    canonical = canonical_name(spec.type, choices)
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
    canonical = canonical_name(network.type, NETWORK_TYPES) if network.type else None
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
