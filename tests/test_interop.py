"""Batch ↔ pandas ↔ Arrow (↔ polars) round trips, reading a store into a DataFrame, and documents
that carry a sensor's own fields through the jsonl sink."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.interop import read_dataframe
from cosmobac.sinks.jsonl import JsonlSink
from cosmobac.testing import MemoryStore

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(np.nan))
_TEXT = st.one_of(st.none(), st.text(max_size=8))
# column name → strategy of one value; the core ones get their canonical dtype from the batch
_COLUMNS = {
    "city": _TEXT,
    "temperature": _FLOATS,
    "latitude": _FLOATS,
    "model": _TEXT,
    "anomaly_flag": st.booleans(),
    "anomaly_type": _TEXT,
    "co2": _FLOATS,
    "count": st.integers(-(2**63), 2**63 - 1),
    "ok": st.booleans(),
    "note": _TEXT,
    "seq": st.integers(0, 2**62),
}
_DTYPES = {"count": np.int64, "ok": np.bool_, "seq": np.int64, "co2": np.float64}


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    n = draw(st.integers(0, 12))
    names = draw(st.lists(st.sampled_from(sorted(_COLUMNS)), unique=True))
    columns: dict[str, object] = {
        "timestamp": draw(st.lists(st.integers(-(2**41), 2**43), min_size=n, max_size=n)),
        "sensor_id": draw(st.lists(st.text(min_size=1, max_size=6), min_size=n, max_size=n)),
    }
    for name in names:
        values = draw(st.lists(_COLUMNS[name], min_size=n, max_size=n))
        if name in _DTYPES:
            columns[name] = np.array(values, dtype=_DTYPES[name])
        elif name in ("note",):
            array = np.empty(n, dtype=object)
            array[:] = values
            columns[name] = array
        else:
            columns[name] = values
    order = draw(st.permutations(list(columns)))
    return Batch.from_columns({name: columns[name] for name in order})


def _same(a: Batch, b: Batch) -> None:
    assert a.columns == b.columns
    for name in a.columns:
        assert a[name].dtype == b[name].dtype, name
    assert a.equals(b)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_batch_round_trips_through_pandas_exactly(batch):
    df = batch.to_pandas()
    assert list(df.columns) == list(batch.columns)
    assert str(df["timestamp"].dtype) == "datetime64[ms, UTC]"
    _same(Batch.from_pandas(df), batch)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_batch_round_trips_through_arrow_exactly(batch):
    table = batch.to_arrow()
    assert table.column_names == list(batch.columns)
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    _same(Batch.from_arrow(table), batch)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_pandas_round_trips_through_arrow(batch):
    df = batch.to_pandas()
    table = pa.Table.from_pandas(df, preserve_index=False)
    _same(Batch.from_arrow(table), batch)
    pd.testing.assert_frame_equal(Batch.from_arrow(table).to_pandas(), df)


def test_polars_reads_and_writes_batches_through_arrow():
    import polars as pl  # a test dependency: cosmobac[test]

    batch = Batch.from_columns(
        timestamp=[1_767_225_600_000, 1_767_225_601_000],
        sensor_id=["a", "b"],
        temperature=[21.5, np.nan],
        note=np.array(["x", None], dtype=object),
    )
    frame = pl.from_arrow(batch.to_arrow())
    assert frame["timestamp"].dtype == pl.Datetime("ms", "UTC")
    assert frame["temperature"].null_count() == 1  # missing is null in polars
    assert frame["note"].to_list() == ["x", None]
    _same(Batch.from_arrow(frame), batch)  # a polars DataFrame exports an Arrow stream


def test_missing_values_show_as_nan_and_none_in_pandas():
    batch = Batch.from_columns(
        timestamp=[0, 1], sensor_id=["a", "b"], temperature=[np.nan, 1.0], city=[None, "Oslo"]
    )
    df = batch.to_pandas()
    assert np.isnan(df["temperature"][0]) and df["city"][0] is None
    assert df["timestamp"][0] == pd.Timestamp("1970-01-01", tz="UTC")
    df.loc[0, "temperature"] = 3.0  # the frame is the user's own copy
    assert np.isnan(batch["temperature"][0])


def test_from_pandas_takes_a_datetime_index_and_converts_zones_to_utc():
    index = pd.DatetimeIndex(["2026-01-01T01:00:00.250"]).tz_localize("Europe/Paris")
    df = pd.DataFrame({"sensor_id": ["s"], "temperature": [20.0]}, index=index)
    batch = Batch.from_pandas(df)
    assert batch.columns == ("timestamp", "sensor_id", "temperature")
    assert batch["timestamp"].tolist() == [1_767_225_600_250]


def test_from_pandas_keeps_named_index_levels_and_fills_missing():
    df = pd.DataFrame(
        {
            "sensor_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime([0, 1, 2], unit="ms", utc=True),
            "city": ["Oslo", np.nan, None],
            "level": pd.array([1, None, 3], dtype="Int64"),
            "name": pd.array(["x", None, "z"], dtype="string"),
        }
    ).set_index("sensor_id")
    batch = Batch.from_pandas(df)
    assert batch.columns == ("sensor_id", "timestamp", "city", "level", "name")
    assert batch["city"].tolist() == ["Oslo", None, None]  # NaN in text is missing, not "nan"
    assert np.isnan(batch["level"][1]) and batch["level"].dtype == np.float64
    assert batch["name"].tolist() == ["x", None, "z"]


def test_naive_times_are_refused():
    naive = pd.DataFrame({"sensor_id": ["s"], "timestamp": pd.to_datetime(["2026-01-01"])})
    with pytest.raises(ValueError, match="no time zone"):
        Batch.from_pandas(naive)
    with pytest.raises(ValueError, match="no time zone"):
        Batch.from_pandas(naive.set_index("timestamp"))
    table = pa.table({"sensor_id": ["s"], "timestamp": pa.array([0], pa.timestamp("ms"))})
    with pytest.raises(ValueError, match="no time zone"):
        Batch.from_arrow(table)


def test_a_frame_without_time_is_refused():
    with pytest.raises(ValueError, match="'timestamp' column or a DatetimeIndex"):
        Batch.from_pandas(pd.DataFrame({"sensor_id": ["s"]}))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        Batch.from_pandas({"timestamp": [0]})
    with pytest.raises(TypeError, match="Arrow stream"):
        Batch.from_arrow({"timestamp": [0]})


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    batch = Batch.from_columns(timestamp=[0], sensor_id=["s"])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"cosmobac\[pandas\]"):
        batch.to_pandas()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"cosmobac\[arrow\]"):
        batch.to_arrow()


def _mixed() -> Batch:
    """A simulator's rows (every core field) and a user's (temperature and co2 only)."""
    sim = Batch.from_columns(
        timestamp=[1, 2],
        sensor_id=["sim-1", "sim-1"],
        city=["Paris", "Paris"],
        temperature=[20.0, 21.0],
        model=["EnviroNode", "EnviroNode"],
        anomaly_flag=[False, True],
        anomaly_type=[None, "spike"],
    )
    mine = Batch.from_columns(
        timestamp=[1, 2], sensor_id=["mine", "mine"], temperature=[5.0, np.nan], co2=[400.0, 401.0]
    )
    return Batch.concat([sim, mine])


def test_read_dataframe_reads_a_store_in_one_call():
    store = MemoryStore()
    store.append(
        Batch.from_columns(
            timestamp=[1, 2], sensor_id=["mine", "mine"], temperature=[5.0, 6.0], city=None
        )
    )
    df = read_dataframe(store)
    assert list(df["temperature"]) == [5.0, 6.0]
    assert "city" not in df.columns  # missing in every row: left out, as in documents
    assert "city" in read_dataframe(store, all_columns=True).columns
    assert "seq" in df.columns
    assert len(read_dataframe(store, limit=1)) == 1


def test_read_dataframe_refuses_a_store_that_cannot_scan():
    class Plain:
        def append(self, batch: Batch) -> int:
            return 0

    with pytest.raises(TypeError, match="cannot"):
        read_dataframe(Plain())


def test_the_jsonl_sink_writes_each_sensor_s_own_fields(tmp_path):
    sink = JsonlSink(path=tmp_path / "out.jsonl", fsync=False)
    try:
        sink.write(_mixed())
    finally:
        sink.close()
    docs = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    mine = [d for d in docs if d["sensor_id"] == "mine"]
    assert [sorted(d) for d in mine] == [
        ["co2", "id", "sensor_id", "temperature", "timestamp"],
        ["co2", "id", "sensor_id", "timestamp"],
    ]
    sim = [d for d in docs if d["sensor_id"] == "sim-1"]
    assert sim[1]["anomaly_type"] == "spike" and sim[1]["anomaly_flag"] is True
    assert "anomaly_flag" not in sim[0] and sim[0]["city"] == "Paris"
    assert all(d["co2"] is None for d in sim)  # an extra column is declared: null when missing
