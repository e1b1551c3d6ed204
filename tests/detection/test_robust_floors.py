"""Detectors on real-data shapes: flat, quantised and repeated-value series (spread floors), the
skip_repeats window that never empties, and the vectorised CUSUM against its row-by-row
definition, exact however the series is cut into batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from detection_support import run

from cosmobac.batch import Batch
from cosmobac.detectors import EWMA, Cusum, RobustZScore, Spike, ZScore
from cosmobac.detectors.cusum import SEGMENT

VALUE_DETECTORS = [ZScore, RobustZScore, EWMA, Spike, Cusum]


def series(values, *, sensor="s-1", step=1000):
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return Batch.from_columns(
        timestamp=step * np.arange(n),
        sensor_id=np.full(n, sensor, dtype=object),
        temperature=values,
    )


def statistic(detector, rows):
    """The detector's statistic from its score (score = s / (s + threshold))."""
    score = detector(rows)[f"{detector.name}_score"]
    with np.errstate(divide="ignore"):
        return score / (1.0 - score) * detector.threshold_value


def quantised(n=4000, seed=1):
    """Counts: mostly repeats of a few small integers, with rare bursts (like NAB's tweets)."""
    rng = np.random.default_rng(seed)
    values = rng.poisson(0.3, n).astype(float)
    values[rng.random(n) < 0.01] += rng.integers(5, 20)
    return values


@pytest.mark.parametrize("cls", VALUE_DETECTORS)
def test_quantised_and_flat_series_give_sane_scores(cls):
    values = np.concatenate([np.full(300, 5.0), quantised(), np.full(300, 2.0), quantised(seed=2)])
    stat = statistic(cls(), series(values))
    finite = stat[np.isfinite(stat)]
    assert len(finite) > 0.9 * len(values)  # scored, not NaN
    assert np.isinf(stat).sum() == 0  # no division by a spread of 0
    # without the floors, a spread that collapsed on a flat stretch gives statistics near 1e5
    assert finite.max() < 200, finite.max()


@pytest.mark.parametrize("cls", [ZScore, EWMA])
def test_the_first_move_of_a_flat_series_scores_about_one_step(cls):
    values = np.full(200, 20.0)
    values[150:] = 20.5  # after 150 equal values, one step (then flat again)
    stat = statistic(cls(spread_floor=0), series(values))
    assert stat[150] == pytest.approx(1.0)  # a step of one resolution: z = 1, not infinity
    assert np.nanmax(stat[:150]) == 0.0


def test_zscore_skip_repeats_never_leaves_a_mostly_repeated_series_unscored():
    rng = np.random.default_rng(0)
    values = np.where(rng.random(4000) < 0.04, 20.0, 0.0)  # 96 % repeats of 0
    score = ZScore()(series(values))["zscore_score"]
    assert np.isnan(score[1000:]).mean() < 0.25  # only just after runs longer than the window
    # repeats are still skipped at first: a short flatline does not shrink the spread
    noise = np.random.default_rng(1).normal(20, 1, 300)
    noise[200:230] = noise[199]
    z = ZScore(window=60)(series(noise))["zscore_score"]
    assert np.isfinite(z[230:]).all() and (z[231:] < 0.6).all()


def test_the_spread_floor_caps_scores_on_a_collapsed_window():
    rng = np.random.default_rng(3)
    values = rng.normal(10.0, 1.0, 3000)
    values[2000:2100] = 10.0 + rng.normal(0, 1e-4, 100)  # almost flat for 100 values
    values[2100] = 12.0  # an ordinary 2 σ move for this series
    off = statistic(ZScore(spread_floor=0), series(values))[2100]
    on = statistic(ZScore(), series(values))[2100]
    assert off > 1000  # the window's spread collapsed
    assert on < 20  # 0.25 × the usual spread bounds it


def test_the_level_floor_ranks_against_the_series_overall_variation():
    rng = np.random.default_rng(4)
    values = rng.normal(0.0, 1.0, 6000)
    values[::50] += 8.0  # ordinary bursts, every 50 values
    plain = statistic(EWMA(novelty=0), series(values))
    level = statistic(EWMA(level_floor=0.5, novelty=0), series(values))
    both = np.isfinite(plain) & np.isfinite(level)
    assert (level[both] <= plain[both] + 1e-12).all()
    assert np.median(level[3000::50]) < np.median(plain[3000::50])


def reference_cusum(values, halflife=120.0, slack=0.5, threshold=8.0, warm=30):
    """The CUSUM row by row (clip and spread_floor off): the baseline a weighted average and the
    unbiased weighted variance of earlier values, the spread at least the smallest step seen."""
    c = 1 - (1 - 2 ** (-1 / halflife))
    alpha = 1 - c
    total = weights = 0.0  # the weighted average
    mean = var = 0.0  # the recursion the variance uses (first value sets the mean)
    count = 0
    up = down = 0.0
    smallest = math.inf
    previous = math.nan
    out = np.full(len(values), np.nan)
    for i, x in enumerate(values):
        if math.isnan(x):
            continue
        step = abs(x - previous)
        if step > 0:
            smallest = min(smallest, step)
        previous = x
        if count >= warm:
            sd = max(
                math.sqrt(var / (1 - c ** (count - 1))), 0 if smallest == math.inf else smallest
            )
            if sd > 0:
                z = (x - total / weights) / sd
                up = max(0.0, up + z - slack)
                down = max(0.0, down - z - slack)
                out[i] = max(up, down)
                if out[i] >= threshold:
                    up = down = 0.0
        if count == 0:
            mean = x
        d = x - mean
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
        total = c * total + x
        weights = c * weights + 1.0
        count += 1
    return out


def test_the_vectorised_cusum_matches_the_row_by_row_definition():
    rng = np.random.default_rng(5)
    values = rng.normal(0.0, 1.0, 3 * SEGMENT)
    values[2000:2600] += 2.0  # a sustained shift: alarms close together
    values[7000:9000] += np.linspace(0.0, 6.0, 2000)  # a drift
    values[::101] = np.nan
    detector = Cusum(clip=0, spread_floor=0, novelty=0)
    stat = statistic(detector, series(values))
    expected = reference_cusum(values)
    assert np.array_equal(np.isnan(stat), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.allclose(stat[ok], expected[ok], rtol=1e-7, atol=1e-6)
    assert ((stat >= 8.0) == (expected >= 8.0)).all()
    assert (expected >= 8.0).sum() > 20


@pytest.mark.parametrize(
    "cuts",
    [[1, 2, 3, 500, 4095, 4096, 4097, 9000], list(range(37, 12_000, 37)), [6000]],
)
def test_cusum_is_exact_however_the_series_is_cut(cuts):
    rng = np.random.default_rng(6)
    values = rng.normal(0.0, 1.0, 12_000)
    values[3000:5000] += 3.0 * np.sign(np.sin(np.arange(2000) / 15.0))  # dense alarms
    values[8000:8300] = 0.0  # flat
    rows = series(values)
    columns = ["cusum_score", "cusum_detected"]
    whole = run([Cusum()], rows, [])
    pieces = run([Cusum()], rows, cuts)
    for name in columns:
        assert np.array_equal(whole[name], pieces[name], equal_nan=True), name
    assert whole["cusum_detected"][3000:5000].sum() > 40


@pytest.mark.parametrize("cls", VALUE_DETECTORS)
def test_a_constant_series_is_scored_not_left_nan(cls):
    detector = cls()
    stat = statistic(detector, series(np.full(1200, 7.25)))
    assert not np.isnan(stat[-200:]).any()
    assert (stat[-200:] == 0).all()  # nothing unusual
