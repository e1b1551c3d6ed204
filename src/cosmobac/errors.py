"""Exceptions cosmobac raises. Every message names what was wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CosmobacError",
    "PluginError",
    "SinkError",
    "StoreError",
    "StoreMissingError",
]


class CosmobacError(Exception):
    """Base class of cosmobac's own errors. ``cause`` is a short, stable word or phrase a
    subclass may set to say what kind of failure it was (the WebAssembly plugin's ``"trap"``, say);
    metrics count errors by it."""

    cause: str | None = None


class PluginError(CosmobacError):
    """A plugin could not be loaded or registered; the message names the plugin."""


class ConfigError(CosmobacError):
    """A pipeline configuration is wrong; the message names the file, key and accepted keys."""


class StoreError(CosmobacError):
    """A store cannot do what was asked (corrupt file, wrong schema, disk full)."""


class StoreMissingError(StoreError):
    """The store does not exist, and was opened without creating it (``create=False``): what
    only reads a store never makes a new, empty one. ``forward --follow`` waits for it."""


class SinkError(CosmobacError):
    """A sink failed to write. ``transient`` errors are retried with backoff; others stop the
    forwarder at once (e.g. wrong credentials) with nothing acknowledged."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient
