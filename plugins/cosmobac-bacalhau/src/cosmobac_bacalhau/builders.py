"""Jobs for cosmobac's flows on a Bacalhau fleet. Each builder is a plain function returning a
:class:`~cosmobac_bacalhau.model.Job`, checked by :func:`~cosmobac_bacalhau.validate.check_job`
(a :class:`~cosmobac_bacalhau.errors.JobSpecError` lists every problem).

The container jobs run the cosmobac image (``Dockerfile``; its ENTRYPOINT is ``cosmobac``, so
``Parameters`` are the command line). On every node:

* ``/data`` is the node's data folder (a ``local`` input, ``data_dir`` on the host, read-write,
  allow-listed by the operator with ``Compute.AllowListedLocalPaths``): the SQLite store and the
  live pipeline file live there and outlive the jobs;
* ``/etc/cosmobac/<name>.toml`` is the pipeline file the job ships (an ``inline`` input: the file
  travels in the spec, not through environment variables);
* secrets never enter the spec: the pipeline file says ``key = "${COSMOS_KEY}"`` and the task's
  ``Env`` says ``COSMOS_KEY: env:COSMOS_KEY``, which the compute node fills from its own
  environment (allow-listed with ``Compute.Env.AllowList``). A pipeline file that holds a secret
  literally is refused.

Names: daemon jobs keep a stable name (``cosmobac-forward``), so submitting a changed spec
*updates* the running job (v1.8+ update semantics); one-shot jobs get a unique name per
submission (``cosmobac-upload-3f2a9c1e``).
"""

from __future__ import annotations

import os
import re
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from . import dataurl
from .errors import JobSpecError
from .model import Constraint, InputSource, Job, Network, Resources, SpecConfig, Task, Timeouts
from .problems import Problem
from .selectors import parse_selector
from .validate import check_job, result_path

__all__ = [
    "CONFIG_DIR",
    "DATA",
    "LIVE_CONFIG",
    "cosmos_upload_config",
    "inline_file",
    "node_folder",
    "pipeline_job",
    "status_job",
    "switch_job",
    "unique_name",
    "upload_job",
    "wasm_job",
]

DATA: Final = "/data"
CONFIG_DIR: Final = "/etc/cosmobac"
LIVE_CONFIG: Final = f"{DATA}/config/pipeline.toml"
DEFAULT_DATA_DIR: Final = "/var/lib/cosmobac"
DEFAULT_RESOURCES: Final = Resources(cpu="500m", memory="512Mb")
LABELS: Final = {"app": "cosmobac"}

ConfigSource = str | os.PathLike[str] | bytes
Selector = str | Sequence[Constraint] | None

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_KEYS: Final = frozenset(
    {
        "key",
        "password",
        "secret",
        "token",
        "connection_string",
        "api_key",
        "account_key",
        "sas_token",
        "client_secret",
    }
)


def unique_name(base: str) -> str:
    """``base`` with a random 8-hex suffix: one name per submission."""
    return f"{base}-{uuid.uuid4().hex[:8]}"


def _version() -> str:
    try:
        return metadata.version("cosmobac")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "0"


def inline_file(payload: bytes, target: str, media_type: str = "text/plain") -> InputSource:
    """A file shipped inside the spec (base64 ``data:`` URL), mounted read-only at ``target``."""
    return InputSource(
        source=SpecConfig("inline", {"URL": dataurl.encode(payload, media_type)}), target=target
    )


def node_folder(
    path: str = DEFAULT_DATA_DIR,
    target: str = DATA,
    *,
    read_write: bool = True,
    create: bool = True,
    source_type: Literal["local", "localDirectory"] = "local",
) -> InputSource:
    """A folder of the compute node (``local`` source) mounted at ``target``. The operator must
    allow-list ``path`` (``Compute.AllowListedLocalPaths: ["/var/lib/cosmobac:rw"]``). v1.7.0
    knows the type only as ``localDirectory``; the client renames it for such servers."""
    params: dict[str, Any] = {"SourcePath": path, "ReadWrite": read_write}
    if create:
        params["CreateAs"] = "dir"
    return InputSource(source=SpecConfig(source_type, params), target=target)


def _constraints(selector: Selector, cities: Sequence[str] | None) -> tuple[Constraint, ...]:
    found: list[Constraint] = []
    if isinstance(selector, str):
        found.extend(parse_selector(selector))
    elif selector:
        found.extend(selector)
    if cities:
        found.append(Constraint("city", "in", tuple(cities)))
    return tuple(found)


def _read_config(config: ConfigSource) -> tuple[bytes, str]:
    if isinstance(config, bytes):
        return config, "<pipeline file>"
    path = Path(config)
    return path.read_bytes(), str(path)


def _check_config(data: bytes, where: str, env: Mapping[str, str] | None) -> None:
    """Refuse a pipeline file that would not work on the node: not TOML, a secret written in
    it, and (when the job's ``env`` is given) a ``${VAR}`` the job does not provide or a store
    outside the node's data folder."""
    problems: list[Problem] = []
    try:
        text = data.decode("utf-8")
        table = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise JobSpecError(
            [Problem("", f"not a valid pipeline file: {exc}", code="config")], source=where
        ) from None
    for match in _VAR.finditer(text) if env is not None else ():
        name, default = match.group(1), match.group(2)
        if name and default is None and name not in (env or {}):
            problems.append(
                Problem(
                    f"${{{name}}}",
                    f"the pipeline file needs the variable {name}, which the job does not set: pass "
                    f"it from the node with secrets=[{name!r}] (or host_env), or give a default "
                    f"${{{name}:-...}}",
                    code="config-variable",
                )
            )

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if (
                    str(key).lower() in _SECRET_KEYS
                    and isinstance(item, str)
                    and item
                    and "${" not in item
                ):
                    problems.append(
                        Problem(
                            here,
                            f"a secret is written in the pipeline file, which travels inside the job "
                            f'spec: write {key} = "${{NAME}}" and pass NAME with secrets=[...]',
                            code="config-secret",
                        )
                    )
                walk(item, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(table, "")
    store = table.get("store")
    path = store.get("path") if isinstance(store, Mapping) else None
    if env is not None and isinstance(path, str):
        known = True

        def expand(match: re.Match[str]) -> str:
            nonlocal known
            name, default = match.group(1), match.group(2)
            value = env.get(name or "")
            if value is None or value.startswith("env:"):
                if default is None:
                    known = False  # set on the node: cannot be checked here
                return default or ""
            return value or (default or "")

        resolved = _VAR.sub(expand, path)
        if known and not resolved.startswith(DATA + "/"):
            problems.append(
                Problem(
                    "store.path",
                    f"the store would be {resolved!r}, inside the container, and lost when the job "
                    f'ends: put it under {DATA} (e.g. path = "${{COSMOBAC_DATA}}/edge.db")',
                    code="config-store",
                )
            )
    if problems:
        raise JobSpecError(problems, source=where)


def _env(
    secrets: Sequence[str], host_env: Sequence[str], env: Mapping[str, str] | None
) -> dict[str, str]:
    out = {"COSMOBAC_DATA": DATA}
    out.update(env or {})
    for name in (*secrets, *host_env):
        out[name] = f"env:{name}"
    return out


def _finish(job: Job) -> Job:
    problems = [p for p in check_job(job) if p.severity == "error"]
    if problems:
        raise JobSpecError(problems, source=f"job {job.name or job.type}")
    return job


def _docker(image: str, parameters: Sequence[str], entrypoint: Sequence[str] = ()) -> SpecConfig:
    params: dict[str, Any] = {"Image": image}
    if entrypoint:
        params["Entrypoint"] = list(entrypoint)
    params["Parameters"] = list(parameters)
    return SpecConfig("docker", params)


def _meta(flow: str) -> dict[str, str]:
    return {"cosmobac/flow": flow, "cosmobac/version": _version()}


def pipeline_job(
    config: ConfigSource,
    *,
    image: str,
    stage: Literal["forward", "collect", "run"] = "forward",
    job_type: Literal["daemon", "ops"] = "daemon",
    selector: Selector = None,
    cities: Sequence[str] | None = None,
    data_dir: str = DEFAULT_DATA_DIR,
    secrets: Sequence[str] = (),
    host_env: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    namespace: str = "default",
    resources: Resources = DEFAULT_RESOURCES,
    network: str | None = None,
    execution_timeout: int = 0,
    publisher: SpecConfig | None = None,
) -> Job:
    """Run the pipeline on every matching edge node.

    ``stage``: ``forward`` (store → sinks; as a daemon it follows, and picks up a new pipeline
    file written by :func:`switch_job`), ``collect`` (sensor → store) or ``run`` (both, one
    process). ``job_type``: ``daemon`` (long-running, also on nodes that join later; stable
    name, so resubmitting updates it) or ``ops`` (once on every node now; unique name; results
    hold each node's output). ``selector``/``cities``: only nodes whose labels match
    (``"city in (lisbon, porto)"``). ``secrets``/``host_env``: variables the pipeline file uses,
    taken from each node's environment (``env:NAME``); ``env``: literal, non-secret values."""
    data, where = _read_config(config)
    task_env = _env(secrets, host_env, env)
    _check_config(data, where, task_env)
    shipped = f"{CONFIG_DIR}/pipeline.toml"
    if stage == "forward" and job_type == "daemon":
        parameters = ["forward", LIVE_CONFIG, "--follow", "--seed", shipped]
    elif stage == "forward":
        parameters = ["forward", shipped]
    else:
        parameters = [stage, shipped]
    if network is None:
        network = "None" if stage == "collect" else "Full"
    if job_type == "ops" and publisher is None:
        publisher = SpecConfig("local")
    task = Task(
        name="main",
        engine=_docker(image, parameters),
        publisher=publisher,
        env=task_env,
        input_sources=(inline_file(data, shipped, "application/toml"), node_folder(data_dir)),
        resources=resources,
        network=Network(type=network),
        timeouts=Timeouts(execution_timeout=execution_timeout),
    )
    if name is None:
        name = f"cosmobac-{stage}" if job_type == "daemon" else unique_name(f"cosmobac-{stage}")
    return _finish(
        Job(
            name=name,
            namespace=namespace,
            type=job_type,
            constraints=_constraints(selector, cities),
            labels={**LABELS, "flow": stage},
            meta=_meta(stage),
            tasks=(task,),
        )
    )


def cosmos_upload_config(
    *,
    endpoint: str,
    database: str,
    container: str,
    partition_key: str = "/sensor_id",
    secret: str | None = "COSMOS_KEY",
    sink_name: str = "cosmos",
    store: str = "${COSMOBAC_DATA}/edge.db",
) -> bytes:
    """A pipeline file that forwards the node's store to Cosmos DB: the account key from the
    node's ``$secret`` (or Microsoft Entra ID when ``secret`` is None). ``sink_name`` is the
    checkpoint name: use the one the node's forwarder uses, so each row is sent once."""
    credential = f'key = "${{{secret}}}"' if secret else 'credential = "default"'
    return (
        "# written by cosmobac_bacalhau.cosmos_upload_config\n"
        "[store]\n"
        'plugin = "sqlite"\n'
        f"path = {_toml_str(store)}\n\n"
        "[[sinks]]\n"
        'plugin = "cosmos"\n'
        f"name = {_toml_str(sink_name)}\n"
        f"endpoint = {_toml_str(endpoint)}\n"
        f"database = {_toml_str(database)}\n"
        f"container = {_toml_str(container)}\n"
        f"partition_key = {_toml_str(partition_key)}\n"
        f"{credential}\n"
    ).encode()


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def upload_job(
    config: ConfigSource | None = None,
    *,
    image: str,
    cosmos: Mapping[str, str] | None = None,
    selector: Selector = None,
    cities: Sequence[str] | None = None,
    data_dir: str = DEFAULT_DATA_DIR,
    secrets: Sequence[str] = ("COSMOS_KEY",),
    host_env: Sequence[str] = (),
    name: str | None = None,
    namespace: str = "default",
    execution_timeout: int = 3600,
    resources: Resources = DEFAULT_RESOURCES,
    publisher: SpecConfig | None = None,
) -> Job:
    """Upload every matching node's backlog to Cosmos DB once (an ``ops`` job running
    ``cosmobac forward`` until nothing is pending). Give a pipeline file, or ``cosmos`` settings
    (``endpoint``, ``database``, ``container``, optional ``partition_key``) for
    :func:`cosmos_upload_config`. Each node's results hold the forwarder's summary; its exit
    code says whether a sink gave up."""
    if config is None:
        if not cosmos:
            raise ValueError(
                "upload_job needs a pipeline file or cosmos={endpoint, database, container}"
            )
        config = cosmos_upload_config(secret=secrets[0] if secrets else None, **cosmos)
    data, where = _read_config(config)
    task_env = _env(secrets, host_env, None)
    _check_config(data, where, task_env)
    shipped = f"{CONFIG_DIR}/upload.toml"
    task = Task(
        name="main",
        engine=_docker(image, ["forward", shipped]),
        publisher=publisher or SpecConfig("local"),
        env=task_env,
        input_sources=(inline_file(data, shipped, "application/toml"), node_folder(data_dir)),
        resources=resources,
        network=Network(type="Full"),
        timeouts=Timeouts(execution_timeout=execution_timeout),
    )
    return _finish(
        Job(
            name=name or unique_name("cosmobac-upload"),
            namespace=namespace,
            type="ops",
            constraints=_constraints(selector, cities),
            labels={**LABELS, "flow": "upload"},
            meta=_meta("upload"),
            tasks=(task,),
        )
    )


def switch_job(
    config: ConfigSource,
    *,
    image: str,
    selector: Selector = None,
    cities: Sequence[str] | None = None,
    data_dir: str = DEFAULT_DATA_DIR,
    live_config: str = LIVE_CONFIG,
    wait: int = 60,
    name: str | None = None,
    namespace: str = "default",
    publisher: SpecConfig | None = None,
) -> Job:
    """Switch the stages (transforms, sinks) of the forwarders running on the matching nodes:
    an ``ops`` job that writes the new pipeline file atomically over the live one
    (``python -m cosmobac.live_config install``) and waits up to ``wait`` seconds for the running
    forwarder (a :func:`pipeline_job` daemon) to report it applied. Each node's exit code says
    what happened there: 0 applied, 3 rejected by the forwarder (its reason in stdout), 4 no
    forwarder took it in time, 2 not a pipeline file.

    The forwarder reads the new file with its own environment: variables it uses must be set
    in the daemon job (``secrets``/``host_env`` there)."""
    data, where = _read_config(config)
    _check_config(data, where, None)  # its variables are the running forwarder's
    shipped = f"{CONFIG_DIR}/next.toml"
    if not PurePosixPath(live_config).is_relative_to(DATA):
        raise ValueError(f"live_config must be under {DATA} (the node's data folder)")
    task = Task(
        name="main",
        engine=_docker(
            image,
            ["install", shipped, live_config, "--wait", str(wait)],
            entrypoint=["python", "-m", "cosmobac.live_config"],
        ),
        publisher=publisher or SpecConfig("local"),
        input_sources=(inline_file(data, shipped, "application/toml"), node_folder(data_dir)),
        resources=Resources(cpu="100m", memory="128Mb"),
        network=Network(type="None"),
        timeouts=Timeouts(execution_timeout=wait + 120),
    )
    return _finish(
        Job(
            name=name or unique_name("cosmobac-switch"),
            namespace=namespace,
            type="ops",
            constraints=_constraints(selector, cities),
            labels={**LABELS, "flow": "switch"},
            meta=_meta("switch"),
            tasks=(task,),
        )
    )


def status_job(
    config: ConfigSource | None = None,
    *,
    image: str,
    node_config: str = LIVE_CONFIG,
    selector: Selector = None,
    cities: Sequence[str] | None = None,
    data_dir: str = DEFAULT_DATA_DIR,
    secrets: Sequence[str] = (),
    host_env: Sequence[str] = (),
    name: str | None = None,
    namespace: str = "default",
    execution_timeout: int = 120,
    publisher: SpecConfig | None = None,
) -> Job:
    """Ask every matching node where its pipeline stands: an ``ops`` job running
    ``cosmobac status --json PIPELINE`` once on each node, whose stdout (in the execution's
    ``RunOutput`` and its published result) is the node's status document (rows, backlog per
    sink, its age, dead letters, last errors; see ``cosmobac bacalhau fleet-status``).

    ``PIPELINE`` is, by default, ``node_config``: a path inside the container, the node's live
    pipeline file (:data:`LIVE_CONFIG`, which a forwarding :func:`pipeline_job` daemon installs),
    so the sinks' checkpoints are the running forwarder's. Give ``config`` (a pipeline file or
    its bytes) to ship one with the job instead. ``secrets``/``host_env``: the variables the
    pipeline file uses (status reads the file, so they must be set; taken from each node's
    environment). Read-only on the node's store: nothing is forwarded."""
    task_env = _env(secrets, host_env, None)
    sources: list[InputSource] = []
    if config is not None:
        data, where = _read_config(config)
        _check_config(data, where, task_env)
        path = f"{CONFIG_DIR}/status.toml"
        sources.append(inline_file(data, path, "application/toml"))
    else:
        path = node_config
        if not PurePosixPath(path).is_absolute():
            raise ValueError(f"node_config must be an absolute path in the container: {path!r}")
    sources.append(node_folder(data_dir, create=False))
    task = Task(
        name="main",
        engine=_docker(image, ["status", "--json", path]),
        publisher=publisher or SpecConfig("local"),
        env=task_env,
        input_sources=tuple(sources),
        resources=Resources(cpu="100m", memory="256Mb"),
        network=Network(type="None"),
        timeouts=Timeouts(execution_timeout=execution_timeout),
    )
    return _finish(
        Job(
            name=name or unique_name("cosmobac-status"),
            namespace=namespace,
            type="ops",
            constraints=_constraints(selector, cities),
            labels={**LABELS, "flow": "status"},
            meta=_meta("status"),
            tasks=(task,),
        )
    )


def _wasm_module(module: str | os.PathLike[str]) -> tuple[bytes, str]:
    if str(module) == "builtin":
        try:
            from cosmobac_wasm import builtin_module_path
        except ImportError:
            raise ImportError(
                "the shipped WebAssembly kernels come with the WASM plugin: pip install "
                "cosmobac-wasm (in this repository: pip install -e plugins/cosmobac-wasm), or "
                "give module= the path of a .wasm file"
            ) from None
        path = builtin_module_path()
    else:
        path = Path(module)
    return path.read_bytes(), path.name


def wasm_job(
    *,
    kernel: str,
    columns: Sequence[str],
    params: Sequence[float] = (),
    outputs: Sequence[str] = (),
    group_by: str | None = None,
    module: str | os.PathLike[str] = "builtin",
    data: str | bytes = f"{DEFAULT_DATA_DIR}/export",
    input_file: str = "readings.csv",
    output_file: str = "readings.csv",
    job_type: Literal["ops", "batch"] = "ops",
    selector: Selector = None,
    cities: Sequence[str] | None = None,
    name: str | None = None,
    namespace: str = "default",
    memory: str = "512Mb",
    execution_timeout: int = 600,
    publisher: SpecConfig | None = None,
) -> Job:
    """A WASM transform over each node's local data, with published outputs: the module of the
    WASM plugin (``"builtin"``, or a ``.wasm`` file whose ``_start`` follows the same
    conventions, see docs/wasm.md) shipped inline, its ``_start`` called with
    ``/inputs/<input_file> /outputs/<output_file>``; the kernel and its columns in the task's
    ``Env``. ``data``: a folder of the node holding ``input_file`` (mounted read-only at
    ``/inputs``), or the CSV bytes themselves (shipped inline). The output is published under
    ``outputs/``; a non-zero exit code (the kernel's, see docs/wasm.md) is reported per node by
    :meth:`~cosmobac_bacalhau.client.BacalhauClient.outcome`."""
    payload, module_name = _wasm_module(module)
    env = {"KERNEL": kernel, "COLUMNS": ",".join(columns)}
    if params:
        env["PARAMS"] = ",".join(f"{p:g}" if isinstance(p, float) else str(p) for p in params)
    if outputs:
        if len(outputs) != len(columns):
            raise ValueError("outputs needs one name per column")
        env["OUTPUTS"] = ",".join(outputs)
    if group_by is not None:
        if not group_by:
            raise ValueError(
                "group_by='' (one window for the whole file) cannot be expressed on Bacalhau, "
                "whose task environment values must not be empty; group by a column instead"
            )
        env["GROUP_BY"] = group_by
    for file_name in (input_file, output_file):
        if "/" in file_name or not file_name:
            raise ValueError(
                f"{file_name!r}: give a file name, without folders (WASM outputs "
                "must be files directly in the output folder)"
            )
    module_target = f"/app/{module_name}"
    if isinstance(data, bytes):
        source = inline_file(data, f"/inputs/{input_file}", "text/csv")
    else:
        source = node_folder(data, "/inputs", read_write=False, create=False)
    task = Task(
        name="main",
        engine=SpecConfig(
            "wasm",
            {
                "EntryModule": module_target,
                "Entrypoint": "_start",
                "Parameters": [f"/inputs/{input_file}", f"/outputs/{output_file}"],
            },
        ),
        publisher=publisher or SpecConfig("local"),
        env=env,
        input_sources=(inline_file(payload, module_target, "application/wasm"), source),
        result_paths=(result_path("outputs"),),
        resources=Resources(memory=memory),
        network=Network(type="None"),
        timeouts=Timeouts(execution_timeout=execution_timeout),
    )
    return _finish(
        Job(
            name=name or unique_name(f"cosmobac-wasm-{kernel.replace('_', '-')}"),
            namespace=namespace,
            type=job_type,
            count=1 if job_type == "batch" else None,
            constraints=_constraints(selector, cities),
            labels={**LABELS, "flow": "wasm"},
            meta=_meta("wasm"),
            tasks=(task,),
        )
    )
