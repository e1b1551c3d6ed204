"""The example alert rules, scrape config and Grafana dashboard of ``examples/monitoring``: checked
and unit-tested with promtool, their metric names checked against what a real Monitor exposes,
and the rules loaded by a real Prometheus that scrapes a real ``cosmobac forward --follow``.

promtool and prometheus come from Debian's ``prometheus`` package (``.ci/debian-packages.txt``;
nox installs it). Without them these tests skip locally, and fail under ``CI``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from cosmobac.monitoring import Monitor
from cosmobac.pipeline import Pipeline
from cosmobac.testing import require_command
from pipeline_files import JSONL, free_port, pipeline

# the helpers of the forwarder tests (test_monitoring skips without prometheus-client)
from test_monitoring import samples, start, stop, text_string_to_metric_families, until

pytestmark = pytest.mark.needs_plugins  # the sqlite store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "monitoring"
ALERTS = EXAMPLES / "alerts.yml"
DASHBOARD = EXAMPLES / "grafana-dashboard.json"
METRIC = re.compile(r"\bcosmobac_\w+")
ALERT_NAMES = ("Uploader", "SinkDown", "SinkFailing", "Backlog", "DeadLetters", "Throttled",
               "AnomalyRate", "WasmTraps")  # fmt: skip
STORED_ROWS = 2 * 2 * 3600 // 20  # test_monitoring.pipeline: 2 sensors at 0.05 Hz for 2 h


def tool(name: str) -> str:
    """The path of ``name``; skip without it, or fail when ``CI`` is set (CI never skips this)."""
    return require_command(
        name,
        "prometheus",
        hint="Debian's package has promtool and prometheus; nox installs it from "
        ".ci/debian-packages.txt",
    )


def promtool(*args: str) -> str:
    done = subprocess.run(
        [tool("promtool"), *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[str]:
    """Every PromQL text of the dashboard: its panels' targets and its variables' queries."""
    board = dashboard()
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(), re.MULTILINE)


# -- promtool ---------------------------------------------------------------------------------


def test_promtool_checks_the_alert_rules():
    out = promtool("check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alert_names())} rules found" in out


def test_promtool_unit_tests_of_the_alert_rules_pass():
    promtool("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    tests = (EXAMPLES / "alerts.test.yml").read_text()
    for name in alert_names():
        cases = re.findall(
            rf"alertname: {name}\n\s+exp_alerts:( \[\])?", tests
        )  # " []": not firing
        assert "" in cases and " []" in cases, f"{name}: {cases}"


def test_the_alerts_cover_what_the_issue_asks_for():
    names = alert_names()
    for wanted in ALERT_NAMES:
        assert any(wanted in name for name in names), wanted
    text = ALERTS.read_text()
    assert text.count("severity:") == len(names)
    assert text.count("summary:") == len(names) and text.count("description:") == len(names)


def test_promtool_checks_the_example_scrape_config():
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out  # alerts.yml, relative to the config's folder
    assert "WARNING" not in out


# -- metric names -----------------------------------------------------------------------------


def exposed_names(text: str) -> set[str]:
    """Every series name a scrape of ``text`` can show, including families with no series yet
    (a labelled counter before its first increment): counters end ``_total``, histograms have
    ``_bucket``, ``_sum`` and ``_count``."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


@pytest.fixture(scope="module")
def monitor_text(tmp_path_factory) -> str:
    """/metrics of a Monitor that watched a real pipeline collect and forward to a sink."""
    tmp_path = tmp_path_factory.mktemp("names")
    config = pipeline(tmp_path, JSONL.format(out=tmp_path / "out.jsonl"))
    with Pipeline.from_config(config, need_sensor=True, need_sinks=True) as pipe:
        monitor = Monitor(store=lambda: pipe.store, consumers=lambda: [lane.consumer for lane in pipe.lanes])  # fmt: skip
        pipe.observer = monitor
        pipe.collect()
        pipe.forward()
        text = monitor.metrics_text().decode()
    assert samples(text)[("cosmobac_sink_rows_acked_total", (("sink", "archive"),))] > 0
    return text


@pytest.mark.parametrize("where", ["alerts", "dashboard"])
def test_every_metric_used_is_one_cosmobac_exposes(monitor_text, where):
    # the rules' whole text (no other mention of a metric there); the dashboard's queries
    text = ALERTS.read_text() if where == "alerts" else "\n".join(dashboard_queries())
    used = set(METRIC.findall(text))
    assert used, where
    exposed = exposed_names(monitor_text)
    missing = sorted(used - exposed)
    assert not missing, f"{where} uses {missing}, which cosmobac does not expose"


def test_the_exposed_names_are_read_as_expected(monitor_text):
    names = exposed_names(monitor_text)
    assert {
        "cosmobac_sink_rows_acked_total",
        "cosmobac_sink_write_seconds_bucket",
        "cosmobac_sink_write_seconds_count",
        "cosmobac_sink_backlog_rows",
        "cosmobac_build_info",
    } <= names
    assert "cosmobac_sink_rows_acked" not in names and "cosmobac_sink_write_seconds" not in names


# -- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_is_a_grafana_dashboard_on_a_datasource_variable():
    board = dashboard()
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"instance", "sink"} <= set(variables)
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["title"] and panel["type"] in {"timeseries", "stat", "table"}
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert METRIC.search(target["expr"]) or "up{" in target["expr"]
    text = " ".join(dashboard_queries())
    for wanted in (
        "rate(cosmobac_sink_rows_acked_total",
        "cosmobac_sink_backlog_rows",
        "cosmobac_sink_oldest_pending_age_seconds",
        "cosmobac_sink_rows_dead_lettered_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.99,",
        "rate(cosmobac_sink_request_units_total",
        "rate(cosmobac_sink_throttled_requests_total",
        "by (detector, type)",
        'error="WasmError", cause="trap"',
        "cosmobac_build_info",
    ):
        assert wanted in text, wanted


# -- a real Prometheus ------------------------------------------------------------------------


def api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict = json.load(response)
    except urllib.error.HTTPError as exc:  # a bad query: 400 with the error in JSON
        body = json.load(exc)
    return body


def wait_for(what: str, check, proc: subprocess.Popen, log: Path, seconds: float = 90.0):
    """Call ``check()`` until it returns something true; fail with Prometheus' log otherwise."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus ended ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            last = check()
        except (OSError, urllib.error.URLError, KeyError, IndexError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    pytest.fail(f"{what}: never true; last {last!r}\n{log.read_text()[-3000:]}")


@pytest.fixture
def forwarder(tmp_path):
    """A ``cosmobac forward --follow`` that delivered the stored rows to a JSON-lines sink named
    ``archive``; yields its metrics port."""
    config = pipeline(tmp_path, JSONL.format(out=tmp_path / "out.jsonl"))
    collected = subprocess.run(
        [sys.executable, "-m", "cosmobac", "collect", config], capture_output=True, text=True
    )
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    proc = start("forward", config, "--follow", "--metrics-port", str(port))
    try:
        until(proc, port, "/metrics", lambda status, _text: status == 200)
        yield port
    finally:
        stop(proc)


@pytest.fixture
def prometheus(tmp_path):
    """Start a Prometheus on a free loopback port with the example rules, scraping ``targets``
    every second; never the system's service on :9090, its data in tmp_path."""
    binary = tool("prometheus")
    started: list[tuple[subprocess.Popen, object]] = []

    def run(*targets: str) -> tuple[int, subprocess.Popen, Path]:
        config = tmp_path / "prometheus.yml"
        config.write_text(  # JSON is YAML
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS)],
                    "scrape_configs": [
                        {"job_name": "cosmobac", "static_configs": [{"targets": list(targets)}]}
                    ],
                }
            )
        )
        port = free_port()
        log = tmp_path / "prometheus.log"
        out = log.open("w")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        started.append((proc, out))
        return port, proc, log

    yield run
    for proc, out in started:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_real_prometheus_scrapes_a_forwarder_and_loads_the_example_rules(prometheus, forwarder):
    began = time.monotonic()
    port, proc, log = prometheus(f"127.0.0.1:{forwarder}")

    def acked() -> bool:
        query = 'cosmobac_sink_rows_acked_total{job="cosmobac", sink="archive"}'
        [series] = api(port, "query", query=query)["data"]["result"]
        return float(series["value"][1]) == STORED_ROWS

    wait_for("Prometheus sees the rows the forwarder acknowledged", acked, proc, log)
    [up] = api(port, "query", query='up{job="cosmobac"}')["data"]["result"]
    assert up["metric"]["instance"] == f"127.0.0.1:{forwarder}" and up["value"][1] == "1"

    def rules_evaluated() -> list[dict] | None:
        groups = api(port, "rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None

    rules = wait_for("the example rules are loaded and evaluated", rules_evaluated, proc, log)
    assert sorted(r["name"] for r in rules) == sorted(alert_names())
    assert all(r["type"] == "alerting" for r in rules)
    firing = [a for a in api(port, "alerts")["data"]["alerts"] if a["state"] == "firing"]
    assert firing == []  # a healthy forwarder: nothing fires

    # every dashboard query is PromQL this Prometheus accepts, with Grafana's variables filled in
    filled = {"$__rate_interval": "1m", "$instance": ".*", "$sink": ".*"}
    for query in dashboard_queries():
        for variable, value in filled.items():
            query = query.replace(variable, value)
        if query.startswith("label_values("):
            metric = query[len("label_values(") : query.rindex(",")]
            assert api(port, "series", **{"match[]": metric})["status"] == "success"
        else:
            answer = api(port, "query", query=query)
            assert answer["status"] == "success", (query, answer)
    series = api(port, "query", query='cosmobac_sink_write_seconds_count{sink="archive"}')
    assert float(series["data"]["result"][0]["value"][1]) == -(-STORED_ROWS // 50)
    print(f"prometheus test: {time.monotonic() - began:.1f} s after the forwarder was up")
