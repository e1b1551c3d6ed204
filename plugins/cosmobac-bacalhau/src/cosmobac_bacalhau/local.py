"""Run a Bacalhau WASM job on this machine, with Bacalhau's semantics, in the WASM plugin's sandbox.

What is reproduced (Bacalhau v1.7+, WASI preview 1):

* inputs are mounted read-only at their ``Target``: ``inline`` sources (a file, or a folder for a
  gzip payload) and ``local`` sources (the node path, or the folder ``path_map`` puts in its place);
  any input can be given by hand (``inputs={"/inputs": "./data"}``), which is the only way for
  URL, S3 and IPFS sources;
* the module is the input named by ``EntryModule`` (leading ``/`` ignored; a folder must hold
  exactly one ``.wasm``); the exported ``Entrypoint`` is called, argv is ``[""] + Parameters``;
* each result path is mounted at ``/<Name>`` (not at its ``Path``), in ``result_dir/<Name>``;
* the environment is the task's ``Env`` (``env:VAR`` values from this machine's environment)
  plus ``BACALHAU_EXECUTION_ID``, ``BACALHAU_JOB_ID``, ``BACALHAU_JOB_TYPE``,
  ``BACALHAU_PARTITION_INDEX`` and ``BACALHAU_PARTITION_COUNT``, which win;
* no stdin; ``result_dir`` gets ``stdout``, ``stderr`` and ``exitCode``, the layout of a
  published result;
* exit codes: ``proc_exit(n)`` gives n; an entry point that returns gives -1 (Bacalhau records
  -1 and calls the execution Completed); a trap gives 1 and fails the run; the memory limit is
  the task's ``Resources.Memory`` (512 MB when unset), the time limit its ``ExecutionTimeout``;
* a module cannot create symlinks (refused, and the run is an error: a link could lead out of
  the result folder); a symlink found in a result folder is removed, never followed, and is an
  error as well.

Docker tasks are not run: :func:`explain_docker` says what a node would do and prints the
``docker run`` command that does the same, with the inline inputs written out.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final

import attrs

from . import dataurl
from .api_records import NORMAL_EXIT_CODES
from .errors import BacalhauError, JobSpecError
from .model import InputSource, Job, Task
from .validate import check_job, normalise, parse_bytes, resolve_module

__all__ = ["LocalRun", "LocalRunError", "explain_docker", "run_local"]

DEFAULT_MEMORY: Final = 512 * 10**6  # Bacalhau's default task memory, "512Mb"
DEFAULT_TIMEOUT: Final = 600.0


class LocalRunError(BacalhauError):
    """The job cannot be run locally; the message says why and what to do instead."""


@attrs.frozen
class LocalRun:
    """What a local run did. ``exit_code`` as Bacalhau records it; ``error`` is set when the
    execution would be *Failed* on Bacalhau (a trap, the time limit) or broke a rule of its
    output folders; ``ok``: exit code 0, or -1 (an entry point that returned, which Bacalhau
    calls Completed), and no error."""

    exit_code: int
    error: str | None
    result_dir: Path
    outputs: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        return self.exit_code in NORMAL_EXIT_CODES and self.error is None

    @property
    def stdout(self) -> Path:
        return self.result_dir / "stdout"

    @property
    def stderr(self) -> Path:
        return self.result_dir / "stderr"


@attrs.frozen
class _WasmPlugin:
    runtime: Any
    run_wasi: Any
    check_env: Any
    check_outputs: Any
    error: type[Exception]


def _wasm_plugin() -> _WasmPlugin:
    try:
        from cosmobac_wasm import runtime
        from cosmobac_wasm.commands import check_env, check_outputs, run_wasi
        from cosmobac_wasm.errors import WasmError
    except ImportError:
        raise LocalRunError(
            "running a WASM job locally needs the WebAssembly plugin: pip install cosmobac-wasm "
            "(in this repository: pip install -e plugins/cosmobac-wasm)"
        ) from None
    return _WasmPlugin(runtime, run_wasi, check_env, check_outputs, WasmError)


def _norm(target: str) -> str:
    return "/" + target.strip().strip("/")


def _mapped(path: str, path_map: Mapping[str, str | os.PathLike[str]]) -> Path:
    """A node path, moved by the longest matching ``path_map`` prefix."""
    best = ""
    for prefix in path_map:
        clean = prefix.rstrip("/")
        if (path == clean or path.startswith(clean + "/")) and len(clean) > len(best):
            best = clean
    if not best:
        return Path(path)
    rest = path[len(best) :].lstrip("/")
    base = Path(path_map[best] if best in path_map else path_map[best + "/"])
    return base / rest if rest else base


def _stage_input(
    source: InputSource,
    staging: Path,
    overrides: Mapping[str, Path],
    path_map: Mapping[str, str | os.PathLike[str]],
) -> Path:
    """The host path holding one input (a file or a folder)."""
    target = _norm(source.target)
    if target in overrides:
        path = overrides[target]
        if not path.exists():
            raise LocalRunError(f"input {target}: {path} does not exist")
        return path
    spec = source.source
    params = {k.lower(): v for k, v in spec.params.items()}
    if spec.type == "inline":
        try:
            media_type, payload = dataurl.decode(str(params.get("url")))
        except ValueError as exc:
            raise LocalRunError(f"input {target}: {exc}") from None
        place = staging / uuid.uuid4().hex[:8]
        if media_type == "application/gzip":
            place.mkdir(parents=True)
            with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
                for member in archive.getmembers():
                    if member.name.startswith("/") or ".." in PurePosixPath(member.name).parts:
                        raise LocalRunError(f"input {target}: unsafe path {member.name!r}")
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(place, filter="data")
                else:  # pragma: no cover
                    archive.extractall(place)
            return place
        place.mkdir(parents=True)
        file = place / (PurePosixPath(target).name or "input")
        file.write_bytes(payload)
        return file
    if spec.type in ("local", "localDirectory"):
        node_path = str(params.get("sourcepath") or "")
        path = _mapped(node_path, path_map)
        if not path.exists():
            if params.get("createas") == "dir":
                path.mkdir(parents=True, exist_ok=True)
            else:
                raise LocalRunError(
                    f"input {target}: the node path {node_path} is {path} here, which does not "
                    f"exist; map it with --map {node_path}=LOCAL_FOLDER or give --input "
                    f"{target}=PATH"
                )
        return path
    raise LocalRunError(
        f"input {target} is a {spec.type!r} source, which is not fetched locally; give it with "
        f"--input {target}=PATH (a file or a folder)"
    )


def _module_file(task: Task, host_inputs: Mapping[str, Path]) -> Path:
    params = {k.lower(): v for k, v in task.engine.params.items()}
    entry = str(params.get("entrymodule") or "")
    found = resolve_module(task, entry)
    if found is None:
        raise LocalRunError(f"EntryModule {entry!r} is not the Target of any input")
    source, inner = found
    path = host_inputs[_norm(source.target)]
    if inner:
        path = path / inner
    if path.is_dir():
        modules = sorted(path.glob("*.wasm"))
        if len(modules) != 1:
            raise LocalRunError(
                f"EntryModule {entry!r} is a folder with {len(modules)} .wasm files; Bacalhau "
                "needs exactly one"
            )
        path = modules[0]
    return path


def _guest_folders(
    task: Task, host_inputs: Mapping[str, Path], staging: Path
) -> list[tuple[Path, str]]:
    """(host folder, guest path) preopens for the inputs: folders at their target, files in a
    staging folder at their target's parent (wasmtime preopens folders only; a file right under
    ``/`` goes into a folder mounted at ``/``, under the other mounts, which win as longer
    prefixes)."""
    folders: list[tuple[Path, str]] = []
    files: dict[str, list[tuple[str, Path]]] = {}
    for source in task.input_sources:
        target = _norm(source.target)
        path = host_inputs[target]
        if path.is_dir():
            folders.append((path, target))
        else:
            parent = str(PurePosixPath(target).parent)
            files.setdefault(parent, []).append((PurePosixPath(target).name, path))
    taken = {guest for _, guest in folders}
    for parent, entries in files.items():
        if parent in taken:
            raise LocalRunError(
                f"a file input lies inside the folder input {parent}; locally the two cannot be "
                "mounted together: give one --input for the folder that holds both"
            )
        holder = staging / ("files-" + uuid.uuid4().hex[:8])
        holder.mkdir()
        for name, path in entries:
            try:
                os.link(path, holder / name)
            except OSError:
                shutil.copyfile(path, holder / name)
        folders.append((holder, parent))
    return folders


def _environment(
    job: Job, task: Task, host_env: Mapping[str, str], execution_id: str, check_env: Any
) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in task.env.items():
        if value.startswith("env:"):
            host = value[4:]
            if host not in host_env:
                raise LocalRunError(
                    f"Env {name} = {value!r}: the variable {host} is not set here (on a node it "
                    "must be set and allow-listed with Compute.Env.AllowList)"
                )
            value = host_env[host]
        env[name] = value
    try:
        check_env(env)
    except ValueError as exc:
        raise LocalRunError(str(exc)) from None
    count = job.count if job.count is not None else (1 if job.type in ("batch", "service") else 0)
    env.update(
        BACALHAU_EXECUTION_ID=execution_id,
        BACALHAU_JOB_ID=job.id or f"j-{execution_id}",
        BACALHAU_JOB_TYPE=job.type or "batch",
        BACALHAU_PARTITION_INDEX="0",
        BACALHAU_PARTITION_COUNT=str(count),
    )
    return env


def run_local(
    job: Job,
    *,
    result_dir: str | os.PathLike[str],
    inputs: Mapping[str, str | os.PathLike[str]] | None = None,
    path_map: Mapping[str, str | os.PathLike[str]] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    execution_id: str | None = None,
    cache_dir: Path | bool | None = True,
) -> LocalRun:
    """Run a WASM job here as a Bacalhau node would (see the module docstring).

    ``result_dir`` must be new or empty. ``inputs`` maps input targets to local paths;
    ``path_map`` maps node folders of ``local`` sources to local folders; ``env`` is the host
    environment ``env:VAR`` values come from (default: this process's). Raises
    :class:`LocalRunError` for what cannot run here (docker tasks: see :func:`explain_docker`),
    :class:`JobSpecError` for a job Bacalhau would refuse."""
    job, _ = normalise(job)
    problems = [p for p in check_job(job) if p.severity == "error" and p.stage != "schedule"]
    if problems:
        raise JobSpecError(problems, source=f"job {job.name or '(unnamed)'}")
    task = job.task
    if task.engine.type == "docker":
        raise LocalRunError(
            "docker tasks are not run locally (they need Docker and the node's folders):\n"
            + explain_docker(job)
        )
    if task.engine.type != "wasm":
        raise LocalRunError(f"engine {task.engine.type!r} cannot run locally; only wasm jobs can")
    wasm = _wasm_plugin()
    runtime = wasm.runtime
    target = Path(result_dir)
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise LocalRunError(f"{target} is not empty; give a new or empty result folder")
    execution = execution_id or f"e-local-{uuid.uuid4()}"
    host_env = os.environ if env is None else env
    task_env = _environment(job, task, host_env, execution, wasm.check_env)
    overrides = {_norm(k): Path(v) for k, v in (inputs or {}).items()}
    params = {k.lower(): v for k, v in task.engine.params.items()}
    entrypoint = str(params.get("entrypoint") or "")
    memory = parse_bytes(task.resources.memory) if task.resources.memory else DEFAULT_MEMORY
    seconds = timeout or float(task.timeouts.execution_timeout or DEFAULT_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="cosmobac-run-local-") as scratch:
        staging = Path(scratch)
        host_inputs = {
            _norm(s.target): _stage_input(s, staging, overrides, path_map or {})
            for s in task.input_sources
        }
        module = _module_file(task, host_inputs)
        mounts = [(host, guest, True) for host, guest in _guest_folders(task, host_inputs, staging)]
        outputs = []
        for result in task.result_paths:
            folder = target / result.name
            folder.mkdir(parents=True, exist_ok=True)
            mounts.append((folder, "/" + result.name, False))
            outputs.append(folder)
        sandbox = runtime.Sandbox(timeout=seconds, memory_limit=memory)
        loaded = runtime.load_module(module, sandbox=sandbox, cache_dir=cache_dir)
        runtime.check_signature(
            loaded, entrypoint, entrypoint, [], [], "as a WASM job's Entrypoint"
        )
        try:
            exit_code, error = wasm.run_wasi(
                loaded,
                entrypoint,
                mounts=mounts,
                args=[str(p) for p in params.get("parameters") or ()],
                env=task_env,
                stdout=target / "stdout",
                stderr=target / "stderr",
            )
        except wasm.error as exc:  # instantiation (memory, imports) or the time limit
            exit_code, error = 1, str(exc)  # Bacalhau: exit code 1 and a failed execution
    (target / "exitCode").write_text(f"{exit_code}\n")
    # sub-folders are an error; symlinks (refused to the module) are removed, never followed
    written, problem = wasm.check_outputs(outputs)
    if problem:
        error = f"{error}; {problem}" if error else problem
    return LocalRun(exit_code, error, target, written)


def explain_docker(job: Job, *, inputs_dir: str | os.PathLike[str] | None = None) -> str:
    """What a Bacalhau node does with this docker job, and a ``docker run`` command doing the
    same here. With ``inputs_dir``, inline inputs are written there for that command."""
    task = job.task
    params = {k.lower(): v for k, v in task.engine.params.items()}
    image = str(params.get("image") or "?")
    entrypoint = [str(p) for p in params.get("entrypoint") or ()]
    arguments = [str(p) for p in params.get("parameters") or ()]
    lines = [
        f"image: {image}",
        "entrypoint: " + (shlex.join(entrypoint) if entrypoint else "the image's own ENTRYPOINT"),
        "arguments: " + (shlex.join(arguments) if arguments else "(none)"),
    ]
    command = ["docker", "run", "--rm"]
    for name, value in sorted(task.env.items()):
        if value.startswith("env:"):
            lines.append(f"env {name}: the node's ${value[4:]} (allow-listed)")
            command += ["-e", name if value[4:] == name else f"{name}=${{{value[4:]}}}"]
        else:
            lines.append(f"env {name}={value}")
            command += ["-e", f"{name}={value}"]
    for item in params.get("environmentvariables") or ():
        command += ["-e", str(item)]
    folder = Path(inputs_dir) if inputs_dir is not None else None
    for source in task.input_sources:
        spec = source.source
        sparams = {k.lower(): v for k, v in spec.params.items()}
        mount = source.target
        if spec.type == "inline":
            size = "?"
            try:
                _, payload = dataurl.decode(str(sparams.get("url")))
                size = f"{len(payload)} bytes"
                if folder is not None:
                    local = folder / mount.strip("/")
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(payload)
                    command += ["-v", f"{local.resolve()}:{mount}:ro"]
            except ValueError:
                pass
            lines.append(f"input {mount}: a file shipped in the spec ({size}), read-only")
        elif spec.type in ("local", "localDirectory"):
            mode = "rw" if sparams.get("readwrite") in (True, "true") else "ro"
            lines.append(f"input {mount}: the node folder {sparams.get('sourcepath')} ({mode})")
            command += ["-v", f"{sparams.get('sourcepath')}:{mount}:{mode}"]
        else:
            lines.append(f"input {mount}: fetched by the node from a {spec.type} source")
    for result in task.result_paths:
        lines.append(f"output {result.path}: published as {result.name}/")
    network = task.network.type or "Default"
    lines.append(f"network: {network}")
    if network == "None":
        command += ["--network", "none"]
    if task.resources.memory:
        command += ["--memory", str(parse_bytes(task.resources.memory))]
    if entrypoint:
        command += ["--entrypoint", entrypoint[0]]
        arguments = entrypoint[1:] + arguments
    command += [image, *arguments]
    lines.append("to run the same container here:")
    lines.append("  " + shlex.join(command))
    return "\n".join(lines)
