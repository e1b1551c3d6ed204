"""The ``cosmos`` sink without a server: configuration, secrets, planning, error sorting, AIMD."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac.config import parse_config
from cosmobac.documents import document_ids
from cosmobac.errors import ConfigError
from cosmobac.plugins import Plugins
from cosmobac_cosmos import CosmosSink
from cosmobac_cosmos._errors import Action, Redactor, classify, retry_after_seconds
from cosmobac_cosmos.batching import Work, plan_requests
from cosmobac_cosmos.concurrency import Limiter
from cosmobac_cosmos.emulator import LOCAL_KEY
from cosmobac_cosmos.limits import MAX_BATCH_BYTES, MAX_DOCUMENT_BYTES
from cosmobac_cosmos.sink import _Outcome
from cosmobac_cosmos.tools import Filters

SECRET = "c2VjcmV0LWFjY291bnQta2V5LXRoYXQtbXVzdC1uZXZlci1sZWFr"  # base64, like a real key
BASE = {"endpoint": "https://acct.documents.azure.com:443/", "database": "d", "container": "c"}


def plan(sink: CosmosSink, batch: Batch) -> tuple[list[Work], dict[int, str]]:
    """The requests ``sink`` would make for ``batch``, and the rows it would refuse."""
    return plan_requests(batch, sink.partition_key, sink.max_batch_operations)


def sink(**options):
    return CosmosSink(**{**BASE, "key": SECRET, **options})


def readings(n: int, sensors: int = 3, **extra) -> Batch:
    return Batch.from_columns(
        timestamp=np.arange(n, dtype=np.int64) * 1000,
        sensor_id=[f"s{i % sensors}" for i in range(n)],
        city=["Berlin" if i % 2 else "Tokyo" for i in range(n)],
        temperature=np.linspace(0, 1, n),
        **extra,
    )


def test_register_sinks_cosmos_comes_from_its_entry_point_with_exact_keys():
    component = Plugins().get("sink", "cosmos")
    assert component.distribution == "cosmobac-cosmos"
    keys = component.accepted_keys()
    assert keys is not None and {"endpoint", "key", "credential", "partition_key"} <= set(keys)
    assert not any(k.startswith("_") for k in keys)


def test_unknown_key_is_refused_by_the_config_layer_naming_it():
    data = {
        "store": {"plugin": "sqlite", "path": "x.db"},
        "sinks": [{"plugin": "cosmos", **BASE, "key": SECRET, "conainer": "typo"}],
    }
    with pytest.raises(ConfigError, match="unknown key 'conainer'"):
        parse_config(data, source="p.toml")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"endpoint": "ftp://x"}, "endpoint"),
        ({"endpoint": "https://user:pw@host/"}, "endpoint"),
        ({"database": "a/b"}, "database"),
        ({"container": ""}, "container"),
        ({"partition_key": "sensor_id"}, "partition_key"),
        ({"partition_key": ["/a", "/b", "/c", "/d"]}, "partition_key"),
        ({"partition_key": 3}, "partition_key"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_batch_operations": 101}, "max_batch_operations"),
        ({"read_timeout": "soon"}, "read_timeout"),
        ({"write_timeout": 0}, "write_timeout"),
        ({"throughput": 100, "create_if_missing": True}, "throughput"),
        ({"throughput": 400}, "create_if_missing"),
        ({"default_ttl": 0, "create_if_missing": True}, "default_ttl"),
        ({"verify_tls": "perhaps"}, "verify_tls"),
        ({"credential": "azurecli"}, "credential"),
        ({"tls_ca_file": "ca.pem", "verify_tls": False}, "tls_ca_file"),
    ],
)
def test_bad_values_name_the_key(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        sink(**options)


def test_key_or_credential_exactly_one():
    with pytest.raises(ValueError, match="`key`"):
        CosmosSink(**BASE)
    with pytest.raises(ValueError, match="not both"):
        CosmosSink(**BASE, key=SECRET, credential="default")
    assert CosmosSink(**BASE, credential="default").key is None


def test_a_key_that_is_not_base64_is_refused_without_showing_it():
    not_a_key = "this is not base64 at all!!"
    with pytest.raises(ValueError) as info:
        sink(key=not_a_key)
    assert "key" in str(info.value) and not_a_key not in str(info.value)


def test_config_error_for_a_bad_key_does_not_show_it():
    data = {
        "store": {"plugin": "sqlite", "path": "x.db"},
        "sinks": [{"plugin": "cosmos", **BASE, "key": "not-base64-$$$-secret"}],
    }
    config = parse_config(data, source="p.toml")
    with pytest.raises(ConfigError) as info:
        config.sinks[0].build()
    assert "not-base64-$$$-secret" not in str(info.value)


def test_repr_and_logs_never_show_the_key(caplog):
    s = sink()
    assert SECRET not in repr(s) and "key" not in repr(s).split("endpoint")[0]
    assert SECRET not in str(s.__dict__ if hasattr(s, "__dict__") else "")
    caplog.set_level(logging.DEBUG)
    s.close()
    assert SECRET not in caplog.text


def test_credential_objects_are_shown_by_type_only():
    class Token:
        secret = SECRET

        def get_token(self, *scopes, **kw):  # pragma: no cover - never called here
            raise AssertionError

    s = CosmosSink(**BASE, credential=Token())
    assert "<Token>" in repr(s) and SECRET not in repr(s)


def test_redactor_removes_keys_and_authorization_signatures():
    redact = Redactor()
    redact.add(SECRET)
    text = (
        f"bad key {SECRET} header type=master&ver=1.0&sig=AbC%2Fdef== and "
        f"type%3Daad%26ver%3D1.0%26sig%3Deyjwt.token"
    )
    out = redact(text)
    assert SECRET not in out and "AbC%2Fdef" not in out and "eyjwt" not in out
    assert out.count("***") == 3


def test_partition_key_default_and_hierarchical():
    assert sink().partition_key == ("/sensor_id",)
    assert sink(partition_key=["/city", "/sensor_id"]).partition_key == ("/city", "/sensor_id")


def test_timeouts_take_durations():
    s = sink(read_timeout="1m", connection_timeout=2.5, write_timeout="90s")
    assert (s.read_timeout, s.connection_timeout, s.write_timeout) == (60.0, 2.5, 90.0)


def test_client_options_set_timeouts_and_verify_tls_even_on_loopback():
    options = CosmosSink(
        endpoint="https://127.0.0.1:8081/", database="d", container="c", key=LOCAL_KEY
    ).client_options()
    assert options["connection_timeout"] == 5.0 and options["read_timeout"] == 5.0
    assert options["timeout"] == 5.0  # absolute: ends the SDK's health-check retries
    assert options["ssl_config"].SSLCaCerts is True  # the SDK would skip it for localhost
    assert options["enable_endpoint_discovery"] is False
    off = sink(verify_tls=False).client_options()
    assert off["connection_verify"] is False and "ssl_config" not in off
    assert sink().client_options()["enable_endpoint_discovery"] is True
    assert sink(tls_ca_file="ca.pem").client_options()["ssl_config"].SSLCaCerts == "ca.pem"


# -- planning ------------------------------------------------------------------------------------
def test_rows_are_grouped_by_partition_key_in_batches_of_at_most_100():
    s = sink()
    batch = readings(1000, sensors=3)
    work, rejected = plan(s, batch)
    assert not rejected
    assert all(len(w.positions) <= 100 for w in work)
    for w in work:
        assert {batch["sensor_id"][p] for p in w.positions} == {w.partition_key}
    assert sorted(p for w in work for p in w.positions) == list(range(1000))
    assert len(work) == 3 * 4  # 334/333/333 rows per sensor: 4 batches each


def test_hierarchical_keys_group_by_every_level():
    s = sink(partition_key=["/city", "/sensor_id"])
    batch = readings(60, sensors=3)
    work, _ = plan(s, batch)
    for w in work:
        cities = {batch["city"][p] for p in w.positions}
        sensors = {batch["sensor_id"][p] for p in w.positions}
        assert [*cities, *sensors] == w.partition_key
    assert len(work) == 6


def test_batches_stay_under_2_mb():
    s = sink()
    big = ["x" * 60_000] * 100  # 100 documents of ~360 kB (bound: 6 bytes per character)
    work, rejected = plan(s, readings(100, sensors=1, note=big))
    assert not rejected and len(work) > 1
    assert all(len(w.positions) * 6 * 60_000 < MAX_BATCH_BYTES for w in work)


def test_oversized_documents_are_rejected_with_the_reason_and_the_rest_kept():
    notes = np.full(10, None, dtype=object)
    notes[3] = "y" * (MAX_DOCUMENT_BYTES + 10)
    notes[5] = "é" * 400_000  # bound says maybe > 2 MB (escaping); exactly it is ~0.8 MB
    work, rejected = plan(sink(), readings(10, note=notes))
    assert list(rejected) == [3] and "2 MB" in rejected[3]
    assert sorted(p for w in work for p in w.positions) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_values_json_cannot_carry_are_rejected_and_a_missing_metric_is_left_out():
    extra = np.empty(4, dtype=object)
    extra[:] = [[1.0, 2.0], [float("inf")], None, {"a": float("nan")}]
    temps = np.array([1.0, np.nan, np.inf, 2.0])
    batch = readings(4).with_columns(temperature=temps, extra=extra)
    s = sink()
    work, rejected = plan(s, batch)
    assert sorted(rejected) == [1, 3] and "non-finite" in rejected[1]
    outcome = _Outcome()
    for w in work:
        s._build(batch, w, outcome)
    docs = {p: d for w in work for p, d in zip(w.positions, w.docs, strict=True)}
    assert "temperature" not in docs[2] and docs[0]["temperature"] == 1.0
    json.dumps(list(docs.values()), allow_nan=False)  # strict JSON


def test_bad_ids_and_oversized_partition_keys_are_rejected():
    batch = readings(4, sensors=4)
    ids = document_ids(batch).astype(object)
    ids[1] = "bad/id?#"
    ids[2] = "x" * 300
    sensors = batch["sensor_id"].copy()
    sensors[3] = "s" * 3000
    batch = batch.with_columns(id=ids, sensor_id=sensors)
    s = sink()
    work, rejected = plan(s, batch)
    assert set(rejected) == {3} and "partition key" in rejected[3]
    outcome = _Outcome()
    for w in work:
        s._build(batch, w, outcome)
    assert set(outcome.rejected) == {1, 2}
    assert "cannot contain" in outcome.rejected[1] and "255" in outcome.rejected[2]
    assert [p for w in work for p in w.positions] == [0]


def test_a_missing_partition_key_field_rejects_rows_with_the_reason():
    batch = readings(3).drop("city")
    _, rejected = plan(sink(partition_key="/city"), batch)
    assert len(rejected) == 3 and "'city'" in rejected[0]


# -- errors --------------------------------------------------------------------------------------
def http_error(status, sub_status=None, headers=None, message="boom"):
    from azure.cosmos.exceptions import CosmosHttpResponseError

    error = CosmosHttpResponseError(status_code=status, message=message)
    error.sub_status = sub_status
    error.headers = headers or {}
    return error


@pytest.mark.parametrize(
    ("status", "sub", "action"),
    [
        (429, 3200, Action.THROTTLED),
        (408, None, Action.TRANSIENT),
        (410, None, Action.TRANSIENT),
        (449, None, Action.TRANSIENT),
        (500, None, Action.TRANSIENT),
        (503, None, Action.TRANSIENT),
        (401, None, Action.PERMANENT),
        (403, None, Action.PERMANENT),
        (403, 3, Action.TRANSIENT),
        (404, None, Action.PERMANENT),
        (404, 1002, Action.TRANSIENT),
        (409, None, Action.CONFLICT),
        (400, None, Action.CONTENT),
        (413, None, Action.CONTENT),
    ],
)
def test_status_codes_are_sorted(status, sub, action):
    assert classify(http_error(status, sub)).action is action


def test_connection_failures_are_transient_and_tls_failures_permanent():
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    assert classify(ServiceResponseError("read timed out")).action is Action.TRANSIENT
    assert classify(ServiceRequestError("connection refused")).action is Action.TRANSIENT
    tls = ServiceRequestError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed certificate")
    failure = classify(tls)
    assert failure.action is Action.PERMANENT and "verify_tls" in failure.message


def test_retry_after_is_read_from_the_headers():
    assert retry_after_seconds({"x-ms-retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({}) is None
    failure = classify(http_error(429, 3200, {"x-ms-retry-after-ms": "40"}))
    assert failure.retry_after == 0.04


def test_a_401_message_names_the_setting_not_the_key():
    failure = classify(http_error(401, message=f"sig mismatch for {SECRET}"))
    assert "key" in failure.message and SECRET not in failure.message


# -- concurrency and backoff ---------------------------------------------------------------------
def test_aimd_adds_one_per_round_and_halves_on_congestion():
    limiter = Limiter(maximum=16, limit=4.0)
    now = 0.0
    for _ in range(40):
        now += 0.01
        limiter.observe(0.01, now, target=5.0)
    assert limiter.allowed >= 8
    before = limiter.limit
    assert limiter.congestion(now + 1.0)
    assert limiter.limit == pytest.approx(before / 2)
    assert not limiter.congestion(now + 1.0001)  # at most once per round trip
    for _ in range(20):
        now += 2.0
        limiter.congestion(now)
    assert limiter.allowed == 1


def test_aimd_slows_down_when_latency_grows():
    limiter = Limiter(maximum=16, limit=8.0)
    limiter.observe(0.01, 1.0, target=5.0)
    limiter.observe(0.2, 2.0, target=5.0)  # 20x the unloaded latency: queueing
    assert limiter.limit < 8.0
    limiter = Limiter(maximum=16, limit=8.0)
    limiter.observe(6.0, 1.0, target=5.0)  # slower than latency_target
    assert limiter.limit < 8.0


def test_backoff_is_full_jitter_and_capped():
    s = sink(retry_backoff=0.1, retry_backoff_max=2.0)
    s._rng = random.Random(3)
    delays = [s._backoff(attempt) for attempt in range(12) for _ in range(50)]
    assert min(delays) >= 0.0 and max(delays) <= 2.0
    assert max(s._backoff(0) for _ in range(200)) <= 0.1
    assert max(s._backoff(10) for _ in range(200)) > 1.0


# -- queries -------------------------------------------------------------------------------------
def test_filters_use_parameters_never_interpolation():
    hostile = "x' OR 1=1 --"
    where, params = Filters(
        city=hostile, sensor="s1", since="2026-01-01", until=1767229200000, anomalies=True
    ).where()
    assert hostile not in where
    assert where == (
        " WHERE c.city = @city AND c.sensor_id = @sensor AND c.timestamp >= @since"
        " AND c.timestamp < @until AND c.anomaly_flag = true"
    )
    values = {p["name"]: p["value"] for p in params}
    assert values["@city"] == hostile
    assert values["@since"] == "2026-01-01T00:00:00.000Z"
    assert values["@until"] == "2026-01-01T01:00:00.000Z"
    with pytest.raises(ValueError, match="zone"):
        Filters(since="2026-01-01T10:00:00").where()


def test_values_from_environment_variables_arrive_as_text_and_are_converted():
    s = sink(max_concurrency="4", verify_tls="false", create_if_missing="yes", throughput="400")
    assert (s.max_concurrency, s.verify_tls, s.create_if_missing, s.throughput) == (
        4,
        False,
        True,
        400,
    )
    with pytest.raises(ValueError, match="max_concurrency"):
        sink(max_concurrency="many")
