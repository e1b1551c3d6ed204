"""``[[alerts]]``: pipeline-health notifications posted to real loopback receivers, judged from real
pipelines (and, end to end, from a real ``cosmobac forward --follow`` process)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import numpy as np
import pytest

from cosmobac.batch import Batch
from cosmobac.cli import main
from cosmobac.config import AlertConfig, parse_config
from cosmobac.detectors import ZScore
from cosmobac.errors import ConfigError
from cosmobac.monitoring import HealthTracker
from cosmobac.monitoring.alerts import Alert, AlertChannel, AlertEvaluator, Node, render
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.sinks.webhook import WebhookSink
from cosmobac.testing import ListSink, MemoryStore
from pipeline_files import pipeline
from webhook_receiver import Receiver

pytestmark = pytest.mark.needs_plugins  # the sqlite store

SECRET = "T0001/B0002/s3cretTOKENxyz"
WAIT_S = 90.0
NODE = Node("edge-7", "pipeline.toml")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alerts_rx() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def readings(n: int, *, start_ms: int | None = None, spike: int | None = None) -> Batch:
    start = int(time.time() * 1000) if start_ms is None else start_ms
    values = np.random.default_rng(0).normal(20, 1, n)
    if spike is not None:
        values[spike] = 90.0
    return Batch.from_columns(
        timestamp=start + 1000 * np.arange(n),
        sensor_id=np.full(n, "london-001", dtype=object),
        temperature=values,
    )


def channel(url: str, tracker: HealthTracker, clock: Clock, **table) -> AlertChannel:
    cfg = AlertConfig.from_table({"url": url, "format": "json", **table})
    return AlertChannel(
        cfg, tracker, node=NODE, backoff=0.01, max_backoff=0.05, clock=clock, wall=time.time
    )


def forward_once(tracker: HealthTracker, store, sink, transforms=(), name: str = "hook"):
    pipeline = Pipeline(
        store=store,
        lanes=[Lane(name, sink, list(transforms))],
        run={"backoff": "1ms", "max_backoff": "2ms", "max_attempts": 2},
        observer=tracker,
    )
    return pipeline.forward()


# -- a sink that failed permanently --------------------------------------------------------------
def test_a_failed_sink_alerts_once_resends_after_the_interval_and_resolves(receiver, alerts_rx):
    receiver.status = 401  # the webhook *sink*'s endpoint refuses: the sink stops for good
    tracker = HealthTracker()
    store = MemoryStore()
    store.append(readings(5))
    report = forward_once(tracker, store, WebhookSink(url=receiver.url, include="all"))
    assert not report.ok and tracker.stopped()

    clock = Clock()
    alerts = channel(alerts_rx.url, tracker, clock, resend_interval="10m")
    alerts.evaluate()
    [post] = alerts_rx.posts
    assert (post["status"], post["alert"], post["sink"]) == ("firing", "sink_failed", "hook")
    assert post["reason"] == "sink failed permanently" and "401" in post["details"]["error"]
    assert post["node"] == {"host": "edge-7", "pipeline": "pipeline.toml"}

    clock.now += 60  # still firing, within resend_interval: nothing new
    alerts.evaluate()
    alerts.evaluate()
    assert len(alerts_rx.posts) == 1

    clock.now += 600  # resend_interval passed: sent again
    alerts.evaluate()
    assert [p["status"] for p in alerts_rx.posts] == ["firing", "firing"]
    assert alerts_rx.posts[1]["since"] == post["since"]

    receiver.status = 200  # fixed: a new pipeline's sink of that name writes again
    report = forward_once(tracker, store, WebhookSink(url=receiver.url, include="all"))
    assert report.ok and not tracker.stopped()
    clock.now += 1
    alerts.evaluate()
    assert [p["status"] for p in alerts_rx.posts] == ["firing", "firing", "resolved"]
    resolved = alerts_rx.posts[-1]
    assert (resolved["alert"], resolved["sink"]) == ("sink_failed", "hook")
    clock.now += 7200
    alerts.evaluate()
    assert len(alerts_rx.posts) == 3  # resolved once, nothing after


def test_the_evaluator_thread_sends_with_a_small_resend_interval(receiver, alerts_rx):
    receiver.status = 401
    tracker = HealthTracker()
    store = MemoryStore()
    store.append(readings(3))
    forward_once(tracker, store, WebhookSink(url=receiver.url, include="all"))
    assert tracker.stopped()
    cfg = AlertConfig.from_table(
        {"url": alerts_rx.url, "resend_interval": "0.3s", "evaluate_every": "0.05s"}
    )
    evaluator = AlertEvaluator([cfg], tracker, pipeline_file="/etc/edge/pipeline.toml")
    with evaluator.running():
        deadline = time.monotonic() + WAIT_S
        while len(alerts_rx.posts) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(alerts_rx.posts) >= 2  # first, then again after 0.3 s
    sent = evaluator.channels[0].sent
    assert {status for status, _ in sent} == {"firing"}
    assert {alert.key for _, alert in sent} == {("sink_failed", "hook", None)}
    text = alerts_rx.posts[0]["text"]  # slack, the default format
    assert "sink 'hook' failed permanently" in text and "pipeline.toml" in text
    count = len(alerts_rx.posts)
    time.sleep(0.5)
    assert len(alerts_rx.posts) == count  # stopped: nothing more, no resolved message at exit


# -- backlog too old ------------------------------------------------------------------------------
def test_a_backlog_older_than_max_backlog_age_alerts_then_resolves(tmp_path, alerts_rx):
    sink = ListSink(fail=10**6)  # always fails transiently: the rows stay pending
    tracker = HealthTracker()
    pipeline = Pipeline(
        store={"plugin": "sqlite", "path": str(tmp_path / "edge.db")},
        lanes=[Lane("archive", sink, [])],
        run={"backoff": "1ms", "max_backoff": "2ms", "max_attempts": 2},
        observer=tracker,
    )
    with pipeline:
        # readings two hours old, but the backlog's age counts from when they were stored
        pipeline.store.append(readings(4, start_ms=int(time.time() * 1000) - 2 * 3600_000))
        pipeline.forward()
        cfg = AlertConfig.from_table(
            {"url": alerts_rx.url, "format": "json", "conditions": ["backlog_age"]},
            monitoring=parse_config({"monitoring": {"max_backlog_age": "1s"}}).monitoring,
        )
        evaluator = AlertEvaluator(
            [cfg],
            tracker,
            pipeline_file="p.toml",
            store=lambda: pipeline.store,
            consumers=lambda: ["archive"],
        )
        evaluator.evaluate(evaluator.channels[0])
        assert alerts_rx.posts == []  # stored just now: not too old yet
        time.sleep(1.2)
        evaluator.evaluate(evaluator.channels[0])
        [post] = alerts_rx.posts
        assert (post["alert"], post["sink"], post["reason"]) == (
            "backlog_age",
            "archive",
            "backlog too old",
        )
        assert 1 < post["details"]["oldest_pending_age_s"] < 600
        assert post["details"]["max_backlog_age_s"] == 1
        sink.fail = 0
        assert pipeline.forward().ok
        evaluator.evaluate(evaluator.channels[0])
    assert [p["status"] for p in alerts_rx.posts] == ["firing", "resolved"]


def test_backlog_age_without_a_max_backlog_age_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match=r"\[\[alerts\]\] #1: conditions: .*max_backlog_age"):
        parse_config({"alerts": [{"url": "http://h", "conditions": ["backlog_age"]}]})
    # by default, backlog_age is watched only when a max_backlog_age is known
    [cfg] = parse_config({"alerts": [{"url": "http://h"}]}).alerts
    assert cfg.conditions == ("sink_failed", "anomaly_burst")
    [cfg] = parse_config(
        {"alerts": [{"url": "http://h"}], "monitoring": {"max_backlog_age": "15m"}}
    ).alerts
    assert cfg.conditions == ("sink_failed", "backlog_age", "anomaly_burst")
    assert cfg.max_backlog_age == 900


# -- anomaly bursts ------------------------------------------------------------------------------
def test_an_anomaly_burst_alerts_per_sink_and_detector_and_clears_after_the_window(alerts_rx):
    tracker = HealthTracker()
    store = MemoryStore()
    clock = Clock()
    alerts = channel(
        alerts_rx.url, tracker, clock, anomaly_burst=3, anomaly_window="5m", name="edge anomalies"
    )
    store.append(readings(40, start_ms=1_767_225_600_000))
    z = ZScore(columns=["temperature"], name="z", window=4, min_periods=2, threshold=0.5)
    assert forward_once(tracker, store, ListSink(), [z], name="archive").ok
    [flagged] = [s.anomalies["z"] for s in tracker.snapshot().sinks]
    assert flagged >= 3
    clock.now += 10
    alerts.evaluate()
    [post] = alerts_rx.posts
    assert (post["alert"], post["sink"], post["detector"]) == ("anomaly_burst", "archive", "z")
    assert post["reason"] == "anomaly burst" and post["name"] == "edge anomalies"
    assert post["details"] == {"flagged": flagged, "window_s": 300.0, "threshold": 3}
    clock.now += 10
    alerts.evaluate()
    assert len(alerts_rx.posts) == 1  # de-duplicated
    clock.now += 301  # no new anomaly within the window: resolved
    alerts.evaluate()
    clock.now += 10
    alerts.evaluate()
    assert [p["status"] for p in alerts_rx.posts] == ["firing", "resolved"]


def test_fewer_anomalies_than_the_burst_send_nothing(alerts_rx):
    tracker = HealthTracker()
    store = MemoryStore()
    store.append(readings(40, start_ms=1_767_225_600_000))
    z = ZScore(columns=["temperature"], name="z", window=4, min_periods=2, threshold=0.5)
    forward_once(tracker, store, ListSink(), [z], name="archive")
    alerts = channel(alerts_rx.url, tracker, Clock(), anomaly_burst=10_000)
    alerts.evaluate()
    assert alerts_rx.posts == []


# -- delivery ------------------------------------------------------------------------------------
def test_a_failing_endpoint_is_retried_with_backoff_and_delivered_once(alerts_rx):
    alerts_rx.script = [(503, {}), (503, {})]
    tracker = HealthTracker()
    forward_once(tracker, MemoryStore(), ListSink(fail=1, permanent=True))
    store = MemoryStore()
    store.append(readings(2))
    forward_once(tracker, store, ListSink(fail=1, permanent=True))
    alerts = channel(alerts_rx.url, tracker, Clock())
    alerts.evaluate()
    assert len(alerts_rx.posts) == 1 and alerts.poster.requests == 3
    alerts.evaluate()
    assert len(alerts_rx.posts) == 1 and alerts.poster.requests == 3  # nothing duplicated


def test_an_endpoint_still_failing_is_tried_again_at_the_next_evaluation(alerts_rx, caplog):
    alerts_rx.script = [(503, {})] * 3 + [(404, {})]
    tracker = HealthTracker()
    store = MemoryStore()
    store.append(readings(2))
    forward_once(tracker, store, ListSink(fail=1, permanent=True))
    alerts = channel(alerts_rx.url + "/" + SECRET, tracker, Clock())
    with caplog.at_level(logging.DEBUG):
        alerts.evaluate()  # 3 attempts, all 503
        assert alerts_rx.posts == [] and alerts.poster.requests == 3
        alerts.evaluate()  # 404: not retried within the evaluation
        assert alerts_rx.posts == [] and alerts.poster.requests == 4
        alerts.evaluate()
    assert len(alerts_rx.posts) == 1 and alerts.poster.requests == 5
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not send" in m and "503" in m for m in messages)
    assert any("could not send" in m and "404" in m for m in messages)
    assert not [m for m in messages if SECRET in m or "s3cret" in m]


# -- the URL is a secret -------------------------------------------------------------------------
def test_the_url_path_never_shows(alerts_rx, caplog, monkeypatch, tmp_path):
    url = f"{alerts_rx.url}/{SECRET}?sig=abc"
    cfg = AlertConfig.from_table({"url": url})
    assert SECRET not in repr(cfg) and "127.0.0.1" in repr(cfg)
    tracker = HealthTracker()
    with caplog.at_level(logging.DEBUG):
        alerts = AlertChannel(cfg, tracker, node=NODE)
        assert SECRET not in repr(alerts) and SECRET not in repr(alerts.poster)
        store = MemoryStore()
        store.append(readings(2))
        forward_once(tracker, store, ListSink(fail=1, permanent=True))
        alerts.evaluate()
        alerts.close()
    assert len(alerts_rx.posts) == 1
    assert caplog.records and not [r for r in caplog.records if SECRET in r.getMessage()]
    monkeypatch.setenv("ALERT_URL", f"ftp://hooks.example.com/{SECRET}")
    with pytest.raises(ConfigError) as info:
        parse_config({"alerts": [{"url": "${ALERT_URL}"}]}, source="p.toml")
    assert SECRET not in str(info.value) and "ftp://hooks.example.com" in str(info.value)
    monkeypatch.setenv("ALERT_URL", url)
    [expanded] = parse_config({"alerts": [{"url": "${ALERT_URL}"}]}).alerts
    assert expanded.url == url and SECRET not in repr(expanded)


# -- configuration -------------------------------------------------------------------------------
def pipeline_file(tmp_path, alerts: str, sinks: str | None = None, extra: str = "") -> str:
    sinks = sinks or f'[[sinks]]\nplugin = "jsonl"\nname = "archive"\npath = "{tmp_path}/o.jsonl"'
    return pipeline(tmp_path, sinks, extra + "\n" + alerts)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('url = "ftp://hooks.example.com/x"', "url"),
        ('url = "not a url"', "url"),
        ('url = "http://h"\nformat = "discord"', "format"),
        ('url = "http://h"\nconditions = ["sink_down"]', "conditions"),
        ('url = "http://h"\nconditions = ["backlog_age"]', "max_backlog_age"),
        ('url = "http://h"\nanomaly_burst = 0', "anomaly_burst"),
        ('url = "http://h"\nanomaly_window = "soon"', "anomaly_window"),
        ('url = "http://h"\nresend_interval = "0s"', "resend_interval"),
        ('url = "http://h"\nsend_resolved = "maybe"', "send_resolved"),
        ('url = "http://h"\nevaluate_every = "1ms"', "evaluate_every"),
        ('url = "http://h"\ntimeout = -1', "timeout"),
        ('url = "http://h"\nmax_backlog_age = "0s"', "max_backlog_age"),
        ('url = "http://h"\nname = 5', "name"),
        ('url = "http://h"\nresend = "1h"', "resend"),
        ('format = "json"', "url"),
    ],
)
def test_bad_alert_values_exit_2_naming_the_table_and_key(tmp_path, capsys, table, key):
    config = pipeline_file(tmp_path, f"[[alerts]]\n{table}")
    with pytest.raises(SystemExit) as exit_:
        main(["collect", config])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "pipeline.toml: [[alerts]] #1" in err and key in err


def test_alerts_must_be_an_array_of_tables(tmp_path, capsys):
    config = pipeline_file(tmp_path, '[alerts]\nurl = "http://h"')
    with pytest.raises(SystemExit) as exit_:
        main(["collect", config])
    assert exit_.value.code == 2 and "write [[alerts]]" in capsys.readouterr().err


def test_defaults_and_text_values():
    [cfg, other] = parse_config(
        {
            "alerts": [
                {"url": "https://hooks.slack.com/services/x"},
                {
                    "url": "http://h",
                    "format": "Teams",
                    "conditions": "sink_failed, anomaly_burst",
                    "anomaly_burst": "5",
                    "send_resolved": "no",
                    "evaluate_every": "2s",
                    "timeout": "3",
                },
            ]
        }
    ).alerts
    assert (cfg.format, cfg.resend_interval, cfg.send_resolved, cfg.evaluate_every) == (
        "slack",
        3600.0,
        True,
        10.0,
    )
    assert (cfg.anomaly_burst, cfg.anomaly_window, cfg.timeout) == (50, 300.0, 5.0)
    assert (other.format, other.conditions, other.anomaly_burst) == (
        "teams",
        ("sink_failed", "anomaly_burst"),
        5,
    )
    assert (other.send_resolved, other.evaluate_every, other.timeout) == (False, 2.0, 3.0)


# -- bodies --------------------------------------------------------------------------------------
ALERT = Alert(
    "sink_failed", "hook", "sink failed permanently", details={"error": "HTTP 401: no token"}
)


def test_slack_body():
    body = render("slack", "firing", ALERT, NODE, at=1_767_225_660, since=1_767_225_600)
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("[FIRING] cosmobac alert: sink 'hook' failed permanently")
    assert "edge-7, pipeline.toml" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["section", "context"]
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    resolved = render("slack", "resolved", ALERT, NODE, at=1_767_225_660, since=1_767_225_600)
    assert resolved["text"].startswith("[RESOLVED]")


def test_teams_body_is_an_adaptive_card_message():
    body = render("teams", "firing", ALERT, NODE, at=1_767_225_660, since=1_767_225_600, name="x")
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert "cosmobac alert x: sink 'hook' failed permanently" in card["body"][0]["text"]
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Sink"] == "hook" and facts["Node"] == "edge-7, pipeline.toml"
    json.dumps(body)


def test_json_body_fields():
    body = render("json", "resolved", ALERT, NODE, at=1_767_225_660, since=1_767_225_600)
    assert body == {
        "source": "cosmobac",
        "status": "resolved",
        "alert": "sink_failed",
        "name": None,
        "sink": "hook",
        "detector": None,
        "reason": "sink failed permanently",
        "details": {"error": "HTTP 401: no token"},
        "node": {"host": "edge-7", "pipeline": "pipeline.toml"},
        "time": "2026-01-01T00:01:00+00:00",
        "since": "2026-01-01T00:00:00+00:00",
        "text": body["text"],
    }
    assert body["text"].startswith("[RESOLVED] cosmobac alert resolved: sink 'hook'")


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_forward_follow_posts_an_alert_for_a_sink_that_failed(tmp_path, receiver, alerts_rx):
    receiver.status = 401
    sinks = (
        f'[[sinks]]\nplugin = "webhook"\nname = "hook"\nurl = "{receiver.url}"\n'
        f'[[sinks]]\nplugin = "jsonl"\nname = "archive"\npath = "{tmp_path}/o.jsonl"\n'
    )
    alerts = textwrap.dedent(
        """
        [[alerts]]
        url = "${ALERT_URL}"
        format = "json"
        name = "edge"
        conditions = ["sink_failed"]
        evaluate_every = "0.1s"
        """
    )
    config = pipeline_file(tmp_path, alerts, sinks=sinks)
    env = {**os.environ, "ALERT_URL": f"{alerts_rx.url}/{SECRET}"}
    collected = subprocess.run(
        [sys.executable, "-m", "cosmobac", "collect", config],
        capture_output=True,
        text=True,
        env=env,
    )
    assert collected.returncode == 0, collected.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "-v", "forward", config, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not alerts_rx.posts and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"forward ended ({proc.returncode}): {proc.stderr.read()}")
            time.sleep(0.1)
        time.sleep(0.5)  # evaluated a few more times: still one message
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    [post] = alerts_rx.posts
    assert (post["status"], post["alert"], post["sink"], post["name"]) == (
        "firing",
        "sink_failed",
        "hook",
        "edge",
    )
    assert "401" in post["details"]["error"] and post["node"]["pipeline"] == "pipeline.toml"
    assert "sent firing" in err  # -v logs each message sent
    assert SECRET not in out + err


@pytest.mark.slow
def test_forward_follow_alerts_on_a_backlog_too_old_in_slack_form(tmp_path, receiver, alerts_rx):
    receiver.status = 503  # transient: retried for ever, the rows stay pending
    sinks = f'[[sinks]]\nplugin = "webhook"\nname = "hook"\nurl = "{receiver.url}"\n'
    alerts = textwrap.dedent(
        f"""
        [[alerts]]
        url = "{alerts_rx.url}/{SECRET}"
        conditions = ["backlog_age"]
        evaluate_every = "0.1s"
        """
    )
    config = pipeline_file(
        tmp_path, alerts, sinks=sinks, extra='[monitoring]\nmax_backlog_age = "2s"\n'
    )
    subprocess.run([sys.executable, "-m", "cosmobac", "collect", config], check=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "forward", config, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not alerts_rx.posts and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"forward ended ({proc.returncode}): {proc.stderr.read()}")
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    # one alert; on a loaded machine a send whose answer came too late is sent again at the next
    # evaluation (alerts are delivered at least once, re-rendered with the time of sending), so
    # the same alert may arrive twice, never another one nor a resolved one
    post = alerts_rx.posts[0]
    texts = [p["text"] for p in alerts_rx.posts]
    assert all(t.startswith("[FIRING] cosmobac alert: sink 'hook': backlog too old") for t in texts)
    assert set(post) == {"text", "blocks"}
    assert "sink 'hook': backlog too old" in post["text"] and "limit 2 s" in post["text"]
    assert "pipeline.toml" in post["text"]
    assert SECRET not in out + err


def test_run_and_forward_start_the_alerts_and_collect_does_not(tmp_path, monkeypatch, alerts_rx):
    import contextlib

    from cosmobac.monitoring import alerts as module

    started: list[int] = []
    original = module.AlertEvaluator.running

    @contextlib.contextmanager
    def running(self):
        started.append(len(self.channels))
        with original(self) as evaluator:
            yield evaluator

    monkeypatch.setattr(module.AlertEvaluator, "running", running)
    config = pipeline_file(
        tmp_path,
        f'[[alerts]]\nurl = "{alerts_rx.url}"\nconditions = ["sink_failed"]\n'
        f'[[alerts]]\nurl = "{alerts_rx.url}"\nconditions = ["sink_failed"]',
    )
    for command, expected in (("collect", []), ("forward", [2]), ("run", [2, 2])):
        with contextlib.suppress(SystemExit):
            main([command, config, *(["--duration", "10m"] if command == "run" else [])])
        assert started == expected, command
    assert alerts_rx.posts == []  # no sink failed: nothing to say, and nothing sent at exit
