"""cosmobac-cosmos: the Azure Cosmos DB sink for cosmobac, registered as the sink plugin ``cosmos``.

Use it from a pipeline file::

    [[sinks]]
    plugin = "cosmos"
    endpoint = "https://ACCOUNT.documents.azure.com:443/"
    database = "telemetry"
    container = "readings"
    key = "${COSMOS_KEY}"          # or: credential = "default" (Microsoft Entra ID)

or directly (``CosmosSink(endpoint=..., database=..., container=..., key=...)``). It also adds the
commands ``cosmobac cosmos check|count|query|plan|scale`` and ``cosmobac emulator start|stop|status``, and
offers ``cosmobac demo`` a local Cosmos DB-compatible server to forward to.
"""

from __future__ import annotations

from typing import Any

from cosmobac.hookspecs import Register, hookimpl

from .sink import CosmosSink

__all__ = ["CosmosSink", "register_commands", "register_demo_sinks", "register_sinks"]


@hookimpl
def register_sinks(register: Register) -> None:
    register("cosmos", CosmosSink, checkpoint_keys=("endpoint", "database", "container"))


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import cosmos, emulator

    for group in (cosmos, emulator):
        if group.name not in cli.commands:
            cli.add_command(group)


@hookimpl
def register_demo_sinks(register: Register) -> None:
    from .demo import prepare_demo_sink

    register("cosmos", prepare_demo_sink, description="a local Cosmos DB-compatible server")
