"""``cosmobac demo``: a small simulated fleet, end to end, with nothing to configure."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import parse_config
from .pipeline import Pipeline

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
) -> dict[str, Any]:
    """Simulate, store, forward to JSON lines and summarise; returns the summary."""
    directory = directory.resolve()  # the pipeline file it writes then works from any folder
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("edge.db", "edge.db-wal", "edge.db-shm", "documents.jsonl"):
        (directory / name).unlink(missing_ok=True)
    data = demo_config(
        directory, duration=duration, cities=cities, sensors_per_city=sensors_per_city, seed=seed
    )
    config_path = directory / "pipeline.toml"
    config_path.write_text(_toml(data), encoding="utf-8")
    with Pipeline.from_config(
        parse_config(data, source=str(config_path)), need_sensor=True, need_sinks=True
    ) as pipeline:
        collected, forwarded = pipeline.run()
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
    echo(
        f"files: store {directory / 'edge.db'}, documents {directory / 'documents.jsonl'}, "
        f"pipeline {config_path} (run it again with `cosmobac run {config_path}`)"
    )
    return {
        "rows": collected.rows_added,
        "per_city": dict(per_city),
        "anomalies": dict(per_type),
        "forward_ok": forwarded.ok,
    }
