"""Notifications: ``[[alerts]]`` posts pipeline-health alerts to a webhook (Slack, Teams or JSON).

* The conditions are ``/readyz``'s, judged by the same :func:`~.health.problems`: a sink that failed
  permanently (``sink_failed``), a backlog older than ``max_backlog_age`` (``backlog_age``); and a
  burst of anomalies (``anomaly_burst``): at least ``anomaly_burst`` rows one detector flagged for
  one sink within ``anomaly_window``, counted from the :class:`~.health.HealthTracker`'s totals.
* An alert is keyed by (condition, sink[, detector]). It is sent when it starts firing, not again
  while it fires until ``resend_interval`` has passed, and once more, as resolved, when it clears
  (``send_resolved``). Each message names the node: its host name and the pipeline file.
* :class:`AlertEvaluator` judges every ``evaluate_every`` on a thread of its own per
  ``[[alerts]]`` table, so a slow or failing endpoint never holds the pipeline up. A failed send
  is tried again after :func:`~cosmobac.pacing.backoff_delay` (the project's one retry policy,
  with ``[run] backoff`` and ``max_backoff``) up to :data:`SEND_ATTEMPTS` times in all, then logged
  and left to the next evaluation. Posting is the ``webhook`` sink's
  (:class:`~cosmobac.sinks._http.JsonPoster`): one request per attempt, URL shown as scheme and
  host only.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from ..config import AlertConfig
from ..interfaces import Store, StoreStats
from ..pacing import backoff_delay
from ..sinks._http import JsonPoster
from .health import HealthTracker, problems

__all__ = [
    "SEND_ATTEMPTS",
    "Alert",
    "AlertChannel",
    "AlertEvaluator",
    "Node",
    "render",
]

log = logging.getLogger("cosmobac.monitoring.alerts")

SEND_ATTEMPTS: Final = 3
"""Attempts to send one message within one evaluation (the first and two retries)."""

ANOMALY_BURST: Final = "anomaly burst"
_CONDITION_OF: Final = {
    "sink failed permanently": "sink_failed",
    "backlog too old": "backlog_age",
}

Status = Literal["firing", "resolved"]


@attrs.frozen
class Alert:
    """One firing condition: ``condition`` (``sink_failed``, ``backlog_age`` or
    ``anomaly_burst``), the ``sink`` (consumer name), the ``reason`` as ``/readyz`` words it
    (``"sink failed permanently"``, ``"backlog too old"``, ``"anomaly burst"``), the ``detector``
    of a burst, and ``details`` (the error, the ages, the count)."""

    condition: str
    sink: str
    reason: str
    detector: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict, eq=False)

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.condition, self.sink, self.detector)

    def describe(self) -> str:
        """One line saying what is wrong."""
        d = self.details
        if self.condition == "sink_failed":
            error = d.get("error")
            return f"sink {self.sink!r} failed permanently" + (f": {error}" if error else "")
        if self.condition == "backlog_age":
            return (
                f"sink {self.sink!r}: backlog too old: the oldest pending row waited "
                f"{_human(d.get('oldest_pending_age_s'))} (limit "
                f"{_human(d.get('max_backlog_age_s'))})"
            )
        return (
            f"sink {self.sink!r}: anomaly burst: detector {self.detector!r} flagged "
            f"{d.get('flagged')} rows in the last {_human(d.get('window_s'))} "
            f"(alert at {d.get('threshold')})"
        )


@attrs.frozen
class Node:
    """Who sends: the host name and the pipeline file's name."""

    host: str
    pipeline: str

    @classmethod
    def of(cls, pipeline_file: str) -> Node:
        return cls(socket.gethostname(), Path(pipeline_file).name)


def _human(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    if seconds < 60:
        return f"{seconds:.3g} s"
    parts = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2])


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def render(
    format: str,
    status: Status,
    alert: Alert,
    node: Node,
    *,
    at: float,
    since: float,
    name: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one message. ``format``: ``"slack"`` (``text`` and ``blocks``),
    ``"teams"`` (a message with an Adaptive Card, as Teams Workflows and incoming webhooks take)
    or ``"json"`` (the fields: ``status``, ``alert``, ``sink``, ``detector``, ``reason``,
    ``details``, ``node``, ``time``, ``since``, ``name``, ``text``). ``at`` and ``since`` are
    epoch seconds."""
    label = f" {name}" if name else ""
    where = f"{node.host}, {node.pipeline}"
    if status == "firing":
        headline = f"cosmobac alert{label}: {alert.describe()}"
        line = f"[FIRING] {headline} (on {where}, since {_iso(since)})"
    else:
        headline = f"cosmobac alert{label} resolved: {alert.describe()}"
        line = f"[RESOLVED] {headline} (on {where}, fired {_iso(since)}, cleared {_iso(at)})"
    if format == "json":
        return {
            "source": "cosmobac",
            "status": status,
            "alert": alert.condition,
            "name": name,
            "sink": alert.sink,
            "detector": alert.detector,
            "reason": alert.reason,
            "details": dict(alert.details),
            "node": {"host": node.host, "pipeline": node.pipeline},
            "time": _iso(at),
            "since": _iso(since),
            "text": line,
        }
    facts = [
        ("Status", status),
        ("Sink", alert.sink),
        *([("Detector", alert.detector)] if alert.detector else []),
        ("Reason", alert.reason),
        ("Node", where),
        ("Since", _iso(since)),
        ("Time", _iso(at)),
    ]
    if format == "slack":
        mark = ":red_circle:" if status == "firing" else ":large_green_circle:"
        return {
            "text": line,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"{mark} {headline}"}},
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": " · ".join(f"*{k}*: {v}" for k, v in facts)}
                    ],
                },
            ],
        }
    return {  # teams
        "type": "message",
        "summary": line,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": headline,
                            "weight": "Bolder",
                            "wrap": True,
                            "color": "Attention" if status == "firing" else "Good",
                        },
                        {
                            "type": "FactSet",
                            "facts": [{"title": k, "value": str(v)} for k, v in facts],
                        },
                    ],
                },
            }
        ],
    }


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


@attrs.define
class _Firing:
    alert: Alert
    since: float  # wall clock, when it started firing
    sent_at: float | None = None  # monotonic clock, the last firing message delivered


class AlertChannel:
    """One ``[[alerts]]`` table: judges its conditions and sends what changed.

    ``clock`` (monotonic seconds) measures intervals and anomaly windows, ``wall`` (epoch
    seconds) dates messages; both are injectable for tests, and ``poster`` too. ``wait(seconds)``
    sleeps between attempts and returns true when the evaluator is stopping; ``stopping()`` is
    true once it stops (nothing more is sent)."""

    def __init__(
        self,
        cfg: AlertConfig,
        tracker: HealthTracker,
        *,
        node: Node,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        poster: Any = None,
        wait: Callable[[float], bool] | None = None,
        stopping: Callable[[], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.tracker = tracker
        self.node = node
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._wall = wall
        self.poster = poster or JsonPoster(
            cfg.url, connect_timeout=cfg.timeout, read_timeout=cfg.timeout
        )
        self._wait = wait or _sleep
        self._stopping = stopping or (lambda: False)
        self._rng = rng or random.Random()
        self.firing: dict[tuple[str, str, str | None], _Firing] = {}
        self.sent: list[tuple[Status, Alert]] = []  # every message delivered, in order
        self._last_failure: str | None = None
        # (clock, {(sink, detector): rows flagged in total}); the oldest at or before the window
        self._history: collections.deque[tuple[float, dict[tuple[str, str], int]]] = (
            collections.deque([(clock(), self._anomaly_totals())])
        )

    def __repr__(self) -> str:
        return f"AlertChannel({self.cfg.name or self.cfg.shown_url!r}, {self.cfg.format!r})"

    @property
    def label(self) -> str:
        return self.cfg.name or self.cfg.shown_url

    # -- judging --------------------------------------------------------------------------------
    def _anomaly_totals(self) -> dict[tuple[str, str], int]:
        return {
            (sink.consumer, detector): count
            for sink in self.tracker.snapshot().sinks
            for detector, count in sink.anomalies.items()
        }

    def _bursts(self, now: float) -> list[Alert]:
        cfg = self.cfg
        totals = self._anomaly_totals()
        history = self._history
        history.append((now, totals))
        while len(history) > 1 and history[1][0] <= now - cfg.anomaly_window:
            history.popleft()
        base = history[0][1]
        found = []
        for (sink, detector), total in sorted(totals.items()):
            flagged = total - base.get((sink, detector), 0)
            if flagged >= cfg.anomaly_burst:
                found.append(
                    Alert(
                        "anomaly_burst",
                        sink,
                        ANOMALY_BURST,
                        detector,
                        {
                            "flagged": flagged,
                            "window_s": cfg.anomaly_window,
                            "threshold": cfg.anomaly_burst,
                        },
                    )
                )
        return found

    def active(
        self, *, stats: StoreStats | None = None, consumers: Sequence[str] = ()
    ) -> list[Alert]:
        """The alerts firing now. ``stats`` (the store's, or ``None``) and ``consumers`` matter
        only to ``backlog_age``."""
        cfg = self.cfg
        found = [
            Alert(
                _CONDITION_OF[p.reason],
                p.sink,
                p.reason,
                details={k: v for k, v in p.to_json().items() if k not in ("sink", "reason")},
            )
            for p in problems(
                stopped=self.tracker.stopped() if "sink_failed" in cfg.conditions else {},
                stats=stats,
                consumers=tuple(consumers),
                max_backlog_age=cfg.max_backlog_age if "backlog_age" in cfg.conditions else None,
            )
        ]
        if "anomaly_burst" in cfg.conditions:
            found += self._bursts(self._clock())
        return found

    # -- sending --------------------------------------------------------------------------------
    def evaluate(self, *, stats: StoreStats | None = None, consumers: Sequence[str] = ()) -> None:
        """Judge the conditions and send what changed: new alerts, those due again after
        ``resend_interval``, a firing message that could not be delivered before, and resolved
        ones (with ``send_resolved``)."""
        self.update(self.active(stats=stats, consumers=consumers))

    def update(self, active: Sequence[Alert]) -> None:
        """Send what ``active`` (the alerts firing now) changes."""
        now = self._clock()
        current = {alert.key: alert for alert in active}
        for key, alert in current.items():
            firing = self.firing.get(key)
            if firing is None:
                firing = self.firing[key] = _Firing(alert, since=self._wall())
            else:
                firing.alert = alert
            due = firing.sent_at is None or now - firing.sent_at >= self.cfg.resend_interval
            if due and self._deliver("firing", firing):
                firing.sent_at = self._clock()
        for key in [k for k in self.firing if k not in current]:
            firing = self.firing[key]
            if (
                not self.cfg.send_resolved
                or firing.sent_at is None  # nobody heard it fire: nothing to resolve
                or self._deliver("resolved", firing)
            ):
                del self.firing[key]

    def _deliver(self, status: Status, firing: _Firing) -> bool:
        """Send one message, retrying a transient failure with the one backoff policy; true when
        it was delivered."""
        cfg = self.cfg
        body = render(
            cfg.format,
            status,
            firing.alert,
            self.node,
            at=self._wall(),
            since=firing.since,
            name=cfg.name,
        )
        data = json.dumps(body, allow_nan=False, default=str).encode()
        for attempt in range(SEND_ATTEMPTS):
            if self._stopping():
                return False  # the command is ending: nothing more is sent
            posted = self.poster.post(data)
            if posted.ok:
                self.sent.append((status, firing.alert))
                self._last_failure = None
                log.info("alerts %s: sent %s: %s", self.label, status, firing.alert.describe())
                return True
            if posted.outcome != "transient" or attempt == SEND_ATTEMPTS - 1:
                break
            if self._wait(backoff_delay(attempt, self.backoff, self.max_backoff, self._rng)):
                return False  # stopping
        failure = f"could not send: {posted.message}"
        log.log(
            logging.WARNING if failure != self._last_failure else logging.DEBUG,
            "alerts %s: %s alert for sink %r %s; trying again at the next evaluation",
            self.label,
            status,
            firing.alert.sink,
            failure,
        )
        self._last_failure = failure
        return False

    def close(self) -> None:
        close = getattr(self.poster, "close", None)
        if close is not None:
            close()


class AlertEvaluator:
    """Every ``[[alerts]]`` table of a running pipeline, each judged every ``evaluate_every`` on
    its own thread while :meth:`running` runs. ``store`` and ``consumers`` give the current
    store and sinks' consumer names (a following forwarder changes pipeline); the store's stats
    are read only for a table that watches ``backlog_age``."""

    def __init__(
        self,
        configs: Sequence[AlertConfig],
        tracker: HealthTracker,
        *,
        pipeline_file: str,
        store: Callable[[], Store | None] = lambda: None,
        consumers: Callable[[], Sequence[str]] = list,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._stop = threading.Event()
        self.node = Node.of(pipeline_file)
        self.store = store
        self.consumers = consumers
        self.channels = [
            AlertChannel(
                cfg,
                tracker,
                node=self.node,
                backoff=backoff,
                max_backoff=max_backoff,
                clock=clock,
                wall=wall,
                wait=self._stop.wait,
                stopping=self._stop.is_set,
            )
            for cfg in configs
        ]

    def evaluate(self, channel: AlertChannel) -> None:
        """Judge ``channel`` once (reading the store's stats if it watches the backlog)."""
        stats = None
        consumers: Sequence[str] = ()
        if "backlog_age" in channel.cfg.conditions:
            store = self.store()
            consumers = self.consumers()
            if store is not None:
                try:
                    stats = store.stats()
                except Exception as exc:  # a store busy or switching: judge again next time
                    log.debug("alerts: cannot read the store's stats: %s", exc)
        channel.evaluate(stats=stats, consumers=consumers)

    def _loop(self, channel: AlertChannel) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate(channel)
            except Exception:  # never let one evaluation end the alerts
                log.exception("alerts %s: evaluation failed", channel.label)
            if self._stop.wait(channel.cfg.evaluate_every):
                break

    @contextlib.contextmanager
    def running(self) -> Iterator[AlertEvaluator]:
        """Evaluate in background threads while the block runs; at its end, stop (in-flight
        retries are cut short, nothing more is sent) and close the connections."""
        threads = [
            threading.Thread(
                target=self._loop, args=(channel,), name=f"cosmobac-alerts-{i}", daemon=True
            )
            for i, channel in enumerate(self.channels)
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30)
            for channel in self.channels:
                channel.close()
