"""A TEST DOUBLE of Cosmos DB's offers (throughput) API, in front of the local server.

The local server (``@vercel/cosmosdb-server``) has no offers. This loopback proxy forwards every
request to it, except the offer requests, which it answers itself following the documented REST
wire format (learn.microsoft.com/rest/api/cosmos-db: "Offers", "List Offers", "Querying Offers",
"Get an Offer", "Replace an Offer"):

* ``GET /offers`` → ``{"_rid": "", "Offers": [...], "_count": n}``;
* ``POST /offers`` with ``x-ms-documentdb-isquery: True`` and ``application/query+json``: a query
  on ``resource`` (parameterised ``@link``, as the SDK sends, or a literal) → the same envelope;
* ``GET /offers/{_rid}`` → the offer; ``PUT /offers/{_rid}`` → the replaced offer;
* an offer: ``{"offerVersion": "V2", "offerType": "Invalid", "content": {"offerThroughput": N,
  ["offerAutopilotSettings": {"maxThroughput": T}]}, "resource": "<container _self>",
  "offerResourceId": "<container _rid>", "id", "_rid", "_self": "offers/<_rid>/", "_etag",
  "_ts"}``.

A container created with ``x-ms-offer-throughput`` or ``x-ms-cosmos-offer-autopilot-settings``
(what ``create_container(offer_throughput=...)`` sends) gets an offer, as on Azure; tests can also
add one with :meth:`OffersDouble.add_offer`. A replace is checked as the service documents it:
manual throughput at least 400 RU/s in steps of 100, an autoscale maximum at least 1,000 RU/s in
steps of 1,000, a matching ``If-Match`` etag; else 400 (or 412). With ``pending_above`` set, a
change above that answers ``x-ms-offer-replace-pending: true`` (a scale-up needing new partitions).

What it does not do: database (shared) offers, the minimum a container's storage and history
impose on a scale-down (``offerMinimumThroughputParameters``), switching between manual and
autoscale (a separate ARM/SDK call in Azure), authentication of the offer requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

from .faultproxy import FaultProxy, _Handler, _Server

MANUAL_MIN, MANUAL_STEP = 400, 100
AUTOSCALE_MIN, AUTOSCALE_STEP = 1000, 1000


class OffersDouble(FaultProxy):
    """Start with :meth:`start` (or as a context manager) and point the client at
    :attr:`endpoint`; every offer request is recorded in :attr:`offer_requests`."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, pending_above: int | None = None
    ) -> None:
        super().__init__(upstream_host, upstream_port)
        self.offers: dict[str, dict[str, Any]] = {}  # offer _rid → offer
        self.offer_requests: list[tuple[str, str, Any]] = []  # (method, path, JSON body)
        self.pending_above = pending_above
        self._offer_lock = threading.Lock()

    def start(self) -> OffersDouble:
        double = self

        class Handler(_OffersHandler):
            owner = double
            timeout = double._idle_timeout

        server = _Server(("127.0.0.1", 0), Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> OffersDouble:
        return self.start()

    # -- offers ---------------------------------------------------------------------------------
    def add_offer(
        self,
        resource: str,
        resource_rid: str,
        *,
        throughput: int | None = None,
        autoscale_max: int | None = None,
    ) -> dict[str, Any]:
        """An offer for the container whose ``_self`` is ``resource`` and ``_rid``
        ``resource_rid`` (manual ``throughput``, or autoscale with maximum ``autoscale_max``)."""
        rid = uuid.uuid4().hex[:4]
        content: dict[str, Any] = {"offerIsRUPerMinuteThroughputEnabled": False}
        if autoscale_max is not None:
            content["offerThroughput"] = max(MANUAL_MIN // 4, autoscale_max // 10)
            content["offerAutopilotSettings"] = {"maxThroughput": autoscale_max}
        else:
            content["offerThroughput"] = throughput if throughput is not None else MANUAL_MIN
        offer = {
            "offerVersion": "V2",
            "offerType": "Invalid",
            "content": content,
            "resource": resource,
            "offerResourceId": resource_rid,
            "id": rid,
            "_rid": rid,
            "_self": f"offers/{rid}/",
            "_etag": f'"{uuid.uuid4()}"',
            "_ts": int(time.time()),
        }
        with self._offer_lock:
            self.offers[rid] = offer
        return offer

    def offer_of(self, resource_rid: str) -> dict[str, Any] | None:
        with self._offer_lock:
            return next(
                (o for o in self.offers.values() if o["offerResourceId"] == resource_rid), None
            )

    def replace(self, rid: str, body: Any, if_match: str | None) -> tuple[int, Any, dict]:
        with self._offer_lock:
            old = self.offers.get(rid)
            if old is None:
                return 404, _error("NotFound", "Entity with the specified id does not exist"), {}
            if if_match and if_match != old["_etag"]:
                return 412, _error("PreconditionFailed", "etag mismatch"), {}
            problem = _invalid(body, old)
            if problem:
                return 400, _error("BadRequest", problem), {}
            content = body["content"]
            new = {**old, "content": content, "_etag": f'"{uuid.uuid4()}"', "_ts": int(time.time())}
            autopilot = content.get("offerAutopilotSettings")
            value = int(autopilot["maxThroughput"] if autopilot else content["offerThroughput"])
            if autopilot:
                content["offerThroughput"] = max(MANUAL_MIN // 4, value // 10)
            self.offers[rid] = new
        headers = {}
        if self.pending_above is not None and value > self.pending_above:
            headers["x-ms-offer-replace-pending"] = "true"
        return 200, new, headers


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _invalid(body: Any, old: dict[str, Any]) -> str | None:
    """Why a replace body is refused (``None``: it is fine)."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        return "the offer must be a JSON object with a content object"
    if body.get("offerVersion") != "V2":
        return "offerVersion must be V2"
    for key in ("id", "_rid", "resource", "offerResourceId"):
        if body.get(key) != old[key]:
            return f"{key} does not match the offer being replaced"
    content = body["content"]
    autopilot = content.get("offerAutopilotSettings")
    if bool(autopilot) != bool(old["content"].get("offerAutopilotSettings")):
        return "switching between manual and autoscale throughput is not done by replacing an offer"
    if autopilot:
        value = autopilot.get("maxThroughput")
        low, step, what = AUTOSCALE_MIN, AUTOSCALE_STEP, "the autoscale maximum throughput"
    else:
        value = content.get("offerThroughput")
        low, step, what = MANUAL_MIN, MANUAL_STEP, "the offer throughput"
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{what} must be a whole number"
    if value < low or value % step:
        return f"{what} must be at least {low} RU/s and a multiple of {step}, got {value}"
    return None


_LITERAL = re.compile(r"""\.resource\s*=\s*["']([^"']+)["']""")


class _OffersHandler(_Handler):
    owner: OffersDouble

    def _handle(self) -> None:
        path = self.path.split("?")[0]
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "offers":
            if self.command == "POST" and len(parts) == 3 and parts[2] == "colls":
                self._create_container(parts[1])
            else:
                super()._handle()
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._answer(400, _error("BadRequest", "the body is not JSON"))
            return
        double = self.owner
        with double._offer_lock:
            double.offer_requests.append((self.command, path, body))
        if len(parts) == 1 and self.command == "GET":
            self._feed(list(double.offers.values()))
        elif len(parts) == 1 and self.command == "POST":
            if str(self.headers.get("x-ms-documentdb-isquery", "")).lower() != "true":
                self._answer(400, _error("BadRequest", "offers are queried, not created"))
                return
            self._feed(self._query(body))
        elif len(parts) == 2 and self.command == "GET":
            offer = double.offers.get(parts[1])
            if offer is None:
                self._answer(404, _error("NotFound", "Entity with the specified id does not exist"))
            else:
                self._answer(200, offer, _charge())
        elif len(parts) == 2 and self.command == "PUT":
            status, answer, headers = double.replace(parts[1], body, self.headers.get("If-Match"))
            self._answer(status, answer, {**_charge(), **headers})
        else:
            self._answer(405, _error("MethodNotAllowed", f"{self.command} {path}"))

    def _query(self, body: Any) -> list[dict[str, Any]]:
        query = (body or {}).get("query", "")
        params = {p["name"]: p["value"] for p in (body or {}).get("parameters") or []}
        link = None
        match = re.search(r"\.resource\s*=\s*(@\w+)", query)
        if match:
            link = params.get(match.group(1))
        else:
            literal = _LITERAL.search(query)
            link = literal.group(1) if literal else None
        offers = list(self.owner.offers.values())
        if link is None:
            return offers
        return [o for o in offers if o["resource"].strip("/") == str(link).strip("/")]

    def _feed(self, offers: list[dict[str, Any]]) -> None:
        self._answer(
            200,
            {"_rid": "", "Offers": offers, "_count": len(offers)},
            {**_charge(), "x-ms-item-count": str(len(offers))},
        )

    def _create_container(self, database: str) -> None:
        """Forward a container creation; when it asked for throughput, the container gets an
        offer (as on Azure)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        forwarded = self._forward(raw)
        if forwarded is None:
            self._drop()
            return
        status, headers, data = forwarded
        manual = self.headers.get("x-ms-offer-throughput")
        autopilot = self.headers.get("x-ms-cosmos-offer-autopilot-settings")
        if status == 201 and (manual or autopilot):
            created = json.loads(data)
            if autopilot:
                maximum = int(json.loads(autopilot)["maxThroughput"])
                self.owner.add_offer(created["_self"], created["_rid"], autoscale_max=maximum)
            else:
                self.owner.add_offer(created["_self"], created["_rid"], throughput=int(manual))
        self._send(status, headers, data)


def _charge() -> dict[str, str]:
    return {"x-ms-request-charge": "1", "x-ms-activity-id": str(uuid.uuid4())}
