"""Finding, loading and asking plugins for components.

Guarantees:

* importing cosmobac loads no plugin: entry points (group ``cosmobac``) load on first use;
* ``COSMOBAC_LOAD_PLUGINS`` restricts which entry-point plugins load (comma-separated names; empty
  means none); built-ins always load;
* a plugin that fails to import, fails ``check_pending()``, or registers a name already taken raises
  :class:`~cosmobac.errors.PluginError` naming the plugin (and its distribution).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from importlib import metadata
from typing import Any, Final, Literal

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError

__all__ = [
    "BUILTIN_MODULES",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "PROVIDED_BY",
    "Component",
    "Plugins",
    "get_plugins",
    "missing_provider",
]

ENTRY_POINT_GROUP: Final = "cosmobac"
ENV_LOAD_PLUGINS: Final = "COSMOBAC_LOAD_PLUGINS"

Kind = Literal["sensor", "store", "transform", "sink", "fleet"]
KINDS: Final[dict[Kind, str]] = {
    "sensor": "register_sensors",
    "store": "register_stores",
    "transform": "register_transforms",
    "sink": "register_sinks",
    "fleet": "register_fleet_sources",
}

PROVIDED_BY: Final[dict[tuple[str, str], str]] = {
    ("store", "sqlite"): "cosmobac-sqlite",
    ("sink", "cosmos"): "cosmobac-cosmos",
    ("transform", "wasm"): "cosmobac-wasm",
    ("fleet", "bacalhau"): "cosmobac-bacalhau",
    ("command", "cosmos"): "cosmobac-cosmos",
    ("command", "emulator"): "cosmobac-cosmos",
    ("command", "wasm"): "cosmobac-wasm",
    ("command", "bacalhau"): "cosmobac-bacalhau",
}
"""Components and commands of the plugin distributions that ship with cosmobac (kind, name) →
distribution: names only, so an error can say what to install; core imports none of them."""

BUILTIN_MODULES: Final = (
    "cosmobac.sensors.simulated",
    "cosmobac.sensors.csv_files",
    "cosmobac.stores.memory",
    "cosmobac.sinks.jsonl",
    "cosmobac.sinks.stdout",
    "cosmobac.sinks.parquet",
    "cosmobac.transforms.basic",
    "cosmobac.transforms.validate",
    "cosmobac.transforms.convert",
    "cosmobac.transforms.aggregate",
    "cosmobac.detectors",
    "cosmobac.sinks.webhook",
    "cosmobac.evaluation.commands",
    "cosmobac.dashboard.commands",
)


@attrs.frozen
class Component:
    """One registered component factory and where it came from."""

    name: str
    kind: Kind
    factory: Callable[..., Any] = attrs.field(repr=False)
    plugin: str
    distribution: str | None = None
    version: str | None = None
    description: str | None = None
    checkpoint_keys: tuple[str, ...] | None = None  # sinks: the keys saying where rows go

    def accepted_keys(self) -> list[str] | None:
        """Keyword names the factory accepts, or ``None`` if it takes any (``**kwargs``)."""
        try:
            signature = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return None
        keys = []
        for param in signature.parameters.values():
            if param.kind is param.VAR_KEYWORD:
                return None
            if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                keys.append(param.name)
        return keys

    def as_json(self) -> dict[str, Any]:
        """The JSON shape ``cosmobac plugins --json`` prints."""
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "description": self.description,
        }


def _describe(factory: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(factory)
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc else None


class Plugins:
    """A pluggy plugin manager with cosmobac's hooks, built-ins and (lazily) entry-point plugins.

    ``allow`` restricts which entry-point plugins load (``None``: all, or what
    ``COSMOBAC_LOAD_PLUGINS`` says); ``entry_points=False`` loads built-ins only.
    """

    def __init__(self, *, entry_points: bool = True, allow: Collection[str] | None = None) -> None:
        self._entry_points = entry_points
        self._allow = allow
        self._pm: pluggy.PluginManager | None = None
        self._origins: dict[str, tuple[str | None, str | None]] = {}
        self._registry: dict[Kind, dict[str, Component]] | None = None

    # -- loading ------------------------------------------------------------------------------
    @property
    def manager(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, loading built-ins and plugins on first access."""
        if self._pm is None:
            pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
            pm.add_hookspecs(hookspecs)
            self._pm = pm
            version = _version("cosmobac")
            for module_name in BUILTIN_MODULES:
                self._add(importlib.import_module(module_name), module_name, "cosmobac", version)
            if self._entry_points:
                self._load_entry_points()
            self._check(pm)
        return self._pm

    def _allowed(self) -> Collection[str] | None:
        if self._allow is not None:
            return self._allow
        raw = os.environ.get(ENV_LOAD_PLUGINS)
        if raw is None:
            return None
        return {name.strip() for name in raw.split(",") if name.strip()}

    def _load_entry_points(self) -> None:
        allowed = self._allowed()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist or 'unknown'}) failed to load: "
                    f"{type(exc).__name__}: {exc}. Reinstall or uninstall it, or leave it out with "
                    f"{ENV_LOAD_PLUGINS}."
                ) from exc
            self._add(plugin, ep.name, dist, version)

    def _add(self, plugin: object, name: str, dist: str | None, version: str | None) -> None:
        assert self._pm is not None
        if self._pm.has_plugin(name):
            other = self._origins.get(name, (None, None))[0]
            raise PluginError(
                f"two plugins are named {name!r} ({_origin(other)} and {_origin(dist)}); "
                "uninstall or rename one of them"
            )
        try:
            self._pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {name!r} ({_origin(dist)}) is invalid: {exc}") from exc
        self._origins[name] = (dist, version)
        self._registry = None

    def _check(self, pm: pluggy.PluginManager) -> None:
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin = pm.get_name(exc.plugin) if exc.plugin is not None else "?"
            raise PluginError(f"plugin {plugin!r} implements an unknown hook: {exc}") from exc

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin object (e.g. a module or class with hookimpls) by hand."""
        pm = self.manager
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self._add(plugin, name, None, None)
        self._check(pm)

    def unregister(self, name: str) -> None:
        """Remove a plugin registered by hand or loaded from an entry point."""
        self.manager.unregister(name=name)
        self._origins.pop(name, None)
        self._registry = None

    def plugin_names(self) -> list[str]:
        """Names of every loaded plugin, built-ins included."""
        return [name for name, _ in self.manager.list_name_plugin()]

    # -- the registry -------------------------------------------------------------------------
    def _build_registry(self) -> dict[Kind, dict[str, Component]]:
        pm = self.manager
        registry: dict[Kind, dict[str, Component]] = {kind: {} for kind in KINDS}
        for kind, hook_name in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                plugin_name = impl.plugin_name
                dist, version = self._origins.get(plugin_name, (None, None))

                def register(
                    name: str,
                    factory: Callable[..., Any],
                    *,
                    description: str | None = None,
                    checkpoint_keys: Sequence[str] | None = None,
                    _kind: Kind = kind,
                    _plugin: str = plugin_name,
                    _dist: str | None = dist,
                    _version: str | None = version,
                ) -> None:
                    taken = registry[_kind].get(name)
                    if taken is not None:
                        raise PluginError(
                            f"plugin {_plugin!r} registers {_kind} {name!r}, which plugin "
                            f"{taken.plugin!r} already registered; rename one of them"
                        )
                    if not callable(factory):
                        raise PluginError(
                            f"plugin {_plugin!r} registers {_kind} {name!r} with a factory that "
                            f"is not callable: {factory!r}"
                        )
                    registry[_kind][name] = Component(
                        name=name,
                        kind=_kind,
                        factory=factory,
                        plugin=_plugin,
                        distribution=_dist,
                        version=_version,
                        description=description or _describe(factory),
                        checkpoint_keys=None if checkpoint_keys is None else tuple(checkpoint_keys),
                    )
                    unknown = [
                        k
                        for k in checkpoint_keys or ()
                        if k not in (registry[_kind][name].accepted_keys() or [k])
                    ]
                    if unknown:
                        raise PluginError(
                            f"plugin {_plugin!r} registers {_kind} {name!r} with checkpoint key "
                            f"{unknown[0]!r}, which its factory does not take"
                        )

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(
                        f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                    ) from exc
        return registry

    def components(self, kind: Kind | None = None) -> list[Component]:
        """Registered components, of one kind or all, sorted by kind then name."""
        if self._registry is None:
            self._registry = self._build_registry()
        kinds: Iterable[Kind] = [kind] if kind else KINDS
        return [c for k in kinds for c in sorted(self._registry[k].values(), key=lambda c: c.name)]

    def get(self, kind: Kind, name: str) -> Component:
        """The component ``name`` of ``kind``; the error names the distribution to install when
        one of cosmobac's own provides it, and lists those available."""
        for component in self.components(kind):
            if component.name == name:
                return component
        available = ", ".join(c.name for c in self.components(kind)) or "none"
        hint = missing_provider(kind, name) or (
            "a plugin may provide it: install it and check `cosmobac plugins`"
        )
        raise PluginError(f"no {kind} named {name!r} ({hint}); available: {available}")

    def create(self, kind: Kind, name: str, /, **config: Any) -> Any:
        """A new component: the factory of ``name`` called with ``config`` (which may hold keys
        named ``kind`` or ``name``, such as a detector's ``name``)."""
        return self.get(kind, name).factory(**config)

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to ``cli`` (a click group)."""
        self.manager.hook.register_commands(cli=cli)

    def demo_sinks(self) -> list[tuple[str, Callable[..., Any]]]:
        """``(name, prepare)`` for every sink offered to ``cosmobac demo`` (hook
        ``register_demo_sinks``), in the order the plugins registered them."""
        offered: list[tuple[str, Callable[..., Any]]] = []

        def register(
            name: str, prepare: Callable[..., Any], *, description: str | None = None
        ) -> None:
            if not callable(prepare):
                raise PluginError(
                    f"demo sink {name!r} was registered with {prepare!r}, not a callable"
                )
            offered.append((name, prepare))

        self.manager.hook.register_demo_sinks(register=register)
        return offered


def missing_provider(kind: str, name: str) -> str | None:
    """What to do when ``name`` of ``kind`` is missing but one of cosmobac's own distributions
    provides it: install it, or (installed but left out) let it load. ``None`` otherwise."""
    dist = PROVIDED_BY.get((kind, name))
    if dist is None:
        return None
    if _version(dist) is None:
        return (
            f"it comes with {dist}, which is not installed: pip install {dist} "
            f"(from a source checkout: pip install -e plugins/{dist})"
        )
    return (
        f"it comes with {dist}, which is installed but not loaded: {ENV_LOAD_PLUGINS} leaves it out"
    )


def _origin(dist: str | None) -> str:
    return f"distribution {dist}" if dist else "registered in code"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


_default: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide :class:`Plugins` (created on first call; plugins load on first use)."""
    global _default
    if _default is None:
        _default = Plugins()
    return _default


def set_plugins(plugins: Plugins | None) -> Plugins | None:
    """Replace the process-wide :class:`Plugins` (``None`` resets it); returns the previous one."""
    global _default
    previous, _default = _default, plugins
    return previous
