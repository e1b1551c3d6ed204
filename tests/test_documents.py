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


def test_documents_have_iso_z_timestamps_and_null_for_missing():
    batch = Batch.from_columns(
        timestamp=[1_767_225_600_123],
        sensor_id=["s-1"],
        temperature=[np.nan],
        humidity=[np.inf],
        pressure=[1013.25],
        seq=[7],
    )
    (doc,) = to_documents(batch)
    assert doc["id"] == "s-1@2026-01-01T00:00:00.123Z"
    assert doc["timestamp"] == "2026-01-01T00:00:00.123Z"
    assert doc["temperature"] is None and doc["humidity"] is None  # never 0.0
    assert doc["pressure"] == 1013.25
    assert "seq" not in doc  # the store's row number is not data
    json.dumps(doc, allow_nan=False)  # valid strict JSON


def test_empty_batch_gives_no_documents():
    assert list(to_documents(Batch.empty())) == []
