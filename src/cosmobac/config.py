"""Pipeline files (TOML): parsing, ``${VAR}`` expansion and validation.

Guarantees:

* ``${VAR}`` and ``${VAR:-default}`` expand in every string value (``$${`` writes a literal ``${``);
  as in the shell, the default replaces an unset or empty variable; an unset variable without a
  default is an error naming the file, the key and the variable;
* numbers, durations and booleans may be written as text (``batch_size = "${BATCH:-500}"``), since
  expansion always gives text;
* an unknown section or key, a wrong type, or an unknown plugin raises
  :class:`~cosmobac.errors.ConfigError` naming the file, the key, the plugin and the accepted keys;
* nothing is created or opened by :func:`load_config`: it only reads and checks. Components are
  made by :func:`build_components`, which reports a factory's own complaint the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import attrs

from .errors import ConfigError, PluginError
from .plugins import Kind, Plugins, get_plugins
from .values import (
    choice,
    duration,
    flag,
    fraction,
    integer,
    listen_address,
    real,
    redact_url,
    text_list,
    web_url,
)

__all__ = [
    "ALERT_CONDITIONS",
    "ALERT_FORMATS",
    "CREDENTIAL_KEY",
    "MAX_ATTEMPTS",
    "MAX_BATCH_SIZE",
    "MAX_PAUSE",
    "MAX_SPAN",
    "MAX_SPEED",
    "AlertConfig",
    "ComponentConfig",
    "MonitoringConfig",
    "PipelineConfig",
    "RunConfig",
    "check_consumers",
    "default_consumer",
    "expand_env",
    "load_config",
    "parse_config",
]

SECTIONS: Final = ("sensor", "store", "transforms", "sinks", "run", "monitoring", "alerts")
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, *, env: Mapping[str, str], where: str) -> Any:
    """``value`` with ``${VAR}``/``${VAR:-default}`` expanded in every string, recursively.

    ``where`` names the place for error messages (e.g. ``"edge.toml: [store] path"``)."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if default is not None:  # as in the shell: the default also replaces an empty value
                return env.get(name) or default
            if name in env:
                return env[name]
            raise ConfigError(
                f"{where}: environment variable {name!r} is not set; set it, or write "
                f"${{{name}:-default}} to give a default"
            )

        return _VAR.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: expand_env(v, env=env, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env=env, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


MAX_SPAN: Final = 36525 * 86400.0
"""The longest ``run.duration`` and ``run.step``: 100 years (36525d) of sensor time, so that
start + duration stays a valid time (a sensor's ``start`` is at most 9999-12-31)."""
MAX_PAUSE: Final = 7 * 86400.0
"""The longest ``run.interval``, ``run.backoff`` and ``run.max_backoff``: 7d. A longer pause is
a mistake, and one beyond ~292 years cannot even be waited for (an ``OverflowError``)."""
MAX_SPEED: Final = 1e6
"""The largest real-time factor (a million times real time; use ``"max"`` for more)."""
MAX_BATCH_SIZE: Final = 10_000_000
"""The most rows per forward batch: a batch is held in memory (and a store's limit is int64)."""
MAX_ATTEMPTS: Final = 10_000


def _speed(key: str, value: Any) -> float | None:
    """``"max"`` → None (as fast as possible); otherwise a real-time factor, > 0 and at most
    :data:`MAX_SPEED`."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "max"):
        return None
    try:
        return real(key, value, above=0, maximum=MAX_SPEED)
    except (TypeError, ValueError):
        raise ValueError(
            f"{key} must be 'max' or a finite number > 0 and ≤ {MAX_SPEED:g} (1.0 = real time), "
            f"got {value!r}"
        ) from None


def _span(key: str, value: Any) -> float | None:
    return None if value is None else duration(key, value, positive=True, maximum=MAX_SPAN)


_RUN_CONVERTERS: Final[dict[str, Any]] = {
    "duration": _span,
    "speed": _speed,
    "step": partial(duration, positive=True, minimum=0.001, maximum=MAX_SPAN),  # in whole ms
    "batch_size": partial(integer, minimum=1, maximum=MAX_BATCH_SIZE),
    "interval": partial(duration, maximum=MAX_PAUSE),
    "flush_interval": partial(duration, positive=True, minimum=0.001, maximum=MAX_PAUSE),
    "min_interval": lambda k, v: (
        None if v is None else duration(k, v, positive=True, maximum=MAX_PAUSE)
    ),
    "jitter": fraction,
    "max_attempts": partial(integer, minimum=1, maximum=MAX_ATTEMPTS),
    "backoff": partial(duration, maximum=MAX_PAUSE),
    "max_backoff": partial(duration, maximum=MAX_PAUSE),
    "on_transform_error": lambda k, v: choice(k, v, ("dead_letter", "stop")),
}


def _run_field(key: str, default: Any) -> Any:
    """A ``RunConfig`` field read by its ``[run]`` parser, so that values given in Python are
    checked as a file's are."""
    return attrs.field(default=default, converter=partial(_RUN_CONVERTERS[key], key))


@attrs.frozen(kw_only=True)
class RunConfig:
    """The ``[run]`` section: how the collect and forward loops run.

    * ``duration``: span of sensor time to collect (``"6h"``); unset means until stopped. For a
      live sensor (MQTT, Modbus, files: a :class:`~cosmobac.interfaces.LiveSensor`) it is
      wall-clock time.
    * ``speed``: ``"max"`` (simulate as fast as possible) or a real-time factor (``1.0``).
    * ``step``: sensor time collected per batch (default ``"10m"`` at full speed).
    * ``batch_size``: rows read from the store per forward batch (default 20000).
    * ``interval``: pause between rounds when following or running in real time (default ``"1s"``).
    * ``flush_interval``: a live sensor's readings are stored at least this often (default
      ``"1s"``), sooner when ``batch_size`` of them wait.
    * ``min_interval``: when set, a following forwarder adapts each sink's poll interval between
      it and ``interval`` to the backlog (see :func:`cosmobac.pacing.next_poll_interval`).
    * ``jitter``: random share of ``interval`` added or removed, 0–1 (default 0.1).
    * ``max_attempts``: failed writes in a row before a non-following forward gives up (default 8).
    * ``backoff``/``max_backoff``: first and largest retry delay, full jitter (``"0.5s"``, ``"10s"``).
    * ``on_transform_error``: ``"dead_letter"`` (default: set the batch aside, keep going) or
      ``"stop"``.

    Every value is checked when the config is made, from a file or in Python (``ValueError`` or
    ``TypeError`` naming the key): durations up to :data:`MAX_SPAN`, pauses up to
    :data:`MAX_PAUSE`, speeds up to :data:`MAX_SPEED`, ``batch_size`` up to
    :data:`MAX_BATCH_SIZE`, ``max_attempts`` up to :data:`MAX_ATTEMPTS`.
    """

    duration: float | None = _run_field("duration", None)
    speed: float | None = _run_field("speed", None)
    step: float = _run_field("step", 600.0)
    batch_size: int = _run_field("batch_size", 20000)
    interval: float = _run_field("interval", 1.0)
    flush_interval: float = _run_field("flush_interval", 1.0)
    min_interval: float | None = _run_field("min_interval", None)
    jitter: float = _run_field("jitter", 0.1)
    max_attempts: int = _run_field("max_attempts", 8)
    backoff: float = _run_field("backoff", 0.5)
    max_backoff: float = _run_field("max_backoff", 10.0)
    on_transform_error: str = _run_field("on_transform_error", "dead_letter")

    def __attrs_post_init__(self) -> None:
        if self.min_interval is not None and self.min_interval > self.interval:
            raise ValueError(
                f"min_interval ({self.min_interval:g}s) must not exceed interval "
                f"({self.interval:g}s): the poll interval adapts between the two"
            )

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> RunConfig:
        """A RunConfig from a ``[run]`` table of text durations and numbers; ``ValueError`` names
        the key that is wrong."""
        unknown = [k for k in table if k not in _RUN_CONVERTERS]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r}; accepted keys: {', '.join(_RUN_CONVERTERS)}"
            )
        return cls(**table)


def _listen(key: str, value: Any) -> tuple[str, int] | None:
    return None if value is None else listen_address(key, value)


def _max_age(key: str, value: Any) -> float | None:
    return None if value is None else duration(key, value, positive=True, maximum=MAX_SPAN)


def _listen_field(value: Any) -> tuple[str, int] | None:
    return _listen("listen", value)


def _max_age_field(value: Any) -> float | None:
    return _max_age("max_backlog_age", value)


def _health_file(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{key} must be a file path (text), got {value!r}")
    return value


def _health_file_field(value: Any) -> str | None:
    return _health_file("health_file", value)


_MONITORING_CONVERTERS: Final[dict[str, Any]] = {
    "listen": _listen,
    "max_backlog_age": _max_age,
    "health_file": _health_file,
}


@attrs.frozen(kw_only=True)
class MonitoringConfig:
    """The ``[monitoring]`` section: metrics and health for the long-running commands.

    * ``listen``: where ``/metrics``, ``/healthz`` and ``/readyz`` are served, ``"host:port"``
      (a port alone binds 127.0.0.1); unset serves nothing unless ``--metrics-port`` is given.
    * ``max_backlog_age``: ``/readyz`` answers 503 when a sink's oldest pending row has waited
      in the store longer than this (``"15m"``; counted from when it was stored, not from its
      reading's timestamp); unset, the backlog's age does not affect readiness.
    * ``health_file``: where ``run`` and ``forward`` record their health and ``cosmobac status``
      reads it; a relative path is relative to the working directory. Unset: beside the pipeline
      file (``.<name>.health.json``, see :func:`cosmobac.monitoring.health_path`).
    """

    listen: tuple[str, int] | None = attrs.field(default=None, converter=_listen_field)
    max_backlog_age: float | None = attrs.field(default=None, converter=_max_age_field)
    health_file: str | None = attrs.field(default=None, converter=_health_file_field)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> MonitoringConfig:
        """A MonitoringConfig from a ``[monitoring]`` table; ``ValueError`` names the key."""
        unknown = [k for k in table if k not in _MONITORING_CONVERTERS]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r}; accepted keys: {', '.join(_MONITORING_CONVERTERS)}"
            )
        return cls(**table)


ALERT_CONDITIONS: Final = ("sink_failed", "backlog_age", "anomaly_burst")
"""What ``[[alerts]]`` can watch: a sink that failed permanently, a backlog older than
``max_backlog_age`` (both as ``/readyz`` judges), and a burst of rows a detector flagged."""
ALERT_FORMATS: Final = ("slack", "teams", "json")


def _conditions(key: str, value: Any) -> tuple[str, ...]:
    """A list of :data:`ALERT_CONDITIONS` (or text, comma-separated, as ``${VAR}`` gives)."""
    try:
        items = text_list(key, value)
    except TypeError:
        items = ()
    if not items:
        raise TypeError(
            f"{key} must be a list of {', '.join(repr(c) for c in ALERT_CONDITIONS)}, got {value!r}"
        )
    found: list[str] = []
    for item in items:
        condition = choice(key, item, ALERT_CONDITIONS)
        if condition not in found:
            found.append(condition)
    return tuple(found)


def _label(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} must be text, got {value!r} ({type(value).__name__})")
    return value


_ALERT_CONVERTERS: Final[dict[str, Any]] = {
    "url": web_url,
    "format": lambda k, v: choice(k, v, ALERT_FORMATS),
    "name": _label,
    "conditions": _conditions,
    "max_backlog_age": _max_age,
    "anomaly_burst": partial(integer, minimum=1),
    "anomaly_window": partial(duration, positive=True, maximum=MAX_SPAN),
    "resend_interval": partial(duration, positive=True, maximum=MAX_SPAN),
    "send_resolved": flag,
    "evaluate_every": partial(duration, minimum=0.01, maximum=MAX_PAUSE),
    "timeout": partial(duration, positive=True, maximum=MAX_PAUSE),
}


def _alert_url(value: Any) -> str:
    return web_url("url", value)


def _alert_field(key: str, default: Any, **kw: Any) -> Any:
    return attrs.field(default=default, converter=partial(_ALERT_CONVERTERS[key], key), **kw)


def _optional_alert_field(key: str) -> Any:
    def convert(value: Any) -> Any:
        return None if value is None else _ALERT_CONVERTERS[key](key, value)

    return attrs.field(default=None, converter=convert)


@attrs.frozen(kw_only=True)
class AlertConfig:
    """One ``[[alerts]]`` table: where and when to send pipeline-health notifications.

    * ``url`` (required): the ``http://`` or ``https://`` webhook (a Slack or Teams incoming
      webhook, or any endpoint taking JSON). Its path often holds a token: it is shown only as
      scheme and host, in errors, logs and reprs alike.
    * ``format``: ``"slack"`` (default), ``"teams"`` or ``"json"``.
    * ``name``: a label shown in each message.
    * ``conditions``: some of :data:`ALERT_CONDITIONS`; by default ``sink_failed`` and
      ``anomaly_burst``, and ``backlog_age`` when a ``max_backlog_age`` is known.
    * ``max_backlog_age``: for ``backlog_age``; defaults to ``[monitoring] max_backlog_age``.
    * ``anomaly_burst`` (default 50) rows flagged by one detector for one sink within
      ``anomaly_window`` (default ``"5m"``) fire ``anomaly_burst``.
    * ``resend_interval`` (default ``"1h"``): an alert still firing is sent again after this.
    * ``send_resolved`` (default true): send a message when an alert clears.
    * ``evaluate_every`` (default ``"10s"``): how often the conditions are judged.
    * ``timeout`` (default ``"5s"``): to connect, and for the answer.
    """

    url: str = attrs.field(converter=_alert_url, repr=lambda url: repr(redact_url(url)))
    format: str = _alert_field("format", "slack")
    name: str | None = _alert_field("name", None)
    conditions: tuple[str, ...] = _alert_field("conditions", ALERT_CONDITIONS)
    max_backlog_age: float | None = _optional_alert_field("max_backlog_age")
    anomaly_burst: int = _alert_field("anomaly_burst", 50)
    anomaly_window: float = _alert_field("anomaly_window", 300.0)
    resend_interval: float = _alert_field("resend_interval", 3600.0)
    send_resolved: bool = _alert_field("send_resolved", True)
    evaluate_every: float = _alert_field("evaluate_every", 10.0)
    timeout: float = _alert_field("timeout", 5.0)

    def __attrs_post_init__(self) -> None:
        if "backlog_age" in self.conditions and self.max_backlog_age is None:
            raise ValueError(
                "conditions: 'backlog_age' needs a max_backlog_age: set max_backlog_age in this "
                "[[alerts]] table or in [monitoring] (e.g. \"15m\"), or leave 'backlog_age' out"
            )

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown: scheme and host."""
        return redact_url(self.url)

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], *, monitoring: MonitoringConfig | None = None
    ) -> AlertConfig:
        """An AlertConfig from an ``[[alerts]]`` table; ``ValueError`` or ``TypeError`` names the
        key. ``monitoring`` gives the default ``max_backlog_age``."""
        unknown = [k for k in table if k not in _ALERT_CONVERTERS]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r}; accepted keys: {', '.join(_ALERT_CONVERTERS)}"
            )
        if "url" not in table:
            raise ValueError("missing key 'url' (the webhook to post alerts to)")
        values = dict(table)
        if values.get("max_backlog_age") is None and monitoring is not None:
            values["max_backlog_age"] = monitoring.max_backlog_age
        if "conditions" not in values:
            max_age = values.get("max_backlog_age")
            values["conditions"] = tuple(
                c for c in ALERT_CONDITIONS if c != "backlog_age" or max_age is not None
            )
        return cls(**values)


CREDENTIAL_KEY: Final = re.compile(
    r"(^|_)(key|token|password|secret|credentials?|headers|connection_string)$"
)
"""Keys that hold credentials: never part of a default consumer name, so rotating a secret keeps
a sink's checkpoint (and nothing about a secret reaches a name)."""


def default_consumer(
    plugin: str, options: Mapping[str, Any], checkpoint_keys: Sequence[str] | None = None
) -> str:
    """The consumer name of a sink table without ``name``: ``<plugin>-<8 hex digits>``, the digits
    from a SHA-256 of the values of the keys that say where its rows go (the plugin's
    ``checkpoint_keys``; by default every key except credentials, :data:`CREDENTIAL_KEY`).

    Stable: the same settings give the same name in every process and version. Two sinks of one
    plugin writing to different places get different checkpoints, and a credential never
    reaches the name, even hashed."""
    keys = (
        [k for k in options if not CREDENTIAL_KEY.search(k)]
        if checkpoint_keys is None
        else [k for k in checkpoint_keys if k in options]
    )
    canonical = json.dumps(
        {k: options[k] for k in sorted(keys)}, sort_keys=True, default=str, ensure_ascii=False
    )
    return f"{plugin}-{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


@attrs.frozen
class ComponentConfig:
    """One ``plugin = ...`` table: which plugin, its options, and where it was written."""

    kind: Kind
    plugin: str
    options: Mapping[str, Any]
    where: str  # e.g. "edge.toml: [[sinks]] #1"
    # sinks: the consumer name checkpoints are kept under; a sensor: what its state and rejects
    # are kept under in the store (default: its plugin name)
    name: str | None = None

    @classmethod
    def from_table(
        cls,
        kind: Kind,
        table: Mapping[str, Any],
        *,
        where: str,
        plugins: Plugins | None = None,
        named: bool = False,
    ) -> ComponentConfig:
        """A checked table (``{"plugin": "jsonl", "path": "out.jsonl"}``), as a pipeline file's;
        ``named``: it may hold a ``name`` (sinks, the sensor). Values are not ``${VAR}``-expanded."""
        return _component_config(kind, table, where, plugins or get_plugins(), named=named)

    def default_consumer(self, plugins: Plugins | None = None) -> str:
        """The consumer name this sink gets without ``name``: see :func:`default_consumer`."""
        component = _component(plugins or get_plugins(), self)
        return default_consumer(self.plugin, self.options, component.checkpoint_keys)

    def consumer(self, plugins: Plugins | None = None) -> str:
        """The consumer name of this sink: its ``name``, else :meth:`default_consumer` (a store
        may still hold an older default: see :func:`cosmobac.pipeline.sink_consumers`)."""
        return self.name or self.default_consumer(plugins)

    def build(self, plugins: Plugins | None = None) -> Any:
        """A new component from this table; a factory's complaint becomes a ConfigError."""
        plugins = plugins or get_plugins()
        component = _component(plugins, self)
        try:
            return component.factory(**self.options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{self.where} (plugin {self.plugin!r}): {_message(exc)}. Accepted keys: "
                f"{_accepted(component.accepted_keys())}"
            ) from exc


def _message(exc: Exception) -> str:
    """The readable part of a factory's complaint (attrs validators put extra objects in args)."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _accepted(keys: list[str] | None) -> str:
    if keys is None:
        return "any"
    return ", ".join(["plugin", *keys]) if keys else "plugin (no options)"


def _component(plugins: Plugins, cfg: ComponentConfig) -> Any:
    try:
        return plugins.get(cfg.kind, cfg.plugin)
    except PluginError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from exc


@attrs.frozen
class PipelineConfig:
    """A whole pipeline file, checked but not yet built."""

    sensor: ComponentConfig | None
    store: ComponentConfig | None
    transforms: tuple[ComponentConfig, ...]
    sinks: tuple[ComponentConfig, ...]
    run: RunConfig
    source: str = "<config>"
    monitoring: MonitoringConfig = MonitoringConfig()
    alerts: tuple[AlertConfig, ...] = ()


def _table(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where} must be a table (e.g. [section] with plugin = "...")')
    return dict(data)


def _component_config(
    kind: Kind, data: Any, where: str, plugins: Plugins, *, named: bool = False
) -> ComponentConfig:
    table = _table(data, where)
    plugin = table.pop("plugin", None)
    if not isinstance(plugin, str) or not plugin:
        available = ", ".join(c.name for c in plugins.components(kind)) or "none installed"
        raise ConfigError(f"{where}: missing key 'plugin' (which {kind}: {available})")
    name = table.pop("name", None) if named else None
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}: 'name' must be text, got {name!r}")
    cfg = ComponentConfig(kind=kind, plugin=plugin, options=table, where=where, name=name)
    keys = _component(plugins, cfg).accepted_keys()
    if keys is not None:
        unknown = [k for k in table if k not in keys]
        if unknown:
            raise ConfigError(
                f"{where} (plugin {plugin!r}): unknown key {unknown[0]!r}; accepted keys: "
                f"{_accepted(keys)}{', name' if named else ''}"
            )
    return cfg


def _component_list(kind: Kind, section: str, data: Any, src: str, plugins: Plugins) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"{src}: [{section}] must be an array of tables: write [[{section}]]")
    return [
        _component_config(
            kind, item, f"{src}: [[{section}]] #{i + 1}", plugins, named=section == "sinks"
        )
        for i, item in enumerate(data)
    ]


def check_consumers(sinks: Sequence[ComponentConfig], plugins: Plugins | None = None) -> None:
    """Refuse two sink tables that would keep their checkpoint under one consumer name: the
    second would see the first's rows as already delivered. The error names both."""
    names: dict[str, ComponentConfig] = {}
    for cfg in sinks:
        consumer = cfg.consumer(plugins)
        if consumer in names:
            first = names[consumer]
            same = first.plugin == cfg.plugin and dict(first.options) == dict(cfg.options)
            raise ConfigError(
                f"{cfg.where} and {first.where}: both sinks would keep their checkpoint under the "
                f"consumer name {consumer!r}"
                + (" (they are the same sink twice)" if same else "")
                + '; give each a distinct name = "..."'
            )
        names[consumer] = cfg


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
) -> PipelineConfig:
    """Check a parsed pipeline mapping (as from TOML) and return it as a :class:`PipelineConfig`."""
    plugins = plugins or get_plugins()
    env = os.environ if env is None else env
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown section {unknown[0]!r}; accepted sections: {', '.join(SECTIONS)}"
        )
    expanded = {k: expand_env(v, env=env, where=f"{source}: [{k}]") for k, v in data.items()}

    sensor = expanded.get("sensor")
    store = expanded.get("store")
    sinks = _component_list("sink", "sinks", expanded.get("sinks"), source, plugins)
    check_consumers(sinks, plugins)
    run_table = _table(expanded.get("run", {}), f"{source}: [run]")
    try:
        run = RunConfig.from_table(run_table)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: [run]: {exc}") from exc
    monitoring_table = _table(expanded.get("monitoring", {}), f"{source}: [monitoring]")
    try:
        monitoring = MonitoringConfig.from_table(monitoring_table)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: [monitoring]: {exc}") from exc
    alerts = _alerts(expanded.get("alerts"), source, monitoring)
    return PipelineConfig(
        sensor=None
        if sensor is None
        else _component_config("sensor", sensor, f"{source}: [sensor]", plugins, named=True),
        store=None
        if store is None
        else _component_config("store", store, f"{source}: [store]", plugins),
        transforms=tuple(
            _component_list("transform", "transforms", expanded.get("transforms"), source, plugins)
        ),
        sinks=tuple(sinks),
        run=run,
        source=source,
        monitoring=monitoring,
        alerts=alerts,
    )


def _alerts(data: Any, source: str, monitoring: MonitoringConfig) -> tuple[AlertConfig, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"{source}: [alerts] must be an array of tables: write [[alerts]]")
    found = []
    for i, item in enumerate(data):
        where = f"{source}: [[alerts]] #{i + 1}"
        table = _table(item, where)
        try:
            found.append(AlertConfig.from_table(table, monitoring=monitoring))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return tuple(found)


def load_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
) -> PipelineConfig:
    """Read and check a TOML pipeline file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pipeline file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, source=str(path), env=env, plugins=plugins)
