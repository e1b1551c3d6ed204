"""The anomaly likelihood stage: the tail function, behaviour on hand-made series, exactness
across batch cuts, checkpointed state, configuration errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from new_support import one_series, run_cut

from cosmobac.detectors import EWMA, ZScore
from cosmobac.detectors.likelihood import LikelihoodScan, log10_tail, surprise_to_p


def test_log10_tail_matches_known_values_and_is_monotone():
    z = np.array([-2.0, 0.0, 1.0, 2.0, 3.0, 5.0])
    exact = np.log10([0.977249868, 0.5, 0.158655254, 0.022750132, 0.001349898, 2.866516e-7])
    assert np.allclose(log10_tail(z), exact, atol=2e-3)
    far = log10_tail(np.linspace(-10, 60, 2001))
    assert np.all(np.diff(far) < 0) and np.all(np.isfinite(far))
    assert np.isnan(log10_tail(np.array([np.nan])))[0]
    assert surprise_to_p(4.0) == pytest.approx(1e-4)


def test_level_shift_is_surprising_and_calm_rows_are_not():
    rng = np.random.default_rng(1)
    values = rng.normal(10, 1, 3000)
    values[2500:] += 8
    out = EWMA(columns=["value"], likelihood=True)(one_series(values))
    score = out["ewma_score"]
    assert np.isnan(score[:100]).all()  # ewma's warm-up, then the stage's
    calm = score[500:2500]
    assert np.nanmedian(calm) < 0.1
    assert score[2500] > 0.5 and out["ewma_detected"][2500]
    assert np.nanmax(calm) < score[2500]


def test_one_threshold_across_series_of_different_scale():
    """The same relative event on a quiet and on a bursty series gives similar surprises."""
    rng = np.random.default_rng(2)
    quiet = rng.normal(0, 1, 3000)
    bursty = rng.standard_t(2, 3000)
    flags = []
    for values in (quiet, bursty):
        out = EWMA(columns=["value"], likelihood=True)(one_series(values))
        flags.append(np.nanmean(out["ewma_detected"][500:]))
    assert all(rate < 0.01 for rate in flags)


def test_flat_series_gives_finite_scores():
    values = np.full(2000, 5.0)
    values[1500] = 5.1
    out = ZScore(columns=["value"], likelihood=True, skip_repeats=False)(one_series(values))
    score = out["zscore_score"]
    assert np.isfinite(score[200:]).all()
    assert score[1500] == np.nanmax(score)


def test_missing_values_are_skipped():
    scan = LikelihoodScan(1.0, short=3, memory=50, warmup=5)
    state = scan.initial(1)
    stat = np.abs(np.random.default_rng(3).normal(size=(1, 200)))
    gappy = stat.copy()
    gappy[0, ::7] = np.nan
    out = scan.run(gappy, state)
    assert np.isnan(out[0, ::7]).all()
    state2 = scan.initial(1)
    dense = scan.run(gappy[:, ~np.isnan(gappy[0])], state2)
    assert np.array_equal(out[0, ~np.isnan(gappy[0])], dense[0], equal_nan=True)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 1200), max_size=6),
    short=st.integers(1, 12),
)
def test_results_do_not_depend_on_batch_cuts(cuts, short):
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, 1200)
    values[::97] = np.nan
    values[900:] += 3
    whole = EWMA(columns=["value"], likelihood=True, likelihood_short=short)(one_series(values))
    cut = run_cut(
        EWMA(columns=["value"], likelihood=True, likelihood_short=short), one_series(values), cuts
    )
    for column in ("ewma_score", "ewma_detected", "anomaly_score"):
        assert np.array_equal(whole[column], cut[column], equal_nan=True), column


def test_state_round_trip_is_exact():
    values = np.random.default_rng(5).normal(0, 1, 1500)
    batch = one_series(values)
    first = EWMA(columns=["value"], likelihood=True)
    first(batch.select(slice(0, 700)))
    saved = first.get_state()
    assert "likelihood" in json.loads(saved)
    second = EWMA(columns=["value"], likelihood=True)
    second.set_state(saved)
    a = first(batch.select(slice(700, None)))
    b = second(batch.select(slice(700, None)))
    assert np.array_equal(a["ewma_score"], b["ewma_score"], equal_nan=True)
    plain = EWMA(columns=["value"])  # other settings: starts cold
    plain.set_state(saved)
    assert plain.sensors == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("likelihood", "maybe"),
        ("likelihood_threshold", 0),
        ("likelihood_short", 0),
        ("likelihood_memory", -1),
        ("likelihood_warmup", 1),
    ],
)
def test_config_errors_name_the_key(key, value):
    with pytest.raises((TypeError, ValueError), match=key):
        EWMA(**{key: value})
