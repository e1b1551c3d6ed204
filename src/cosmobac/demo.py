"""``cosmobac demo``: a small simulated fleet, end to end, with nothing to configure.

Readings always go to JSON lines. When the cosmobac-cosmos plugin and Node.js are there, they also
go to a local Cosmos DB-compatible server: the one ``cosmobac emulator start`` runs, or else one
started for the demo and stopped after it. Without them the demo says so and keeps to JSON lines.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .config import parse_config
from .errors import PluginError
from .pipeline import Pipeline
from .plugins import get_plugins

__all__ = ["DEMO_CONTAINER", "DEMO_DATABASE", "demo_config", "run_demo"]

DEMO_DATABASE = "cosmobac-demo"
DEMO_CONTAINER = "readings"


def demo_config(
    directory: Path, *, duration: str, cities: int, sensors_per_city: int, seed: int
) -> dict[str, Any]:
    """The demo's pipeline, as the mapping a TOML file would hold."""
    return {
        "sensor": {
            "plugin": "simulated",
            "cities": cities,
            "sensors_per_city": sensors_per_city,
            "seed": seed,
            "rate_hz": 0.2,
        },
        "store": {"plugin": "sqlite", "path": str(directory / "edge.db")},
        "sinks": [{"plugin": "jsonl", "path": str(directory / "documents.jsonl")}],
        "run": {"duration": duration, "speed": "max"},
    }


def _toml(data: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return (
            json.dumps(v)
            if isinstance(v, str)
            else str(v).lower()
            if isinstance(v, bool)
            else str(v)
        )

    lines = []
    for section, body in data.items():
        tables = body if isinstance(body, list) else [body]
        for table in tables:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines.extend(f"{k} = {value(v)}" for k, v in table.items())
            lines.append("")
    return "\n".join(lines)


@attrs.frozen
class _LocalCosmos:
    """Where the demo forwards besides JSON lines: a local Cosmos DB-compatible server."""

    endpoint: str
    key: str
    stop: Callable[[], None] | None  # set when the demo started the server itself


def _local_cosmos(echo: Callable[[str], Any]) -> _LocalCosmos | None:
    """The background emulator if one runs, else a server started for the demo; ``None`` (with a
    message saying why) when there is none to be had."""
    fallback = "forwarding to JSON lines only"
    try:
        from cosmobac_cosmos import emulator
    except ImportError:
        echo(
            f"note: {fallback}; install cosmobac-cosmos (and Node.js) to also forward to a local "
            "Cosmos DB server"
        )
        return None
    try:
        get_plugins().get("sink", "cosmos")
    except PluginError:
        echo(f"note: {fallback}: the cosmos sink plugin is not loaded (see COSMOBAC_LOAD_PLUGINS)")
        return None
    running = emulator.background_status()
    if running is not None:
        try:
            emulator.drop(running.endpoint, DEMO_DATABASE)  # the demo's own data only
        except Exception as exc:
            echo(f"note: {fallback}: the emulator at {running.endpoint} failed: {exc}")
            return None
        return _LocalCosmos(running.endpoint, emulator.LOCAL_KEY, None)
    if not emulator.node_available():
        echo(
            f"note: {fallback}: Node.js ≥ 20 with npm was not found; install it to also forward "
            "to a local Cosmos DB server"
        )
        return None
    try:
        directory = emulator.ensure_installed(echo=echo)
        proc, server = emulator.start_server(directory)
    except Exception as exc:
        echo(f"note: {fallback}: the local Cosmos DB server could not start: {exc}")
        return None

    def stop() -> None:
        server.stop()
        proc.wait(timeout=30)

    return _LocalCosmos(server.endpoint, emulator.LOCAL_KEY, stop)


def _cosmos_sink(endpoint: str, key: str) -> dict[str, Any]:
    return {
        "plugin": "cosmos",
        "endpoint": endpoint,
        "database": DEMO_DATABASE,
        "container": DEMO_CONTAINER,
        "key": key,
        "create_if_missing": True,
    }


def run_demo(
    directory: Path,
    *,
    duration: str = "6h",
    cities: int = 3,
    sensors_per_city: int = 4,
    seed: int = 7,
    echo: Callable[[str], Any] = print,
    cosmos: bool = True,
) -> dict[str, Any]:
    """Simulate, store, forward to JSON lines — and to a local Cosmos DB server when Node.js and
    the cosmobac-cosmos plugin are there (``cosmos=False`` skips it) — and summarise; returns the
    summary."""
    directory = directory.resolve()  # the pipeline file it writes then works from any folder
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("edge.db", "edge.db-wal", "edge.db-shm", "documents.jsonl"):
        (directory / name).unlink(missing_ok=True)
    data = demo_config(
        directory, duration=duration, cities=cities, sensors_per_city=sensors_per_city, seed=seed
    )
    local = _local_cosmos(echo) if cosmos else None
    saved = data
    if local is not None:
        # the saved pipeline forwards to the emulator (`cosmobac emulator start`) or $COSMOS_*
        endpoint = local.endpoint if local.stop is None else "http://127.0.0.1:8081/"
        later = _cosmos_sink(f"${{COSMOS_ENDPOINT:-{endpoint}}}", f"${{COSMOS_KEY:-{local.key}}}")
        saved = {**data, "sinks": [*data["sinks"], later]}
        data = {**data, "sinks": [*data["sinks"], _cosmos_sink(local.endpoint, local.key)]}
    config_path = directory / "pipeline.toml"
    config_path.write_text(_toml(saved), encoding="utf-8")
    cosmos_summary: dict[str, Any] | None = None
    try:
        with Pipeline.from_config(
            parse_config(data, source=str(config_path)), need_sensor=True, need_sinks=True
        ) as pipeline:
            collected, forwarded = pipeline.run()
            if local is not None:
                cosmos_summary = _summarise_cosmos(pipeline, forwarded, local, config_path, saved)
    finally:
        if local is not None and local.stop is not None:
            local.stop()
    per_city: collections.Counter[str] = collections.Counter()
    per_type: collections.Counter[str] = collections.Counter()
    with open(directory / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            per_city[doc["city"]] += 1
            if doc.get("anomaly_flag"):
                per_type[doc["anomaly_type"]] += 1
    echo(
        f"simulated {duration} of {cities} cities x {sensors_per_city} sensors: "
        f"{collected.rows_added} readings stored"
    )
    echo("rows per city:")
    for city, count in sorted(per_city.items()):
        echo(f"  {city:<20} {count}")
    echo("anomalies by type:")
    for kind, count in sorted(per_type.items()):
        echo(f"  {kind:<20} {count}")
    if cosmos_summary is not None:
        _echo_cosmos(cosmos_summary, local, echo)
    echo(
        f"files: store {directory / 'edge.db'}, documents {directory / 'documents.jsonl'}, "
        f"pipeline {config_path} (run it again with `cosmobac run {config_path}`)"
    )
    return {
        "rows": collected.rows_added,
        "per_city": dict(per_city),
        "anomalies": dict(per_type),
        "forward_ok": forwarded.ok,
        "cosmos": cosmos_summary,
    }


def _summarise_cosmos(
    pipeline: Pipeline,
    forwarded: Any,
    local: _LocalCosmos,
    config_path: Path,
    saved: dict[str, Any],
) -> dict[str, Any]:
    lane = next(lane for lane in forwarded.lanes if lane.consumer == "cosmos")
    summary: dict[str, Any] = {
        "endpoint": local.endpoint,
        "acked": lane.acked,
        "request_charge": lane.stats.get("request_charge", 0.0),
        "error": lane.error,
    }
    if lane.error is not None:
        # the server is gone after the demo: forget the cosmos checkpoint, save jsonl only
        from .interfaces import ConsumerAdminStore

        if isinstance(pipeline.store, ConsumerAdminStore):
            pipeline.store.remove_consumer("cosmos")
        jsonl_only = {**saved, "sinks": [s for s in saved["sinks"] if s["plugin"] != "cosmos"]}
        config_path.write_text(_toml(jsonl_only), encoding="utf-8")
    return summary


def _echo_cosmos(
    summary: dict[str, Any], local: _LocalCosmos | None, echo: Callable[[str], Any]
) -> None:
    where = f"local Cosmos DB server at {summary['endpoint']}"
    if summary["error"] is not None:
        echo(f"Cosmos DB ({where}): forwarding failed: {summary['error']}")
        return
    echo(
        f"Cosmos DB ({where}): {summary['acked']} documents written to "
        f"{DEMO_DATABASE}/{DEMO_CONTAINER}, {summary['request_charge']:g} RU"
    )
    if local is not None and local.stop is not None:
        echo(
            "the demo's server was stopped (it keeps data in memory only); run `cosmobac emulator "
            "start` for one that stays up — the demo and its pipeline.toml use it, and `cosmobac "
            "cosmos count|query pipeline.toml` look into it"
        )
