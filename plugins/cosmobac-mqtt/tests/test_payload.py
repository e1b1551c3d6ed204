"""JSON payloads to readings and rejects (no broker)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmobac_mqtt.payload import PayloadMapping, epoch_ms

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def parse(mapping: PayloadMapping, *messages: tuple[str, Any]):
    """Decode and map messages as the sensor does: (batch, rejects)."""
    items, rejects = [], []
    for topic, payload in messages:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        objects, bad = mapping.decode(topic, raw)
        rejects += bad
        items += [(topic, o) for o in objects]
    batch, more = mapping.to_batch(items)
    return batch, rejects + more


def test_an_object_with_core_fields():
    payload = {"sensor_id": "s-1", "timestamp": T0, "temperature": 21.5, "city": "Lisbon",
               "humidity": None, "anomaly_flag": "yes", "firmware": "x"}  # fmt: skip
    batch, rejects = parse(PayloadMapping(), ("site/a", payload))
    assert rejects == []
    assert batch["sensor_id"].tolist() == ["s-1"]
    assert batch["timestamp"].tolist() == [T0]
    assert batch["temperature"].tolist() == [21.5]
    assert math.isnan(batch["humidity"][0])
    assert batch["city"].tolist() == ["Lisbon"]
    assert batch["anomaly_flag"].tolist() == [True]
    assert "firmware" not in batch  # not a core field, not mapped, keep_extra off


def test_an_array_of_objects_keeps_its_order_and_rejects_only_bad_items():
    payload = [
        {"sensor_id": "a", "timestamp": T0, "voltage": 3.3},
        7,
        {"sensor_id": "b", "timestamp": T0 + 1, "voltage": "3.1"},
        {"sensor_id": "c", "timestamp": T0 + 2, "voltage": "high"},
    ]
    batch, rejects = parse(PayloadMapping(), ("x/y", payload))
    assert batch["sensor_id"].tolist() == ["a", "b"]
    assert batch["voltage"].tolist() == [3.3, 3.1]
    assert [(r.origin, r.reason) for r in rejects] == [
        ("topic x/y", "array item 1 is not a JSON object (int)"),
        ("topic x/y", 'voltage must be a number, got "high"'),
    ]
    assert json.loads(rejects[1].raw)["sensor_id"] == "c"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json {", "payload is not JSON"),
        (b"\xff\xfe\x00garbage", "payload is not JSON"),
        (b"42", "payload must be a JSON object or an array of objects, got int"),
        ({"timestamp": T0}, "no sensor_id"),
        ({"sensor_id": "s"}, "no timestamp"),
        ({"sensor_id": "s", "timestamp": "2026-01-01T00:00:00"}, "has no time zone"),
        ({"sensor_id": "s", "timestamp": "yesterday"}, "is not ISO-8601"),
        ({"sensor_id": "s", "timestamp": True}, "timestamp must be a number"),
        ({"sensor_id": ["s"], "timestamp": T0}, "sensor_id must be text"),
        ({"sensor_id": " ", "timestamp": T0}, "sensor_id is empty"),
        ({"sensor_id": "s", "timestamp": T0, "temperature": True}, "temperature must be a number"),
        ({"sensor_id": "s", "timestamp": T0, "city": {"a": 1}}, "city must be text"),
        ({"sensor_id": "s", "timestamp": T0, "anomaly_flag": "maybe"}, "anomaly_flag must be"),
        ({"sensor_id": "s", "timestamp": 10**30, "temperature": 1}, "out of range"),
    ],
)
def test_malformed_payloads_become_rejects_naming_the_topic(payload, reason):
    batch, rejects = parse(PayloadMapping(), ("plant/line-2", payload))
    assert len(batch) == 0
    assert len(rejects) == 1
    assert rejects[0].origin == "topic plant/line-2"
    assert reason in rejects[0].reason
    assert rejects[0].raw  # the input is kept


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (T0, "ms", T0),
        (T0 // 1000, "s", T0),
        (T0 / 1000 + 0.25, "s", T0 + 250),
        (T0 * 1000 + 999, "us", T0),
        (T0 * 1_000_000, "ns", T0),
        (T0 // 1000, "auto", T0),
        (T0 / 1000 + 0.5, "auto", T0 + 500),
        (T0, "auto", T0),
        (T0 * 1000, "auto", T0),
        (T0 * 1_000_000, "auto", T0),
        ("2026-01-01T00:00:00Z", "s", T0),
        ("2026-01-01T01:00:00.5+01:00", "ms", T0 + 500),
        (str(T0), "ms", T0),
        ("1767225600.5", "s", T0 + 500),
    ],
)
def test_timestamps_by_unit(value, unit, expected):
    assert epoch_ms(value, unit) == expected


def test_fields_rename_and_keep_their_targets():
    mapping = PayloadMapping(
        fields={"id": "sensor_id", "ts": "timestamp", "t": "temperature", "rssi": "signal"},
        timestamp_unit="s",
    )
    batch, rejects = parse(mapping, ("a", {"id": 17, "ts": T0 // 1000, "t": 20, "rssi": -70,
                                           "other": 1}))  # fmt: skip
    assert rejects == []
    assert batch["sensor_id"].tolist() == ["17"]
    assert batch["timestamp"].tolist() == [T0]
    assert batch["temperature"].tolist() == [20.0]
    assert batch["signal"].tolist() == [-70.0]
    assert "other" not in batch


def test_keep_extra_keeps_scalar_fields():
    mapping = PayloadMapping(keep_extra=True)
    batch, _ = parse(
        mapping,
        ("a", [{"sensor_id": "s", "timestamp": T0, "rssi": -70, "ok": True, "tag": "x",
                "deep": {"a": [1]}, "seq": 5, "bad name": 1},
               {"sensor_id": "s", "timestamp": T0 + 1}]),
    )  # fmt: skip
    assert batch["rssi"].tolist()[0] == -70.0 and math.isnan(batch["rssi"][1])
    assert batch["ok"].tolist() == [True, False]
    assert batch["tag"].tolist() == ["x", None]
    assert batch["deep"].tolist() == ['{"a": [1]}', None]
    assert "seq" not in batch and "bad name" not in batch


@pytest.mark.parametrize(
    ("setting", "topic", "expected"),
    [(True, "site/dev-9", "dev-9"), ("yes", "site/dev-9", "dev-9"), (1, "site/dev-9/up", "dev-9"),
     (-2, "a/b/dev-3/up", "dev-3"), ("0", "dev-1/x", "dev-1"), ("-1", "a/dev-2", "dev-2")],
)  # fmt: skip
def test_sensor_id_from_topic(setting, topic, expected):
    mapping = PayloadMapping(sensor_id_from_topic=setting)
    batch, rejects = parse(mapping, (topic, {"sensor_id": "ignored", "timestamp": T0}))
    assert rejects == []
    assert batch["sensor_id"].tolist() == [expected]


def test_sensor_id_from_a_missing_topic_level_is_a_reject():
    batch, rejects = parse(PayloadMapping(sensor_id_from_topic=5), ("a/b", {"timestamp": T0}))
    assert len(batch) == 0
    assert "topic has no level 5" in rejects[0].reason


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"timestamp_unit": "sec"}, "timestamp_unit must be one of"),
        ({"fields": {"a": 1}}, "fields must be a table"),
        ({"fields": {"a": "temperature", "b": "temperature"}}, "several payload fields map to"),
        ({"fields": {"a": "seq"}}, "names no usable field"),
        ({"sensor_id_from_topic": "maybe"}, "sensor_id_from_topic must be an integer"),
        ({"keep_extra": "perhaps"}, "keep_extra must be true or false"),
    ],
)
def test_bad_payload_keys_name_the_key(keys, message):
    with pytest.raises((TypeError, ValueError), match=message):
        PayloadMapping(**keys)


readings = st.lists(
    st.fixed_dictionaries(
        {
            "sensor_id": st.text(min_size=1, max_size=12).filter(str.strip),
            "timestamp": st.integers(min_value=-(2**50), max_value=2**50),
            "temperature": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "city": st.none() | st.text(max_size=8),
        }
    ),
    max_size=20,
)


@given(readings, st.booleans())
def test_json_readings_round_trip(objects, as_array):
    mapping = PayloadMapping()
    messages = [("t", objects)] if as_array else [("t", o) for o in objects]
    batch, rejects = parse(mapping, *messages)
    assert rejects == []
    assert len(batch) == len(objects)
    if objects:
        assert batch["sensor_id"].tolist() == [o["sensor_id"] for o in objects]
        assert batch["timestamp"].tolist() == [o["timestamp"] for o in objects]
        expected = np.array([np.nan if o["temperature"] is None else o["temperature"]
                             for o in objects])  # fmt: skip
        assert np.array_equal(batch["temperature"], expected, equal_nan=True)
        assert batch["city"].tolist() == [o["city"] for o in objects]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
objects_st = st.dictionaries(
    st.sampled_from(["sensor_id", "timestamp", "temperature", "city", "anomaly_flag", "x"]),
    json_values,
)


@given(st.lists(objects_st, max_size=8))
def test_any_json_objects_become_readings_or_rejects_never_an_error(objects):
    batch, rejects = parse(PayloadMapping(timestamp_unit="auto"), ("any/topic", objects))
    assert len(batch) + len(rejects) == len(objects)
    assert all(r.origin == "topic any/topic" for r in rejects)


@given(st.binary(max_size=64))
def test_any_bytes_are_readings_or_rejects(raw):
    batch, rejects = parse(PayloadMapping(), ("b", raw))
    assert len(batch) + len(rejects) >= 1 or raw.strip() in (b"[]",) or len(batch) == 0
