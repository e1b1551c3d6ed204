"""Detector state as text (:func:`cosmobac.detectors._series.encode_arrays`): exact to the bit,
large integer arrays (``context``'s memory) deflated, older undeflated text still read."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cosmobac.batch import Batch
from cosmobac.detectors import Context
from cosmobac.detectors._series import COMPRESS_ABOVE, decode_arrays, encode_arrays

DTYPES = st.sampled_from([np.int16, np.uint16, np.int64, np.float64, np.bool_])


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        DTYPES, st.tuples(st.integers(0, 3), st.integers(0, 40_000)), elements={"allow_nan": True}
    )
)
def test_round_trip_is_exact_small_or_large(array):
    back = decode_arrays(json.loads(json.dumps(encode_arrays({"a": array}))))["a"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()  # NaN payloads and signed zeros included
    assert back.flags.writeable


def test_large_integer_arrays_are_deflated_floats_and_small_ones_not():
    ring = np.repeat(np.arange(50, dtype=np.int16), 2000)  # a memory of slowly changing symbols
    spec = encode_arrays({"ring": ring})["ring"]
    assert ring.nbytes > COMPRESS_ABOVE and spec["codec"] == "zlib"
    assert len(spec["data"]) < ring.nbytes / 20
    floats = np.random.default_rng(0).normal(size=20_000)
    assert "codec" not in encode_arrays({"x": floats})["x"]
    assert "codec" not in encode_arrays({"small": ring[:100]})["small"]


def test_text_written_before_deflating_is_still_read():
    ring = np.arange(100_000, dtype=np.int16)
    old = {"dtype": "<i2", "shape": [100_000], "data": base64.b64encode(ring.tobytes()).decode()}
    assert decode_arrays({"ring": old})["ring"].tobytes() == ring.tobytes()
    with pytest.raises(ValueError, match="unknown codec 'lz4'"):
        decode_arrays({"ring": {**old, "codec": "lz4"}})


def test_a_fleets_context_checkpoint_is_small_and_restores_exactly():
    rng = np.random.default_rng(3)
    sensors, rows = 20, 2000
    t = np.tile(np.arange(rows), sensors)
    ids = np.repeat(np.array([f"s-{i}" for i in range(sensors)], dtype=object), t.size // sensors)
    values = np.sin(2 * np.pi * t / 288) * 5 + rng.normal(0, 0.3, t.size)
    order = np.argsort(t, kind="stable")
    batch = Batch.from_columns(timestamp=t * 1000, sensor_id=ids, value=values).select(order)
    first, rest = (
        batch.select(np.arange(len(batch)) < 30_000),
        batch.select(np.arange(len(batch)) >= 30_000),
    )
    whole = Context(columns=["value"])
    whole(first)
    state = whole.get_state()
    ring_bytes = sensors * (whole.memory + whole.orders - 1) * 2
    assert len(state) < ring_bytes / 4  # the memory of symbols, deflated
    restored = Context(columns=["value"])
    restored.set_state(state)
    a, b = whole(rest), restored(rest)
    assert a["context_score"].tobytes() == b["context_score"].tobytes()
