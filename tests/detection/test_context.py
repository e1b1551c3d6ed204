"""The ``context`` (pattern memory) detector: behaviour on hand-made series, exactness across batch
cuts (one sensor and a fleet), checkpointed state, a slow reference of its counting, configuration
errors (``entropy``'s tests are in test_entropy.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from new_support import one_series, periodic, run_cut

from cosmobac.batch import Batch
from cosmobac.detectors import Context
from cosmobac.detectors.context import Quantiser, _keys

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


# -- context on a fleet: many sensors per batch, uneven and with gaps --------------------------


def fleet_rows(sensors=7, length=700, seed=11):
    """Readings of ``sensors`` sensors over the same time span at different rates (so a batch
    holds many rows of some, few of others: they go to different parts), of different shapes,
    some with gaps, interleaved in time order the way a store returns them."""
    ids, times, values = [], [], []
    for i in range(sensors):
        n = length // (1 + i)
        v = periodic(n, period=12 + 5 * i, seed=seed + i) * (i + 1) + 3 * i
        if i % 2:
            v[:: 7 + i] = np.nan  # gaps
        if i % 3 == 0:
            v[n // 2 :] += 4 * (i + 1)  # a level shift: symbols beyond the learned grid
        ids += [f"s-{i}"] * n
        times.append(np.arange(n) * (1 + i) * sensors + i)
        values.append(v)
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return Batch.from_columns(
        timestamp=t[order] * 1000,
        sensor_id=np.array(ids, dtype=object)[order],
        value=np.concatenate(values)[order],
    )


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, 1800), max_size=8))
def test_context_on_a_fleet_does_not_depend_on_batch_cuts(cuts):
    rows = fleet_rows()
    make = lambda: Context(columns=["value"], memory=60, learn=20)  # noqa: E731
    whole = make()(rows)
    cut = run_cut(make(), rows, cuts)
    for column in ("context_score", "context_detected", "anomaly_score"):
        assert np.array_equal(whole[column], cut[column], equal_nan=True), column


def test_context_on_a_fleet_equals_each_sensor_alone():
    rows = fleet_rows()
    together = Context(columns=["value"], memory=150, learn=30)(rows)
    for sensor in np.unique(rows["sensor_id"]):
        mine = rows["sensor_id"] == sensor
        alone = Context(columns=["value"], memory=150, learn=30)(rows.select(np.flatnonzero(mine)))
        got = together["context_score"][mine]
        assert np.array_equal(got, alone["context_score"], equal_nan=True), sensor


def test_context_fleet_state_round_trip_is_exact():
    rows = fleet_rows()
    half = len(rows) // 3
    first = Context(columns=["value"], memory=150, learn=30)
    first(rows.select(slice(0, half)))
    second = Context(columns=["value"], memory=150, learn=30)
    second.set_state(first.get_state())
    rest = rows.select(slice(half, None))
    a, b = first(rest), second(rest)
    assert np.array_equal(a["context_score"], b["context_score"], equal_nan=True)


def test_context_starts_cold_on_a_state_of_another_layout(caplog):
    detector = Context(columns=["value"])
    detector(one_series(periodic(300)))
    text = detector.get_state().replace('"ring"', '"history"')
    assert '"history"' in text
    again = Context(columns=["value"])
    again.set_state(text)
    assert again.sensors == [] and "layout" in caplog.text


def reference_context(values, bins, learn, orders, memory):
    """``context``'s statistic by its definition, one symbol at a time: for each order ``k`` the
    contexts (by the detector's counters) among the last ``memory`` symbols equal to this one."""
    quant = Quantiser(bins, learn)
    state = quant.initial((1,))
    ok = ~np.isnan(values)
    sym, after = quant.symbols(
        values[ok], np.zeros(ok.sum(), dtype=np.int64), np.arange(ok.sum()), state
    )
    sym = sym[after].astype(np.uint16)
    n = len(sym)
    keys = {k: np.full(n, -1, dtype=np.int64) for k in range(1, orders + 1)}
    for k in keys:
        if n >= k:
            keys[k][k - 1 :] = _keys(sym[None, :], k)[0]
    counts = {k: np.zeros(n) for k in keys}
    stat = np.full(n, np.nan)
    for p in range(n):
        total = 0.0
        for k in range(1, orders + 1):
            if p < k - 1:
                continue
            window = keys[k][max(k - 1, p - memory) : p]
            count = float(np.sum(window == keys[k][p]))
            if k == 1:
                total += np.log2(min(p, memory) + 2.0) if count == 0 else 0.0
            else:
                count = min(count, counts[k - 1][p - 1])
                total += np.log2((counts[k - 1][p - 1] + 2.0) / (count + 1.0))
            counts[k][p] = count
        if p >= orders - 1:
            stat[p] = total / orders
    out = np.full(len(values), np.nan)
    scored = np.flatnonzero(ok)[np.flatnonzero(after)]
    out[scored] = stat
    return out


@pytest.mark.parametrize(("orders", "memory"), [(1, 40), (2, 40), (3, 25), (2, 5000)])
def test_context_counts_as_its_definition_says(orders, memory):
    rng = np.random.default_rng(orders * 100 + memory)
    values = np.round(np.cumsum(rng.normal(0, 1, 900)) / 2)  # wanders beyond its grid
    values[::17] = np.nan
    want = reference_context(values, 6, 50, orders, memory)
    detector = Context(columns=["value"], bins=6, learn=50, orders=orders, memory=memory, novelty=0)
    out = run_cut(detector, one_series(values), [100, 101, 350, 700])
    stat = out["context_score"] * detector.threshold / (1 - out["context_score"])
    assert np.allclose(stat, want, equal_nan=True, rtol=1e-12, atol=1e-12)


def test_context_checkpoint_leaves_out_the_tables_and_rebuilds_them_exactly():
    rows = fleet_rows()
    detector = Context(columns=["value"], memory=60, learn=20, orders=3)
    detector(rows)
    text = detector.get_state()
    assert '"tables"' not in text and '"ring"' in text
    again = Context(columns=["value"], memory=60, learn=20, orders=3)
    again.set_state(text)
    sensors = len(detector.sensors)
    assert np.array_equal(again._big["tables"], detector._big["tables"][:sensors])
    assert again._big["tables"].sum() > 0


def test_context_large_batches_agree_with_small_ones():
    # past 2**17 values a batch packs its sort keys in 64 bits instead of 32: same results
    values = np.round(periodic(140_000, period=50, seed=8, noise=0.3) * 4)
    values[70_000:70_040] = 12.0
    whole = Context(columns=["value"], memory=3000)(one_series(values))
    cut = run_cut(Context(columns=["value"], memory=3000), one_series(values), [50_000, 100_000])
    assert np.array_equal(whole["context_score"], cut["context_score"], equal_nan=True)
    assert whole["context_detected"][70_000:70_040].any()
