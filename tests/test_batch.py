from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmobac import Batch, Reading
from cosmobac.batch import to_epoch_ms
from cosmobac.schema import CORE_FIELDS


def small_batch() -> Batch:
    return Batch.from_columns(
        timestamp=[1000, 2000, 3000],
        sensor_id=["a", "b", "a"],
        city="Lisbon",
        temperature=[20.0, np.nan, 22.5],
    )


def test_len_columns_and_read_only():
    batch = small_batch()
    assert len(batch) == 3
    assert batch.columns == ("timestamp", "sensor_id", "city", "temperature")
    assert batch["timestamp"].dtype == np.int64
    assert batch["city"].tolist() == ["Lisbon"] * 3
    for name in batch.columns:
        assert not batch[name].flags.writeable
        with pytest.raises(ValueError):
            batch[name][0] = batch[name][1]


def test_source_arrays_are_copied_so_later_changes_do_not_leak_in():
    temps = np.array([1.0, 2.0])
    batch = Batch.from_columns(timestamp=[1, 2], sensor_id=["x", "y"], temperature=temps)
    temps[0] = 99.0
    assert batch["temperature"][0] == 1.0


def test_unknown_column_lookup_names_the_columns():
    with pytest.raises(KeyError, match="no column 'humidity'"):
        small_batch()["humidity"]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        Batch.from_columns(timestamp=[1, 2], sensor_id=["a"])


def test_timestamps_from_datetimes_text_and_datetime64():
    aware = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    batch = Batch.from_columns(timestamp=[aware, "2026-01-01T10:00:00.250Z"], sensor_id=["a", "a"])
    expected = int(dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)
    assert batch["timestamp"].tolist() == [expected, expected + 250]
    d64 = Batch.from_columns(
        timestamp=np.array(["2026-01-01T10:00:00"], dtype="datetime64[s]"), sensor_id=["a"]
    )
    assert d64["timestamp"].tolist() == [expected]


@pytest.mark.parametrize("bad", ["2026-01-01T10:00:00", dt.datetime(2026, 1, 1), "yesterday"])
def test_ambiguous_or_bad_timestamps_raise_naming_the_column(bad):
    with pytest.raises(ValueError, match="column 'timestamp'"):
        Batch.from_columns(timestamp=[bad], sensor_id=["a"])


def test_float_timestamps_are_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="epoch milliseconds"):
        Batch.from_columns(timestamp=[1.5e12], sensor_id=["a"])


def test_with_columns_adds_and_replaces_without_touching_the_original():
    batch = small_batch()
    more = batch.with_columns(score=[0.1, 0.2, 0.3], city="Porto")
    assert more["score"].tolist() == [0.1, 0.2, 0.3]
    assert more["city"].tolist() == ["Porto"] * 3
    assert batch["city"].tolist() == ["Lisbon"] * 3
    assert "score" not in batch
    with pytest.raises(ValueError, match="has 2 rows"):
        batch.with_columns(score=[1.0, 2.0])


def test_select_by_mask_positions_and_slice():
    batch = small_batch()
    assert batch.select(batch["sensor_id"] == "a")["timestamp"].tolist() == [1000, 3000]
    assert batch.select([2, 0])["timestamp"].tolist() == [3000, 1000]
    assert batch.select(slice(1, None))["timestamp"].tolist() == [2000, 3000]
    with pytest.raises(ValueError, match="mask has 2 entries"):
        batch.select(np.array([True, False]))


def test_concat_fills_missing_columns_with_missing_values():
    a = small_batch()
    b = Batch.from_columns(timestamp=[4000], sensor_id=["c"], score=[0.5], note=["x"])
    both = Batch.concat([a, b])
    assert len(both) == 4
    assert np.isnan(both["temperature"][3])
    assert both["city"].tolist() == ["Lisbon"] * 3 + [None]
    assert np.isnan(both["score"][:3]).all() and both["score"][3] == 0.5
    assert both["note"].tolist() == [None, None, None, "x"]
    assert Batch.concat([]).columns == ()
    assert Batch.concat([Batch.empty(), a]) is a


def test_records_round_trip_keeps_missing_as_nan_and_extras():
    batch = small_batch().with_columns(score=[1.0, 2.0, 3.0])
    records = batch.records()
    assert records[1].temperature != records[1].temperature  # NaN, never 0.0
    assert records[0].extra == {"score": 1.0}
    back = Batch.from_records(records)
    assert back.select(slice(None)).equals(back)
    assert back["temperature"][0] == 20.0 and np.isnan(back["temperature"][1])
    assert back["score"].tolist() == [1.0, 2.0, 3.0]


def test_reading_equality_treats_missing_as_equal_and_converts_time():
    a = Reading(timestamp="2026-01-01T00:00:00Z", sensor_id="s")
    b = Reading(timestamp=to_epoch_ms("2026-01-01T00:00:00+00:00"), sensor_id="s")
    assert a == b
    assert a.time == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_from_records_with_mappings_and_missing_keys():
    batch = Batch.from_records(
        [
            {"timestamp": 1, "sensor_id": "a", "temperature": 3.0, "level": 1},
            {"timestamp": 2, "sensor_id": "b", "level": None},
        ]
    )
    assert np.isnan(batch["temperature"][1])
    assert np.isnan(batch["level"][1]) and batch["level"][0] == 1.0


def test_sort_orders_rows_stably():
    batch = small_batch().sort("sensor_id", "timestamp")
    assert batch["sensor_id"].tolist() == ["a", "a", "b"]
    assert batch["timestamp"].tolist() == [1000, 3000, 2000]


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
rows = st.lists(
    st.tuples(
        st.integers(min_value=-(2**40), max_value=2**42),
        st.text(min_size=1, max_size=8),
        floats,
        st.booleans(),
    ),
    max_size=30,
)


@given(rows)
def test_from_columns_then_records_then_back_is_identity(data):
    batch = Batch.from_columns(
        timestamp=[r[0] for r in data],
        sensor_id=[r[1] for r in data],
        temperature=np.array([r[2] for r in data], dtype=float),
        anomaly_flag=[r[3] for r in data],
    )
    assert len(batch) == len(data)
    if not data:
        assert Batch.from_records([]).columns == ()  # no rows, no columns to infer
        return
    back = Batch.from_records(batch.records()).select(slice(None))
    for name in batch.columns:
        got, want = back[name], batch[name]
        if want.dtype.kind == "f":
            assert np.array_equal(got, want, equal_nan=True)
        else:
            assert got.tolist() == want.tolist()
    assert set(back.columns) == set(CORE_FIELDS)


@given(st.lists(rows, max_size=4))
def test_concat_length_is_the_sum_and_order_is_kept(parts):
    batches = [
        Batch.from_columns(timestamp=[r[0] for r in p], sensor_id=[r[1] for r in p]) for p in parts
    ]
    both = Batch.concat(batches)
    assert len(both) == sum(len(p) for p in parts)
    assert both.get("timestamp", np.empty(0)).tolist() == [r[0] for p in parts for r in p]
