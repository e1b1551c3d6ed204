"""The detectors' fast paths against straightforward references, on random data (hypothesis).

The vectorised paths (the EWM scan over blocks: one pass, masked passes per block, the per-block
loop of a single series; the CUSUM chunks; the forward fills and window gathers) must give the
same numbers, bit for bit, as the value-by-value definitions they replace, and the same however
the rows are cut into batches."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.detectors import EWMA, Cusum, RobustZScore, ZScore, base
from cosmobac.detectors._ewm import _places
from cosmobac.detectors._series import (
    equal_runs,
    last_valid,
    previous_valid,
    take_window,
)
from cosmobac.detectors.cusum import cusum_scan, cusum_state
from cosmobac.detectors.ewma import (
    Clip,
    _tables,
    block_size,
    ewm_scan,
    ewm_state,
    halflife_alpha,
)

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def series_sets(draw, max_series=4, max_length=300):
    """(S, L) values with gaps (NaN), some repeats and quantised stretches, and batch cuts."""
    count = draw(st.integers(1, max_series))
    length = draw(st.integers(1, max_length))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.normal(draw(st.sampled_from([0.0, 20.0, -1e3])), 1.0, (count, length))
    if draw(st.booleans()):
        values = np.round(values, draw(st.integers(0, 2)))  # quantised: repeats
    values[rng.random((count, length)) < draw(st.sampled_from([0.0, 0.05, 0.3]))] = np.nan
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, length - 1)), max_size=6))))
    return values, [c for c in cuts if 0 < c < length]


def batches(values, cuts):
    edges = [0, *cuts, values.shape[1]]
    return [values[:, a:b] for a, b in itertools.pairwise(edges)]


# -- the EWM scan -----------------------------------------------------------------------------
def reference_ewm(values, ok, alpha, size, clip_limit=None, warmup=0, floors=None):
    """The block closed form of :func:`ewm_scan`, value by value in Python (one series)."""
    grows, shrinks = _tables(alpha, size)
    coef = alpha * (1.0 - alpha)
    log_c = math.log1p(-alpha)
    mean0 = var0 = acc_m = acc_v = 0.0
    limit = math.inf
    count = 0
    mean_out = np.full(len(values), np.nan)
    var_out = np.full(len(values), np.nan)
    count_out = np.zeros(len(values), dtype=np.int64)
    for i, (x, good) in enumerate(zip(values.tolist(), ok.tolist(), strict=True)):
        if not good:
            continue
        if count == 0:
            mean0 = x
        k = count % size + 1
        if clip_limit is not None:
            if k == 1:  # a block begins: its limit, as numpy computes it
                n0 = np.array([count])
                with np.errstate(divide="ignore", invalid="ignore"):
                    sd0 = np.sqrt(np.array([var0]) / -np.expm1(log_c * (n0 - 1)))
                scale = np.fmax(np.where(n0 >= 2, sd0, np.nan), floors[i])
                limit = float(np.where((n0 >= warmup) & (scale > 0), clip_limit * scale, np.inf)[0])
            x = min(max(x, mean0 - limit), mean0 + limit)
        decay = float(shrinks[k - 1])
        mp = mean0 + decay * (alpha * acc_m)
        mean_out[i] = mp
        var_out[i] = decay * (var0 + coef * acc_v)
        count_out[i] = count
        acc_m = acc_m + float(grows[k]) * (x - mean0)
        d = x - mp
        acc_v = acc_v + float(grows[k]) * (d * d)
        if k == size:
            mean0 = mean0 + float(shrinks[size]) * (alpha * acc_m)
            var0 = float(shrinks[size]) * (var0 + coef * acc_v)
            acc_m = acc_v = 0.0
        count += 1
    return mean_out, var_out, count_out


def scan_in_batches(values, cuts, alpha, clip_limit=None, warmup=0, floors=None, block=128):
    series = len(values)
    state = ewm_state((series,))
    limits = np.full(series, np.inf)
    out = []
    edges = [0, *cuts, values.shape[1]]
    for a, b in itertools.pairwise(edges):
        x = values[:, a:b]
        clip = None
        if clip_limit is not None:
            clip = Clip(clip_limit, warmup, floors[:, a:b], limits, block)
        out.append(ewm_scan(x, np.isfinite(x), alpha, state, clip=clip))
    return [np.concatenate([o[i] for o in out], axis=1) for i in range(3)]


def same(a, b, ok):
    return np.array_equal(np.where(ok, a, 0.0), np.where(ok, b, 0.0))


@SETTINGS
@given(series_sets(), st.sampled_from([0.5, 3.0, 20.0, 100.0]), st.booleans())
def test_ewm_scan_matches_the_value_by_value_closed_form(data, halflife, clipped):
    values, cuts = data
    alpha = halflife_alpha(halflife)
    ok = np.isfinite(values)
    block = 7  # short blocks: most batches cross several (masked passes, per-block loop)
    floors = np.abs(np.nan_to_num(values)) * 0.01 if clipped else None
    size = min(block_size(alpha), block) if clipped else block_size(alpha)
    mean, var, count = scan_in_batches(
        values, cuts, alpha, 3.0 if clipped else None, 5, floors, block
    )
    for s in range(len(values)):
        ref = reference_ewm(
            values[s],
            ok[s],
            alpha,
            size,
            3.0 if clipped else None,
            5,
            floors[s] if clipped else None,
        )
        assert same(mean[s], ref[0], ok[s])
        assert same(var[s], ref[1], ok[s])
        assert np.array_equal(np.where(ok[s], count[s], 0), ref[2])


@SETTINGS
@given(series_sets(max_series=12, max_length=120), st.sampled_from([0.3, 1.0, 2.0]))
def test_ewm_scan_masked_passes_match_one_series_at_a_time(data, halflife):
    """Many series crossing several short blocks in one batch (the masked passes) give what each
    series gives alone (the per-block loop of a single series)."""
    values, cuts = data
    alpha = halflife_alpha(halflife)  # blocks of a few values only
    together = scan_in_batches(values, cuts, alpha)
    ok = np.isfinite(values)
    for s in range(len(values)):
        alone = scan_in_batches(values[s : s + 1], cuts, alpha)
        for a, b in zip(together, alone, strict=True):
            assert same(a[s], b[0], ok[s])


# -- CUSUM ------------------------------------------------------------------------------------
def reference_cusum(z, scored, slack, threshold):
    """Page's CUSUM row by row (the definition; the closed form agrees to rounding)."""
    up = down = 0.0
    out = np.full(len(z), np.nan)
    for i, (v, good) in enumerate(zip(z.tolist(), scored.tolist(), strict=True)):
        if not good:
            continue
        up = max(0.0, up + v - slack)
        down = max(0.0, down - v - slack)
        out[i] = max(up, down)
        if out[i] >= threshold:
            up = down = 0.0
    return out


@SETTINGS
@given(series_sets(max_series=4, max_length=400), st.sampled_from([0.5, 2.0, 8.0]))
def test_cusum_scan_chunks_match_the_definition_and_each_other(data, threshold):
    values, cuts = data
    # quarters: every sum is exact, so the closed form equals the definition to the bit
    z = np.round(np.nan_to_num(values, nan=0.0) * 4.0) / 4.0
    z -= np.round(np.mean(z))
    scored = np.isfinite(values)
    together_state = cusum_state((len(z),))
    together = np.concatenate(
        [
            cusum_scan(za, sa, 0.5, threshold, together_state)
            for za, sa in zip(batches(z, cuts), batches(scored, cuts), strict=True)
        ],
        axis=1,
    )
    for s in range(len(z)):
        alone_state = cusum_state((1,))
        alone = np.concatenate(
            [
                cusum_scan(za, sa, 0.5, threshold, alone_state)
                for za, sa in zip(
                    batches(z[s : s + 1], cuts), batches(scored[s : s + 1], cuts), strict=True
                )
            ],
            axis=1,
        )[0]
        assert np.array_equal(alone, together[s], equal_nan=True)  # 1-D loop = 2-D chunks
        assert np.array_equal(
            alone, reference_cusum(z[s], scored[s], 0.5, threshold), equal_nan=True
        )


# -- selections: forward fills, last values, windows, runs ------------------------------------
@SETTINGS
@given(series_sets(max_series=5, max_length=80))
def test_forward_fills_and_last_values_match_the_reference(data):
    values, _ = data
    ok = np.isfinite(values)
    last = np.random.default_rng(1).normal(size=len(values))
    last[::2] = np.nan
    assert np.array_equal(
        previous_valid(values, ok, last), base.previous_valid(values, ok, last), equal_nan=True
    )
    assert np.array_equal(
        last_valid(values, ok, last), base.last_valid(values, ok, last), equal_nan=True
    )


@SETTINGS
@given(
    st.integers(1, 5),
    st.integers(1, 40),
    st.integers(1, 12),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_take_window_matches_indexing(rows, extra, width, ragged, seed):
    rng = np.random.default_rng(seed)
    full = rng.normal(size=(rows, width + extra))
    ends = rng.integers(width, width + extra + 1, rows) if ragged else np.full(rows, width + extra)
    expected = np.stack([full[r, e - width : e] for r, e in enumerate(ends)])
    assert np.array_equal(take_window(full, ends, width), expected)


def reference_runs(same, ok, start):
    runs = np.zeros(same.shape, dtype=np.int64)
    ends = start.copy()
    for s in range(len(same)):
        run = int(start[s])
        for j in range(same.shape[1]):
            if same[s, j]:
                run += 1
            elif ok[s, j]:
                run = 1
            runs[s, j] = run
        ends[s] = run
    return runs, ends


@SETTINGS
@given(series_sets(max_series=5, max_length=80), st.integers(0, 50))
def test_equal_runs_match_a_loop(data, carried):
    values, _ = data
    ok = np.isfinite(values)
    previous = previous_valid(values, ok, np.full(len(values), np.nan))
    same = ok & (values == previous)
    start = np.full(len(values), carried, dtype=np.int64)
    run, end = equal_runs(same, ok, start)
    ref_run, ref_end = reference_runs(same, ok, start)
    assert np.array_equal(np.where(ok, run, 0), np.where(ok, ref_run, 0))
    assert np.array_equal(end, ref_end)


# -- whole detectors: independent of batch cuts -----------------------------------------------
def rows_of(values):
    count, length = values.shape
    sensors = np.repeat([f"s-{i}" for i in range(count)], length).astype(object)
    order = np.argsort(np.tile(np.arange(length), count), kind="stable")  # interleaved
    return Batch.from_columns(
        timestamp=np.tile(1000 * np.arange(length), count)[order],
        sensor_id=sensors[order],
        temperature=values.reshape(-1)[order],
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series_sets(max_series=3, max_length=400), st.sampled_from([ZScore, EWMA, Cusum]))
def test_detectors_are_exact_however_the_rows_are_cut(data, cls):
    values, cuts = data
    rows = rows_of(values)
    name = cls.kind
    whole = cls(columns=["temperature"], min_periods=2)(rows)[f"{name}_score"]
    detector = cls(columns=["temperature"], min_periods=2)
    edges = [0, *[c * len(values) for c in cuts], len(rows)]
    parts = [
        detector(rows.select(slice(a, b)))[f"{name}_score"] for a, b in itertools.pairwise(edges)
    ]
    assert np.array_equal(whole, np.concatenate(parts), equal_nan=True)


@pytest.mark.parametrize("cls", [ZScore, EWMA, Cusum])
def test_many_sensors_crossing_blocks_in_one_batch(cls):
    """100 sensors × 5 columns, 50 rows each per batch: the layout of the benchmark, where the
    masked block passes run; the same as one sensor at a time."""
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(20, 1, (20, 600)), 1)
    values[rng.random(values.shape) < 0.02] = np.nan
    rows = rows_of(values)
    detector = cls(columns=["temperature"])
    scores = np.concatenate(
        [
            detector(rows.select(slice(a, a + 1000)))[f"{cls.kind}_score"]
            for a in range(0, len(rows), 1000)
        ]
    )
    for s in (0, 7, 19):
        alone = cls(columns=["temperature"])(rows_of(values[s : s + 1]))[f"{cls.kind}_score"]
        mine = scores[rows["sensor_id"] == f"s-{s}"]
        assert np.array_equal(mine, alone, equal_nan=True)


@pytest.mark.parametrize("cls", [ZScore, EWMA, Cusum, RobustZScore])
def test_sensors_of_every_kind_in_one_padded_layout(cls):
    """Sensors with different row counts per batch (the shorter ones padded) and of every kind
    the per-series shortcuts tell apart: no gap and no repeat, gaps, a flatline, quantised
    repeats, a late start; the same as each sensor alone."""
    rng = np.random.default_rng(11)
    sensors, length = 12, 900
    values = rng.normal(20, 1, (sensors, length))
    values[1, rng.random(length) < 0.1] = np.nan  # gaps
    values[2, 300:420] = values[2, 299]  # a flatline
    values[3] = np.round(values[3])  # quantised: repeats everywhere
    values[4, :500] = np.nan  # starts late
    values[5, 600:] = np.nan  # stops early
    keep = np.ones((sensors, length), dtype=np.bool_)
    keep[6:, :] = rng.random((sensors - 6, length)) < 0.7  # fewer rows: padded in the layout
    ids = np.repeat([f"s-{i}" for i in range(sensors)], length).astype(object)
    steps = np.tile(np.arange(length), sensors)
    order = np.argsort(steps, kind="stable")
    chosen = order[keep.reshape(-1)[order]]
    rows = Batch.from_columns(
        timestamp=1000 * steps[chosen],
        sensor_id=ids[chosen],
        temperature=values.reshape(-1)[chosen],
    )
    detector = cls(columns=["temperature"])
    scores = np.concatenate(
        [
            detector(rows.select(slice(a, a + 500)))[f"{cls.kind}_score"]
            for a in range(0, len(rows), 500)
        ]
    )
    for s in range(sensors):
        mine = rows["sensor_id"] == f"s-{s}"
        alone = cls(columns=["temperature"])(rows.select(np.flatnonzero(mine)))
        assert np.array_equal(scores[mine], alone[f"{cls.kind}_score"], equal_nan=True), s


@SETTINGS
@given(series_sets(max_series=6, max_length=60), st.integers(0, 200))
def test_scan_places_match_counting_every_series(data, before):
    """The one-pass scan's factors and places: slices for series whose values come first, a
    running count for the others; the same as a running count for all."""
    values, _ = data
    ok = np.isfinite(values)
    ok[0, :] = ok[0, :].cumsum() == np.arange(1, ok.shape[1] + 1)  # values first, then none
    alpha = halflife_alpha(5.0)
    size = max(block_size(alpha), ok.shape[1] + before)
    count = np.arange(len(ok), dtype=np.int64) + before
    per = np.count_nonzero(ok, axis=1)
    grow, decay, k_last, index = _places(ok, alpha, size, count, per)
    grows, shrinks = _tables(alpha, size)
    rank = np.cumsum(ok, axis=1) - ok
    k = np.minimum(rank + (count % size + 1)[:, None], size)
    assert np.array_equal(np.where(ok, grow, 0), np.where(ok, grows[k], 0))
    assert np.array_equal(np.where(ok, decay, 0), np.where(ok, shrinks[k - 1], 0))
    assert np.array_equal(index, np.where(ok, rank + count[:, None], 0))
    last = np.where(per > 0, ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
    assert np.array_equal(k_last, k[np.arange(len(ok)), last])


def test_scan_places_of_a_batch_longer_than_a_block():
    """A batch longer than a block, each series with too few values to leave its block: every
    series counts its places."""
    alpha, size = halflife_alpha(5.0), 8
    ok = np.zeros((3, 20), dtype=np.bool_)
    ok[0, [1, 5, 19]] = True
    ok[1, :4] = True
    count = np.array([0, 12, 3], dtype=np.int64)  # the second fills its block
    per = np.count_nonzero(ok, axis=1)
    grow, decay, k_last, index = _places(ok, alpha, size, count, per)
    grows, shrinks = _tables(alpha, size)
    rank = np.cumsum(ok, axis=1) - ok
    k = np.minimum(rank + (count % size + 1)[:, None], size)
    assert np.array_equal(grow[ok], grows[k][ok])
    assert np.array_equal(decay[ok], shrinks[k - 1][ok])
    assert np.array_equal(index, np.where(ok, rank + count[:, None], 0))
    assert k_last.tolist() == [3, 8, 4]
