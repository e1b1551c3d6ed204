"""``cosmobac demo``: a small simulated fleet, end to end, with nothing to configure.

Readings are stored in the ``sqlite`` store (cosmobac-sqlite) and always go to JSON lines. Plugins
can offer more sinks through the ``register_demo_sinks`` hook: cosmobac-cosmos offers a local
Cosmos DB-compatible server when Node.js is there. A sink that cannot run here says why in a note,
and the demo keeps to the others.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .config import parse_config
from .hookspecs import DemoSink
from .interfaces import ConsumerAdminStore
from .pipeline import ForwardReport, Pipeline
from .plugins import get_plugins, missing_provider

__all__ = ["demo_config", "run_demo"]


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


def run_demo(
    directory: Path,
    *,
    duration: str = "6h",
    cities: int = 3,
    sensors_per_city: int = 4,
    seed: int = 7,
    echo: Callable[[str], Any] = print,
    extra_sinks: bool = True,
) -> dict[str, Any]:
    """Simulate, store, forward to JSON lines and to the sinks plugins offer (``extra_sinks=False``
    skips those), and summarise; returns the summary."""
    directory = directory.resolve()  # the pipeline file it writes then works from any folder
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("edge.db", "edge.db-wal", "edge.db-shm", "documents.jsonl"):
        (directory / name).unlink(missing_ok=True)
    data = demo_config(
        directory, duration=duration, cities=cities, sensors_per_city=sensors_per_city, seed=seed
    )
    get_plugins().get("store", data["store"]["plugin"])  # missing: say what to install, first
    offered = _offered_sinks(echo) if extra_sinks else []
    own_sinks = list(data["sinks"])
    saved = {**data, "sinks": [*own_sinks, *(dict(s.saved) for s in offered)]}
    data = {**data, "sinks": [*data["sinks"], *(dict(s.table) for s in offered)]}
    config_path = directory / "pipeline.toml"
    config_path.write_text(_toml(saved), encoding="utf-8")
    summaries: list[str] = []
    try:
        with Pipeline.from_config(
            parse_config(data, source=str(config_path)), need_sensor=True, need_sinks=True
        ) as pipeline:
            collected, forwarded = pipeline.run()
            failed = _failed_lanes(offered, forwarded)
            if isinstance(pipeline.store, ConsumerAdminStore):
                for consumer in failed:  # e.g. a server gone after the demo: forget its checkpoint
                    pipeline.store.remove_consumer(consumer)
            for sink in offered:
                lane = _lane(forwarded, sink.consumer)
                summaries.extend(sink.summary(lane.acked, dict(lane.stats), lane.error))
    finally:
        for sink in offered:
            if sink.stop is not None:
                sink.stop()
    if failed:
        kept = [dict(s.saved) for s in offered if s.consumer not in failed]
        saved = {**saved, "sinks": [*own_sinks, *kept]}
        config_path.write_text(_toml(saved), encoding="utf-8")
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
    for line in summaries:
        echo(line)
    echo(
        f"files: store {directory / 'edge.db'}, documents {directory / 'documents.jsonl'}, "
        f"pipeline {config_path} (run it again with `cosmobac run {config_path}`)"
    )
    return {
        "rows": collected.rows_added,
        "per_city": dict(per_city),
        "anomalies": dict(per_type),
        "forward_ok": forwarded.ok,
        "sinks": {
            sink.consumer: {
                "acked": _lane(forwarded, sink.consumer).acked,
                "error": _lane(forwarded, sink.consumer).error,
            }
            for sink in offered
        },
    }


def _offered_sinks(echo: Callable[[str], Any]) -> list[DemoSink]:
    """The sinks plugins offer and can run here (each that cannot has echoed why)."""
    registered = get_plugins().demo_sinks()
    if not registered:
        why = missing_provider("sink", "cosmos") or "it comes with cosmobac-cosmos"
        echo(
            "note: forwarding to JSON lines only, no plugin offers the demo another sink "
            f"(a local Cosmos DB server: {why})"
        )
    offered = []
    for name, prepare in registered:
        sink = prepare(echo)
        if sink is None:
            continue
        if not isinstance(sink, DemoSink):
            raise TypeError(f"demo sink {name!r} returned {sink!r}, not a DemoSink or None")
        if not sink.table.get("name"):
            # The saved table may point elsewhere (an endpoint read from ${VAR:-...}): a fixed
            # name keeps the checkpoint of what the demo sent when the saved pipeline runs again.
            plugin = str(sink.table["plugin"])
            sink = attrs.evolve(
                sink, table={**sink.table, "name": plugin}, saved={**sink.saved, "name": plugin}
            )
        offered.append(sink)
    return offered


def _lane(forwarded: ForwardReport, consumer: str) -> Any:
    return next(lane for lane in forwarded.lanes if lane.consumer == consumer)


def _failed_lanes(offered: list[DemoSink], forwarded: ForwardReport) -> set[str]:
    return {s.consumer for s in offered if _lane(forwarded, s.consumer).error is not None}
