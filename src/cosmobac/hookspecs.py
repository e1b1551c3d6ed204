"""Every hook cosmobac calls, typed and documented. Plugins implement them with
:data:`cosmobac.hookimpl`; built-in components register through the same hooks.

Registry hooks follow the register-callback style: cosmobac passes ``register(name, factory)``; a
factory takes keyword configuration (the keys beside ``plugin`` in a pipeline file) and returns one
component satisfying the matching Protocol in :mod:`cosmobac.interfaces`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import click
import pluggy

__all__ = ["DemoSink", "Register", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("cosmobac")
hookimpl = pluggy.HookimplMarker("cosmobac")


class Register(Protocol):
    """The callback registry hooks receive: ``register(name, factory, description=...,
    checkpoint_keys=...)``.

    ``checkpoint_keys`` (sinks only): the keys that say where a sink's rows go (``("path",)`` for
    a file sink). A sink without a ``name`` keeps its checkpoint under ``<plugin>-<hash of those
    keys' values>``; when not given, every key except credentials counts (see
    :func:`cosmobac.config.default_consumer`)."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        description: str | None = None,
        checkpoint_keys: Sequence[str] | None = None,
    ) -> None: ...


@hookspec
def register_sensors(register: Register) -> None:
    """Register sensor factories. A sensor has ``read(until) -> Batch``."""


@hookspec
def register_stores(register: Register) -> None:
    """Register store factories. A store is the durable outbox (``append``, ``read``, ``ack``,
    ``dead_letter``, ``stats``, ``close``)."""


@hookspec
def register_transforms(register: Register) -> None:
    """Register transform factories. A transform is a callable ``Batch -> Batch``."""


@hookspec
def register_sinks(register: Register) -> None:
    """Register sink factories. A sink has ``write(batch) -> None | WriteResult`` and ``close()``."""


@hookspec
def register_fleet_sources(register: Register) -> None:
    """Register fleet sources: a factory takes keyword options (e.g. an orchestrator's address)
    and returns a :class:`~cosmobac.interfaces.FleetSource`, whose ``poll()`` asks every node of a
    fleet for its ``cosmobac status --json`` (fleet views such as ``cosmobac dashboard --fleet``
    show what it returns)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands (or command groups) to the ``cosmobac`` command line."""


@attrs.frozen
class DemoSink:
    """A sink ``cosmobac demo`` forwards to besides JSON lines, offered by a plugin that can run one
    on this machine (e.g. cosmobac-cosmos with a local Cosmos DB-compatible server).

    * ``table``: the ``[[sinks]]`` table the demo's run uses;
    * ``saved``: the table written to the demo's ``pipeline.toml`` (it may differ, e.g. an endpoint
      written as ``${VAR:-default}`` so a later run can point elsewhere);
    * ``summary(acked, stats, error)``: the lines to print after the run, from the sink's lane
      (rows acknowledged, summed ``WriteResult.stats``, the error if the lane gave up);
    * ``stop``: called once after the run, whatever happened (e.g. to stop a server it started).

    When the lane gave up, the demo leaves the table out of the saved file and forgets the sink's
    checkpoint, so the saved pipeline runs again without it.
    """

    table: Mapping[str, Any]
    saved: Mapping[str, Any]
    summary: Callable[[int, Mapping[str, float], str | None], Sequence[str]] = attrs.field(
        repr=False
    )
    stop: Callable[[], None] | None = attrs.field(default=None, repr=False)

    @property
    def consumer(self) -> str:
        """The checkpoint name of the sink's lane: its ``name``, else the default consumer name
        of its table (:func:`cosmobac.config.default_consumer`; the demo's store is new)."""
        from .config import default_consumer
        from .plugins import get_plugins

        if self.table.get("name"):
            return str(self.table["name"])
        plugin = str(self.table["plugin"])
        options = {k: v for k, v in self.table.items() if k != "plugin"}
        return default_consumer(plugin, options, get_plugins().get("sink", plugin).checkpoint_keys)


@hookspec
def register_demo_sinks(register: Register) -> None:
    """Offer sinks for ``cosmobac demo``: ``register(name, prepare)``, where ``prepare(echo)``
    returns a :class:`DemoSink`, or ``None`` after ``echo``-ing a one-line note saying why it
    cannot run here (and what to install)."""
