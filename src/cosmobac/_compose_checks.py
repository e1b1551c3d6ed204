"""Checks of a pipeline file for ``cosmobac compose`` (:mod:`cosmobac.compose`): the ``${VAR}``s
it reads, literal secrets, state outside the node's volume, and what the sensor must read so that
each node differs. Every check returns messages that say exactly what to write."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from .config import CREDENTIAL_KEY

DATA_DIR: Final = "/data"
"""The node's volume in its containers (the image's working directory and ``COSMOBAC_DATA``)."""
CITY_VAR: Final = "COSMOBAC_CITY"
SENSORS_VAR: Final = "COSMOBAC_SENSORS_PER_CITY"
NODE_VAR: Final = "COSMOBAC_NODE"
DATA_VAR: Final = "COSMOBAC_DATA"

_VAR: Final = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SLUG: Final = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")


@attrs.frozen
class Ref:
    name: str
    default: str | None
    where: str


def walk_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, text) of every string in ``value``, at any depth."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from walk_strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{where}[{i}]")


def var_refs(text: str, where: str) -> list[Ref]:
    return [Ref(m.group(1), m.group(2), where) for m in _VAR.finditer(text) if m.group(0) != "$${"]


def var_names(value: Any) -> set[str]:
    return {r.name for _, text in walk_strings(value, "") for r in var_refs(text, "")}


def _place(where: str) -> str:
    """``sinks[0].key`` → ``[[sinks]] #1 key``; ``sensor.cities`` → ``[sensor] cities``."""
    match = re.match(r"^(sinks|alerts|transforms)\[(\d+)\]\.?(.*)$", where)
    if match:
        return f"[[{match.group(1)}]] #{int(match.group(2)) + 1} {match.group(3)}".rstrip()
    section, _, rest = where.partition(".")
    return f"[{section}] {rest}".rstrip()


def _secret_var(plugin: Any, key: str) -> str:
    if plugin == "cosmos" and key == "key":
        return "COSMOS_KEY"
    return re.sub(r"[^A-Z0-9]+", "_", f"{plugin or ''}_{key}".upper()).strip("_")


_SECRET_HEADER: Final = re.compile(r"auth|key|token|secret|cookie|signature", re.IGNORECASE)


def literal_secrets(data: Mapping[str, Any], source: str, env_file: str) -> list[str]:
    """A message per literal secret: a credential key (:data:`~cosmobac.config.CREDENTIAL_KEY`;
    of ``headers``, those that look like credentials; an alert's webhook URL) holding text that
    reads no ``${VAR}`` without a default, or a ``${VAR:-default}`` whose default would be one."""
    found: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for section in ("sensor", "store", "monitoring"):
        if isinstance(data.get(section), Mapping):
            tables.append((section, data[section]))
    for section in ("sinks", "transforms", "alerts"):
        items = data.get(section)
        if isinstance(items, list):
            tables += [
                (f"{section}[{i}]", t) for i, t in enumerate(items) if isinstance(t, Mapping)
            ]
    for where, table in tables:
        plugin = table.get("plugin", "webhook" if where.startswith("alerts") else None)
        for key, value in table.items():
            secret = bool(CREDENTIAL_KEY.search(str(key))) or (
                where.startswith("alerts") and key == "url"
            )
            if not secret or (key == "credential" and value == "default"):
                continue
            if key == "headers" and isinstance(value, Mapping):
                value = {h: v for h, v in value.items() if _SECRET_HEADER.search(str(h))}
            for place, text in walk_strings(value, f"{where}.{key}"):
                if not text:
                    continue
                refs = var_refs(text, place)
                defaulted = [r for r in refs if r.default]
                if defaulted or not any(r.default is None for r in refs):
                    var = refs[0].name if refs else _secret_var(plugin, str(key))
                    what = "a default value" if defaulted else "a literal value"
                    shown = place.rsplit(".", 1)[-1] if key == "headers" else key
                    found.append(
                        f"{source}: {_place(place)} holds {what}, a secret that would be copied "
                        f'wherever the file goes: write {shown} = "${{{var}}}" and put '
                        f"{var}=... in {env_file} (the compose services read it from there)"
                    )
    return found


def _under(path: str) -> str | None:
    """``path`` as the container sees it (relative: in the working directory, the volume), or
    ``None`` when it lies outside the volume."""
    full = posixpath.normpath(posixpath.join(DATA_DIR, path))
    return full if full == DATA_DIR or full.startswith(DATA_DIR + "/") else None


def path_problems(cfg: Any, source: str) -> list[str]:
    problems: list[str] = []
    store = cfg.store
    hint = f'"${{{DATA_VAR}}}/'
    if store is None or not isinstance(store.options.get("path"), str):
        problems.append(
            f"{source}: [store] needs a file store whose two processes share the node's volume: "
            f'write plugin = "sqlite" and path = {hint}edge.db"'
        )
    elif _under(store.options["path"]) is None:
        problems.append(
            f"{source}: [store] path is {store.options['path']!r} in the container, outside the "
            f"node's volume {DATA_DIR} (lost on upgrade, not shared): write path = {hint}edge.db\""
        )
    if cfg.monitoring.health_file is None:
        problems.append(
            f"{source}: [monitoring] health_file is not set: the pipeline file is mounted "
            f"read-only, so the forwarder cannot record its health beside it; write "
            f'[monitoring] health_file = {hint}health.json"'
        )
    elif _under(cfg.monitoring.health_file) is None:
        problems.append(
            f"{source}: [monitoring] health_file is {cfg.monitoring.health_file!r} in the "
            f"container, outside the node's volume {DATA_DIR}: write health_file = "
            f'{hint}health.json"'
        )
    for sink in cfg.sinks:
        path = sink.options.get("path")
        if isinstance(path, str) and _under(path) is None:
            problems.append(
                f"{sink.where} path is {path!r} in the container, outside the node's volume "
                f'{DATA_DIR}: write path = {hint}{posixpath.basename(path) or "out"}"'
            )
    return problems


def sensor_problems(data: Mapping[str, Any], source: str, *, nodes: bool) -> list[str]:
    """What ``[sensor]`` lacks for city nodes (the simulated fleet, ``nodes=False``) or for named
    nodes (any other sensor, ``nodes=True``, which must read :data:`NODE_VAR` somewhere)."""
    sensor = data.get("sensor")
    plugin = sensor.get("plugin") if isinstance(sensor, Mapping) else None
    problems: list[str] = []
    if nodes:
        if plugin == "simulated":
            problems.append(
                f"{source}: [sensor] is the simulated fleet, whose nodes are cities: give "
                "--cities N or --city NAME instead of --node"
            )
        elif not isinstance(sensor, Mapping):
            problems.append(f'{source}: needs a [sensor] table (plugin = "csv", "mqtt", ...)')
        elif NODE_VAR not in var_names(data):
            problems.append(
                f"{source}: nothing reads the node's name, so every node would collect the same: "
                f"write ${{{NODE_VAR}}} where the sensor differs between nodes, e.g. "
                f'[sensor] path = "${{{DATA_VAR}}}/in/${{{NODE_VAR}}}.csv", name = '
                f'"${{{NODE_VAR}}}" or an MQTT client_id = "${{{NODE_VAR}}}"'
            )
        return problems
    if plugin != "simulated":
        problems.append(
            f'{source}: [sensor] is not the simulated sensor (plugin = "simulated"), whose '
            "nodes are cities: for any other sensor give --node NAME (repeatable), one node each"
        )
        return problems
    assert isinstance(sensor, Mapping)
    if CITY_VAR not in var_names(sensor.get("cities")):
        problems.append(
            f"{source}: [sensor] cities does not read the node's city: write "
            f'cities = ["${{{CITY_VAR}}}"]'
        )
    if SENSORS_VAR not in var_names(sensor.get("sensors_per_city")):
        problems.append(
            f"{source}: [sensor] sensors_per_city does not read the node's sensor count: "
            f'write sensors_per_city = "${{{SENSORS_VAR}}}"'
        )
    return problems


def check_node_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` checked: each a slug (lowercase letters, digits, ``-`` and ``_``; it names the
    node's services and volume), none twice. Raises ``ValueError`` saying which and why."""
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError("a node name is empty: give --node NAME, e.g. --node plant-7")
        if not _SLUG.match(name):
            suggestion = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:63] or "node-1"
            raise ValueError(
                f"node name {name!r} cannot name a service and a volume: use lowercase letters, "
                f"digits, - and _ (starting and ending with a letter or digit, at most 63), "
                f"e.g. {suggestion!r}"
            )
        if name in seen:
            raise ValueError(f"node {name!r} is given twice: each node needs its own name")
        seen.add(name)
    return tuple(names)
