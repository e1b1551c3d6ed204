"""The built-in detectors: configuration, output columns, semantics on hand-made series, per-sensor
state, and results that do not depend on how rows are cut into batches."""

from __future__ import annotations

import inspect
import json
import logging
import math

import attrs
import numpy as np
import pytest
from detection_support import every, fleet_rows, run, same_columns
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.detectors import DETECTORS, EWMA, Cusum, Dropout, RobustZScore, Spike, Stuck, ZScore
from cosmobac.interfaces import StatefulTransform
from cosmobac.plugins import Plugins

ALL = list(DETECTORS)


def series(values, *, sensor="s-1", start=0, step=1000, **extra):
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return Batch.from_columns(
        timestamp=start + step * np.arange(n),
        sensor_id=np.full(n, sensor, dtype=object),
        temperature=values,
        **extra,
    )


def noise(n, seed=0, mean=20.0, std=1.0):
    return np.random.default_rng(seed).normal(mean, std, n)


# -- registration and configuration ---------------------------------------------------------------
def test_every_detector_is_a_registered_stateful_transform():
    registry = {c.name: c for c in Plugins(entry_points=False).components("transform")}
    for name, cls in DETECTORS.items():
        assert registry[name].factory is cls
        detector = cls()
        assert isinstance(detector, StatefulTransform)
        assert attrs.has(cls) and cls.__eq__ is object.__eq__  # eq=False: safe in pluggy's sets
        params = inspect.signature(cls).parameters.values()
        assert all(p.kind is p.KEYWORD_ONLY for p in params)  # keyword configuration only
        assert registry[name].accepted_keys() is not None  # no **kwargs


@pytest.mark.parametrize(
    ("cls", "key", "value", "error"),
    [
        (ZScore, "window", 1, ValueError),
        (ZScore, "window", 2.5, TypeError),
        (ZScore, "threshold", 0, ValueError),
        (ZScore, "threshold", "high", ValueError),
        (ZScore, "min_periods", 100, ValueError),
        (ZScore, "columns", [], TypeError),
        (ZScore, "columns", ["temperature", "temperature"], ValueError),
        (ZScore, "name", "Bad Name", ValueError),
        (ZScore, "skip_repeats", "maybe", ValueError),
        (ZScore, "skip_repeats", 1, TypeError),
        (EWMA, "halflife", -1, ValueError),
        (RobustZScore, "window", 2, ValueError),
        (Spike, "neighbours", 100, ValueError),
        (Cusum, "slack", -0.1, ValueError),
        (Cusum, "clip", float("inf"), ValueError),
        (Stuck, "min_run", 1, ValueError),
        (Stuck, "require", "most", ValueError),
        (Dropout, "max_gap", "soon", ValueError),
        (Dropout, "gap_factor", 0, ValueError),
        (Dropout, "min_missing", 0, ValueError),
    ],
)
def test_bad_settings_raise_naming_the_key(cls, key, value, error):
    with pytest.raises(error, match=key):
        cls(**{key: value})


def test_settings_may_be_text_as_from_environment_variables():
    detector = ZScore(window="30", threshold="3.5", skip_repeats="false")
    assert (detector.window, detector.threshold, detector.skip_repeats) == (30, 3.5, False)


def test_a_batch_without_any_of_the_columns_is_an_error_naming_them():
    with pytest.raises(ValueError, match="voltage"):
        ZScore(columns=["voltage"])(series([1.0, 2.0]))


# -- output columns -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_output_columns_and_score_range(name, small_fleet):
    rows = small_fleet.select(slice(0, 3000))
    rows = rows.with_columns(seq=np.arange(1, len(rows) + 1))
    out = DETECTORS[name]()(rows)
    assert out["seq"].tolist() == rows["seq"].tolist()  # kept for exact acknowledgements
    score, detected = out[f"{name}_score"], out[f"{name}_detected"]
    assert score.dtype == np.float64 and detected.dtype == np.bool_
    finite = score[~np.isnan(score)]
    assert ((finite >= 0) & (finite <= 1)).all()
    assert np.array_equal(detected, np.nan_to_num(score, nan=0.0) >= 0.5)  # 0.5 is the threshold
    assert np.array_equal(out["detected"], detected)
    names = out["detector"]
    assert all((n == name) if d else (n is None) for n, d in zip(names, detected, strict=True))


def test_an_empty_batch_gets_the_columns():
    out = ZScore()(series([]))
    assert len(out) == 0 and {"zscore_score", "detected", "detector"} <= set(out.columns)


def test_a_chain_combines_scores_detections_and_names():
    values = noise(200)
    values[150] = 60.0  # a spike: both detectors fire
    values[[170, 171, 172, 173]] = values[169]  # a short flatline: only stuck fires
    rows = series(values)
    out = Stuck()(ZScore(window=30)(rows))
    assert out["detector"][150] == "zscore"
    assert out["detector"][172] == "stuck"
    assert np.array_equal(out["detected"], out["zscore_detected"] | out["stuck_detected"])
    assert np.array_equal(
        out["anomaly_score"], np.fmax(out["zscore_score"], out["stuck_score"]), equal_nan=True
    )
    both = ZScore(name="fast", window=10)(ZScore(name="slow", window=60)(rows))
    assert both["detector"][150] == "slow,fast"


def test_missing_values_stay_missing_never_zero():
    values = noise(120)
    values[100:105] = np.nan
    out = ZScore(window=30)(series(values))
    assert np.isnan(out["zscore_score"][100:105]).all()
    assert not out["zscore_detected"][100:105].any()
    assert np.isnan(out["temperature"][100:105]).all()


# -- semantics on hand-made series ----------------------------------------------------------------
def reference_zscore(values, window, min_periods):
    """Rolling z over the previous ``window`` rows, repeats of the previous value not counted."""
    out = np.full(len(values), np.nan)
    kept = []  # (row, value) of counted values
    previous = np.nan
    for i, x in enumerate(values):
        if np.isnan(x):
            continue
        recent = [v for r, v in kept if r >= i - window]
        if len(recent) >= min_periods:
            mean, std = np.mean(recent), np.std(recent, ddof=1)
            out[i] = abs(x - mean) / std if std > 0 else (0.0 if x == mean else np.inf)
        if x != previous:
            kept.append((i, x))
        previous = x
    return out


def test_zscore_matches_a_direct_computation():
    values = noise(300, seed=3)
    values[[50, 51, 52]] = values[49]  # repeats are skipped
    values[[80, 200]] = np.nan
    values[250] = 35.0
    z = ZScore(window=40, min_periods=10, threshold=1.0, spread_floor=0, novelty=0)(series(values))[
        "zscore_score"
    ]
    stat = z / (1 - z)  # score = s / (s + 1)
    expected = reference_zscore(values, 40, 10)
    assert np.allclose(stat, expected, equal_nan=True, rtol=1e-9)


def test_ewma_matches_the_row_by_row_recursion():
    values = noise(400, seed=4)
    values[::37] = np.nan
    detector = EWMA(halflife=5.0, min_periods=3, threshold=1.0, spread_floor=0, novelty=0)
    score = detector(series(values))["ewma_score"]
    alpha = 1 - 2 ** (-1 / 5.0)
    mean = var = 0.0
    count = 0
    for i, x in enumerate(values):
        if np.isnan(x):
            assert np.isnan(score[i])
            continue
        if count == 0:
            mean = x
        if count >= 3:
            unbiased = var / (1 - (1 - alpha) ** (count - 1))
            z = abs(x - mean) / math.sqrt(unbiased)
            assert score[i] == pytest.approx(z / (z + 1), rel=1e-9)
        d = x - mean
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
        count += 1


def test_robust_zscore_uses_median_and_mad():
    window = [10.0, 11.0, 12.0, 13.0, 14.0, 100.0]  # one outlier barely matters
    rows = series([*window, 16.0])
    detector = RobustZScore(window=6, min_periods=6, threshold=1.0, spread_floor=0)
    score = detector(rows)["robust_zscore_score"][-1]
    median = np.median(window)
    mad = np.median(np.abs(np.array(window) - median)) * 1.482602218505602
    z = abs(16.0 - median) / mad
    assert score == pytest.approx(z / (z + 1))


def test_spike_catches_the_jump_not_the_return():
    values = noise(200, seed=5, std=0.5)
    values[120] += 10.0  # a spike
    values[160] -= 10.0  # a dip
    out = Spike()(series(values))
    assert out["spike_detected"][[120, 160]].all()
    assert not out["spike_detected"][[121, 161]].any()
    assert out["spike_detected"].sum() == 2


def test_cusum_catches_a_small_sustained_shift_and_restarts():
    values = noise(600, seed=6)
    values[300:] += 1.5  # 1.5 σ: no single value stands out
    out = Cusum(halflife=200)(series(values))
    detected = np.flatnonzero(out["cusum_detected"])
    assert (detected < 300).sum() <= 1  # noise alone rarely adds up to 8
    after = detected[detected >= 300]
    assert after[0] < 330
    assert len(after) >= 5  # it restarts after an alarm and fires again while the shift lasts
    assert not ZScore()(series(values))["zscore_detected"].any()


def test_stuck_counts_runs_of_equal_values():
    rows = series([1.0, 2.0, 2.0, np.nan, 2.0, 3.0, 3.0, 3.0, 3.0], step=1000)
    out = Stuck(min_run=3)(rows)
    score = out["stuck_score"]
    runs = score / (1 - score) * 3  # score = run / (run + 3)
    assert np.allclose(runs, [1, 1, 2, np.nan, 3, 1, 2, 3, 4], equal_nan=True)
    assert out["stuck_detected"].tolist() == [False] * 4 + [True, False, False, True, True]


def test_stuck_requires_every_column_by_default():
    n = 10
    rows = series(np.full(n, 5.0), humidity=noise(n))
    assert not Stuck(columns=["temperature", "humidity"])(rows)["stuck_detected"].any()
    assert Stuck(columns=["temperature", "humidity"], require="any")(rows)["stuck_detected"].any()


def test_dropout_catches_missing_readings_and_gaps():
    values = noise(40)
    values[10:13] = np.nan
    ts = 1000 * np.arange(40)
    ts[30:] += 20_000  # a 21 s gap before row 30
    rows = series(values).with_columns(timestamp=ts)
    out = Dropout(columns=["temperature"])(rows)
    assert np.flatnonzero(out["dropout_detected"]).tolist() == [10, 11, 12, 30]
    assert not np.isnan(out["dropout_score"]).any()  # it judges missing rows too
    fixed = Dropout(columns=["temperature"], max_gap="30s")(rows)
    assert np.flatnonzero(fixed["dropout_detected"]).tolist() == [10, 11, 12]
    slow = Dropout(columns=["temperature"], min_missing=3)(rows)
    assert slow["dropout_detected"][12] and not slow["dropout_detected"][10:12].any()


def test_sensors_are_independent_and_may_join_later():
    a = series(noise(100, seed=1), sensor="a")
    b = series(noise(100, seed=2, mean=50.0), sensor="b")
    both = Batch.concat([a, b]).sort("timestamp")
    detector = ZScore(window=20)
    first = detector(both.select(both["sensor_id"] == "a"))
    second = detector(both.select(both["sensor_id"] == "b"))
    alone_b = ZScore(window=20)(b)
    assert np.array_equal(second["zscore_score"], alone_b["zscore_score"], equal_nan=True)
    assert detector.sensors == ["a", "b"]
    assert len(first) == 100


# -- state and batching ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_results_do_not_depend_on_batching(name, small_fleet):
    rows = small_fleet
    columns = [f"{name}_score", f"{name}_detected", "detector"]
    whole = run([DETECTORS[name]()], rows, [])
    pieces = run([DETECTORS[name]()], rows, [1, 7, 500, 501, 2048, 3333, 5000])
    same_columns(whole, pieces, columns)


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(ALL),
    cuts=st.lists(st.integers(min_value=1, max_value=2399), max_size=6),
)
def test_any_cut_gives_the_same_results(name, cuts):
    rows = fleet_rows(1, 2, 20)
    whole = run([DETECTORS[name]()], rows, [])
    pieces = run([DETECTORS[name]()], rows, cuts)
    same_columns(whole, pieces, [f"{name}_score", f"{name}_detected"])


@pytest.mark.parametrize("name", ALL)
def test_state_round_trips_through_text(name, small_fleet):
    rows = small_fleet
    half = len(rows) // 2
    uninterrupted = run([DETECTORS[name]()], rows, every(1000, rows))
    first = DETECTORS[name]()
    head = run([first], rows.select(slice(0, half)), every(1000, rows))
    state = first.get_state()
    json.loads(state)  # plain JSON text
    assert first.get_state() is state  # unchanged state is not encoded again
    second = DETECTORS[name]()  # a new forwarder process
    second.set_state(state)
    assert second.get_state() == state
    tail = run([second], rows.select(slice(half, None)), every(1000, rows))
    same_columns(uninterrupted, Batch.concat([head, tail]), [f"{name}_score", f"{name}_detected"])


def test_state_from_other_settings_is_dropped_with_a_warning(caplog, small_fleet):
    detector = ZScore(window=30)
    detector(small_fleet.select(slice(0, 500)))
    other = ZScore(window=60)
    with caplog.at_level(logging.WARNING, logger="cosmobac.detectors"):
        other.set_state(detector.get_state())
    assert "starting cold" in caplog.text
    assert other.sensors == []
