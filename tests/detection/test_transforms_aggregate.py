"""``aggregate``: tumbling windows per sensor, emitted once when closed, independent of batching,
with a documented policy for late rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from detection_support import fleet_rows, run
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.errors import ConfigError
from cosmobac.interfaces import StatefulTransform
from cosmobac.transforms.aggregate import Aggregate


def rows(items, **extra):
    """Rows from (sensor, timestamp ms, value) triples, in arrival order."""
    sensors, ts, values = zip(*items, strict=True) if items else ((), (), ())
    return Batch.from_columns(
        sensor_id=np.array(sensors, dtype=object),
        timestamp=np.array(ts, dtype=np.int64),
        temperature=np.array(values, dtype=np.float64),
        **extra,
    )


def test_windows_are_emitted_once_when_closed():
    agg = Aggregate(window="10s", columns=["temperature"])
    first = agg(rows([("a", 0, 1.0), ("a", 4000, 3.0), ("a", 9999, np.nan)]))
    assert len(first) == 0 and agg.open_windows == 1  # nothing has closed yet
    second = agg(rows([("a", 10_000, 7.0)]))  # a reading past the window's end closes it
    assert second.rows().__next__() == {
        "timestamp": 0,
        "sensor_id": "a",
        "city": None,
        "window_end": 10_000,
        "count": 3,
        "temperature_count": 2,
        "temperature_min": 1.0,
        "temperature_max": 3.0,
        "temperature_mean": 2.0,
        "anomaly_count": 0,
        "detected_count": 0,
        "late_rows": 0,
    }
    assert len(agg(rows([("a", 15_000, 1.0)]))) == 0  # the next window is still open


def test_missing_values_are_left_out_not_counted_as_zero():
    agg = Aggregate(window="10s", columns=["temperature"])
    out = agg(rows([("a", 0, np.nan), ("a", 1000, np.nan), ("a", 20_000, 1.0)]))
    assert out["count"][0] == 2 and out["temperature_count"][0] == 0
    assert math.isnan(out["temperature_mean"][0]) and math.isnan(out["temperature_min"][0])


def test_anomaly_and_detection_counts():
    batch = rows([("a", i * 1000, 1.0) for i in range(12)]).with_columns(
        anomaly_flag=np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool),
        detected=np.array([0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool),
    )
    out = Aggregate(window="10s", columns=["temperature"])(batch)
    assert (out["anomaly_count"][0], out["detected_count"][0]) == (2, 2)


def test_late_rows_are_counted_not_added():
    agg = Aggregate(window="10s", columns=["temperature"])
    agg(rows([("a", 1000, 1.0), ("a", 12_000, 2.0)]))  # closes [0, 10 s)
    out = agg(rows([("a", 5000, 100.0), ("a", 25_000, 3.0)]))  # 5 s is late
    assert out["timestamp"].tolist() == [10_000]  # [10 s, 20 s) closes
    assert out["late_rows"][0] == 1 and out["temperature_max"][0] == 2.0


def test_lateness_keeps_windows_open_for_stragglers():
    agg = Aggregate(window="10s", columns=["temperature"], lateness="5s")
    assert len(agg(rows([("a", 1000, 1.0), ("a", 12_000, 2.0)]))) == 0
    out = agg(rows([("a", 5000, 100.0), ("a", 16_000, 3.0)]))
    assert out["timestamp"].tolist() == [0]
    assert (out["count"][0], out["temperature_max"][0], out["late_rows"][0]) == (2, 100.0, 0)


def test_sensors_have_their_own_watermarks_and_output_is_ordered():
    agg = Aggregate(window="10s", columns=["temperature"])
    out = agg(
        rows(
            [
                ("b", 0, 1.0),
                ("a", 0, 2.0),
                ("b", 10_000, 1.0),
                ("c", 30_000, 1.0),
                ("a", 10_000, 1.0),
            ]
        )
    )
    assert list(zip(out["timestamp"].tolist(), out["sensor_id"].tolist(), strict=True)) == [
        (0, "a"),
        (0, "b"),
    ]


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="window"):
        Aggregate(window="0s")
    with pytest.raises(ValueError, match="window"):
        Aggregate(window="soon")
    with pytest.raises(ValueError, match="lateness"):
        Aggregate(lateness="later")
    with pytest.raises(TypeError, match="columns"):
        Aggregate(columns=[])


def test_state_from_other_settings_is_refused():
    agg = Aggregate(window="10s")
    agg(rows([("a", 0, 1.0)]))
    assert isinstance(agg, StatefulTransform)
    with pytest.raises(ConfigError, match="other settings"):
        Aggregate(window="20s").set_state(agg.get_state())


def test_fleet_windows_match_a_direct_computation():
    data = fleet_rows(1, 2, 10)
    out = run([Aggregate(window="1m")], data, [333, 1000, 1001])
    for row in out.rows():
        mine = data.select(
            (data["sensor_id"] == row["sensor_id"])
            & (data["timestamp"] >= row["timestamp"])
            & (data["timestamp"] < row["window_end"])
        )
        assert row["count"] == len(mine)
        assert row["anomaly_count"] == mine["anomaly_flag"].sum()
        values = mine["humidity"][~np.isnan(mine["humidity"])]
        assert row["humidity_count"] == len(values)
        if len(values):
            assert row["humidity_min"] == values.min()
            assert row["humidity_mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert row["city"] == mine["city"][0]


# -- properties -----------------------------------------------------------------------------------
def reference(items, window, lateness):
    """The documented policy, row by row: per sensor, a row is late when its window's end plus
    ``lateness`` is at or before the sensor's watermark when it arrives."""
    watermark: dict[str, int] = {}
    windows: dict[tuple[str, int], dict] = {}
    for sensor, ts, value in items:
        start = ts // window * window
        w = watermark.get(sensor)
        if w is not None and start + window + lateness <= w:
            key = (sensor, w // window * window)
            windows.setdefault(key, {"values": [], "count": 0, "late": 0})["late"] += 1
        else:
            entry = windows.setdefault((sensor, start), {"values": [], "count": 0, "late": 0})
            entry["count"] += 1
            if not math.isnan(value):
                entry["values"].append(value)
        watermark[sensor] = max(ts, w if w is not None else ts)
    closed = {
        key: entry
        for key, entry in windows.items()
        if key[1] + window + lateness <= watermark[key[0]]
    }
    return closed


items_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=60_000),
        st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(math.nan)),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(
    items=items_strategy,
    cuts=st.lists(st.integers(min_value=1, max_value=79), max_size=5),
    window=st.sampled_from([1000, 5000, 7000]),
    lateness=st.sampled_from([0, 2000]),
)
def test_windows_follow_the_policy_however_rows_are_batched(items, cuts, window, lateness):
    data = rows(items)
    agg = Aggregate(window=window / 1000, columns=["temperature"], lateness=lateness / 1000)
    out = run([agg], data, cuts)
    expected = reference(items, window, lateness)
    got = {(r["sensor_id"], r["timestamp"]): r for r in out.rows()}
    assert set(got) == set(expected)  # every closed window exactly once, no other
    assert len(got) == len(out)
    for key, entry in expected.items():
        row = got[key]
        assert row["count"] == entry["count"] and row["late_rows"] == entry["late"]
        assert row["temperature_count"] == len(entry["values"])
        if entry["values"]:
            assert row["temperature_min"] == min(entry["values"])
            assert row["temperature_max"] == max(entry["values"])
            assert row["temperature_mean"] == pytest.approx(
                math.fsum(entry["values"]) / len(entry["values"]), rel=1e-9, abs=1e-6
            )
        else:
            assert math.isnan(row["temperature_mean"])
    # and bit for bit the same as one batch (windows may close in another order)
    whole = run(
        [Aggregate(window=window / 1000, columns=["temperature"], lateness=lateness / 1000)],
        data,
        [],
    )
    assert whole.sort("timestamp", "sensor_id").equals(out.sort("timestamp", "sensor_id"))
