"""The ``context`` (pattern memory) detector: behaviour on hand-made series, exactness across batch
cuts, checkpointed state, configuration errors (``entropy``'s tests are in test_entropy.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from new_support import one_series, periodic, run_cut

from cosmobac.detectors import Context

NEW = [Context]


def score_of(detector, values):
    out = detector(one_series(values))
    return out[f"{detector.name}_score"], out


def test_context_new_value_and_broken_pattern_score_high():
    pattern = np.random.default_rng(7).uniform(-1, 1, 24)
    values = np.tile(pattern, 125)  # a repeating pattern of 24 values
    values[2000] = 4.0  # a value never seen
    values[2500:2512] = values[2512:2524][::-1]  # familiar values in an unfamiliar order
    score, _ = score_of(Context(columns=["value"]), values)
    calm = np.nanmax(score[1000:1990])
    assert score[2000] > 0.5 and score[2000] > calm
    assert np.nanmax(score[2500:2512]) > calm


def test_context_level_shift_scores_at_its_start():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 3000)
    values[2000:] += 10
    score, _ = score_of(Context(columns=["value"]), values)
    assert score[2000] == np.nanmax(score)
    assert np.nanmean(score[2100:]) < score[2000]  # the new level becomes familiar


@pytest.mark.parametrize("cls", NEW)
def test_flat_and_quantised_series_give_sane_scores(cls):
    flat = np.full(1500, 3.0)
    score, _ = score_of(cls(columns=["value"]), flat)
    assert np.isfinite(score[300:]).all() and np.nanmax(score[300:]) < 0.5
    steps = np.round(np.random.default_rng(2).normal(0, 1, 2000)) * 0.5  # few levels
    steps[1800] = 9.0
    score, _ = score_of(cls(columns=["value"]), steps)
    assert np.isfinite(score[300:]).all()
    assert score[1800] == np.nanmax(score[300:])  # a value never seen


@pytest.mark.parametrize("cls", NEW)
def test_missing_values_stay_missing(cls):
    values = periodic(1500)
    values[::10] = np.nan
    score, _ = score_of(cls(columns=["value"]), values)
    assert np.isnan(score[::10]).all()
    assert np.isfinite(score[1200:][~np.isnan(values[1200:])]).all()


@pytest.mark.parametrize("cls", NEW)
@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(0, 1600), max_size=6))
def test_results_do_not_depend_on_batch_cuts(cls, cuts):
    values = periodic(1600, seed=3)
    values[::53] = np.nan
    values[1300:1310] = 5.0
    kwargs = {"memory": 300}
    whole = cls(columns=["value"], **kwargs)(one_series(values))
    cut = run_cut(cls(columns=["value"], **kwargs), one_series(values), cuts)
    name = cls.kind
    for column in (f"{name}_score", f"{name}_detected", "anomaly_score"):
        assert np.array_equal(whole[column], cut[column], equal_nan=True), column


@pytest.mark.parametrize("cls", NEW)
def test_several_sensors_are_independent(cls):
    a, b = periodic(1200, seed=4), periodic(1200, seed=5) * 3 + 7
    alone = cls(columns=["value"])(one_series(a, "a"))[f"{cls.kind}_score"]
    both = one_series(np.concatenate([a, b]), "a")
    ids = both["sensor_id"].copy()
    ids[1200:] = "b"
    both = both.with_columns({"sensor_id": ids})
    order = np.argsort(np.tile(np.arange(1200), 2), kind="stable")  # interleave the sensors
    mixed = cls(columns=["value"])(both.select(order))
    got = mixed[f"{cls.kind}_score"][mixed["sensor_id"] == "a"]
    assert np.array_equal(got, alone, equal_nan=True)


@pytest.mark.parametrize("cls", NEW)
def test_state_round_trip_is_exact(cls):
    batch = one_series(periodic(1500, seed=6))
    first = cls(columns=["value"])
    first(batch.select(slice(0, 800)))
    second = cls(columns=["value"])
    second.set_state(first.get_state())
    a, b = first(batch.select(slice(800, None))), second(batch.select(slice(800, None)))
    assert np.array_equal(a[f"{cls.kind}_score"], b[f"{cls.kind}_score"], equal_nan=True)


@pytest.mark.parametrize(
    ("cls", "key", "value"),
    [
        (Context, "bins", 0),
        (Context, "orders", 40),
        (Context, "memory", 1),
        (Context, "learn", "x"),
        (Context, "threshold", -1),
    ],
)
def test_config_errors_name_the_key(cls, key, value):
    with pytest.raises((TypeError, ValueError), match=key):
        cls(**{key: value})
