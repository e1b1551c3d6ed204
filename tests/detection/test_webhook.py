"""The ``webhook`` sink against a real HTTP server on loopback (``http.server`` in a thread)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from cosmobac.batch import Batch
from cosmobac.config import RunConfig
from cosmobac.detectors import ZScore
from cosmobac.errors import SinkError
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.plugins import Plugins
from cosmobac.sinks.webhook import WebhookSink
from cosmobac.testing import MemoryStore
from webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def rows(detected, scores=None):
    n = len(detected)
    return Batch.from_columns(
        timestamp=1_767_225_600_000 + 1000 * np.arange(n),
        sensor_id=np.full(n, "london-001", dtype=object),
        temperature=np.where(np.arange(n) == 1, np.nan, 20.0),
        detected=np.array(detected, dtype=bool),
        anomaly_score=np.array(
            scores if scores is not None else [0.9 if d else 0.1 for d in detected]
        ),
    )


def sink(url, **kwargs):
    return WebhookSink(url=url, **kwargs)


def test_posts_only_anomalies_as_json_documents(receiver):
    out = sink(receiver.url, headers={"Authorization": "Bearer t"})
    assert out.write(rows([0, 1, 0, 1])) is None
    out.close()
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert (post["source"], post["kind"], post["count"]) == ("cosmobac", "anomalies", 2)
    docs = post["documents"]
    assert [d["id"] for d in docs] == [
        "london-001@2026-01-01T00:00:01.000Z",
        "london-001@2026-01-01T00:00:03.000Z",
    ]
    assert "temperature" not in docs[0]  # missing stays missing: left out, never 0.0
    assert receiver.headers[0]["Authorization"] == "Bearer t"
    assert receiver.headers[0]["content-type"] == "application/json"


def test_nothing_to_alert_sends_nothing(receiver):
    assert sink(receiver.url).write(rows([0, 0, 0])) is None
    assert receiver.posts == []


def test_include_all_sends_anomalies_first_most_anomalous_first(receiver):
    out = sink(receiver.url, include="all", max_rows=2)
    out.write(rows([0, 1, 0, 1, 1], scores=[0.1, 0.6, 0.2, 0.99, 0.7]))
    kinds = [p["kind"] for p in receiver.posts]
    assert kinds == ["anomalies", "anomalies", "readings"]
    first = [d["id"][-13:-5] for p in receiver.posts for d in p["documents"]]
    assert first == ["00:00:03", "00:00:04", "00:00:01", "00:00:00", "00:00:02"]


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_a_retryable_status_fails_the_write_transiently_after_one_request(receiver, status):
    receiver.script = [(status, {"Retry-After": "7"})]
    out = sink(receiver.url)
    with pytest.raises(SinkError, match=f"HTTP {status}") as info:
        out.write(rows([1]))
    assert info.value.transient and out.requests == 1 and receiver.posts == []
    assert "Retry-After: 7" in str(info.value)  # quoted; the forwarder's backoff sets the wait


def test_the_forwarder_retries_with_its_backoff_and_nothing_is_nested(receiver):
    receiver.script = [(503, {}), (429, {}), (500, {})]
    store = MemoryStore()
    store.append(rows([0, 1, 0, 1]))
    out = sink(receiver.url)
    report = Pipeline(
        store=store,
        lanes=[Lane("hook", out, [])],
        run=RunConfig(backoff=0.001, max_backoff=0.01, max_attempts=5),
    ).forward()
    assert report.ok and report.lanes[0].acked == 4 and report.lanes[0].failures == 3
    assert out.requests == 4 and len(receiver.posts) == 1  # one request per forwarder attempt


def test_unreachable_server_is_transient():
    free = Receiver()
    url = free.url
    free.close()
    with pytest.raises(SinkError) as info:
        sink(url, connect_timeout=1, read_timeout=1).write(rows([1]))
    assert info.value.transient
    assert "/alerts" not in str(info.value)


def test_retries_is_accepted_but_ignored_with_one_warning(receiver, caplog, monkeypatch):
    import cosmobac.sinks.webhook as module

    monkeypatch.setattr(module, "_warned_retries", False)
    receiver.script = [(503, {})]
    with caplog.at_level("WARNING", logger="cosmobac.sinks.webhook"):
        out = sink(receiver.url, retries=4, backoff="1s", max_backoff="5s")
        sink(receiver.url, retries=2)
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "[run] backoff" in warnings[0]
    with pytest.raises(SinkError):
        out.write(rows([1]))
    assert out.requests == 1


def test_the_url_path_is_never_shown(receiver, caplog):
    secret = receiver.url + "/T000/B000/XXXXsecretXXXX?sig=abc"
    receiver.script = [(401, {})]
    out = sink(secret)
    assert "secret" not in repr(out)
    with caplog.at_level("DEBUG"), pytest.raises(SinkError) as info:
        out.write(rows([1]))
    assert "secret" not in str(info.value) and "127.0.0.1" in str(info.value)
    assert not [r for r in caplog.records if "secret" in r.getMessage()]
    with pytest.raises(ValueError) as bad:
        WebhookSink(url="ftp://host/T000/secret")
    assert "secret" not in str(bad.value)


def test_configuration_errors_stop_the_sink(receiver):
    receiver.script = [(401, {})]
    with pytest.raises(SinkError, match="401") as info:
        sink(receiver.url).write(rows([1]))
    assert not info.value.transient


def test_refused_documents_are_rejected_with_the_reason(receiver):
    receiver.script = [(422, {})]
    result = sink(receiver.url, include="all").write(rows([1, 0]))
    assert result is not None and result.retry == ()
    assert result.rejected == {0: "webhook refused the documents: HTTP 422: status 422"}
    assert receiver.posts[0]["kind"] == "readings"


def test_after_the_anomalies_went_out_only_the_rest_is_retried(receiver):
    receiver.script = [(200, {}), (503, {})]
    result = sink(receiver.url, include="all").write(rows([0, 1, 0]))
    assert result is not None and sorted(result.retry) == [0, 2]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": 5}, "url"),
        ({"url": "http://x", "include": "some"}, "include"),
        ({"url": "http://x", "max_rows": 0}, "max_rows"),
        ({"url": "http://x", "retries": -1}, "retries"),
        ({"url": "http://x", "connect_timeout": "0s"}, "connect_timeout"),
        ({"url": "http://x", "read_timeout": "soon"}, "read_timeout"),
        ({"url": "http://x", "headers": {"a": 1}}, "headers"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises((TypeError, ValueError), match=key):
        WebhookSink(**kwargs)


def test_register_sinks_registers_webhook():
    component = Plugins(entry_points=False).get("sink", "webhook")
    assert component.factory is WebhookSink
    assert set(component.accepted_keys() or []) >= {"url", "include", "retries", "read_timeout"}


def test_alerts_from_a_pipeline_with_a_detector(receiver):
    values = np.random.default_rng(0).normal(20, 1, 300)
    values[200] = 60.0
    store = MemoryStore()
    store.append(
        Batch.from_columns(
            timestamp=1000 * np.arange(300),
            sensor_id=np.full(300, "s", dtype=object),
            temperature=values,
        )
    )
    out = sink(receiver.url)
    report = Pipeline(
        store=store,
        lanes=[Lane("alerts", out, [ZScore(columns=["temperature"])])],
        run=RunConfig(batch_size=100),
    ).forward()
    assert report.ok and report.lanes[0].acked == 300
    docs = [d for p in receiver.posts for d in p["documents"]]
    assert [d["timestamp"] for d in docs] == ["1970-01-01T00:03:20.000Z"]
    assert docs[0]["detector"] == "zscore" and docs[0]["anomaly_score"] > 0.5
