"""A loopback HTTP(S) proxy in front of the local Cosmos DB server that injects faults.

The server itself never throttles, never fails on purpose and never asks for authentication; real
Cosmos DB does all three. This proxy sits between the SDK and the server and, for the requests a
test chooses (by default: document writes), answers

* ``throttle``: HTTP 429 with ``x-ms-retry-after-ms`` (sub-status 3200), without forwarding;
* ``error_before``: HTTP 503, without forwarding;
* ``error_after``: forwards (the write happens), then answers HTTP 500 — the answer is lost;
* ``drop_before`` / ``drop_after``: closes the connection without an answer, before or after
  forwarding;
* ``delay``: waits, then forwards;
* ``status``: a fixed answer to *every* request (e.g. 401, as real Cosmos DB answers a wrong key).

The local server charges a flat 1 RU per request. With :attr:`Rules.charge` set (e.g. to
:func:`published_write_charge`: Microsoft's published RU per write by document size), the proxy
replaces the ``x-ms-request-charge`` of the answers it forwards by what that function returns, and
records it in the request's :class:`Event` (:meth:`FaultProxy.charged` sums them over a span).

It records every request it sees (time, method, path, a digest of the body, what it did), so a test
can check for instance that a throttled request was not sent again before its retry-after.

It is thread-based (one thread per client connection, at most ``max_connections``; idle
connections close after ``idle_timeout``), listens on 127.0.0.1 only, and optionally terminates TLS
with a given certificate (the server behind it speaks plain HTTP).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from cosmobac_cosmos.plan import write_ru

FAULTS = ("throttle", "error_before", "error_after", "drop_before", "drop_after", "delay")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


def is_document_write(method: str, path: str, headers: Any) -> bool:
    """Creates, upserts and transactional batches of documents (not queries, not reads)."""
    if method != "POST" or not path.split("?")[0].rstrip("/").endswith("/docs"):
        return False
    return str(headers.get("x-ms-documentdb-isquery", "")).lower() != "true"


def is_batch(method: str, path: str, headers: Any) -> bool:
    return is_document_write(method, path, headers) and (
        str(headers.get("x-ms-cosmos-is-batch-request", "")).lower() == "true"
    )


def published_write_charge(method: str, path: str, headers: Any, body: bytes) -> float | None:
    """What Azure Cosmos DB would charge for a document write with the default indexing policy:
    :func:`cosmobac_cosmos.plan.write_ru` of each document's JSON size (a transactional batch: the
    sum over its operations). ``None`` (the server's charge stays) for anything else."""
    if not is_document_write(method, path, headers):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if is_batch(method, path, headers) and isinstance(payload, list):
        docs = [op.get("resourceBody") for op in payload if isinstance(op, dict)]
    else:
        docs = [payload]
    return sum(write_ru(len(json.dumps(d, separators=(",", ":")))) for d in docs)


@attrs.define
class Event:
    at: float  # time.monotonic() when the request was fully received
    method: str
    path: str
    digest: str
    action: str  # "forward" or a fault name
    retry_after: float | None = None  # seconds, for "throttle"
    charge: float | None = None  # the x-ms-request-charge answered (with Rules.charge set)
    authorization: str | None = attrs.field(default=None, repr=False)


@attrs.define(eq=False)
class Rules:
    """Which faults, how often. Rates are probabilities per chosen request, checked in order."""

    throttle: float = 0.0
    retry_after_ms: tuple[int, int] = (20, 200)
    error_before: float = 0.0
    error_after: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    delay: float = 0.0
    delay_s: tuple[float, float] = (0.05, 0.2)
    status: int | None = None  # answer every request with this status
    # forwarded answers: x-ms-request-charge becomes charge(method, path, headers, body) unless None
    charge: Callable[[str, str, Any, bytes], float | None] | None = None
    applies: Callable[[str, str, Any], bool] = is_document_write


class FaultProxy:
    """Start with :meth:`start` (or as a context manager); :attr:`endpoint` is where to point the
    client; change :attr:`rules` at any time."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        rules: Rules | None = None,
        seed: int = 0,
        tls: ssl.SSLContext | None = None,
        max_connections: int = 64,
        idle_timeout: float = 30.0,
        upstream_timeout: float = 60.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules = rules or Rules()
        self.events: list[Event] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tls = tls
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle_timeout = idle_timeout
        self._upstream_timeout = upstream_timeout
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}/"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy
            timeout = proxy._idle_timeout

        server = _Server(("127.0.0.1", 0), Handler)
        server.owner = self
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- decisions and records ----------------------------------------------------------------
    def decide(self, method: str, path: str, headers: Any) -> tuple[str, float | None]:
        rules = self.rules
        if rules.status is not None:
            return "status", None
        if not rules.applies(method, path, headers):
            return "forward", None
        with self._lock:
            draw = self._rng.random()
            edge = 0.0
            for name in FAULTS:
                edge += getattr(rules, name)
                if draw < edge:
                    if name == "throttle":
                        low, high = rules.retry_after_ms
                        return name, self._rng.randint(low, high) / 1000.0
                    if name == "delay":
                        return name, self._rng.uniform(*rules.delay_s)
                    return name, None
        return "forward", None

    def record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def count(self, action: str) -> int:
        with self._lock:
            return sum(1 for e in self.events if e.action == action)

    def charged(self, start: float = -float("inf"), end: float = float("inf")) -> float:
        """RU charged (as answered) for the requests received from ``start`` until ``end``."""
        with self._lock:
            return sum(e.charge or 0.0 for e in self.events if start <= e.at < end)

    def retry_after_violations(self) -> list[tuple[Event, Event]]:
        """Pairs (429 answered, same request sent again too early)."""
        with self._lock:
            events = list(self.events)
        bad = []
        for i, event in enumerate(events):
            if event.action != "throttle" or event.retry_after is None:
                continue
            again = next((e for e in events[i + 1 :] if e.digest == event.digest), None)
            if again is not None and again.at - event.at < event.retry_after - 0.002:
                bad.append((event, again))
        return bad


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultProxy

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.owner._slots.acquire(blocking=False):  # bounded: refuse past the limit
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped connections are the point; no tracebacks on stderr


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        with contextlib.suppress(OSError):
            super().finish()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.owner
        action, value = owner.decide(self.command, self.path, self.headers)
        digest = hashlib.sha256(self.command.encode() + self.path.encode() + body).hexdigest()
        event = Event(
            time.monotonic(),
            self.command,
            self.path,
            digest,
            action,
            retry_after=value if action == "throttle" else None,
            authorization=self.headers.get("authorization"),
        )
        owner.record(event)
        if action == "status":
            status = owner.rules.status or 500
            self._answer(
                status,
                {"code": http.client.responses.get(status, "Error"), "message": "fault proxy"},
            )
        elif action == "throttle":
            assert value is not None
            self._answer(
                429,
                {"code": "TooManyRequests", "message": "Request rate is large (fault proxy)"},
                {
                    "x-ms-retry-after-ms": str(round(value * 1000)),
                    "x-ms-substatus": "3200",
                    "x-ms-request-charge": "0",
                },
            )
        elif action == "error_before":
            self._answer(503, {"code": "ServiceUnavailable", "message": "fault proxy"})
        elif action == "drop_before":
            self._drop()
        else:
            if action == "delay":
                assert value is not None
                time.sleep(value)
            forwarded = self._forward(body)
            if forwarded is None:
                self._drop()
            elif action == "error_after":
                self._answer(500, {"code": "InternalServerError", "message": "fault proxy"})
            elif action == "drop_after":
                self._drop()
            else:
                status, headers, data = forwarded
                rule = owner.rules.charge
                charge = rule(self.command, self.path, self.headers, body) if rule else None
                if charge is not None:
                    headers = [h for h in headers if h[0].lower() != "x-ms-request-charge"]
                    headers.append(("x-ms-request-charge", f"{charge:.2f}"))
                    with owner._lock:
                        event.charge = round(charge, 2)
                self._send(status, headers, data)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in range(2):  # a kept-alive upstream connection may have been closed
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    *self.owner.upstream, timeout=self.owner._upstream_timeout
                )
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    return None
        return None

    def _answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        extra = [("Content-Type", "application/json"), *(headers or {}).items()]
        self._send(status, extra, json.dumps(body).encode())

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "keep-alive")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
