"""``cosmobac dashboard``: the real server (a ``cosmobac dashboard`` process on a free loopback
port) against a real store that ``cosmobac collect`` filled and ``cosmobac forward`` delivered.

The API's figures are the store's (``cosmobac status --json``), series are downsampled to at most
``points`` and keep every detection the forwarder's sink wrote, new rows show up in a later poll,
the store gains no consumer, the page's files come from the package, a bad query value is a 400
naming it, and a non-loopback host warns. No timing is asserted: waits only have deadlines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from cosmobac import MemoryStore
from cosmobac.dashboard import require_extra
from cosmobac.dashboard.app import STATIC
from cosmobac.dashboard.cache import SeriesCache
from cosmobac.dashboard.commands import dashboard_command, is_loopback
from cosmobac.errors import CosmobacError
from cosmobac.sensors.simulated import SimulatedFleet
from pipeline_files import free_port

pytestmark = pytest.mark.needs_plugins

PIPELINE = """\
[sensor]
plugin = "simulated"
cities = 2
sensors_per_city = 2
seed = 5
start = "2026-06-01T00:00:00Z"

[sensor.anomalies]
probability = 0.01

[store]
plugin = "sqlite"
path = "{name}.db"

[[transforms]]
plugin = "zscore"

[[sinks]]
plugin = "jsonl"
path = "{name}.jsonl"

[run]
speed = "max"
"""


def cli(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cosmobac", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Server:
    """A ``cosmobac dashboard`` process and a small JSON client for it."""

    def __init__(self, cwd: Path, *configs: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"dashboard-{self.port}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cosmobac", "dashboard", *configs, "--port", str(self.port)],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.until(lambda: self.get("/api/nodes"), "the server to answer")

    def raw(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str) -> Any:
        status, body = self.raw(path)
        assert status == 200, body
        return json.loads(body)

    def until(self, check: Any, what: str, seconds: float = 120.0) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the dashboard exited: {self.log.read_text()}")
            try:
                found = check()
            except (OSError, AssertionError):
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"waited {seconds:.0f} s for {what}; log: {self.log.read_text()}")
            time.sleep(0.2)

    def caught_up(self, node: int = 0, last_seq: int | None = None) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            info = self.get(f"/api/sensors?node={node}")
            if info["caught_up"] and (last_seq is None or info["last_seq"] >= last_seq):
                return info
            return None

        return self.until(check, "the dashboard to read the store")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def consumers_of(db: Path) -> set[str]:
    from cosmobac_sqlite import SQLiteStore

    with SQLiteStore(db, create=False) as store:
        return set(store.stats().pending)


def max_seq(db: Path) -> int:
    from cosmobac_sqlite import SQLiteStore

    with SQLiteStore(db, create=False) as store:
        return int(store.scan()["seq"].max())


def detections_written(path: Path) -> dict[str, set[int]]:
    """Sensor → the timestamps (epoch ms) the forwarder's jsonl sink wrote as detected."""
    out: dict[str, set[int]] = {}
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        if doc.get("zscore_detected"):
            ms = int(
                datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp() * 1000
            )
            out.setdefault(doc["sensor_id"], set()).add(ms)
    return out


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A pipeline collected for 1 h and forwarded, and a dashboard serving it."""
    require_extra()
    root = tmp_path_factory.mktemp("dashboard")
    (root / "edge.toml").write_text(PIPELINE.format(name="edge"))
    cli("collect", "edge.toml", "--duration", "1h", cwd=root)
    cli("forward", "edge.toml", cwd=root)
    consumers = consumers_of(root / "edge.db")
    server = Server(root, "edge.toml")
    server.caught_up(last_seq=max_seq(root / "edge.db"))
    yield root, server, consumers
    server.stop()


def test_health_equals_the_stores_status(node: Any) -> None:
    root, server, _ = node
    status = json.loads(cli("status", "edge.toml", "--json", cwd=root))
    health = server.get("/api/health")
    for key in ("rows", "pending", "dead_letters", "healthy", "problems", "forwarder"):
        assert health[key] == status[key], key
    assert len(health["sinks"]) == len(status["sinks"]) == 1
    ours, theirs = health["sinks"][0], status["sinks"][0]
    for key in (
        "consumer",
        "pending",
        "oldest_pending_age_s",
        "dead_letters",
        "last_error",
        "last_error_at",
        "state",
    ):
        assert ours[key] == theirs[key], key
    assert ours["rows_per_second"] == 0.0  # the forwarder has finished
    assert ours["request_units"] == 0.0 and ours["throttled"] == 0  # a jsonl sink reports none
    assert health["rows"] == 4 * 3600


def test_series_are_downsampled_and_keep_every_detection(node: Any) -> None:
    root, server, _ = node
    written = detections_written(root / "edge.jsonl")
    assert written, "the simulated anomalies gave no detection to check"
    sensors = server.get("/api/sensors")
    assert sorted(sensors["cities"]) == ["London", "New York"]
    for city, ids in sensors["cities"].items():
        data = server.get(f"/api/series?city={urllib.parse.quote(city)}&metric=humidity&points=60")
        assert [s["sensor_id"] for s in data["series"]] == ids
        for s in data["series"]:
            assert s["points"] == len(s["t"]) == len(s["v"]) <= 60
            assert s["rows"] == 3600 and s["source"] == "rows"
            assert s["t"] == sorted(s["t"])
            assert {d["t"] for d in s["detections"]} == written.get(s["sensor_id"], set())
            assert all(d["detectors"] == ["zscore"] for d in s["detections"])
    total = server.get("/api/anomalies?limit=5")
    assert total["total"] == sum(len(v) for v in written.values())
    assert sum(total["by_city"].values()) == total["total"]
    assert len(total["latest"]) == 5
    newest = max(max(v) for v in written.values())
    assert total["latest"][0]["time"] == newest


def test_a_zoomed_span_is_at_full_resolution(node: Any) -> None:
    _, server, _ = node
    sensor = server.get("/api/sensors")["cities"]["London"][0]
    whole = server.get(f"/api/series?sensor={sensor}&points=100")["series"][0]
    start = whole["t"][10]
    end = start + 5 * 60_000
    zoom = server.get(f"/api/series?sensor={sensor}&start={start}&end={end}&points=1000")
    s = zoom["series"][0]
    assert s["source"] == "rows" and s["rows"] == s["points"] == 300  # 1 Hz: every row
    assert all(start <= t < end for t in s["t"])
    iso = datetime.fromtimestamp(start / 1000).astimezone().isoformat()
    again = server.get(f"/api/series?sensor={sensor}&start={urllib.parse.quote(iso)}&end={end}")
    assert again["series"][0]["t"][0] == s["t"][0]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("/api/series?city=London&points=abc", "points"),
        ("/api/series?city=London&points=1", "points"),
        ("/api/series?city=London&metric=co2", "metric"),
        ("/api/series?city=Atlantis", "city"),
        ("/api/series?sensor=nope-001", "sensor"),
        ("/api/series", "sensor"),
        ("/api/series?city=London&start=yesterday", "start"),
        ("/api/series?city=London&start=2000&end=1000", "end"),
        ("/api/anomalies?limit=0", "limit"),
        ("/api/health?node=3", "node"),
    ],
)
def test_a_bad_query_value_is_a_400_naming_it(node: Any, query: str, parameter: str) -> None:
    _, server, _ = node
    status, body = server.raw(query)
    assert status == 400
    answer = json.loads(body)
    assert answer["parameter"] == parameter
    assert answer["error"].startswith(f"{parameter}: ")


def test_the_page_and_its_files_come_from_the_package(node: Any) -> None:
    _, server, _ = node
    status, page = server.raw("/")
    assert status == 200 and page == (STATIC / "index.html").read_bytes()
    for name in (
        "vendor/uplot/uPlot.iife.min.js",
        "vendor/uplot/uPlot.min.css",
        "vendor/uplot/LICENSE",
        "charts.js",
        "dashboard.js",
        "dashboard.css",
    ):
        status, body = server.raw(f"/static/{name}")
        assert status == 200 and body == (STATIC / name).read_bytes(), name
    for name in ("index.html", "charts.js", "dashboard.js", "dashboard.css"):
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text, f"{name} names another server"
    assert "uPlot" in (STATIC / "vendor/uplot/uPlot.iife.min.js").read_text()[:2000]
    assert server.raw("/static/nothing.js")[0] == 404


@pytest.mark.slow
def test_new_rows_appear_in_a_later_poll_and_no_consumer_is_added(node: Any) -> None:
    root, server, consumers = node
    before = server.get("/api/sensors")
    cli("collect", "edge.toml", "--duration", "70m", cwd=root)  # resumes: 10 more minutes
    top = max_seq(root / "edge.db")
    assert top > before["last_seq"]
    after = server.caught_up(last_seq=top)
    assert after["last_seq"] == top and after["end"] > before["end"]
    assert after["rows_read"] == 4 * 4200
    s = server.get("/api/series?city=London&points=50")["series"][0]
    assert s["rows"] == 4200 and s["t"][-1] >= before["end"]
    assert server.get("/api/health")["rows"] == 4 * 4200
    assert consumers_of(root / "edge.db") == consumers  # the dashboard registered none


@pytest.mark.slow
def test_fleet_mode_lists_every_node(node: Any) -> None:
    root, _, _ = node
    (root / "second.toml").write_text(
        PIPELINE.format(name="second").replace("cities = 2", "cities = 1")
    )
    cli("collect", "second.toml", "--duration", "10m", cwd=root)
    server = Server(root, "edge.toml", "second.toml")
    try:
        fleet = server.get("/api/nodes")
        assert fleet["mode"] == "fleet"
        assert [n["name"] for n in fleet["nodes"]] == ["edge", "second"]
        for n, config in zip(fleet["nodes"], ("edge.toml", "second.toml"), strict=True):
            status = json.loads(cli("status", config, "--json", cwd=root))
            assert n["rows"] == status["rows"]
            assert n["healthy"] == status["healthy"]
            assert n["pending"] == sum(s["pending"] for s in status["sinks"])
        assert fleet["nodes"][1]["pending"] == 2 * 600  # never forwarded
        second = server.caught_up(node=1)
        assert list(second["cities"]) == ["London"]
        assert server.get("/api/health?node=1")["name"] == "second"
    finally:
        server.stop()


def test_a_non_loopback_host_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    (tmp_path / "p.toml").write_text(PIPELINE.format(name="p"))
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(dashboard_command, ["p.toml", "--host", "0.0.0.0", "--port", "9"])
    assert result.exit_code == 0, result.output
    assert "warning: --host 0.0.0.0 is not loopback" in result.output
    assert served["host"] == "0.0.0.0"
    served.clear()
    result = CliRunner().invoke(dashboard_command, ["p.toml"])
    assert "warning" not in result.output and served["host"] == "127.0.0.1"
    assert served["port"] == 8050


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org"))


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(CosmobacError, match=r"cosmobac\[dashboard\]"):
        require_extra()


def readings(minutes: int, sensors: int, cities: int, seed: int = 3) -> Any:
    fleet = SimulatedFleet(
        cities=cities, sensors_per_city=sensors, seed=seed, start="2026-06-01T00:00:00Z"
    )
    assert fleet.start is not None
    return fleet.read(fleet.start + minutes * 60_000)


class _NoRange:
    """A store that can scan but has no scan_sensor: the dashboard falls back to its buckets."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "scan_sensor":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_the_bucket_summary_keeps_extremes_and_detections_without_scan_sensor() -> None:
    store = MemoryStore()
    rows = readings(60, sensors=2, cities=1)  # 1 h, 1 Hz
    store.append(rows)
    cache = SeriesCache(lambda: _NoRange(store), chunk=1000)  # type: ignore[arg-type,return-value]
    cache.refresh()
    assert cache.caught_up and cache.rows_read == len(rows)
    sensor = sorted(set(rows["sensor_id"].tolist()))[0]
    mine = rows.select(rows["sensor_id"] == sensor)
    s = cache.series(sensor, "temperature", 0, 2**62, points=50)
    assert s.source == "buckets" and len(s.t) == len(s.v) <= 50
    assert s.rows == len(mine)
    values = np.asarray(mine["temperature"], dtype=float)
    shown = [v for v in s.v if v is not None]
    assert max(shown) == pytest.approx(np.nanmax(values))  # MinMaxLTTB keeps the extremes
    assert min(shown) == pytest.approx(np.nanmin(values))
    direct = SeriesCache(lambda: store, chunk=1000)
    direct.refresh()
    assert direct.series(sensor, "temperature", 0, 2**62, 50).source == "rows"


def test_detections_come_from_the_transforms_whatever_the_chunks() -> None:
    from cosmobac.detectors import DETECTORS

    store = MemoryStore()
    rows = readings(20, sensors=1, cities=2)  # 2,400 rows
    values = np.asarray(rows["temperature"], dtype=float).copy()
    values[[700, 1500, 2001]] += 40.0  # three obvious spikes
    store.append(rows.with_columns({"temperature": values}))
    found = []
    for chunk in (97, 5000):
        cache = SeriesCache(lambda: store, lambda: [DETECTORS["zscore"]()], chunk=chunk)
        cache.refresh()
        found.append(sorted((d["seq"], tuple(d["detectors"])) for d in cache.latest(1000)))
    assert found[0] == found[1] and len(found[0]) >= 3


def test_a_store_not_collected_yet_is_waited_for_never_created(tmp_path: Path) -> None:
    (tmp_path / "later.toml").write_text(PIPELINE.format(name="later"))
    server = Server(tmp_path, "later.toml")
    try:
        info = server.caught_up()
        assert info["cities"] == {} and info["rows_read"] == 0
        assert "does not exist" in info["error"]
        health = server.get("/api/health")
        assert health["rows"] is None and health["sinks"] == []
        assert server.get("/api/anomalies")["total"] == 0
        assert server.raw("/api/series?city=London")[0] == 400
        assert not (tmp_path / "later.db").exists()
        cli("collect", "later.toml", "--duration", "2m", cwd=tmp_path)
        info = server.until(
            lambda: (i := server.get("/api/sensors"))["rows_read"] == 4 * 120 and i,
            "the new store to be read",
        )
        assert info["error"] is None and sorted(info["cities"]) == ["London", "New York"]
    finally:
        server.stop()


def test_bucket_reduction_keeps_each_buckets_extremes_and_their_times() -> None:
    from cosmobac.dashboard.cache import _reduce, _Summary

    rng = np.random.default_rng(7)
    n = 500
    b = rng.integers(0, 40, n)
    t = rng.permutation(n).astype(np.int64)
    v = rng.normal(size=(n, 2)).round(1)  # rounded: ties happen; the earliest row wins
    v[rng.random((n, 2)) < 0.2] = np.nan
    v[b == 3] = np.nan  # a bucket with every value missing stays missing
    tt = np.repeat(t[:, None], 2, axis=1)
    got = _reduce(_Summary(b, np.ones(n, np.int64), tt, v, tt, v))
    assert got.b.tolist() == sorted(set(b.tolist()))
    for i, bucket in enumerate(got.b.tolist()):
        rows = np.flatnonzero(b == bucket)
        assert got.n[i] == len(rows)
        for m in range(2):
            values = v[rows, m]
            if np.isnan(values).all():
                assert np.isnan(got.lv[i, m]) and np.isnan(got.hv[i, m])
                continue
            low, high = np.nanmin(values), np.nanmax(values)
            assert got.lv[i, m] == low and got.hv[i, m] == high
            assert got.lt[i, m] == t[rows[np.flatnonzero(values == low)[0]]]
            assert got.ht[i, m] == t[rows[np.flatnonzero(values == high)[0]]]


def test_request_units_and_throttles_per_second_come_from_two_health_snapshots() -> None:
    from cosmobac.dashboard.health import HealthReader
    from cosmobac.monitoring.health import Health, SinkHealth
    from cosmobac.monitoring.status import ForwarderState, SinkStatus, Status

    def status(at: float, units: float, throttled: int) -> Status:
        sink = SinkHealth("cosmos-1", acked=10, request_units=units, throttled=throttled)
        health = Health(time=at, started=0.0, pid=os.getpid(), running=True, sinks=(sink,))
        row = SinkStatus("cosmos-1", "cosmos", None, 0, None, 0, sink, True)
        return Status("p.toml", at, None, (row,), ForwarderState.of(health, at), ())

    reader = HealthReader("p.toml")
    first = reader.to_json(status(100.0, 500.0, 1))["sinks"][0]
    assert first["request_units"] == 500.0 and first["throttled"] == 1
    assert first["ru_per_second"] is None  # one snapshot: no rate yet
    same = reader.to_json(status(100.0, 500.0, 1))["sinks"][0]
    assert same["ru_per_second"] is None  # the same snapshot read again
    later = reader.to_json(status(104.0, 700.0, 5))["sinks"][0]
    assert later["ru_per_second"] == pytest.approx(50.0)
    assert later["throttled_per_second"] == pytest.approx(1.0)
    again = reader.to_json(status(104.0, 700.0, 5))["sinks"][0]
    assert again["ru_per_second"] == pytest.approx(50.0)  # kept until the next snapshot
