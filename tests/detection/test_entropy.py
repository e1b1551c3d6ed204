"""The ``entropy`` detector (relative entropy against a set of hypotheses): the χ² point, the
vectorised sweep against a plain one-value-at-a-time version, behaviour on hand-made series,
exactness across batch cuts, checkpointed state, configuration errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from new_support import one_series, periodic, run_cut

from cosmobac.detectors import RelativeEntropy
from cosmobac.detectors.entropy import chi2_isf


def stat_of(detector, values, chunk=None):
    batch = one_series(values)
    cuts = range(chunk, len(values), chunk) if chunk else []
    out = run_cut(detector, batch, cuts)
    score = out["entropy_score"]
    t = detector.threshold_value
    return score * t / (1 - score), out


def plain(values, bins, window, learn, threshold, memory):
    """The method one value at a time, written as directly as possible (the test's reference)."""
    x = np.asarray(values, float)
    ok = np.flatnonzero(~np.isnan(x))
    out = np.full(len(x), np.nan)
    first = x[ok[:learn]]
    lo, hi = first.min(), first.max()
    step = (hi - lo) / bins if hi > lo else (abs(lo) * 0.01 if lo != 0 else 1.0)
    shift, level = 0, 0
    hyps: list[np.ndarray] = []
    used: list[int] = []
    kept: list[int] = []
    for place, i in enumerate(ok[learn:]):
        v = int(np.floor((x[i] - lo) / step)) if x[i] != hi or hi == lo else bins - 1
        kept.append(v)
        while not 0 <= (v + shift) >> level < bins:  # widen: merge pairs of bins
            offset = bins if (v + shift) >> level < 0 else 0
            shift += (bins << level) if offset else 0
            level += 1
            merged = []
            for h in hyps:
                m = np.zeros(bins)
                for b in range(bins):
                    m[(b + offset) >> 1] += h[b]
                merged.append(m)
            hyps = merged
        if place < window - 1:
            continue
        counts = np.bincount([(u + shift) >> level for u in kept[-window:]], minlength=bins)
        p = counts / window
        stats = [
            2
            * window
            * sum(p[b] * math.log(p[b] / max(h[b] / window, 1e-9)) for b in range(bins) if p[b])
            for h in hyps
        ]
        best = min(stats) if stats else math.nan
        out[i] = best
        if not best < threshold:
            if len(hyps) < memory:
                hyps.append(counts.astype(float))
                used.append(place)
            else:
                slot = int(np.argmin(used))
                hyps[slot], used[slot] = counts.astype(float), place
        else:
            used[int(np.argmin(stats))] = place
    return out


def test_chi2_points():
    assert chi2_isf(0.01, 4) == pytest.approx(13.2767, abs=1e-4)
    assert chi2_isf(0.05, 1) == pytest.approx(3.8415, abs=1e-4)
    assert chi2_isf(0.001, 10) == pytest.approx(29.5883, abs=1e-4)
    assert RelativeEntropy().threshold_value == chi2_isf(0.01, 4)


@pytest.mark.parametrize(
    ("seed", "kwargs"),
    [
        (0, {}),
        (1, {"bins": 3, "window": 20, "learn": 30}),
        (2, {"hypotheses": 2, "window": 10}),  # replacements
        (3, {"bins": 8, "significance": 0.2}),
        (4, {"bins": 8, "window": 5, "hypotheses": 1}),  # an event nearly every value
    ],
)
def test_sweep_equals_the_plain_method(seed, kwargs):
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [
            rng.normal(0, 1, 600),
            rng.normal(5, 1, 300),  # a level shift beyond the learned range
            rng.normal(0, 3, 300),  # wider, and below it
            rng.normal(0, 1, 300),  # a regime seen before
            rng.normal(-40, 1, 100),
        ]
    )
    values[rng.integers(0, len(values), 30)] = np.nan
    detector = RelativeEntropy(columns=["value"], novelty=0, **kwargs)
    got, _ = stat_of(detector, values, chunk=333)
    d = RelativeEntropy(**kwargs)
    want = plain(values, d.bins, d.window, d.learn, d.threshold_value, d.hypotheses)
    assert np.isnan(got).sum() == np.isnan(want).sum()
    # the sweep sums −ln q in fixed point (2⁻³²): a few 1e-9 per window
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7)
    assert (np.nan_to_num(want) >= d.threshold_value).sum() >= 3  # the test sees new regimes


def test_a_new_regime_alarms_once_and_a_known_one_not_again():
    rng = np.random.default_rng(1)
    calm, wide = (lambda n: rng.normal(0, 1, n)), (lambda n: rng.normal(0, 4, n))
    values = np.concatenate([calm(2000), wide(400), calm(600), wide(400)])
    stat, out = stat_of(RelativeEntropy(columns=["value"], novelty=0), values)
    t = RelativeEntropy().threshold_value
    detected = out["entropy_detected"]
    assert detected[2000:2052].any()  # the wider spread, at its start
    assert detected[2000:2400].sum() <= 10  # not for as long as it lasts
    assert not detected[3000:].any()  # seen before
    assert np.nanmax(stat[2000:2052]) > t


def test_the_grid_doubles_for_a_value_far_out():
    values = periodic(800, seed=2)
    values[700] = 1000.0
    detector = RelativeEntropy(columns=["value"])
    _, out = stat_of(detector, values)
    assert out["entropy_detected"][700]
    state = detector._state
    assert state["level"].max() >= 8  # 1000 is ~500 learned bins away: 2^9 times wider
    held = state["hyp"][state["used"] >= 0]
    assert (held.sum(axis=-1) == detector.window).all()  # merging keeps every count


@pytest.mark.parametrize("values", [np.full(1500, 3.0), np.full(1500, 0.0)])
def test_flat_series_give_sane_scores(values):
    stat, _ = stat_of(RelativeEntropy(columns=["value"]), values)
    assert np.isfinite(stat[300:]).all() and np.nanmax(stat[300:]) == 0.0


def test_a_flat_start_then_small_steps_match_the_plain_method():
    values = np.full(1200, 3.0)
    values[400:] += np.round(np.random.default_rng(5).normal(0, 1, 800)) * 0.1  # bins: 0.03
    got, _ = stat_of(RelativeEntropy(columns=["value"], novelty=0), values, chunk=250)
    d = RelativeEntropy()
    want = plain(values, d.bins, d.window, d.learn, d.threshold_value, d.hypotheses)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7)
    assert np.nanmax(got[400:460]) >= d.threshold_value  # the first steps are news


def test_quantised_series_give_sane_scores():
    steps = np.round(np.random.default_rng(2).normal(0, 1, 2000)) * 0.5  # few levels
    steps[1800] = 9.0
    stat, out = stat_of(RelativeEntropy(columns=["value"]), steps)
    assert np.isfinite(stat[300:]).all()
    assert out["entropy_detected"][1800]


def test_missing_values_stay_missing():
    values = periodic(1500)
    values[::10] = np.nan
    stat, _ = stat_of(RelativeEntropy(columns=["value"]), values)
    assert np.isnan(stat[::10]).all()
    assert np.isfinite(stat[1200:][~np.isnan(values[1200:])]).all()


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(0, 1600), max_size=6))
def test_results_do_not_depend_on_batch_cuts(cuts):
    values = periodic(1600, seed=3)
    values[::53] = np.nan
    values[1300:1310] = 5.0
    values[1400:1500] -= 30
    make = lambda: RelativeEntropy(columns=["value"], hypotheses=3)  # noqa: E731
    whole = make()(one_series(values))
    cut = run_cut(make(), one_series(values), cuts)
    for column in ("entropy_score", "entropy_detected", "anomaly_score"):
        assert np.array_equal(whole[column], cut[column], equal_nan=True), column


def test_several_sensors_are_independent():
    a, b = periodic(1200, seed=4), periodic(1200, seed=5) * 3 + 7
    b[900:] += 50
    alone = RelativeEntropy(columns=["value"])(one_series(a, "a"))["entropy_score"]
    both = one_series(np.concatenate([a, b]), "a")
    ids = both["sensor_id"].copy()
    ids[1200:] = "b"
    both = both.with_columns({"sensor_id": ids})
    order = np.argsort(np.tile(np.arange(1200), 2), kind="stable")  # interleave the sensors
    mixed = RelativeEntropy(columns=["value"])(both.select(order))
    got = mixed["entropy_score"][mixed["sensor_id"] == "a"]
    assert np.array_equal(got, alone, equal_nan=True)


def test_state_round_trip_is_exact():
    values = periodic(1500, seed=6)
    values[1000:] *= 3
    batch = one_series(values)
    first = RelativeEntropy(columns=["value"])
    first(batch.select(slice(0, 800)))
    second = RelativeEntropy(columns=["value"])
    second.set_state(first.get_state())
    a, b = first(batch.select(slice(800, None))), second(batch.select(slice(800, None)))
    assert np.array_equal(a["entropy_score"], b["entropy_score"], equal_nan=True)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window", 1),
        ("bins", 1),
        ("bins", 65),
        ("learn", "x"),
        ("significance", 0),
        ("significance", 0.9),
        ("hypotheses", 0),
    ],
)
def test_config_errors_name_the_key(key, value):
    with pytest.raises((TypeError, ValueError), match=key):
        RelativeEntropy(**{key: value})
