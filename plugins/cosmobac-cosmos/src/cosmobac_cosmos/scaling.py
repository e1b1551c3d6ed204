"""``cosmobac cosmos scale``: the scaler's loop beside a forwarder.

Each tick it reads

* the sink's backlog from the node's store (:meth:`~cosmobac.interfaces.StoreStats.backlog_of`:
  the age of the oldest row the sink has not acknowledged);
* the 429s the forwarder saw, from the health file the forwarder rewrites every two seconds beside
  the pipeline file (``.<file>.health.json``, or its ``[monitoring] health_file``; documented in
  docs/reference/cli.md): the rise of the
  sink's ``throttled`` total between two ticks, per second of the file's own ``time``; and whether
  the sink is delivering at all (its ``last_write_at``): an old backlog behind a stopped forwarder
  or a network outage is no reason to raise the throughput;
* the container's throughput, through the SDK's offer calls (:mod:`.offers`);

then decides (:class:`~.scaler.Scaler`), applies a change through the SDK, logs one line per
decision and counts it in Prometheus metrics when asked.

The health file is read as the documented JSON it is, not through ``cosmobac.monitoring``: the
plugin uses cosmobac's kernel only (the import contract in pyproject.toml).

The scaler's counts, its last change and its last look at the health file are kept in
``.<file>.scaler.json`` beside the pipeline file, so a restarted scaler keeps its cooldown and
``--once`` (from cron or a systemd timer) decides as a running one would.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs

from cosmobac.config import health_path
from cosmobac.files import write_atomic

from .offers import Throughput, read_throughput, replace_throughput
from .scaler import Decision, Scaler, ScalerSettings, Tick

__all__ = [
    "HEALTH_STALE_S",
    "ScalerMetrics",
    "ThrottleMeter",
    "health_file",
    "run",
    "state_file",
]

log = logging.getLogger("cosmobac.cosmos.scaler")

HEALTH_STALE_S: Final = 30.0
"""A health file older than this (the forwarder rewrites it every 2 s) tells no 429 rate."""


def health_file(
    config: str | os.PathLike[str], health_file: str | os.PathLike[str] | None = None
) -> Path:
    """Where a forwarder of ``config`` records its health: its ``[monitoring] health_file`` when
    given, else ``.<name>.health.json`` beside it (:func:`cosmobac.config.health_path`)."""
    return health_path(config, health_file)


def state_file(config: str | os.PathLike[str]) -> Path:
    """Where the scaler of ``config`` keeps its state (``.<name>.scaler.json`` beside it)."""
    path = Path(config)
    return path.with_name(f".{path.name}.scaler.json")


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


@attrs.define
class ThrottleMeter:
    """What the forwarder's health snapshots say about one sink.

    :meth:`observe` gives 429s per second from successive snapshots (their ``time``, ``pid`` and
    the sink's ``throttled`` total), ``None`` when it cannot tell (no file, a stale or stopped
    forwarder, a first look, the same snapshot again, or a new forwarder process, whose total
    starts again); and whether the sink is delivering: a fresh snapshot of a running forwarder
    whose sink acknowledged rows within :data:`HEALTH_STALE_S` of it."""

    consumer: str
    last: tuple[int, float, int] | None = None  # (pid, time, throttled)

    def observe(self, health: Mapping[str, Any] | None, now: float) -> tuple[float | None, bool]:
        if not health:
            self.last = None
            return None, False
        at = _epoch(health.get("time"))
        sink: Mapping[str, Any] = next(
            (s for s in health.get("sinks") or () if s.get("consumer") == self.consumer), {}
        )
        if at is None or not health.get("running") or now - at > HEALTH_STALE_S:
            self.last = None
            return None, False
        wrote = _epoch(sink.get("last_write_at"))
        delivering = wrote is not None and at - wrote <= HEALTH_STALE_S
        sample = (int(health.get("pid") or 0), at, int(sink.get("throttled") or 0))
        last, self.last = self.last, sample
        if last is None or last[0] != sample[0] or sample[2] < last[2] or sample[1] <= last[1]:
            return None, delivering
        return (sample[2] - last[2]) / (sample[1] - last[1]), delivering


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


class ScalerMetrics:
    """``cosmobac_scaler_throughput_ru`` (gauge) and ``cosmobac_scaler_decisions_total``
    (counter by ``direction`` and ``reason``), served on ``127.0.0.1:port``."""

    def __init__(self, port: int, sink: str, *, host: str = "127.0.0.1") -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
        except ImportError:
            from cosmobac.errors import ConfigError

            raise ConfigError(
                "--metrics-port needs prometheus-client: pip install 'cosmobac[monitoring]'"
            ) from None
        self.registry = CollectorRegistry()
        self.throughput = Gauge(
            "cosmobac_scaler_throughput_ru",
            "The container's throughput as the scaler last saw or set it (RU/s, or the "
            "autoscale maximum).",
            ["sink", "mode"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "cosmobac_scaler_decisions_total",
            "The scaler's decisions, by direction (keep, raise, lower) and reason.",
            ["sink", "direction", "reason"],
            registry=self.registry,
        )
        self.sink = sink
        for direction, reason in (("keep", "steady"), ("raise", "backlog_age")):
            self.decisions.labels(sink, direction, reason)  # present from the start
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)

    def record(self, decision: Decision, applied: bool) -> None:
        mode = "autoscale" if decision.autoscale else "manual"
        self.throughput.labels(self.sink, mode).set(
            decision.target if applied else decision.current
        )
        self.decisions.labels(self.sink, decision.action, decision.reason).inc()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _restore(scaler: Scaler, meter: ThrottleMeter, saved: Mapping[str, Any] | None) -> None:
    if not saved:
        return
    scaler.hot = int(saved.get("hot", 0))
    scaler.cold = int(saved.get("cold", 0))
    last = saved.get("last_change")
    scaler.last_change = None if last is None else float(last)
    seen = saved.get("health")
    if isinstance(seen, list) and len(seen) == 3:
        meter.last = (int(seen[0]), float(seen[1]), int(seen[2]))


def _save(path: Path, scaler: Scaler, meter: ThrottleMeter) -> None:
    data = {
        "hot": scaler.hot,
        "cold": scaler.cold,
        "last_change": scaler.last_change,
        "health": None if meter.last is None else list(meter.last),
    }
    try:
        write_atomic(path, json.dumps(data) + "\n", durable=False)
    except OSError as exc:
        log.warning("cannot keep the scaler's state in %s: %s", path, exc)


def run(
    *,
    config: str,
    container: Any,
    consumer: str,
    backlog_age: Callable[[], float | None],
    settings: ScalerSettings,
    every: float,
    once: bool,
    dry_run: bool,
    timeout: float,
    echo: Callable[[str], None],
    metrics: ScalerMetrics | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    health: str | None = None,
) -> list[Decision]:
    """Tick every ``every`` seconds until ``stop`` is set (or once); returns the decisions.
    ``health`` is the pipeline's ``[monitoring] health_file`` (None: beside ``config``)."""
    stop = stop or threading.Event()
    meter = ThrottleMeter(consumer)
    scaler: Scaler | None = None
    decisions: list[Decision] = []
    saved_at = state_file(config)
    while True:
        current = read_throughput(container, timeout)
        if scaler is None:
            scaler = Scaler(settings, autoscale=current.autoscale)
            _restore(scaler, meter, read_json(saved_at))
        scaler.autoscale = current.autoscale
        now = clock()
        rate, delivering = meter.observe(read_json(health_file(config, health)), now)
        age = backlog_age()
        decision = scaler.decide(Tick(now, age, rate, current.ru, delivering))
        applied = False
        facts = (
            f"backlog {'none' if age is None else f'{age:.0f}s old'}, "
            f"429s {'unknown' if rate is None else f'{rate:.2f}/s'}"
            + ("" if delivering else ", the sink is not delivering")
        )
        if decision.changes and not dry_run:
            try:
                answer = replace_throughput(
                    container, Throughput(decision.target, current.autoscale), timeout
                )
            except Exception as exc:
                echo(f"{consumer}: {decision.line()} FAILED: {type(exc).__name__}: {exc}")
                log.debug("replacing the throughput failed", exc_info=True)
            else:
                applied = True
                scaler.applied(decision)
                pending = " (the service is still applying it)" if answer.pending else ""
                echo(f"{consumer}: {decision.line()}; {facts}{pending}")
        else:
            dry = " (dry run: not applied)" if decision.changes else ""
            echo(f"{consumer}: {decision.line()}; {facts}{dry}")
        decisions.append(decision)
        if metrics is not None:
            metrics.record(decision, applied)
        _save(saved_at, scaler, meter)
        if once or stop.wait(every):
            return decisions
