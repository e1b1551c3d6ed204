"""The top-level API: ``import cosmobac`` gives what composing a pipeline in a few lines needs,
``cosmobac.simulate`` and ``cosmobac.detect``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cosmobac
from cosmobac import Batch


@pytest.fixture
def pd():
    return pytest.importorskip("pandas")


def test_the_top_level_names_are_the_kernel_s_own_objects():
    from cosmobac.config import RunConfig
    from cosmobac.pipeline import Lane, Pipeline
    from cosmobac.plugins import get_plugins
    from cosmobac.stores.memory import MemoryStore

    assert cosmobac.Pipeline is Pipeline and cosmobac.Lane is Lane
    assert cosmobac.RunConfig is RunConfig and cosmobac.get_plugins is get_plugins
    assert cosmobac.MemoryStore is MemoryStore
    for name in ("Pipeline", "simulate", "detect", "MemoryStore"):
        assert name in cosmobac.__all__ and name in dir(cosmobac)
    with pytest.raises(AttributeError, match="no attribute 'Pipelin'"):
        cosmobac.Pipelin  # noqa: B018


def test_importing_cosmobac_imports_neither_the_pipeline_nor_pandas():
    code = (
        "import sys, cosmobac; "
        "print(sorted(m for m in ('cosmobac.pipeline', 'cosmobac.api', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_simulate_gives_the_simulated_sensor_s_rows_for_the_duration():
    batch = cosmobac.simulate(cities=2, sensors_per_city=3, duration="10m", seed=7)
    assert isinstance(batch, Batch)
    assert len(set(batch["sensor_id"].tolist())) == 6
    span = batch["timestamp"].max() - batch["timestamp"].min()
    assert 9 * 60_000 < span < 10 * 60_000
    assert len(batch) == pytest.approx(6 * 600, abs=6)
    again = cosmobac.simulate(cities=2, sensors_per_city=3, duration=600, seed=7)
    assert again.equals(batch)
    other = cosmobac.simulate(cities=2, sensors_per_city=3, duration="10m", seed=8)
    assert not np.array_equal(other["temperature"], batch["temperature"])


def test_simulate_passes_sensor_keys_and_checks_values_with_the_one_parser():
    slow = cosmobac.simulate(cities=["tokyo"], sensors_per_city=1, duration="1h", rate_hz="0.1")
    assert set(slow["city"].tolist()) == {"Tokyo"} and len(slow) == 360
    with pytest.raises(ValueError, match="duration"):
        cosmobac.simulate(duration="soon")
    with pytest.raises(TypeError, match="colour"):
        cosmobac.simulate(colour="blue")


def test_detect_on_a_batch_adds_the_detector_s_columns():
    batch = cosmobac.simulate(cities=1, sensors_per_city=2, duration="30m", seed=3)
    out = cosmobac.detect(batch, "zscore", window=120)
    assert isinstance(out, Batch) and len(out) == len(batch)
    for name in ("zscore_score", "zscore_detected", "anomaly_score", "detected"):
        assert name in out and name not in batch
    named = cosmobac.detect(batch, "ewma", name="fast", halflife="10")
    assert "fast_score" in named


def _spiky(pd, n=400, at=300):
    index = pd.date_range("2026-03-01", periods=n, freq="1min")
    values = np.sin(np.arange(n) / 10.0)
    values[at] = 9.0
    return index, values


def test_detect_on_a_series_returns_a_frame_whose_detected_column_marks_the_spike(pd):
    index, values = _spiky(pd)
    result = cosmobac.detect(pd.Series(values, index=index, name="temp"), "zscore", window=60)
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns[:1]) == ["temp"] and result.index.equals(index)
    assert result.index[result["detected"]].tolist() == [index[300]]
    assert result["anomaly_score"].iloc[300] > 0.5
    unnamed = cosmobac.detect(pd.Series(values, index=index), "zscore", window=60)
    assert "value" in unnamed.columns


def test_detect_on_a_frame_keeps_its_order_and_scores_each_sensor_in_time_order(pd):
    index, values = _spiky(pd)
    frame = pd.DataFrame(
        {
            "timestamp": list(index.tz_localize("UTC")) * 2,
            "sensor_id": ["a"] * len(index) + ["b"] * len(index),
            "temperature": np.concatenate([values, np.sin(np.arange(len(index)) / 10.0)]),
        }
    )
    shuffled = frame.sample(frac=1.0, random_state=1)
    result = cosmobac.detect(shuffled, "zscore", window=60)
    assert result.index.equals(shuffled.index)
    assert result[["timestamp", "sensor_id", "temperature"]].equals(shuffled)
    hits = result[result["detected"]]
    assert hits["sensor_id"].tolist() == ["a"] and hits["timestamp"].iloc[0] == index[
        300
    ].tz_localize("UTC")


def test_detect_on_a_frame_without_metric_columns_scores_its_numeric_columns(pd):
    index, values = _spiky(pd)
    frame = pd.DataFrame({"load": values, "site": "x"}, index=index)
    result = cosmobac.detect(frame, "zscore", window=60)
    assert result.index[result["detected"]].tolist() == [index[300]]
    with pytest.raises(ValueError, match="no numeric column"):
        cosmobac.detect(pd.DataFrame({"site": ["x"] * 3}, index=index[:3]), "zscore")


def test_detect_refuses_what_it_cannot_read_with_a_clear_error(pd):
    with pytest.raises(ValueError, match="datetime index or a 'timestamp' column"):
        cosmobac.detect(pd.DataFrame({"temperature": [1.0, 2.0]}), "zscore")
    with pytest.raises(TypeError, match="Batch, a pandas DataFrame or a pandas Series"):
        cosmobac.detect([1.0, 2.0], "zscore")
    with pytest.raises(TypeError, match="detector"):
        cosmobac.detect(Batch.empty(), 42)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="nosuch"):
        cosmobac.detect(Batch.empty(), "nosuch")
