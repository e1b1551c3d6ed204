"""``cosmobac wasm run``: run a WASI command module the way a Bacalhau WASM job runs it.

What is reproduced (Bacalhau ≥ 1.7, wazero, WASI preview 1):

* the entry point ``_start`` is called explicitly; argv is ``[""] + args`` (argv[0] empty);
* the environment is the ``--env`` pairs plus the ``BACALHAU_*`` variables a job sees (these win);
  names must be upper case ``[A-Z][A-Z0-9_]*``, not start with ``BACALHAU_``, values non-empty;
* the input folder is mounted read-only at ``/inputs``; the output folder at ``/outputs``, which
  must start empty; files must be created directly in it (a sub-folder fails on Bacalhau, so it
  fails here after the run);
* no stdin; stdout and stderr go to files (never through Python callbacks);
* exit code: ``proc_exit(n)`` gives ``n``; returning from ``_start`` without calling it gives
  ``-1``, which Bacalhau records as well (a failure here); a trap gives 1 and an error;
* no symlinks: ``path_symlink`` is refused (EPERM) and the attempt makes the run an error (a
  link such as ``out/evil -> ../../../../etc/passwd`` would lead whoever reads the results out of
  the folder); a symlink found in an output folder after the run is removed, never followed,
  and is an error too;
* the same sandbox as transforms: a time budget for the whole run and a memory cap.

Not reproduced: Bacalhau also refuses to reopen a file already written in an output folder; the
local runner cannot see that, so write each output file once. wasmtime turns exit codes ≥ 126 into
traps, and sleeping (``poll_oneoff``) is refused here, as for transforms.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

import attrs
import click
import wasmtime

from cosmobac.values import click_callback, duration, size

from .errors import WasmError
from .runtime import (
    BUILTIN,
    Instance,
    LoadedModule,
    MiB,
    Sandbox,
    builtin_module_path,
    check_signature,
    load_module,
)

__all__ = [
    "Mount",
    "RunResult",
    "check_env",
    "check_outputs",
    "report_run",
    "run_module",
    "run_wasi",
    "wasm_group",
]

Mount = tuple[str | os.PathLike[str], str, bool]
"""A folder given to a module: (host folder, guest path, read-only)."""

ENV_NAME: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")
INPUTS: Final = "/inputs"
OUTPUTS: Final = "/outputs"


def check_env(env: Mapping[str, str]) -> None:
    """Bacalhau's rules for a task's environment; ``ValueError`` naming the variable."""
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise ValueError(
                f"environment variable {name!r}: names must be upper case letters, digits and _ "
                "starting with a letter (Bacalhau refuses others)"
            )
        if name.startswith("BACALHAU_"):
            raise ValueError(f"environment variable {name!r}: BACALHAU_ names are reserved")
        if not value:
            raise ValueError(f"environment variable {name!r}: the value must not be empty")


def check_outputs(folders: Iterable[Path]) -> tuple[tuple[Path, ...], str | None]:
    """What a run left in its output ``folders`` (the entries directly in each, sorted) and an
    error for what breaks their rules, or ``None``:

    * a sub-folder: on Bacalhau only files directly in an output folder can be created;
    * a symlink, anywhere in the tree: it is removed, without following it (nor entering it, when
      it points to a folder). Modules cannot make links (``path_symlink`` is refused), so this is
      the last line: whatever made one, no result handed over leads out of its folder.

    A folder that does not exist is skipped (a run that failed before creating it)."""
    links: list[str] = []
    for folder in folders:
        for parent, dirnames, filenames in os.walk(folder):  # never follows links
            for name in [*dirnames, *filenames]:
                path = Path(parent) / name
                if path.is_symlink():
                    links.append(f"{path} -> {os.readlink(path)}")
                    path.unlink()  # removes the link itself, never its target
    entries = tuple(sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir()))
    problems = []
    nested = [p.name for p in entries if p.is_dir()]
    if nested:
        problems.append(
            f"the module created the folder(s) {', '.join(nested)} in an output folder; on "
            "Bacalhau only files directly in an output folder can be created"
        )
    if links:
        problems.append(
            f"symlink(s) found in an output folder were removed without being followed: "
            f"{', '.join(links)}; results must be regular files"
        )
    return entries, "; ".join(problems) or None


def _symlink_error(instance: Instance) -> str | None:
    refused = instance.symlinks
    if not refused.count:
        return None
    shown = ", ".join(f"{link} -> {target}" for link, target in refused.attempts[:3])
    more = f" and {refused.count - 3} more" if refused.count > 3 else ""
    return (
        f"the module tried to create the symlink(s) {shown}{more}, which were refused (WASI "
        "errno 63, EPERM): a link can point outside the mounted folder it is made in, so a "
        "module may not make any; write the file itself"
    )


@attrs.frozen
class RunResult:
    """What a run did. ``exit_code`` as Bacalhau records it; ``error`` is set when the run failed
    in a way that makes a Bacalhau execution *Failed* (a trap) or is not portable (a sub-folder
    in the outputs); ``ok`` means exit code 0 and no error."""

    exit_code: int
    stdout: Path
    stderr: Path
    outputs: tuple[Path, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None


def run_module(
    module: str | os.PathLike[str],
    *,
    input_dir: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdout: str | os.PathLike[str],
    stderr: str | os.PathLike[str],
    timeout: float = 600.0,
    memory_limit: int = 512 * MiB,
    execution_id: str | None = None,
    cache_dir: Path | bool | None = True,
) -> RunResult:
    """Run ``module``'s ``_start`` with Bacalhau's WASM semantics (see the module docstring).

    Raises :class:`WasmError` when the module cannot be loaded, lacks ``_start``, or runs out of
    time or memory; ``ValueError`` for a bad environment or output folder."""
    env = dict(env or {})
    check_env(env)
    execution = execution_id or f"local-{uuid.uuid4()}"
    system = {
        "BACALHAU_EXECUTION_ID": execution,
        "BACALHAU_JOB_ID": f"j-{execution}",
        "BACALHAU_JOB_TYPE": "batch",
        "BACALHAU_PARTITION_INDEX": "0",
        "BACALHAU_PARTITION_COUNT": "1",
    }
    mounts: list[Mount] = []
    if input_dir is not None:
        source = Path(input_dir)
        if not source.is_dir():
            raise ValueError(f"--input {str(input_dir)!r} is not a folder")
        mounts.append((source, INPUTS, True))
    target = None
    if output_dir is not None:
        target = Path(output_dir)
        target.mkdir(parents=True, exist_ok=True)
        if any(target.iterdir()):
            raise ValueError(
                f"--output {str(output_dir)!r} is not empty; a Bacalhau output folder starts "
                "empty (give a new or empty folder)"
            )
        mounts.append((target, OUTPUTS, False))
    sandbox = Sandbox(timeout=timeout, memory_limit=memory_limit)
    loaded = load_module(module, sandbox=sandbox, cache_dir=cache_dir)
    check_signature(loaded, "_start", "_start", [], [], "as a WASI command's entry point")
    exit_code, error = run_wasi(
        loaded,
        "_start",
        mounts=mounts,
        args=args,
        env={**env, **system},
        stdout=stdout,
        stderr=stderr,
    )
    outputs, problem = check_outputs([target] if target is not None else [])
    if problem:
        error = f"{error}; {problem}" if error else problem
    if exit_code == -1 and error is None:
        error = (
            "_start returned without calling proc_exit: Bacalhau records exit code -1; end the "
            "program with exit(0) (C) or std::process::exit(0) (Rust)"
        )
    return RunResult(exit_code, Path(stdout), Path(stderr), outputs, error)


def run_wasi(
    loaded: LoadedModule,
    entrypoint: str,
    *,
    mounts: Sequence[Mount] = (),
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdout: str | os.PathLike[str],
    stderr: str | os.PathLike[str],
) -> tuple[int, str | None]:
    """Call ``loaded``'s export ``entrypoint`` (of type ``() -> ()``, checked by the caller with
    :func:`~cosmobac_wasm.runtime.check_signature`) as Bacalhau's WASM executor does, and return
    the exit code Bacalhau records and an error for a run it marks *Failed*.

    argv is ``[""] + args``; the environment is ``env`` exactly (not checked); no stdin; stdout
    and stderr go to the given files; each mount's host folder is preopened at its guest path,
    read-only or writable. ``proc_exit(n)`` gives ``(n, None)``, returning from the entry point
    ``(-1, None)``, a trap ``(1, message)``. A symlink the module tried to create (refused) is
    an error with the exit code it ended with. Use :func:`check_outputs` on the writable mounts
    afterwards. Raises :class:`WasmError` when the module cannot be
    instantiated or runs out of its time budget."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["", *args]
    wasi.env = list((env or {}).items())
    wasi.stdout_file = str(stdout)
    wasi.stderr_file = str(stderr)
    for host, guest, read_only in mounts:
        wasi.preopen_dir(str(Path(host).resolve()), guest, fs_mutable=not read_only)
    instance = Instance(loaded, wasi=wasi)
    exit_code = -1  # Bacalhau's value for an entry point that returns without proc_exit
    try:
        with instance.budget(entrypoint):
            try:
                instance.prepare(entrypoint, loaded.functions()[entrypoint])()
            except wasmtime.ExitTrap as exc:
                exit_code = exc.code
    except WasmError as exc:
        if exc.cause == "budget exhausted":
            raise
        exit_code, trap = 1, str(exc)  # a trap: Bacalhau records 1 and fails the execution
        symlinks = _symlink_error(instance)
        return exit_code, f"{trap}; {symlinks}" if symlinks else trap
    return exit_code, _symlink_error(instance)


# -- the command line -----------------------------------------------------------------------------
def _env_pair(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", ctx=ctx, param=param)
        pairs[name] = value
    try:
        check_env(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return pairs


def _echo_file(path: Path, *, err: bool) -> None:
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 16):
            click.echo(chunk, nl=False, err=err)


@click.group(name="wasm")
def wasm_group() -> None:
    """WebAssembly modules: run a WASI job locally as Bacalhau would, inspect kernels."""


@wasm_group.command(name="run", context_settings={"ignore_unknown_options": False})
@click.argument("module")
@click.argument("args", nargs=-1)
@click.option(
    "--input",
    "input_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder mounted read-only at /inputs.",
)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False),
    help="Folder mounted at /outputs (created; must be empty).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    callback=_env_pair,
    metavar="NAME=VALUE",
    help="Environment variable for the module (repeatable).",
)
@click.option(
    "--timeout",
    default="10m",
    show_default=True,
    callback=click_callback(duration, positive=True),
    help="Time budget for the whole run.",
)
@click.option(
    "--memory",
    default="512MB",
    show_default=True,
    callback=click_callback(size),
    help="Memory cap (Bacalhau's default task memory is 512Mb).",
)
@click.option(
    "--stdout",
    "stdout_path",
    type=click.Path(dir_okay=False),
    help="Keep the module's stdout in this file (default: printed, then removed).",
)
@click.option(
    "--stderr",
    "stderr_path",
    type=click.Path(dir_okay=False),
    help="Keep the module's stderr in this file (default: printed, then removed).",
)
def run_command(
    module: str,
    args: tuple[str, ...],
    input_dir: str | None,
    output_dir: str | None,
    env: dict[str, str],
    timeout: float,
    memory: int,
    stdout_path: str | None,
    stderr_path: str | None,
) -> None:
    """Run MODULE's _start like a Bacalhau WASM job (ARGS become argv[1:]).

    MODULE is a .wasm file, or "builtin" for the kernels shipped with cosmobac-wasm. Put ARGS
    after "--". Exits with the module's exit code."""
    with tempfile.TemporaryDirectory(prefix="cosmobac-wasm-") as scratch:
        out = Path(stdout_path) if stdout_path else Path(scratch) / "stdout"
        err = Path(stderr_path) if stderr_path else Path(scratch) / "stderr"
        try:
            result = run_module(
                module,
                input_dir=input_dir,
                output_dir=output_dir,
                args=args,
                env=env,
                stdout=out,
                stderr=err,
                timeout=timeout,
                memory_limit=memory,
            )
        except FileNotFoundError as exc:
            raise click.BadParameter(
                f"no module file {exc.filename!r}", param_hint="MODULE"
            ) from None
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        if not stdout_path:
            _echo_file(out, err=False)
        if not stderr_path:
            _echo_file(err, err=True)
    report_run(result)


class _Run(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    @property
    def outputs(self) -> tuple[Path, ...]: ...
    @property
    def ok(self) -> bool: ...


def report_run(result: _Run) -> None:
    """Print a run's output files, exit code and error on stderr; unless it is ``ok``, exit with
    its exit code (1 when that is outside 1-255). Used by ``cosmobac wasm run`` and ``cosmobac
    bacalhau run-local``."""
    for path in result.outputs:
        click.echo(f"output: {path}", err=True)
    click.echo(f"exit code: {result.exit_code}", err=True)
    if result.error:
        click.echo(f"Error: {result.error}", err=True)
    if not result.ok:
        raise SystemExit(result.exit_code if 0 < result.exit_code < 256 else 1)


@wasm_group.command(name="kernels")
@click.argument("module", default=BUILTIN)
def kernels_command(module: str) -> None:
    """List MODULE's batch kernels (default: the shipped ones) and their signatures."""
    from .kernels import describe_kernels

    try:
        loaded = load_module(module, cache_dir=True)
    except FileNotFoundError as exc:
        raise click.BadParameter(f"no module file {exc.filename!r}", param_hint="MODULE") from None
    for line in describe_kernels(loaded):
        click.echo(line)


@wasm_group.command(name="path")
def path_command() -> None:
    """Print the path of the shipped kernels module (e.g. to attach it to a Bacalhau job)."""
    click.echo(str(builtin_module_path()))
