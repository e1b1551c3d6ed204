"""A fleet known through a fleet source (``cosmobac dashboard --fleet bacalhau``), not its stores.

:class:`RemoteFleet` polls a :class:`~cosmobac.interfaces.FleetSource` on a background thread
every ``every`` seconds (a poll runs ``cosmobac status --json`` on every node, which takes
seconds) and answers the page from the last poll: one health row per node, and a node's own
status document when it is opened. The nodes' stores are on the nodes, so a remote node's page
shows its health, not its series.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..interfaces import FleetNode, FleetSource

__all__ = ["RemoteFleet"]

log = logging.getLogger("cosmobac.dashboard")

NOT_RUNNING: dict[str, Any] = {"running": False, "pid": None, "started": None, "last_seen": None}


def _iso(epoch: float | None) -> str | None:
    return (
        None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    )


def _sinks(status: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    sinks = (status or {}).get("sinks")
    return [s for s in sinks if isinstance(s, Mapping)] if isinstance(sinks, list) else []


class RemoteFleet:
    """The nodes a fleet source reports, refreshed every ``every`` seconds from a thread."""

    def __init__(self, source: FleetSource, *, name: str, every: float = 30.0) -> None:
        self.source = source
        self.name = name
        self.every = every
        self._nodes: tuple[FleetNode, ...] = ()
        self._polled_at: float | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- polling ------------------------------------------------------------------------------
    def poll(self) -> None:
        """Ask every node once; a failed poll keeps the last answers and records the error."""
        try:
            nodes = tuple(sorted(self.source.poll(), key=lambda n: n.node_id))
        except Exception as exc:  # an unreachable orchestrator: show it, keep polling
            log.warning("fleet %s: poll failed: %s: %s", self.name, type(exc).__name__, exc)
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self._nodes, self._polled_at, self._error = nodes, time.time(), None

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.poll()
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=loop, name="cosmobac-fleet", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    @property
    def nodes(self) -> tuple[FleetNode, ...]:
        with self._lock:
            return self._nodes

    # -- the page's answers -------------------------------------------------------------------
    def nodes_json(self) -> dict[str, Any]:
        with self._lock:
            nodes, polled, error = self._nodes, self._polled_at, self._error
        return {
            "mode": "fleet",
            "source": self.name,
            "polled_at": _iso(polled),
            "error": error,
            "nodes": [self._summary(i, node) for i, node in enumerate(nodes)],
        }

    def health_json(self, index: int) -> dict[str, Any]:
        """The node's own status document (as ``cosmobac status --json`` printed it on the
        node), with its fleet verdict; a node that gave none has only the verdict."""
        nodes = self.nodes
        if not 0 <= index < len(nodes):
            raise IndexError(index)
        node = nodes[index]
        data: dict[str, Any] = dict(node.status or {})
        data.setdefault("rows", None)
        data.setdefault("sinks", [])
        data["forwarder"] = data.get("forwarder") or dict(NOT_RUNNING)
        data.update(
            node=index,
            name=node.node_id,
            remote=True,
            healthy=node.healthy,
            problems=_problems(node),
        )
        return data

    def _summary(self, index: int, node: FleetNode) -> dict[str, Any]:
        sinks = _sinks(node.status)
        status = node.status or {}
        return {
            "node": index,
            "name": node.node_id,
            "config": f"{self.name}: {node.node_id}",
            "remote": True,
            "rows": status.get("rows"),
            "healthy": node.healthy,
            "problems": _problems(node),
            "forwarder": status.get("forwarder") or dict(NOT_RUNNING),
            "pending": sum(int(s.get("pending") or 0) for s in sinks),
            "dead_letters": sum(int(s.get("dead_letters") or 0) for s in sinks),
            "rows_per_second": sum(float(s.get("rows_per_second") or 0.0) for s in sinks),
            "sinks": [
                {k: s.get(k) for k in ("consumer", "state", "pending", "rows_per_second")}
                for s in sinks
            ],
        }


def _problems(node: FleetNode) -> Sequence[dict[str, Any]]:
    """The node's problems in the page's shape (the source already wrote each as one text)."""
    return [{"sink": "", "reason": text} for text in node.problems]
