"""The Cosmos DB sink ``cosmobac demo`` forwards to (hook ``register_demo_sinks``).

The demo uses the local server ``cosmobac emulator start`` runs when there is one, or else starts
one for its own run and stops it afterwards. Without Node.js it says so and offers nothing. The
saved ``pipeline.toml`` reads ``COSMOS_ENDPOINT`` and ``COSMOS_KEY``, defaulting to the emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cosmobac.hookspecs import DemoSink

from . import emulator

__all__ = ["DEMO_CONTAINER", "DEMO_DATABASE", "prepare_demo_sink"]

DEMO_DATABASE = "cosmobac-demo"
DEMO_CONTAINER = "readings"
FALLBACK = "note: forwarding to JSON lines only"


def prepare_demo_sink(echo: Callable[[str], Any]) -> DemoSink | None:
    """A sink on the background emulator if one runs, else on a server started for the demo;
    ``None`` (after a note saying why) when there is none to be had."""
    running = emulator.background_status()
    if running is not None:
        try:
            emulator.drop(running.endpoint, DEMO_DATABASE)  # the demo's own data only
        except Exception as exc:
            echo(f"{FALLBACK}: the emulator at {running.endpoint} failed: {exc}")
            return None
        return _demo_sink(running.endpoint, saved_endpoint=running.endpoint, stop=None)
    if not emulator.node_available():
        echo(
            f"{FALLBACK}: Node.js ≥ 20 with npm was not found; install it to also forward to a "
            "local Cosmos DB server"
        )
        return None
    try:
        directory = emulator.ensure_installed(echo=echo)
        proc, server = emulator.start_server(directory)
    except Exception as exc:
        echo(f"{FALLBACK}: the local Cosmos DB server could not start: {exc}")
        return None

    def stop() -> None:
        server.stop()
        proc.wait(timeout=30)

    # the demo's own server is gone afterwards: the saved pipeline points at the emulator's port
    return _demo_sink(server.endpoint, saved_endpoint="http://127.0.0.1:8081/", stop=stop)


def _demo_sink(endpoint: str, *, saved_endpoint: str, stop: Callable[[], None] | None) -> DemoSink:
    key = emulator.LOCAL_KEY

    def summary(acked: int, stats: Mapping[str, float], error: str | None) -> list[str]:
        where = f"local Cosmos DB server at {endpoint}"
        if error is not None:
            return [f"Cosmos DB ({where}): forwarding failed: {error}"]
        lines = [
            f"Cosmos DB ({where}): {acked} documents written to "
            f"{DEMO_DATABASE}/{DEMO_CONTAINER}, {stats.get('request_charge', 0.0):g} RU"
        ]
        if stop is not None:
            lines.append(
                "the demo's server was stopped (it keeps data in memory only); run `cosmobac "
                "emulator start` for one that stays up — the demo and its pipeline.toml use it, "
                "and `cosmobac cosmos count|query pipeline.toml` look into it"
            )
        return lines

    return DemoSink(
        table=_table(endpoint, key),
        saved=_table(f"${{COSMOS_ENDPOINT:-{saved_endpoint}}}", f"${{COSMOS_KEY:-{key}}}"),
        summary=summary,
        stop=stop,
    )


def _table(endpoint: str, key: str) -> dict[str, Any]:
    return {
        "plugin": "cosmos",
        "endpoint": endpoint,
        "database": DEMO_DATABASE,
        "container": DEMO_CONTAINER,
        "key": key,
        "create_if_missing": True,
    }
