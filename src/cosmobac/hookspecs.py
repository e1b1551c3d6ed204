"""Every hook cosmobac calls, typed and documented. Plugins implement them with
:data:`cosmobac.hookimpl`; built-in components register through the same hooks.

Registry hooks follow the register-callback style: cosmobac passes ``register(name, factory)``; a
factory takes keyword configuration (the keys beside ``plugin`` in a pipeline file) and returns one
component satisfying the matching Protocol in :mod:`cosmobac.interfaces`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import click
import pluggy

__all__ = ["Register", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("cosmobac")
hookimpl = pluggy.HookimplMarker("cosmobac")


class Register(Protocol):
    """The callback registry hooks receive: ``register(name, factory, description=...)``."""

    def __call__(
        self, name: str, factory: Callable[..., Any], *, description: str | None = None
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
def register_commands(cli: click.Group) -> None:
    """Add commands (or command groups) to the ``cosmobac`` command line."""
