"""The alarm novelty stage: excess over a fading peak, on hand-made series; exactness across batch
cuts; checkpointed state; configuration errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from new_support import one_series, run_cut

from cosmobac.detectors import EWMA, Context, Ensemble, ZScore
from cosmobac.detectors.novelty import NoveltyScan


def reference(stat, halflife):
    """The stage's definition, value by value (NaN skipped)."""
    out = np.full(len(stat), np.nan)
    seen = []
    for i, s in enumerate(stat):
        if np.isnan(s):
            continue
        ages = np.arange(len(seen), 0, -1)
        peak = max(
            (v * 2.0 ** (-a / halflife) for v, a in zip(seen, ages, strict=True)), default=0.0
        )
        out[i] = max(s - peak, 0.0)
        seen.append(s)
    return out


def test_rank_mode_keeps_what_is_detected_and_ranks_repeats_lower():
    rng = np.random.default_rng(6)
    values = rng.normal(0, 1, 4000)
    values[2000:] += 12  # a level shift: many alarms in a row
    values[3000] += 30  # a new, larger jump later
    plain = EWMA(columns=["value"], novelty=0)(one_series(values))
    ranked = EWMA(columns=["value"])(one_series(values))  # novelty 200, rank: the default
    assert np.array_equal(plain["ewma_detected"], ranked["ewma_detected"])
    assert np.array_equal(plain["ewma_score"] >= 0.5, ranked["ewma_score"] >= 0.5)
    calm = plain["ewma_score"] < 0.5
    assert np.array_equal(plain["ewma_score"][calm], ranked["ewma_score"][calm], equal_nan=True)
    score = ranked["ewma_score"]
    assert score[2000] == np.nanmax(score[:3000])
    repeats = score[2001:2100][ranked["ewma_detected"][2001:2100]]
    assert len(repeats) and (repeats < score[2000]).all()
    assert score[3000] > 0.5


def test_rank_mode_matches_its_definition():
    rng = np.random.default_rng(7)
    stat = rng.exponential(1.5, 400)
    stat[[100, 101, 102, 250]] = [9.0, 7.0, 12.0, 5.0]
    stat[::23] = np.nan
    t = 2.0
    got = NoveltyScan(30.0, "rank", t).run(stat[None, :].copy(), NoveltyScan.initial(1))[0]
    excess = reference(stat, 30.0)  # s − peak where positive
    peak = stat - excess  # where s ≥ peak: the peak itself; elsewhere s (peak ≥ s)
    want = np.where(stat >= t, np.maximum(t, stat - np.maximum(peak - t, 0.0)), stat)
    exact = stat >= peak
    assert np.allclose(got[exact], want[exact], equal_nan=True, rtol=1e-9)
    above = ~exact & (stat >= t)  # under a higher peak: at least t, at most s
    assert (got[above] >= t).all() and (got[above] <= stat[above]).all()


def test_scan_matches_its_definition():
    rng = np.random.default_rng(0)
    stat = rng.exponential(1.0, 300)
    stat[::17] = np.nan
    stat[100] = 30.0
    stat[5] = 0.0
    got = NoveltyScan(20.0).run(stat[None, :].copy(), NoveltyScan.initial(1))[0]
    assert np.allclose(got, reference(stat, 20.0), equal_nan=True, rtol=1e-9, atol=1e-12)


def test_one_event_alarms_once():
    """A level shift keeps a z-score high for many rows; with novelty only its start is high."""
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 3000)
    values[2000:] += 12
    plain = EWMA(columns=["value"], novelty=0)(one_series(values))
    novel = EWMA(columns=["value"], novelty=200, novelty_mode="suppress")(one_series(values))
    assert plain["ewma_detected"][2000:2100].sum() > 5
    assert novel["ewma_detected"][2000]
    assert novel["ewma_detected"][2001:2100].sum() <= 1
    assert novel["ewma_score"][2000] == np.nanmax(novel["ewma_score"])


def test_a_repeat_long_after_counts_again():
    values = np.zeros(4000) + np.random.default_rng(2).normal(0, 0.1, 4000)
    values[1000] = values[3500] = 5.0
    out = ZScore(columns=["value"], novelty=100, novelty_mode="suppress")(one_series(values))
    score = out["zscore_score"]
    assert out["zscore_detected"][1000] and out["zscore_detected"][3500]
    assert score[3500] > 0.9 * score[1000]


def test_missing_and_infinite_statistics():
    stat = np.array([[np.nan, np.inf, 1.0, np.nan, 1e300, 2.0]])
    got = NoveltyScan(10.0).run(stat, NoveltyScan.initial(1))[0]
    assert np.isnan(got[[0, 3]]).all()
    assert got[1] >= 1e299 and got[2] == 0.0
    assert np.isfinite(got[[1, 2, 4, 5]]).all()


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, 1500), max_size=6), halflife=st.sampled_from([3.0, 50.0]))
def test_results_do_not_depend_on_batch_cuts(cuts, halflife):
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, 1500)
    values[::37] = np.nan
    values[[300, 301, 900]] += [8, 9, -10]
    for make in (
        lambda: EWMA(columns=["value"], novelty=halflife),
        lambda: ZScore(columns=["value"], novelty=halflife, likelihood=True),
        lambda: Context(columns=["value"], novelty=halflife, memory=400),
    ):
        whole = make()(one_series(values))
        cut = run_cut(make(), one_series(values), cuts)
        for column in ("anomaly_score", "detected"):
            assert np.array_equal(whole[column], cut[column], equal_nan=True), column


@pytest.mark.parametrize("make", [lambda: EWMA(columns=["value"], novelty=50), Ensemble])
def test_state_round_trip_is_exact(make):
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, 2000)
    values[[1000, 1500]] += 9
    batch = one_series(values)
    if make is Ensemble:
        make = lambda: Ensemble(columns=["value"])  # noqa: E731
    first = make()
    first(batch.select(slice(0, 1200)))
    saved = first.get_state()
    assert "novelty" in json.loads(saved)
    second = make()
    second.set_state(saved)
    a, b = first(batch.select(slice(1200, None))), second(batch.select(slice(1200, None)))
    assert np.array_equal(a["anomaly_score"], b["anomaly_score"], equal_nan=True)


def test_off_means_off():
    values = np.random.default_rng(5).normal(0, 1, 1000)
    assert "novelty" not in json.loads(EWMA(columns=["value"], novelty=0).get_state())
    a = EWMA(columns=["value"], novelty=0)(one_series(values))
    b = EWMA(columns=["value"], novelty=0, novelty_mode="suppress")(one_series(values))
    assert np.array_equal(a["ewma_score"], b["ewma_score"], equal_nan=True)


@pytest.mark.parametrize(
    ("key", "value"), [("novelty", -1), ("novelty", "x"), ("novelty_mode", "x")]
)
def test_config_errors_name_the_key(key, value):
    with pytest.raises((TypeError, ValueError), match=key):
        EWMA(**{key: value})
