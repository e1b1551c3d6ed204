"""What a pipeline is made of, and how it is assembled: lanes, components made from plugin names
or tables, the consumer names sinks keep their checkpoints under, where each stands in a store,
and the store of a pipeline file (created, or required to exist).

:mod:`cosmobac.pipeline` runs the loops over these parts and re-exports the public names.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .config import ComponentConfig, PipelineConfig, check_consumers, load_config
from .errors import ConfigError, PluginError, StoreMissingError
from .interfaces import (
    Closeable,
    FusableTransform,
    Sink,
    StatefulTransform,
    Store,
    StoreStats,
    Transform,
    missing_members,
)
from .plugins import Kind, Plugins, get_plugins

__all__ = [
    "Checkpoint",
    "Lane",
    "Spec",
    "build_store",
    "checkpoints",
    "fuse_transforms",
    "lanes_from",
    "sink_consumers",
    "wait_for_store",
]

log = logging.getLogger("cosmobac.pipeline")


@attrs.define(eq=False)
class Lane:
    """One sink with its consumer name and the transforms applied before it."""

    consumer: str
    sink: Sink
    transforms: Sequence[Transform] = ()


Spec = str | Mapping[str, Any]
"""A component named by plugin: ``"memory"``, or a table as in a pipeline file,
``{"plugin": "sqlite", "path": "edge.db"}`` (a sink's may hold ``name``)."""


@attrs.frozen
class Checkpoint:
    """Where a sink's consumer stands in a store, before forwarding."""

    consumer: str
    resumed: bool  # the store already holds this consumer's checkpoint
    settled: int  # stored rows it acknowledged or dead-lettered: it resumes after them
    pending: int  # stored rows it has still to send

    def describe(self) -> str:
        """One line for people: ``"jsonl-1a2b3c4d: resuming after row 500 (20 pending)"``."""
        if not self.resumed:
            return (
                f"{self.consumer}: new checkpoint, starting from the first stored row "
                f"({self.pending} pending)"
            )
        return f"{self.consumer}: resuming after row {self.settled} ({self.pending} pending)"


def checkpoints(
    store: Store, consumers: Sequence[str], *, stats: StoreStats | None = None
) -> list[Checkpoint]:
    """Where each of ``consumers`` stands in ``store``, from one ``stats()`` (or the ``stats`` the
    caller already took); registers nothing."""
    stats = stats if stats is not None else store.stats()
    out = []
    for consumer in consumers:
        known = consumer in stats.pending
        pending = int(stats.backlog_of(consumer)[0])  # unknown: every stored row
        out.append(Checkpoint(consumer, known, max(0, int(stats.rows) - pending), pending))
    return out


def sink_consumers(
    sinks: Sequence[ComponentConfig],
    store: Store,
    plugins: Plugins | None = None,
    *,
    stats: StoreStats | None = None,
) -> list[str]:
    """The consumer name of each sink table, for this store.

    A sink's ``name`` if it has one. Otherwise its default, ``<plugin>-<hash>``
    (:func:`cosmobac.config.default_consumer`), except in a store written by an earlier cosmobac,
    which kept such a sink's checkpoint under the bare plugin name: when the store holds a
    consumer named after the plugin and none under the new default, that checkpoint is kept (so
    the sink does not send everything again), with a warning, if the pipeline has one unnamed sink
    of that plugin. With several it is an error naming them: which one owns that checkpoint is for
    the user to say, with ``name``. Names that end up shared are an error naming both sinks.
    ``stats``: the store's stats the caller already took (else they are read here)."""
    check_consumers(sinks, plugins)
    if not sinks:
        return []  # nothing to name: the store's stats are not read
    known = set((stats if stats is not None else store.stats()).pending)
    names: list[str] = []
    for cfg in sinks:
        if cfg.name:
            names.append(cfg.name)
            continue
        default = cfg.default_consumer(plugins)
        if cfg.plugin in known and default not in known:
            alike = [c.where for c in sinks if not c.name and c.plugin == cfg.plugin]
            if len(alike) > 1:
                raise ConfigError(
                    f"{' and '.join(alike)}: the store holds the checkpoint {cfg.plugin!r} "
                    f"(the name an earlier cosmobac gave a {cfg.plugin} sink without a name), "
                    f'and it cannot tell which of these sinks it belongs to; give each a name = "..." '
                    f'(name = "{cfg.plugin}" keeps that checkpoint)'
                )
            log.warning(
                "%s: keeping the checkpoint %r an earlier cosmobac made for this %s sink; if this "
                "sink now writes somewhere else, give it a name to start a new checkpoint",
                cfg.where,
                cfg.plugin,
                cfg.plugin,
            )
            names.append(cfg.plugin)
        else:
            names.append(default)
    seen: dict[str, str] = {}
    for cfg, name in zip(sinks, names, strict=True):
        if name in seen:
            raise ConfigError(
                f"{cfg.where} and {seen[name]}: both sinks would keep their checkpoint under the "
                f'consumer name {name!r}; give each a distinct name = "..."'
            )
        seen[name] = cfg.where
    return names


def store_config(config: PipelineConfig) -> ComponentConfig:
    if config.store is None:
        raise ConfigError(f'{config.source}: missing [store] section (e.g. plugin = "sqlite")')
    return config.store


def build_store(
    config: PipelineConfig, *, plugins: Plugins | None = None, create: bool = True
) -> Store:
    """The store of a pipeline file, made by its factory.

    With ``create=False``, a store whose factory takes a ``create`` keyword (the SQLite store's
    does) gets ``create=False``, whatever the file says: a store that does not exist is then an
    error (a :class:`~cosmobac.errors.StoreError`) instead of a new, empty one. With ``create=True``
    the file's own ``create`` key, if any, stands. A factory without that keyword makes nothing
    that outlives the process (e.g. ``MemoryStore``) or decides for itself."""
    plugins = plugins or get_plugins()
    cfg = store_config(config)
    if not create:
        try:
            keys = plugins.get("store", cfg.plugin).accepted_keys()
        except PluginError:
            keys = None  # build() reports it, naming the file
        if keys is not None and "create" in keys:
            cfg = attrs.evolve(cfg, options={**cfg.options, "create": False})
    store: Store = cfg.build(plugins)
    return store


def wait_for_store(
    config: PipelineConfig | str | os.PathLike[str],
    *,
    stop: threading.Event,
    plugins: Plugins | None = None,
) -> bool:
    """Wait until the pipeline's store exists, checking every ``run.interval`` without creating
    it (``forward --follow`` started before the collector made the store). True once it exists;
    False when ``stop`` was set first. Any other store error is raised."""
    announced = False
    while True:
        cfg = config if isinstance(config, PipelineConfig) else load_config(config, plugins=plugins)
        try:
            build_store(cfg, plugins=plugins, create=False).close()
            return True
        except StoreMissingError as exc:
            if not announced:
                log.warning("%s; waiting for it to be created", exc)
                announced = True
        if stop.wait(cfg.run.interval):
            return False


def require_protocol(component: object, protocol: type, role: str) -> None:
    """Fail at once, saying what is missing, when ``component`` does not satisfy ``protocol``."""
    if not isinstance(component, protocol):
        missing = ", ".join(missing_members(component, protocol)) or "?"
        raise TypeError(
            f"the {role} ({type(component).__name__}) is not a {protocol.__name__}: it lacks "
            f"{missing} (see cosmobac.interfaces)"
        )


def describe_component(component: object) -> str:
    return f"a {type(component).__name__}"


def make_component(kind: Kind, value: Any, owned: list[Closeable], plugins: Plugins | None) -> Any:
    """``value`` itself, or the component its plugin name or table makes (then owned)."""
    if isinstance(value, str):
        value = {"plugin": value}
    elif not isinstance(value, Mapping):
        if isinstance(value, tuple):
            raise TypeError(
                f"{kind}: give a plugin name ({value[0]!r}) or a table "
                f'{{"plugin": {value[0]!r}, ...keys}}, not a tuple'
                if value and isinstance(value[0], str)
                else f"{kind}: a tuple is not a {kind}"
            )
        return value
    cfg = ComponentConfig.from_table(  # no values in messages: secrets
        kind, value, where=kind, plugins=plugins, named=kind == "sensor"
    )
    made = cfg.build(plugins)
    if isinstance(made, Closeable):
        owned.append(made)
    return made


def sink_lanes(
    sinks: Sequence[Any],
    transforms: Sequence[Any],
    store: Store,
    owned: list[Closeable],
    plugins: Plugins | None,
) -> list[Lane]:
    """A lane per item of ``sinks=``, each with ``transforms=`` (tables built once per lane)."""
    if isinstance(sinks, str | Mapping) or isinstance(transforms, str | Mapping):
        raise TypeError("sinks= and transforms= take lists: sinks=['stdout']")
    shared = [t for t in transforms if isinstance(t, StatefulTransform)]
    if shared and len(sinks) > 1:
        raise ValueError(
            f"the stateful transform {describe_component(shared[0])} would be shared by {len(sinks)} sinks "
            "and mix their rows; give it as a plugin name or table (one is made per sink), or "
            "use lanes="
        )
    tables: dict[int, ComponentConfig] = {}  # where values could be secrets: never in messages
    for i, item in enumerate(sinks):
        if isinstance(item, str | Mapping):
            table = {"plugin": item} if isinstance(item, str) else item
            tables[i] = ComponentConfig.from_table(
                "sink", table, where=f"sinks[{i}]", named=True, plugins=plugins
            )
        else:
            require_protocol(item, Sink, f"sink sinks[{i}]")
    names = dict(zip(tables, sink_consumers(list(tables.values()), store, plugins), strict=True))
    lanes = []
    for i, item in enumerate(sinks):
        cfg = tables.get(i)
        if cfg is None:
            sink, consumer = item, type(item).__name__.lower()
        else:
            sink, consumer = cfg.build(plugins), names[i]
            owned.append(sink)
        chain = [make_component("transform", t, owned, plugins) for t in transforms]
        lanes.append(Lane(consumer, sink, chain))
    return lanes


def fuse_transforms(transforms: Sequence[Transform]) -> list[Transform]:
    """``transforms`` with each :class:`~cosmobac.interfaces.FusableTransform` merged with the
    ones after it for as long as it accepts them (``fuse_with`` returns the merged transform),
    in order; the same results as running them one by one."""
    out: list[Transform] = []
    for transform in transforms:
        last = out[-1] if out else None
        if isinstance(last, FusableTransform):
            merged = last.fuse_with(transform)
            if merged is not None:
                out[-1] = merged
                continue
        out.append(transform)
    return out


def close_quietly(component: Closeable) -> None:
    try:
        component.close()
    except Exception:  # closing must not hide the error that got us here
        log.exception("closing %r failed", component)


def lanes_from(sinks: Mapping[str, Sink], transforms: Sequence[Transform] = ()) -> list[Lane]:
    """Lanes for a mapping of consumer name → sink, all with the same transforms."""
    return [Lane(name, sink, list(transforms)) for name, sink in sinks.items()]
