"""Fused chains: ``kernels = [...]`` and :func:`cosmobac_wasm.fuse` give, bit for bit, what the
kernels give one transform after another; failures name the kernel and its step; the sandbox's
limits cover the whole chain."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_wasm_transform import pipeline_toml
from wasm_helpers import ABI, COPY, write_wat

from cosmobac import Batch
from cosmobac.assembly import fuse_transforms
from cosmobac.config import parse_config
from cosmobac.pipeline import Pipeline
from cosmobac.plugins import Plugins
from cosmobac_wasm import (
    BUILTIN,
    ChainRunner,
    ChainStep,
    GroupedWasmTransform,
    WasmChainTransform,
    WasmError,
    WasmTransform,
    fuse,
    load_module,
    wasm_transform,
)

GAIN, OFFSET, LO, HI = 1.02, -0.3, -40.0, 140.0
CHAIN = [
    {"kernel": "calibrate", "params": [GAIN, OFFSET]},
    "celsius_to_fahrenheit",
    {"kernel": "valid_range", "params": [LO, HI]},
]

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


def batch_of(values: list[float], other: list[float] | None = None) -> Batch:
    n = len(values)
    return Batch.from_columns(
        sensor_id=["s"] * n,
        timestamp=list(range(n)),
        temperature=np.array(values, dtype=np.float64),
        humidity=np.array(other if other is not None else values, dtype=np.float64),
        seq=list(range(1, n + 1)),
    )


def one_by_one(batch: Batch, steps: list[dict], **options) -> Batch:
    for step in steps:
        spec = {"kernel": step} if isinstance(step, str) else step
        batch = wasm_transform(**{"columns": ["temperature"], **options, **spec})(batch)
    return batch


def same_bits(a: Batch, b: Batch) -> None:
    assert list(a.columns) == list(b.columns)
    for name in a.columns:
        x, y = a[name], b[name]
        assert x.dtype == y.dtype, name
        if x.dtype.kind == "f":
            assert x.tobytes() == y.tobytes(), name  # NaN payloads and signed zeros included
        else:
            assert x.tolist() == y.tolist(), name


# -- the same numbers -----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(floats, max_size=300),
    chunk_rows=st.sampled_from([1, 7, 512, 513, 65536]),
    in_module=st.booleans(),
)
def test_a_chain_gives_bit_for_bit_what_the_kernels_give_one_by_one(values, chunk_rows, in_module):
    batch = batch_of(values)
    chain = wasm_transform(kernels=CHAIN, columns=["temperature"], chunk_rows=chunk_rows)
    if not in_module:
        chain.runner.in_module = False  # the host calls each kernel in turn
    expected = one_by_one(batch, CHAIN, chunk_rows=chunk_rows)
    same_bits(chain(batch), expected)
    with np.errstate(invalid="ignore", over="ignore"):
        y = np.array(values, dtype=np.float64) * GAIN + OFFSET
        y = y * 1.8 + 32.0
        plain = np.where((y >= LO) & (y <= HI), y, np.nan)
    assert chain(batch)["temperature"].tobytes() == plain.tobytes()  # numpy's numbers, too


KERNELS = [
    ("calibrate", [2.5, -1.0]),
    ("celsius_to_fahrenheit", []),
    ("pascal_to_hectopascal", []),
    ("valid_range", [-10.0, 50.0]),
]
NAMES = ["temperature", "humidity", "a", "b"]


@st.composite
def wirings(draw):
    """Random chains over four columns: each step reads a column the batch has or an earlier step
    wrote, and writes any column (buffers get reused, columns overwritten, renamed)."""
    known = ["temperature", "humidity"]
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kernel, params = draw(st.sampled_from(KERNELS))
        source = draw(st.sampled_from(known))
        target = draw(st.sampled_from(NAMES))
        known = sorted({*known, target})
        steps.append({"kernel": kernel, "params": params, "inputs": [source], "outputs": [target]})
    return steps


@settings(max_examples=40, deadline=None)
@given(steps=wirings(), values=st.lists(floats, min_size=1, max_size=40), in_module=st.booleans())
def test_any_wiring_of_columns_gives_what_the_transforms_give_in_turn(steps, values, in_module):
    batch = batch_of(values, values[::-1])
    chain = wasm_transform(kernels=steps, chunk_rows=16)
    if not in_module:
        chain.runner.in_module = False
    expected = batch
    for step in steps:
        expected = wasm_transform(**step, chunk_rows=16)(expected)
    same_bits(chain(batch), expected)


def test_fuse_joins_consecutive_map_transforms_of_one_module():
    batch = batch_of([20.0, np.nan, -300.0, 99.0, 0.0, -0.0, np.inf])
    parts = [
        wasm_transform(kernel="calibrate", columns=["temperature"], params=[GAIN, OFFSET]),
        wasm_transform(kernel="celsius_to_fahrenheit", columns={"temperature": {"output": "f"}}),
        wasm_transform(kernel="valid_range", columns=["f"], params=[LO, HI]),
    ]
    windowed = wasm_transform(kernel="moving_average", columns=["f"], params=[3])
    later = wasm_transform(kernel="pascal_to_hectopascal", columns=["humidity"])
    fused = fuse([*parts, windowed, later])
    assert len(fused) == 3 and fused[1] is windowed and fused[2] is later  # one run of three
    assert isinstance(fused[0], WasmChainTransform)
    assert fused[0].kernels == ("calibrate", "celsius_to_fahrenheit", "valid_range")
    expected = batch
    for t in [*parts, windowed, later]:
        expected = t(expected)
    windowed.set_state("")  # the windows start again for the fused run
    out = batch
    for t in fused:
        out = t(out)
    same_bits(out, expected)
    assert isinstance(windowed, GroupedWasmTransform)


def test_fuse_keeps_apart_what_cannot_share_a_run(tmp_path):
    bools = wasm_transform(
        kernel="valid_range", inputs=["temperature"], outputs=["ok"], params=[0, 1],
        dtypes={"ok": "bool"},
    )  # fmt: skip
    after = wasm_transform(kernel="calibrate", columns=["ok"], params=[2, 0])
    other_limits = wasm_transform(kernel="calibrate", columns=["ok"], params=[2, 0], timeout="9s")
    assert fuse([bools, after]) == [bools, after]  # its bools must reach `after` as 0/1
    assert fuse([after, other_limits]) == [after, other_limits]
    assert fuse([]) == []
    (single,) = fuse([after])
    assert single is after


# -- failures name the kernel and its step -------------------------------------------------------
TEST_KERNELS = f"""(module {ABI} {COPY}
  (func (export "copy") (param i32 i32 i32) (result i32)
    (call $copy (local.get 0) (local.get 1) (local.get 2)) (i32.const 0))
  (func (export "fails") (param i32 i32 i32) (result i32)
    (if (local.get 0) (then (return (i32.const 3)))) (i32.const 0))
  (func (export "spins") (param i32 i32 i32) (result i32)
    (if (local.get 0) (then (loop $forever (br $forever)))) (i32.const 0))
  (func (export "traps") (param i32 i32 i32) (result i32)
    (if (local.get 0) (then (unreachable))) (i32.const 0))
  (func (export "smooth") (param i32 i32 i32 i32 i32 i32 f64) (result i32) (i32.const 0))
  (func (export "smooth__state") (param f64) (result i32) (i32.const 1))
  ;; a chain export that refuses every chain: the host calls the kernels one by one instead
  (func (export "cosmobac_chain") (param i32 i32) (result i32) (i32.const 1)))"""


@pytest.fixture
def test_module(tmp_path):
    return str(write_wat(tmp_path, "steps", TEST_KERNELS))


@pytest.mark.parametrize(
    ("bad", "cause"),
    [("fails", "kernel error"), ("spins", "budget exhausted"), ("traps", "trap")],
)
def test_a_failure_names_the_kernel_and_its_step(test_module, bad, cause):
    chain = wasm_transform(
        module=test_module, kernels=["copy", bad, "copy"], columns=["temperature"], timeout=0.3
    )
    assert not chain.runner.in_module  # its cosmobac_chain refused the chain at the start
    with pytest.raises(WasmError) as caught:
        chain(batch_of([1.0, 2.0]))
    error = caught.value
    assert error.kernel == bad and error.cause == cause
    assert "step 2 of 3 in the chain copy → " + bad + " → copy" in str(error)
    assert chain(batch_of([]))["temperature"].tolist() == []  # and the next batch runs afresh


def test_a_failure_inside_the_shipped_module_names_its_kernel():
    """The shipped module runs the chain itself; the step it was in when the fuel ran out is
    the one named."""
    chain = wasm_transform(kernels=CHAIN, columns=["temperature"], fuel=20_000)
    assert chain.runner.in_module
    with pytest.raises(WasmError) as caught:
        chain(batch_of([20.0] * 20_000))
    error = caught.value
    assert error.cause == "budget exhausted" and "20000 units of fuel" in str(error)
    assert error.kernel in {"calibrate", "celsius_to_fahrenheit", "valid_range"}
    assert "in the chain calibrate → celsius_to_fahrenheit → valid_range" in str(error)
    small = batch_of([20.0, -300.0])  # the next batch runs in a fresh instance
    same_bits(chain(small), one_by_one(small, CHAIN))


def test_batches_of_changing_sizes_reuse_or_grow_the_buffers():
    rng = np.random.default_rng(5)
    chain = wasm_transform(kernels=CHAIN, columns=["temperature", "humidity"], chunk_rows=4096)
    for n in (1, 100, 5000, 3, 70_000, 4096, 0, 12_345):
        values = rng.normal(20, 60, n)
        values[rng.integers(0, max(n, 1), n // 50)] = np.nan if n else 0
        batch = batch_of(values.tolist(), (values * -1).tolist())
        same_bits(chain(batch), one_by_one(batch, CHAIN, columns=["temperature", "humidity"]))


def fuel_for_one(batch: Batch) -> int:
    """The least of a doubling series of fuels that lets one celsius_to_fahrenheit call pass
    over ``batch``."""
    for fuel in (20_000, 40_000, 80_000, 160_000, 320_000, 640_000):
        try:
            wasm_transform(kernel="celsius_to_fahrenheit", columns=["temperature"], fuel=fuel)(
                batch
            )
        except WasmError:
            continue
        return fuel
    raise AssertionError("no fuel in the series lets one kernel pass")


def test_the_budget_covers_the_whole_chain_not_each_kernel():
    """Fuel enough for one kernel over the batch, not for three: the chain runs out."""
    batch = batch_of([20.0] * 5000)
    runner = ChainRunner(
        load_module(BUILTIN), [ChainStep("celsius_to_fahrenheit", ("temperature",), ("t",))]
    )
    one = load_module(BUILTIN).sandbox  # defaults, no fuel: just to find a fuel that fits one
    assert one.fuel is None and runner.in_module
    enough = fuel_for_one(batch)
    single = wasm_transform(kernels=["celsius_to_fahrenheit"], columns=["temperature"], fuel=enough)
    single(batch)  # the chain form of one kernel fits too
    three = wasm_transform(
        kernels=["celsius_to_fahrenheit"] * 3, columns=["temperature"], fuel=enough
    )
    with pytest.raises(WasmError, match="budget exhausted"):
        three(batch)


# -- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"kernel": "calibrate", "kernels": ["calibrate"]}, ValueError, ["either kernel"]),
        ({}, ValueError, ["either kernel", "or kernels"]),
        ({"kernels": "calibrate"}, TypeError, ["kernels must be a non-empty list"]),
        ({"kernels": []}, TypeError, ["kernels must be a non-empty list"]),
        ({"kernels": [3]}, TypeError, ["kernels[0] must be a kernel name or a table"]),
        ({"kernels": [{"params": [1]}]}, TypeError, ["kernels[0].kernel"]),
        ({"kernels": [{"kernel": "x", "gain": 1}]}, TypeError, ["kernels[0]: unknown key 'gain'"]),
        (
            {"kernels": ["celsius_to_fahrenheit"]},
            ValueError,
            ["kernels[0]: give the kernel columns"],
        ),
        (
            {"kernels": ["celsius_to_fahrenheit"], "columns": {"t": [1]}},
            TypeError,
            ["with kernels, columns must be a list"],
        ),
        ({"kernels": CHAIN, "columns": ["t"], "params": [1, 2]}, ValueError, ["params goes in"]),
        ({"kernels": CHAIN, "inputs": ["t"]}, ValueError, ["inputs goes in"]),
        (
            {"kernels": [{"kernel": "calibrate", "columns": ["t"], "params": ["x"]}]},
            TypeError,
            ["kernels[0]: params must be a list of numbers"],
        ),
        (
            {"kernels": ["celsius_to_fahrenheit", "moving_average"], "columns": ["t"]},
            WasmError,
            ["moving_average is a grouped (windowed) kernel", "step 2 of 2"],
        ),
        (
            {"kernels": ["celsius_to_fahrenheit", "nothing"], "columns": ["t"]},
            WasmError,
            ["no function 'nothing'", "step 2 of 2"],
        ),
        (
            {"kernels": [{"kernel": "valid_range", "params": [5, 1]}], "columns": ["t"]},
            WasmError,
            ["lo must not be greater than hi"],
        ),
        (
            {"kernels": [{"kernel": "calibrate", "inputs": ["t"], "outputs": ["seq"]}]},
            ValueError,
            ["'seq' identifies rows"],
        ),
    ],
)
def test_bad_chains_name_the_key(options, error, words):
    with pytest.raises(error) as caught:
        wasm_transform(**options)
    for word in words:
        assert word in str(caught.value)


def test_a_pipeline_file_declares_a_chain():
    config = parse_config(
        tomllib.loads(
            """
        [store]
        plugin = "memory"

        [[transforms]]
        plugin = "wasm"
        columns = ["temperature"]
        dtypes = { in_range = "bool" }
        kernels = [
          { kernel = "calibrate", params = [1.02, -0.3] },
          "celsius_to_fahrenheit",
          { kernel = "valid_range", inputs = ["temperature"], outputs = ["in_range"], params = [-40, 140] },
        ]
        """
        )
    )
    (table,) = config.transforms
    transform = table.build(Plugins())
    assert isinstance(transform, WasmChainTransform) and not isinstance(transform, WasmTransform)
    out = transform(batch_of([20.0, 1000.0, np.nan]))
    fahrenheit = (np.array([20.0, 1000.0]) * 1.02 - 0.3) * 1.8 + 32.0
    assert out["temperature"][:2].tolist() == fahrenheit.tolist()
    assert np.isnan(out["temperature"][2])
    assert out["in_range"].tolist() == [True, False, False]


def test_a_missing_or_text_column_names_the_kernel_that_reads_it():
    chain = wasm_transform(
        kernels=[
            {"kernel": "calibrate", "columns": ["temperature"], "params": [1, 0]},
            {"kernel": "pascal_to_hectopascal", "columns": ["pressure"]},
        ]
    )
    with pytest.raises(WasmError) as caught:
        chain(batch_of([1.0]))
    assert caught.value.kernel == "pascal_to_hectopascal"
    assert "bad input: the batch has no column 'pressure'" in str(caught.value)
    reads_text = wasm_transform(
        kernels=[
            "celsius_to_fahrenheit",
            {"kernel": "pascal_to_hectopascal", "inputs": ["sensor_id"], "outputs": ["x"]},
        ],
        columns=["temperature"],
    )
    with pytest.raises(WasmError) as caught:
        reads_text(batch_of([1.0]))
    assert caught.value.kernel == "pascal_to_hectopascal"
    assert "column 'sensor_id' is not numeric" in str(caught.value)
    ints = batch_of([1.0]).with_columns({"pressure": np.array([101325])})
    assert chain(ints)["pressure"].tolist() == [1013.25]  # whole numbers are numbers


# -- in a pipeline --------------------------------------------------------------------------------
SEPARATE = """
    [[transforms]]
    plugin = "wasm"
    kernel = "calibrate"
    columns = { temperature = [1.02, -0.3] }

    [[transforms]]
    plugin = "wasm"
    kernel = "celsius_to_fahrenheit"
    columns = { temperature = { output = "temperature_f" } }

    [[transforms]]
    plugin = "wasm"
    kernel = "valid_range"
    columns = { temperature_f = [-40, 100] }
"""

UNFUSED = SEPARATE.replace(  # each table its own chunk_rows: no two fuse, each runs on its own
    'kernel = "celsius_to_fahrenheit"', 'kernel = "celsius_to_fahrenheit"\n    chunk_rows = 60000'
).replace('kernel = "valid_range"', 'kernel = "valid_range"\n    chunk_rows = 50000')

CHAINED = """
    [[transforms]]
    plugin = "wasm"
    kernels = [
      { kernel = "calibrate", columns = { temperature = [1.02, -0.3] } },
      { kernel = "celsius_to_fahrenheit", columns = { temperature = { output = "temperature_f" } } },
      { kernel = "valid_range", columns = { temperature_f = [-40, 100] } },
    ]
"""


def test_a_pipeline_with_a_chain_forwards_what_separate_transforms_forward(tmp_path):
    outputs = []
    cases = (("unfused", UNFUSED), ("separate", SEPARATE), ("chained", CHAINED))
    for name, transforms in cases:
        out = tmp_path / f"{name}.jsonl"
        config = pipeline_toml(tmp_path, tmp_path / f"{name}.db", out, transforms=transforms)
        with Pipeline.from_config(config, need_sensor=True, need_sinks=True) as pipeline:
            collected, forwarded = pipeline.run()
        assert forwarded.ok and forwarded.lanes[0].acked == collected.rows_added > 100
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] == outputs[2]  # the same documents, to the last digit
    assert "temperature_f" in outputs[1]


def lane_chain(pipeline: Pipeline) -> list[str]:
    """What the pipeline's one lane runs: its transforms' class names after fusion."""
    return [type(t).__name__ for t in fuse_transforms(pipeline.lanes[0].transforms)]


def test_consecutive_tables_of_one_module_run_as_one_chain(tmp_path):
    """Separate [[transforms]] tables fuse in a pipeline, and their limits then cover the run."""
    config = pipeline_toml(tmp_path, tmp_path / "a.db", tmp_path / "a.jsonl", transforms=SEPARATE)
    with Pipeline.from_config(config, need_sensor=True, need_sinks=True) as pipeline:
        assert [type(t).__name__ for t in pipeline.lanes[0].transforms] == ["WasmTransform"] * 3
        assert lane_chain(pipeline) == ["WasmChainTransform"]
    config = pipeline_toml(tmp_path, tmp_path / "b.db", tmp_path / "b.jsonl", transforms=UNFUSED)
    with Pipeline.from_config(config, need_sensor=True, need_sinks=True) as pipeline:
        assert lane_chain(pipeline) == ["WasmTransform"] * 3
    # fuel enough for each table's kernel on its own, not for the three: one by one every
    # table passes; fused, the run has one table's budget and runs out in the chain
    batch = batch_of([20.0] * 5000)
    fuel = fuel_for_one(batch)
    separate = [
        wasm_transform(kernel="celsius_to_fahrenheit", columns=["temperature"], fuel=fuel)
        for _ in range(3)
    ]
    out = batch
    for transform in separate:
        out = transform(out)
    (fused,) = fuse_transforms(separate)
    with pytest.raises(WasmError, match=r"budget exhausted.*step \d of 3 in the chain"):
        fused(batch)
