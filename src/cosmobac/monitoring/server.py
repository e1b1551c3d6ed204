"""The HTTP side of monitoring: ``/metrics``, ``/healthz`` and ``/readyz`` on a background thread.

* ``/metrics``: the Prometheus text format, every name prefixed ``cosmobac_``;
* ``/healthz``: 200 while the process is alive;
* ``/readyz``: 200, or 503 with a JSON reason when a sink has failed permanently (and has not
  written since) or a sink's oldest pending row has waited in the store longer than
  ``[monitoring] max_backlog_age``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import ConfigError
from .metrics import Monitor

__all__ = ["serve"]

log = logging.getLogger("cosmobac.monitoring")


def _handler(monitor: Monitor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                content_type = "text/plain; version=0.0.4; charset=utf-8"
                self._send(200, monitor.metrics_text(), content_type)
            elif path == "/healthz":
                self._json(200, {"alive": True})
            elif path == "/readyz":
                ready = monitor.readiness()
                self._json(200 if ready["ready"] else 503, ready)
            else:
                self._json(404, {"error": "not found; try /metrics, /healthz or /readyz"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serve(monitor: Monitor, host: str, port: int) -> Iterator[tuple[str, int]]:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a background thread
    until the block ends; yields the address bound. A port in use is a ConfigError."""
    server_class = _Server6 if ":" in host else _Server
    try:
        server = server_class((host, port), _handler(monitor))
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="cosmobac-metrics"
    )
    thread.daemon = True
    thread.start()
    bound = server.server_address
    log.info("metrics and health on http://%s:%d/metrics", bound[0], bound[1])
    try:
        yield str(bound[0]), int(bound[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
