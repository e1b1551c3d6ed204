"""The shipped kernels equal plain numpy/Python references: NaN, ±Inf, no rows, one row, many rows,
random parameters, any split into chunks or batches."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from wasm_helpers import (
    close,
    kernel_module,
    ref_moving_average,
    ref_zscore,
    window_scale,
    write_wat,
)

from cosmobac import Batch
from cosmobac.transforms.basic import Calibrate
from cosmobac_wasm import BUILTIN, KernelRunner, WasmError, load_module, runtime, wasm_transform

NAN, INF = math.nan, math.inf
any_float = st.floats(allow_nan=True, allow_infinity=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
sensor_value = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([NAN, INF, -INF, 0.0, 1.0])
)


@functools.cache
def shipped() -> runtime.LoadedModule:
    return load_module(BUILTIN)


def run_map(kernel: str, x: np.ndarray, params: tuple[float, ...], chunk_rows: int = 65536):
    runner = KernelRunner(
        shipped(), kernel, inputs=1, outputs=1, params=params, chunk_rows=chunk_rows
    )
    return runner.run([x])[0]


def run_grouped(
    kernel: str,
    x: np.ndarray,
    groups: np.ndarray,
    params: tuple[float, ...],
    chunk_rows: int = 65536,
) -> np.ndarray:
    runner = KernelRunner(
        shipped(), kernel, inputs=1, outputs=1, params=params, chunk_rows=chunk_rows
    )
    ngroups = int(groups.max()) + 1 if len(groups) else 0
    state = np.zeros((ngroups, runner.state_width))
    return runner.run([x], group=groups.astype(np.int32), ngroups=ngroups, state=state)[0]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equal values (any NaN equals any NaN)."""
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


# -- element-wise kernels: exactly numpy's result ---------------------------------------------------
MAP_REFERENCES = {
    "calibrate": (2, lambda x, p: x * p[0] + p[1]),
    "celsius_to_fahrenheit": (0, lambda x, p: x * 1.8 + 32.0),
    "pascal_to_hectopascal": (0, lambda x, p: x / 100.0),
}


@pytest.mark.parametrize("kernel", sorted(MAP_REFERENCES))
@given(
    values=st.lists(any_float, max_size=300),
    params=st.tuples(finite, finite),
    chunk=st.integers(1, 64),
)
@example(values=[], params=(1.0, 0.0), chunk=1)
@example(values=[NAN], params=(2.0, 1.0), chunk=1)
@example(values=[INF, -INF, NAN, 1e308, -0.0, 5e-324], params=(2.0, -1.0), chunk=2)
def test_map_kernels_equal_numpy(kernel, values, params, chunk):
    nparams, reference = MAP_REFERENCES[kernel]
    x = np.array(values, dtype=np.float64)
    p = params[:nparams]
    with np.errstate(all="ignore"):
        expected = reference(x, p)
    assert same(run_map(kernel, x, p, chunk), expected)


@given(
    values=st.lists(any_float, max_size=300),
    lo=st.floats(allow_nan=False),
    span=st.floats(0, 1e9, allow_nan=False),
)
@example(values=[NAN, INF, -INF, 0.0, 10.0, 10.5], lo=0.0, span=10.0)
def test_valid_range_sets_out_of_range_to_nan_never_zero(values, lo, span):
    hi = lo + span
    x = np.array(values, dtype=np.float64)
    expected = np.where((x >= lo) & (x <= hi), x, np.nan)
    got = run_map("valid_range", x, (lo, hi))
    assert same(got, expected)
    assert not np.any((got == 0.0) & (x != 0.0))  # out-of-range never becomes 0.0


@pytest.mark.parametrize(
    ("kernel", "params", "message"),
    [
        ("calibrate", (NAN, 0.0), "gain and offset must be finite"),
        ("valid_range", (5.0, 1.0), "lo must not be greater than hi"),
        ("valid_range", (NAN, 1.0), "not NaN"),
        ("moving_average", (0.0,), "window must be a whole number"),
        ("moving_average", (2.5,), "window must be a whole number"),
        ("zscore_flag", (4.0, -1.0), "threshold must be a positive"),
    ],
)
def test_invalid_parameters_fail_when_the_runner_is_made(kernel, params, message):
    with pytest.raises(WasmError, match=message) as caught:
        KernelRunner(shipped(), kernel, inputs=1, outputs=1, params=params)
    assert caught.value.cause == "kernel error"
    assert caught.value.kernel == kernel


# -- windowed kernels: a per-sensor reference with fresh sums ----------------------------------------
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), sensor_value), max_size=200),
    window=st.integers(1, 12),
    chunk=st.integers(1, 50),
)
@example(rows=[], window=3, chunk=1)
@example(rows=[(0, NAN)], window=1, chunk=1)
@example(rows=[(0, 1.0), (1, INF), (0, NAN), (0, 3.0), (1, 2.0)], window=2, chunk=1)
def test_moving_average_equals_reference(rows, window, chunk):
    groups = np.array([g for g, _ in rows], dtype=np.int32)
    x = np.array([v for _, v in rows], dtype=np.float64)
    got = run_grouped("moving_average", x, groups, (float(window),), chunk)
    expected = ref_moving_average(x, groups, window)
    assert close(got, expected, window_scale(x, groups, window)).all(), (got, expected)


@given(
    rows=st.lists(st.tuples(st.integers(0, 3), sensor_value), max_size=200),
    window=st.integers(1, 12),
    threshold=st.floats(0.1, 5.0),
    chunk=st.integers(1, 50),
)
@example(rows=[(0, 1.0), (0, 2.0), (0, 3.0), (0, 10.0)], window=3, threshold=2.0, chunk=2)
def test_zscore_and_flags_equal_reference(rows, window, threshold, chunk):
    groups = np.array([g for g, _ in rows], dtype=np.int32)
    x = np.array([v for _, v in rows], dtype=np.float64)
    z = run_grouped("zscore", x, groups, (float(window),), chunk)
    flags = run_grouped("zscore_flag", x, groups, (float(window), threshold), chunk)
    expected, conditioned = ref_zscore(x, groups, window)
    check = conditioned & np.isfinite(expected) | np.isnan(expected)
    with np.errstate(invalid="ignore"):
        near = np.isclose(z, expected, rtol=1e-6, atol=1e-9) | (np.isnan(z) & np.isnan(expected))
    assert near[check].all(), (z[check], expected[check])
    with np.errstate(invalid="ignore"):
        clear = check & ~np.isclose(np.abs(expected), threshold, rtol=1e-6)
        expected_flags = np.abs(expected) > threshold
    assert np.array_equal(flags[clear] == 1.0, expected_flags[clear])
    assert set(np.unique(flags)) <= {0.0, 1.0}  # a flag is never NaN
    assert not np.any(flags[np.isnan(x)])  # a missing reading is not an anomaly


def test_a_constant_history_gives_an_infinite_z_and_equal_values_none():
    x = np.array([5.0, 5.0, 5.0, 7.0, 5.0, 3.0])
    groups = np.zeros(6, dtype=np.int32)
    z = run_grouped("zscore", x, groups, (3.0,))
    assert np.isnan(z[:2]).all()  # fewer than two values before them
    assert np.isnan(z[2])  # 0 / 0: equal to a constant history
    assert z[3] == INF  # above a constant history
    flags = run_grouped("zscore_flag", x, groups, (3.0, 3.0))
    assert flags.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]  # 3 vs 5, 7, 5: z = -2.3


@pytest.mark.parametrize("kernel", ["moving_average", "zscore", "zscore_flag", "calibrate"])
def test_large_batches_in_many_chunks(kernel):
    rng = np.random.default_rng(7)
    n, sensors = 200_003, 97
    x = rng.normal(20.0, 5.0, n)
    x[rng.integers(0, n, 500)] = np.nan
    x[rng.integers(0, n, 50)] = np.inf
    groups = rng.integers(0, sensors, n).astype(np.int32)
    if kernel == "calibrate":
        got = run_map(kernel, x, (1.02, -0.3), chunk_rows=30_000)
        assert same(got, x * 1.02 + -0.3)
        return
    params = (16.0,) if kernel != "zscore_flag" else (16.0, 3.0)
    got = run_grouped(kernel, x, groups, params, chunk_rows=30_000)
    whole = run_grouped(kernel, x, groups, params, chunk_rows=n)
    assert same(got, whole)  # chunking changes nothing, bit for bit
    if kernel == "moving_average":
        assert close(got, ref_moving_average(x, groups, 16), window_scale(x, groups, 16)).all()
    else:
        z, conditioned = ref_zscore(x, groups, 16)
        if kernel == "zscore":
            ok = np.isclose(got, z, rtol=1e-6) | (np.isnan(got) & np.isnan(z))
            assert ok[conditioned].all()
        else:
            with np.errstate(invalid="ignore"):
                clear = conditioned & ~np.isclose(np.abs(z), 3.0, rtol=1e-6)
                assert np.array_equal(got[clear] == 1.0, (np.abs(z) > 3.0)[clear])


# -- through the transform: batches, sensors, state -------------------------------------------------
def batch_of(rows: list[tuple[int, float]], start_seq: int = 1) -> Batch:
    return Batch.from_columns(
        sensor_id=[f"s{g}" for g, _ in rows],
        timestamp=np.arange(start_seq, start_seq + len(rows)),
        temperature=[v for _, v in rows],
        seq=np.arange(start_seq, start_seq + len(rows)),
    )


@settings(max_examples=30)
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), sensor_value), min_size=1, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=5),
    kernel=st.sampled_from(["moving_average", "zscore"]),
    window=st.integers(1, 8),
)
def test_windows_carry_across_batches_and_restarts(rows, cuts, kernel, window):
    def make():
        return wasm_transform(
            kernel=kernel, columns={"temperature": {"output": "out"}}, params=[window]
        )

    whole = make()(batch_of(rows))["out"]
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    streamed, restarted = make(), make()
    pieces, resumed = [], []
    for a, b in itertools.pairwise(bounds):
        piece = batch_of(rows[a:b], a + 1)
        pieces.append(streamed(piece)["out"])
        saved = restarted.get_state()
        restarted = make()  # a new forwarder process: cold, then warmed from the saved state
        restarted.set_state(saved)
        resumed.append(restarted(piece)["out"])
    assert same(np.concatenate(pieces), whole)
    assert same(np.concatenate(resumed), whole)


@given(
    gains=st.dictionaries(
        st.sampled_from(["temperature", "humidity", "pressure"]),
        st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
        min_size=1,
    ),
    values=st.lists(st.tuples(any_float, any_float, any_float), max_size=60),
)
def test_python_and_wasm_calibration_agree(gains, values):
    batch = Batch.from_columns(
        sensor_id=["s"] * len(values),
        timestamp=np.arange(len(values)),
        temperature=[v[0] for v in values],
        humidity=[v[1] for v in values],
        pressure=[v[2] for v in values],
    )
    python = Calibrate(columns={k: {"gain": g, "offset": o} for k, (g, o) in gains.items()})
    wasm = wasm_transform(kernel="calibrate", columns={k: [g, o] for k, (g, o) in gains.items()})
    with np.errstate(all="ignore"):
        assert wasm(batch).equals(python(batch))


def test_the_public_call_path_gives_the_same_results(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 5000)
    groups = rng.integers(0, 10, 5000).astype(np.int32)
    fast = run_grouped("zscore", x, groups, (8.0,), chunk_rows=999)
    monkeypatch.setattr(runtime, "FAST_CALLS", False)
    slow = run_grouped("zscore", x, groups, (8.0,), chunk_rows=999)
    assert same(fast, slow)


def test_a_kernel_that_grows_memory_between_chunks_still_gets_the_right_columns(tmp_path):
    """The runner keeps its views of the module's memory and its bound call between calls, and
    makes new ones when the memory grows or the chunk length changes: every length, every chunk
    and a memory grown on every call still read and write the right rows."""
    body = """
      (drop (memory.grow (i32.const 1)))
      (call $copy (local.get 0) (local.get 1) (local.get 2))
      (i32.const 0)"""
    loaded = load_module(write_wat(tmp_path, "grows", kernel_module(body)))
    runner = KernelRunner(loaded, "k", inputs=1, outputs=1, params=(), chunk_rows=7)
    for n in (100, 3, 64, 0, 1, 50):  # new lengths: new chunk sizes, new views
        x = np.arange(n, dtype=np.float64) * 1.5 - n
        np.testing.assert_array_equal(runner.run([x])[0], x)
