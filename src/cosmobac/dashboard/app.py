"""The dashboard's web application (Starlette): the page, its static files and the JSON API.

Every ``/api/...`` answer is JSON. A query value that cannot be used is a 400 whose body names it:
``{"error": "points: must be a whole number from 2 to 20000, got 'x'", "parameter": "points"}``.
The API is described in docs/how-to/dashboard.md.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ..assembly import build_store
from ..config import PipelineConfig, load_config
from ..plugins import Plugins, get_plugins
from .cache import SeriesCache
from .fleet import RemoteFleet
from .health import HealthReader

__all__ = ["DEFAULT_POINTS", "MAX_POINTS", "STATIC", "BadQuery", "Node", "create_app"]

STATIC: Final = Path(__file__).parent / "static"
DEFAULT_POINTS: Final = 1000
MAX_POINTS: Final = 20_000
LIMIT_MAX: Final = 1000


class BadQuery(ValueError):
    """A query value that cannot be used: a 400 naming ``parameter``."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class Node:
    """One pipeline file the dashboard shows: its health (read at each request) and its
    :class:`~cosmobac.dashboard.cache.SeriesCache`, made on first use so a fleet page that only
    shows health rows never scans a store."""

    def __init__(
        self,
        index: int,
        config: str | os.PathLike[str],
        *,
        plugins: Plugins | None = None,
        interval: float = 1.0,
    ) -> None:
        self.index = index
        self.config = os.fspath(config)
        self.plugins = plugins or get_plugins()
        self.cfg: PipelineConfig = load_config(self.config, plugins=self.plugins)
        self.name = Path(self.config).stem if self.config else f"node {index}"
        self.health = HealthReader(self.config)
        self.interval = interval
        self._cache: SeriesCache | None = None
        self._lock = threading.Lock()

    @property
    def cache(self) -> SeriesCache:
        with self._lock:
            if self._cache is None:
                cfg, plugins = self.cfg, self.plugins

                def transforms() -> list[Any]:
                    return [
                        spec.build(plugins) for spec in cfg.transforms if spec.plugin != "aggregate"
                    ]

                self._cache = SeriesCache(
                    lambda: build_store(cfg, plugins=plugins, create=False), transforms
                )
                self._cache.start(self.interval)
            return self._cache

    @property
    def cache_started(self) -> bool:
        return self._cache is not None

    def close(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None

    def summary(self) -> dict[str, Any]:
        """The node's row of the fleet table: its health in brief."""
        status = self.health.read()
        data = self.health.to_json(status)
        sinks = data["sinks"]
        return {
            "node": self.index,
            "name": self.name,
            "config": self.config,
            "rows": data["rows"],
            "healthy": data["healthy"],
            "problems": data["problems"],
            "forwarder": data["forwarder"],
            "pending": sum(s["pending"] for s in sinks),
            "dead_letters": sum(s["dead_letters"] for s in sinks),
            "rows_per_second": sum(s["rows_per_second"] or 0.0 for s in sinks),
            "sinks": [
                {k: s[k] for k in ("consumer", "state", "pending", "rows_per_second")}
                for s in sinks
            ],
        }


# -- query values ---------------------------------------------------------------------------------
def _int(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise BadQuery(name, f"must be a whole number from {low} to {high}, got {raw!r}")
    return value


def _time(query: Any, name: str) -> int | None:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError
        return int(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(
            name, f"must be epoch milliseconds or an ISO 8601 time, got {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _node(nodes: Sequence[Node], query: Any) -> Node:
    index = _int(query, "node", 0, 0, max(len(nodes) - 1, 0))
    return nodes[index]


# -- the answers (plain functions, so they can be tested and reused without a server) ---------------
def nodes_json(nodes: Sequence[Node]) -> dict[str, Any]:
    return {"mode": "fleet" if len(nodes) > 1 else "node", "nodes": [n.summary() for n in nodes]}


def health_json(node: Node) -> dict[str, Any]:
    data = node.health.to_json(node.health.read())
    data["node"] = node.index
    data["name"] = node.name
    return data


def sensors_json(node: Node) -> dict[str, Any]:
    cache = node.cache
    return {
        "node": node.index,
        "name": node.name,
        "cities": cache.sensors(),
        "metrics": list(cache.metrics),
        "start": cache.first_t,
        "end": None if cache.last_t is None else cache.last_t + 1,
        "rows_read": cache.rows_read,
        "last_seq": cache.last_seq,
        "caught_up": cache.caught_up,
        "error": cache.error,
    }


def series_json(node: Node, query: Any) -> dict[str, Any]:
    cache = node.cache
    metric = query.get("metric") or "temperature"
    if metric not in cache.metrics:
        raise BadQuery("metric", f"unknown metric {metric!r}; known: {', '.join(cache.metrics)}")
    points = _int(query, "points", DEFAULT_POINTS, 2, MAX_POINTS)
    start, end = _time(query, "start"), _time(query, "end")
    cities = cache.sensors()
    sensor, city = query.get("sensor"), query.get("city")
    if sensor:
        if not cache.has_sensor(sensor):
            raise BadQuery("sensor", f"no sensor {sensor!r} in the store")
        chosen = [sensor]
    elif city is not None:
        if city not in cities:
            raise BadQuery("city", f"no city {city!r} in the store; known: {', '.join(cities)}")
        chosen = cities[city]
    else:
        raise BadQuery("sensor", "give sensor=ID or city=NAME")
    if start is None:
        start = cache.first_t if cache.first_t is not None else 0
    if end is None:
        end = cache.last_t + 1 if cache.last_t is not None else start + 1
    if end <= start:
        raise BadQuery("end", f"must be after start ({start}), got {end}")
    series = [cache.series(s, metric, start, end, points).to_json() for s in chosen]
    return {
        "node": node.index,
        "metric": metric,
        "start": start,
        "end": end,
        "points": points,
        "last_seq": cache.last_seq,
        "caught_up": cache.caught_up,
        "series": series,
    }


def anomalies_json(node: Node, query: Any) -> dict[str, Any]:
    limit = _int(query, "limit", 50, 1, LIMIT_MAX)
    cache = node.cache
    return {
        "node": node.index,
        "total": cache.detections,
        "by_detector": dict(cache.by_detector.most_common()),
        "by_type": dict(cache.by_type.most_common()),
        "by_city": dict(cache.by_city.most_common()),
        "latest": cache.latest(limit),
        "caught_up": cache.caught_up,
    }


def create_app(
    configs: Sequence[str | os.PathLike[str]],
    *,
    plugins: Plugins | None = None,
    interval: float = 1.0,
    fleet: RemoteFleet | None = None,
) -> Any:
    """The Starlette application serving the page and the API for ``configs`` (one: node mode;
    several: fleet mode), or for a ``fleet`` known through a fleet source (then ``configs`` is
    empty). Needs ``cosmobac[dashboard]``. ``app.state.nodes`` lists the nodes of ``configs``;
    closing the application (its lifespan ending) stops their caches and the fleet's polling."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    if not configs and fleet is None:
        raise ValueError("give at least one pipeline file, or a fleet")
    if configs and fleet is not None:
        raise ValueError("give pipeline files or a fleet, not both")
    plugins = plugins or get_plugins()
    nodes = [Node(i, c, plugins=plugins, interval=interval) for i, c in enumerate(configs)]

    def answer(make: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                data = make(request.query_params)
            except BadQuery as exc:
                return JSONResponse({"error": str(exc), "parameter": exc.parameter}, 400)
            return JSONResponse(data, headers={"Cache-Control": "no-store"})

        return endpoint

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def remote_health(query: Any) -> dict[str, Any]:
        assert fleet is not None
        count = len(fleet.nodes)
        index = _int(query, "node", 0, 0, max(count - 1, 0))
        if not count:
            raise BadQuery("node", "the fleet has not answered yet")
        return fleet.health_json(index)

    def remote_only(query: Any) -> dict[str, Any]:
        raise BadQuery(
            "node",
            "a node of a fleet polled through its source shows its health only: its store is on "
            "the node (run cosmobac dashboard there for its series)",
        )

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        if len(nodes) == 1:  # node mode: start reading the store before the page asks
            nodes[0].cache  # noqa: B018
        if fleet is not None:
            fleet.start()
        yield
        for node in nodes:
            node.close()
        if fleet is not None:
            fleet.close()

    if fleet is not None:
        routes = [
            Route("/", index),
            Route("/api/nodes", answer(lambda q: fleet.nodes_json())),
            Route("/api/health", answer(remote_health)),
            Route("/api/sensors", answer(remote_only)),
            Route("/api/series", answer(remote_only)),
            Route("/api/anomalies", answer(remote_only)),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        app = Starlette(routes=routes, lifespan=lifespan)
        app.state.nodes = nodes
        app.state.fleet = fleet
        app.state.started = time.time()
        return app

    routes = [
        Route("/", index),
        Route("/api/nodes", answer(lambda q: nodes_json(nodes))),
        Route("/api/health", answer(lambda q: health_json(_node(nodes, q)))),
        Route("/api/sensors", answer(lambda q: sensors_json(_node(nodes, q)))),
        Route("/api/series", answer(lambda q: series_json(_node(nodes, q), q))),
        Route("/api/anomalies", answer(lambda q: anomalies_json(_node(nodes, q), q))),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.nodes = nodes
    app.state.started = time.time()
    return app
