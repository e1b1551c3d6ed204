"""Bacalhau's rules for the engines' parameters (docker and wasm). The server does not look at
them at submission: a compute node decodes them when the execution starts, so a mistake here
fails the execution, not the PUT. cosmobac checks them before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from . import dataurl
from .model import InputSource, SpecConfig, Task
from .problems import Collector
from .vocabulary import WASM_MEMORY_LIMIT, is_text_list, params_by_name, parse_bytes
from .wasmbin import WasmFormatError, exported_functions

__all__ = ["docker_rules", "resolve_module", "wasm_rules"]

_DOCKER_KEYS: Final = (
    "Image",
    "Entrypoint",
    "Parameters",
    "EnvironmentVariables",
    "WorkingDirectory",
)
_WASM_KEYS: Final = ("EntryModule", "Entrypoint", "Parameters", "ImportModules")


def _unknownparams_by_name(
    out: Collector, spec: SpecConfig, known: Sequence[str], where: str
) -> None:
    lowered = {k.lower() for k in known}
    for key in spec.params:
        if key.lower() not in lowered:
            out.warn(
                f"{where}.{key}",
                f"unknown {spec.type} parameter {key!r} (ignored); known: {', '.join(known)}",
                "params-unknown",
            )


def docker_rules(out: Collector, engine: SpecConfig, where: str) -> None:
    params = params_by_name(engine)
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
        if value is not None and not is_text_list(value):
            out.error(f"{where}.{key}", "must be a list of text", "docker-list", "execute")
    env = params.get("environmentvariables", ("EnvironmentVariables", None))[1]
    if env is not None:
        if not is_text_list(env):
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
    _unknownparams_by_name(out, engine, _DOCKER_KEYS, where)


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


def wasm_rules(out: Collector, task: Task, path: str) -> None:
    where = f"{path}.Engine.Params"
    params = params_by_name(task.engine)
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
            and not is_text_list(value)
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
    _unknownparams_by_name(
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


def _wasm_module(out: Collector, task: Task, entry: str, entrypoint: Any, where: str) -> None:
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
