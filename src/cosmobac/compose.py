"""``cosmobac compose``: a Docker Compose file for a fleet of nodes, from one pipeline file: the
simulated fleet's cities (``--cities``/``--city``) or, for any other sensor, named nodes
(``--node``).

Each node is two services of the cosmobac image sharing a named volume (the node's store):
``<node>-collector`` runs ``cosmobac collect`` and ``<node>-forwarder`` runs
``cosmobac forward --follow``, both on the pipeline file mounted read-only at
:data:`CONFIG_PATH`. What differs between nodes comes from environment variables the pipeline file
reads through ``${VAR}``: the city (:data:`CITY_VAR`) and the sensors per city
(:data:`SENSORS_VAR`) of a city node, the name (:data:`NODE_VAR`) of a named node, the data
directory (:data:`DATA_VAR`, the volume at :data:`DATA_DIR`) and,
with a local Cosmos DB-compatible server, the sink's endpoint (:data:`ENDPOINT_VAR`). Secrets are
never written into the file: the services read them from an env file.

:func:`compose_plan` is pure: it reads the pipeline file and returns a :class:`ComposePlan`, the
compose document as a mapping plus a :class:`NodeService` record per node service (its command,
environment and volume), so that tests can run exactly the commands the file runs
(:meth:`NodeService.on_host`). :func:`write_compose` writes it as YAML (PyYAML,
``cosmobac[compose]``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from ._compose_checks import (
    CITY_VAR,
    DATA_DIR,
    DATA_VAR,
    NODE_VAR,
    SENSORS_VAR,
    check_node_names,
    literal_secrets,
    path_problems,
    sensor_problems,
    var_names,
    var_refs,
    walk_strings,
)
from .config import parse_config
from .errors import ConfigError
from .sensors.fleet_config import City, load_cities, parse_cities, parse_sensors_per_city

__all__ = [
    "CITY_VAR",
    "CONFIG_PATH",
    "COSMOS_LAUNCHER",
    "COSMOS_PROBE",
    "COSMOS_SERVER_PACKAGE",
    "COSMOS_SERVER_VERSION",
    "COSMOS_SERVICE",
    "DATA_DIR",
    "DATA_VAR",
    "ENDPOINT_VAR",
    "NODE_VAR",
    "SENSORS_VAR",
    "ComposeError",
    "ComposePlan",
    "HostCommand",
    "NodeService",
    "compose_plan",
    "summary",
    "to_yaml",
    "write_compose",
]

CONFIG_PATH: Final = "/etc/cosmobac/pipeline.toml"
"""Where the pipeline file is mounted (read-only) in every node container."""
ENDPOINT_VAR: Final = "COSMOS_ENDPOINT"
COSMOS_SERVICE: Final = "cosmos"
COSMOS_PORT: Final = 8081
COSMOS_SERVER_PACKAGE: Final = "@vercel/cosmosdb-server"
COSMOS_SERVER_VERSION: Final = "1.0.1"
"""The version cosmobac-cosmos pins for its local server (its ``server/package.json``; a test
keeps the two in step)."""
COSMOS_IMAGE: Final = "node:20-bookworm-slim"
STOP_GRACE: Final = {"collector": "30s", "forwarder": "1m"}
"""How long compose waits after SIGTERM before SIGKILL: a forwarder may be finishing a batch."""
HEALTH_TIMING: Final = {"interval": "30s", "timeout": "10s", "retries": 3, "start_period": "30s"}


class ComposeError(ConfigError):
    """The pipeline file cannot make a compose fleet; the message says exactly what to write."""


# -- records --------------------------------------------------------------------------------------
@attrs.frozen
class HostCommand:
    """A node service's command for a process on this machine: ``argv`` (``cosmobac ...``), the
    service's own environment ``env`` (merge it over ``os.environ``, which supplies the env
    file's variables) and the working directory ``cwd`` (the node's data directory)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


@attrs.frozen
class NodeService:
    """One node service of the compose file.

    ``argv`` is the whole command (``("cosmobac", "collect", CONFIG_PATH)``; the image's
    entrypoint is ``cosmobac``, so the file's ``command:`` is ``argv[1:]``), ``environment`` what
    the service sets (the env file comes on top), ``volume`` the named volume mounted at
    ``data_dir``, which is also the working directory."""

    name: str
    node: str  # the city's slug, e.g. "sao-paulo", or the --node name
    city: str | None  # None for a --node (a sensor other than the simulated fleet)
    role: str  # "collector" or "forwarder"
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    volume: str
    config_path: str = CONFIG_PATH
    data_dir: str = DATA_DIR

    def on_host(self, config: str | os.PathLike[str], data: str | os.PathLike[str]) -> HostCommand:
        """This service's command with the pipeline file at ``config`` and the node's volume at
        ``data`` (a directory of this machine): :attr:`config_path` is replaced in the command, and
        :attr:`data_dir` at the start of every environment value."""
        argv = tuple(os.fspath(config) if a == self.config_path else a for a in self.argv)
        target = os.fspath(data)
        env = {}
        for key, value in self.environment.items():
            if value == self.data_dir or value.startswith(self.data_dir + "/"):
                value = target + value[len(self.data_dir) :]
            env[key] = value
        return HostCommand(argv, env, Path(target))


@attrs.frozen
class ComposePlan:
    """What :func:`compose_plan` made: the compose ``document`` (a mapping, ready for YAML), the
    node ``services`` in file order, the ``env_file`` they read (``None`` when the pipeline file
    needs no variable of its own) and the variables that file must set (``required``) or may set
    (``optional``, they have defaults). ``cities`` are the city nodes (simulated fleet) and
    ``node_names`` the ``--node`` nodes; one of the two is empty."""

    document: Mapping[str, Any]
    services: tuple[NodeService, ...]
    cities: tuple[City, ...]
    env_file: str | None
    required: tuple[str, ...]
    optional: tuple[str, ...]
    node_names: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """The nodes' names in file order: the cities' names, or the ``--node`` names."""
        return tuple(c.name for c in self.cities) or self.node_names

    def service(self, name: str) -> NodeService:
        return next(s for s in self.services if s.name == name)

    def nodes(self) -> dict[str, list[NodeService]]:
        """Services by node (city slug or node name), collector first."""
        found: dict[str, list[NodeService]] = {}
        for service in self.services:
            found.setdefault(service.node, []).append(service)
        return found


# -- the document ---------------------------------------------------------------------------------
def _healthcheck(cfg: Any, role: str) -> dict[str, Any]:
    listen = cfg.monitoring.listen
    if listen is not None:
        host, port = listen
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        path = "/readyz" if role == "forwarder" else "/healthz"
        url = f"http://{shown}:{port}{path}"
        test = [
            "CMD",
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)",
        ]
    elif role == "forwarder":
        test = ["CMD", "cosmobac", "status", "--check", CONFIG_PATH]
    else:
        test = ["CMD", "cosmobac", "status", CONFIG_PATH]
    return {"test": test, **HEALTH_TIMING}


COSMOS_LAUNCHER: Final = (
    f"const s = require('{COSMOS_SERVER_PACKAGE}').createHttpServer({{keepAlive: true}}); "
    "s.keepAliveTimeout = 120000; s.listen(Number(process.env.COSMOS_PORT), '0.0.0.0'); "
    "process.on('SIGTERM', () => s.close(() => process.exit(0)));"
)
"""The local server's launcher (``node -e``), as cosmobac-cosmos's ``launcher.js`` starts it, on
all addresses at port ``$COSMOS_PORT``."""
COSMOS_PROBE: Final = (
    "require('http').get('http://127.0.0.1:' + process.env.COSMOS_PORT + '/', "
    "() => process.exit(0)).on('error', () => process.exit(1))"
)
"""The local server's health check (``node -e``): exit 0 once it answers HTTP."""


def _cosmos_service() -> dict[str, Any]:
    install = (
        f"npm install --no-save --no-audit --no-fund "
        f"{COSMOS_SERVER_PACKAGE}@{COSMOS_SERVER_VERSION}"
    )
    return {
        "image": COSMOS_IMAGE,
        "working_dir": "/srv/cosmos",
        "environment": {"COSMOS_PORT": str(COSMOS_PORT)},
        "command": ["sh", "-c", f'{install} && exec node -e "{COSMOS_LAUNCHER}"'],
        "restart": "unless-stopped",
        "stop_signal": "SIGTERM",
        "healthcheck": {
            "test": ["CMD", "node", "-e", COSMOS_PROBE],
            "interval": "10s",
            "timeout": "5s",
            "retries": 30,
            "start_period": "2m",
        },
        "labels": {"io.cosmobac.role": "local-cosmos"},
    }


def _escape_dollars(value: Any) -> Any:
    """Compose expands ``$`` in every value: a literal ``$`` is written ``$$``."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, Mapping):
        return {k: _escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(v) for v in value]
    return value


def _choose_cities(cities: int | None, names: Sequence[str]) -> tuple[City, ...]:
    if names and cities is not None:
        raise ComposeError("give either --cities N (the first N cities) or --city NAME, not both")
    if names:
        try:
            return parse_cities(list(names))
        except (TypeError, ValueError) as exc:
            raise ComposeError(f"--city: {exc}") from None
    if cities is None:
        raise ComposeError(
            "give --cities N (the first N bundled cities) or --city NAME for the simulated "
            "fleet, or --node NAME for any other sensor"
        )
    known = load_cities()
    if not 1 <= cities <= len(known):
        raise ComposeError(f"--cities must be from 1 to {len(known)}, got {cities}")
    return known[:cities]


@attrs.frozen
class _Node:
    slug: str
    name: str
    city: City | None
    environment: dict[str, str]


def _choose_nodes(
    cities: int | None,
    city_names: Sequence[str],
    node_names: Sequence[str],
    sensors_per_city: int | None,
) -> tuple[tuple[City, ...], tuple[_Node, ...]]:
    """The city nodes (``--cities``/``--city``) or the named nodes (``--node``), each with the
    environment that makes it differ (``COSMOBAC_DATA`` and the Cosmos endpoint come on top)."""
    if node_names:
        if cities is not None or city_names:
            raise ComposeError(
                "give either --node NAME (a sensor other than the simulated one) or --cities N / "
                "--city NAME (the simulated fleet's cities), not both"
            )
        if sensors_per_city is not None:
            raise ComposeError(
                "--sensors-per-city is for the simulated fleet's cities (--cities, --city); a "
                "--node's sensor is what its pipeline file says: leave --sensors-per-city out"
            )
        try:
            named = check_node_names(node_names)
        except ValueError as exc:
            raise ComposeError(f"--node: {exc}") from None
        return (), tuple(_Node(n, n, None, {NODE_VAR: n}) for n in named)
    chosen = _choose_cities(cities, city_names)
    if sensors_per_city is None:
        raise ComposeError("give --sensors-per-city M: the simulated sensors of each city node")
    try:
        spc = parse_sensors_per_city(sensors_per_city)
    except (TypeError, ValueError) as exc:
        raise ComposeError(f"--sensors-per-city: {exc}") from None
    return chosen, tuple(
        _Node(c.slug, c.name, c, {CITY_VAR: c.name, SENSORS_VAR: str(spc)}) for c in chosen
    )


def _city_problems(cfg: Any, city: City, spc: str, source: str) -> list[str]:
    """What the parsed ``[sensor]`` of a city node gets wrong: other cities, another count."""
    try:
        found = parse_cities(cfg.sensor.options.get("cities"))
        count = parse_sensors_per_city(cfg.sensor.options.get("sensors_per_city"))
    except (TypeError, ValueError) as exc:
        raise ComposeError(f"{source}: [sensor] for the node of {city.name}: {exc}") from None
    problems = []
    if found != (city,):
        problems.append(
            f"{source}: [sensor] cities gives {[c.name for c in found]} for the node of "
            f"{city.name}; each node collects its own city only: write cities = "
            f'["${{{CITY_VAR}}}"]'
        )
    if str(count) != spc:
        problems.append(
            f"{source}: [sensor] sensors_per_city gives {count} for --sensors-per-city "
            f'{spc}: write sensors_per_city = "${{{SENSORS_VAR}}}"'
        )
    return problems


def compose_plan(
    config: str | os.PathLike[str],
    *,
    cities: int | None = None,
    city_names: Sequence[str] = (),
    node_names: Sequence[str] = (),
    sensors_per_city: int | None = None,
    image: str = "cosmobac:latest",
    local_cosmos: bool = False,
    env_file: str = ".env",
    config_source: str | None = None,
) -> ComposePlan:
    """The compose document for a fleet of nodes running ``config`` (see the module).

    For the simulated sensor, ``cities`` takes the first N bundled cities, ``city_names`` picks
    them by name, with ``sensors_per_city`` each; for any other sensor, ``node_names`` names the
    nodes (each a slug, set as :data:`NODE_VAR`, which the pipeline file must read).
    ``config_source`` is the bind mount's source as the compose file names it (default: the
    path of ``config`` as given). Raises :class:`ComposeError` listing everything the pipeline
    file lacks, each with the line to write."""
    source = os.fspath(config)
    chosen, nodes = _choose_nodes(cities, city_names, node_names, sensors_per_city)
    try:
        data = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ComposeError(f"{source}: cannot read the pipeline file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ComposeError(f"{source}: not valid TOML: {exc}") from None

    problems = literal_secrets(data, source, env_file)
    problems += sensor_problems(data, source, nodes=bool(node_names))
    refs = [r for where, text in walk_strings(data, "") for r in var_refs(text, where)]
    if local_cosmos:
        given = data.get("sinks")
        sinks: list[Any] = given if isinstance(given, list) else []
        cosmos = [s for s in sinks if isinstance(s, Mapping) and s.get("plugin") == "cosmos"]
        if not cosmos:
            problems.append(
                f'{source}: --local-cosmos needs a [[sinks]] table with plugin = "cosmos" and '
                f'endpoint = "${{{ENDPOINT_VAR}}}"'
            )
        for table in cosmos:
            if ENDPOINT_VAR not in var_names(table.get("endpoint")):
                problems.append(
                    f"{source}: --local-cosmos points the cosmos sink at the local server through "
                    f"{ENDPOINT_VAR}, which its endpoint does not read: write endpoint = "
                    f'"${{{ENDPOINT_VAR}:-https://ACCOUNT.documents.azure.com:443/}}"'
                )
    set_here = {DATA_VAR, *nodes[0].environment, *((ENDPOINT_VAR,) if local_cosmos else ())}
    own = [r for r in refs if r.name not in set_here]
    required = tuple(sorted({r.name for r in own if r.default is None}))
    optional = tuple(sorted({r.name for r in own} - set(required)))

    services: list[NodeService] = []
    node_configs: dict[str, Any] = {}
    for node in nodes:
        environment = {**node.environment, DATA_VAR: DATA_DIR}
        if local_cosmos:
            environment[ENDPOINT_VAR] = f"http://{COSMOS_SERVICE}:{COSMOS_PORT}/"
        env = {**{name: "placeholder" for name in required}, **environment}
        try:
            cfg = parse_config(data, source=source, env=env)
        except ConfigError as exc:
            if problems:  # e.g. the wrong sensor for the options: say that first
                break
            raise ComposeError(f"{exc} (for the node of {node.name})") from None
        node_configs[node.slug] = cfg
        if not problems and node.city is not None and cfg.sensor is not None:
            problems += _city_problems(cfg, node.city, environment[SENSORS_VAR], source)
        for role, argv in (
            ("collector", ("cosmobac", "collect", CONFIG_PATH)),
            ("forwarder", ("cosmobac", "forward", "--follow", CONFIG_PATH)),
        ):
            services.append(
                NodeService(
                    name=f"{node.slug}-{role}",
                    node=node.slug,
                    city=node.city.name if node.city is not None else None,
                    role=role,
                    argv=argv,
                    environment=dict(environment),
                    volume=f"{node.slug}-data",
                    config_path=CONFIG_PATH,
                    data_dir=DATA_DIR,
                )
            )
    if node_configs:
        problems += path_problems(next(iter(node_configs.values())), source)
    if problems:
        raise ComposeError(
            f"{source} cannot make a compose fleet yet:\n" + "\n".join(f"- {p}" for p in problems)
        )

    use_env_file = env_file if own else None
    mount = config_source if config_source is not None else source
    document: dict[str, Any] = {"services": {}, "volumes": {}}
    if local_cosmos:
        document["services"][COSMOS_SERVICE] = _cosmos_service()
    for service in services:
        cfg = node_configs[service.node]
        entry: dict[str, Any] = {
            "image": image,
            "command": list(service.argv[1:]),
            "environment": dict(service.environment),
        }
        if use_env_file is not None:
            entry["env_file"] = [use_env_file]
        labels = {"io.cosmobac.node": service.node, "io.cosmobac.role": service.role}
        if service.city is not None:
            labels = {"io.cosmobac.node": service.node, "io.cosmobac.city": service.city} | labels
        entry |= {
            "working_dir": service.data_dir,
            "volumes": [
                {"type": "volume", "source": service.volume, "target": service.data_dir},
                {
                    "type": "bind",
                    "source": mount,
                    "target": service.config_path,
                    "read_only": True,
                },
            ],
            "restart": "unless-stopped",
            "stop_signal": "SIGTERM",
            "stop_grace_period": STOP_GRACE[service.role],
            "healthcheck": _healthcheck(cfg, service.role),
            "labels": labels,
        }
        if local_cosmos and service.role == "forwarder":
            entry["depends_on"] = {COSMOS_SERVICE: {"condition": "service_healthy"}}
        document["services"][service.name] = entry
        document["volumes"][service.volume] = {}
    return ComposePlan(
        document=_escape_dollars(document),
        services=tuple(services),
        cities=chosen,
        env_file=use_env_file,
        required=required,
        optional=optional,
        node_names=tuple(n.name for n in nodes if n.city is None),
    )


def to_yaml(plan: ComposePlan, *, pipeline: str = "") -> str:
    """The compose file's text: a header comment, then the document (PyYAML)."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            "cosmobac compose writes YAML with PyYAML: pip install 'cosmobac[compose]'"
        ) from None
    header = (
        f"# Generated by cosmobac compose{f' from {pipeline}' if pipeline else ''}: "
        f"{len(plan.names())} {'city ' if plan.cities else ''}nodes, a collector and a forwarder "
        "each.\n"
        "# Secrets are not in this file: the services read them from the env file.\n"
    )
    body = yaml.safe_dump(
        plan.document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
    return header + body


def write_compose(
    config: str | os.PathLike[str],
    out: str | os.PathLike[str],
    **options: Any,
) -> ComposePlan:
    """:func:`compose_plan` for ``config``, written to ``out`` (the bind mount's source is the
    pipeline file's path relative to ``out``'s folder)."""
    out_dir = Path(out).absolute().parent
    relative = os.path.relpath(Path(config).absolute(), out_dir)
    if not relative.startswith("."):
        relative = f"./{relative}"
    plan = compose_plan(config, config_source=relative.replace(os.sep, "/"), **options)
    text = to_yaml(plan, pipeline=os.fspath(config))
    from .files import write_atomic

    write_atomic(Path(out), text)
    return plan


def summary(plan: ComposePlan, out: str | os.PathLike[str]) -> list[str]:
    """What ``cosmobac compose`` prints after writing ``out``: the services and what the env
    file must hold."""
    lines = [
        f"wrote {os.fspath(out)}: {len(plan.names())} nodes "
        f"({', '.join(plan.names())}), {len(plan.services)} services"
        + (
            f" and {COSMOS_SERVICE} (a local Cosmos DB-compatible server)"
            if COSMOS_SERVICE in plan.document["services"]
            else ""
        )
    ]
    if plan.env_file is not None:
        env_path = Path(out).absolute().parent / plan.env_file
        state = "exists" if env_path.exists() else "does not exist yet: create it (chmod 600)"
        lines.append(f"the services read {plan.env_file} ({state}), beside the compose file:")
        lines += [f"  {name}=...   (required)" for name in plan.required]
        lines += [
            f"  {name}=...   (optional: the pipeline file has a default)" for name in plan.optional
        ]
    lines.append(f"start it: docker compose -f {os.fspath(out)} up -d")
    return lines
