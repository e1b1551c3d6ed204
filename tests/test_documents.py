from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cosmobac import Batch, document_id, to_documents
from cosmobac.documents import MAX_ID_LENGTH, document_ids

FORBIDDEN = set("/\\?#")
timestamps = st.integers(min_value=-(2**40), max_value=2**43)  # years ~1935..2248
sensor_ids = st.text(min_size=1, max_size=300)


@given(sensor_ids, timestamps)
def test_ids_obey_cosmos_rules(sensor, ts):
    doc_id = document_id(sensor, ts)
    assert len(doc_id) <= MAX_ID_LENGTH
    assert not FORBIDDEN & set(doc_id)
    assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in doc_id)


@given(sensor_ids, timestamps)
def test_ids_are_deterministic(sensor, ts):
    assert document_id(sensor, ts) == document_id(sensor, ts)


@given(st.tuples(sensor_ids, timestamps), st.tuples(sensor_ids, timestamps))
def test_distinct_readings_get_distinct_ids(a, b):
    if a != b:
        assert document_id(*a) != document_id(*b)


def test_encoding_keeps_near_identical_sensors_apart():
    ts = 1_767_225_600_000
    ids = {document_id(s, ts) for s in ["a/b", "a%2Fb", "a\\b", "a?b", "a#b", "a b"]}
    assert len(ids) == 6
    assert document_id("s-001", ts) == "s-001@2026-01-01T00:00:00.000Z"


def test_batch_ids_match_the_scalar_function():
    batch = Batch.from_columns(timestamp=[0, 5, 10**12], sensor_id=["x", "y/z", "x" * 300])
    assert document_ids(batch).tolist() == [
        document_id(s, t) for s, t in zip(["x", "y/z", "x" * 300], [0, 5, 10**12], strict=True)
    ]


def test_documents_have_iso_z_timestamps_and_leave_out_missing_core_fields():
    batch = Batch.from_columns(
        timestamp=[1_767_225_600_123],
        sensor_id=["s-1"],
        temperature=[np.nan],
        humidity=[np.inf],
        pressure=[1013.25],
        co2=[np.nan],
        seq=[7],
    )
    (doc,) = to_documents(batch)
    assert doc["id"] == "s-1@2026-01-01T00:00:00.123Z"
    assert doc["timestamp"] == "2026-01-01T00:00:00.123Z"
    assert "temperature" not in doc and "humidity" not in doc  # missing core: absent, never 0.0
    assert doc["co2"] is None  # a missing extra (declared by the sensor) is null
    assert doc["pressure"] == 1013.25
    assert "seq" not in doc  # the store's row number is not data
    json.dumps(doc, allow_nan=False)  # valid strict JSON


def test_empty_batch_gives_no_documents():
    assert list(to_documents(Batch.empty())) == []


def _mixed_store_batch() -> Batch:
    """What a store holding simulator rows and a user's rows returns: every core column."""
    return Batch.from_columns(
        timestamp=[1, 2, 3, 4],
        sensor_id=["sim-1", "mine", "sim-1", "mine"],
        city=["Paris", None, "Paris", None],
        temperature=[20.0, 21.5, np.nan, 22.0],
        humidity=[50.0, np.nan, 51.0, np.nan],
        latitude=[48.8, np.nan, 48.8, np.nan],
        model=["EnviroNode", None, "EnviroNode", None],
        anomaly_flag=[False, False, True, False],
        anomaly_type=[None, None, "spike", None],
        co2=[np.nan, 400.0, np.nan, 401.0],
        seq=[1, 2, 3, 4],
    )


def test_a_sensor_s_documents_carry_its_fields_not_the_simulator_s():
    docs = list(to_documents(_mixed_store_batch()))
    assert [sorted(d) for d in docs] == [
        sorted(
            [
                "id",
                "timestamp",
                "sensor_id",
                "city",
                "temperature",
                "humidity",
                "latitude",
                "model",
                "co2",
            ]
        ),
        sorted(["id", "timestamp", "sensor_id", "temperature", "co2"]),
        sorted(
            [
                "id",
                "timestamp",
                "sensor_id",
                "city",
                "humidity",
                "latitude",
                "model",
                "anomaly_flag",
                "anomaly_type",
                "co2",
            ]
        ),
        sorted(["id", "timestamp", "sensor_id", "temperature", "co2"]),
    ]
    assert docs[2]["anomaly_flag"] is True and docs[2]["anomaly_type"] == "spike"
    assert docs[1]["temperature"] == 21.5 and docs[1]["co2"] == 400.0
    assert docs[0]["co2"] is None


def test_documents_keep_id_first_and_batch_order_for_mostly_present_fields():
    docs = list(to_documents(_mixed_store_batch()))
    assert list(docs[0]) == [
        "id",
        "timestamp",
        "sensor_id",
        "city",
        "temperature",
        "humidity",
        "latitude",
        "model",
        "co2",
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.one_of(st.none(), st.sampled_from(["Oslo", "Lima"])),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_each_document_has_exactly_the_present_core_fields(rows):
    batch = Batch.from_columns(
        timestamp=list(range(len(rows))),
        sensor_id=[r[0] for r in rows],
        voltage=[np.nan if r[1] is None else r[1] for r in rows],
        city=[r[2] for r in rows],
        anomaly_flag=[r[3] for r in rows],
    )
    for (sensor, voltage, city, flag), doc in zip(rows, to_documents(batch), strict=True):
        assert doc["sensor_id"] == sensor and next(iter(doc)) == "id"
        has_voltage = voltage is not None and np.isfinite(voltage)
        assert ("voltage" in doc) == has_voltage
        if has_voltage:
            assert doc["voltage"] == voltage
        assert doc.get("city") == city and ("city" in doc) == (city is not None)
        assert doc.get("anomaly_flag", False) is flag and ("anomaly_flag" in doc) == flag
        json.dumps(doc, allow_nan=False)
