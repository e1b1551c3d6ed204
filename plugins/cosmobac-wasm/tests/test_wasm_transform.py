"""The ``wasm`` transform as a plugin: registration, configuration, a pipeline from the SQLite store
to the ``jsonl`` sink, dead letters, window state across restarts, and the compile cache."""

from __future__ import annotations

import json
import logging
import textwrap
import time

import numpy as np
import pytest
from wasm_helpers import kernel_module, ref_moving_average, write_wat

from cosmobac import Batch
from cosmobac.config import parse_config
from cosmobac.errors import ConfigError
from cosmobac.interfaces import StatefulTransform
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.plugins import Plugins
from cosmobac.testing import ListSink, MemoryStore, fresh_plugins, run_cosmobac
from cosmobac_wasm import (
    GroupedWasmTransform,
    WasmError,
    WasmTransform,
    load_module,
    wasm_transform,
)

BATCH = Batch.from_columns(
    sensor_id=["a", "b", "a", "b"],
    timestamp=[1, 2, 3, 4],
    temperature=[20.0, 10.0, np.nan, 30.0],
    pressure=[101325.0, 100000.0, 99000.0, np.nan],
    seq=[1, 2, 3, 4],
)


def test_register_transforms_wasm_through_its_entry_point():
    component = Plugins().get("transform", "wasm")
    assert component.distribution == "cosmobac-wasm"
    assert component.plugin == "wasm"
    assert "WebAssembly" in (component.description or "")
    assert component.accepted_keys() == [
        "kernel", "kernels", "module", "inputs", "outputs", "params", "columns", "group_by", "dtypes",
        "timeout", "memory_limit", "fuel", "chunk_rows", "cache_dir",
    ]  # fmt: skip


def test_register_transforms_wasm_by_hand():
    import cosmobac_wasm

    with fresh_plugins(cosmobac_wasm) as plugins:
        transform = plugins.create(
            "transform", "wasm", kernel="pascal_to_hectopascal", columns=["pressure"]
        )
    out = transform(BATCH)
    assert out["pressure"][:3].tolist() == [1013.25, 1000.0, 990.0]
    assert np.isnan(out["pressure"][3])  # missing stays missing
    assert out["seq"].tolist() == [1, 2, 3, 4]  # rows keep their seq: acks stay exact


def test_map_and_grouped_kernels_make_the_right_kind_of_transform():
    plain = wasm_transform(kernel="celsius_to_fahrenheit", columns=["temperature"])
    windowed = wasm_transform(kernel="moving_average", columns=["temperature"], params=[2])
    assert type(plain) is WasmTransform and not isinstance(plain, StatefulTransform)
    assert isinstance(windowed, GroupedWasmTransform) and isinstance(windowed, StatefulTransform)


def test_columns_inputs_outputs_and_dtypes():
    calibrated = wasm_transform(
        kernel="calibrate",
        columns={"temperature": [2.0, 1.0], "pressure": {"params": [0.01, 0.0], "output": "hpa"}},
    )(BATCH)
    assert np.array_equal(
        calibrated["temperature"], BATCH["temperature"] * 2.0 + 1.0, equal_nan=True
    )
    assert np.array_equal(calibrated["hpa"], BATCH["pressure"] * 0.01, equal_nan=True)
    assert np.array_equal(calibrated["pressure"], BATCH["pressure"], equal_nan=True)
    flagged = wasm_transform(
        kernel="zscore_flag",
        inputs=["temperature"],
        outputs=["temperature_anomaly"],
        params=[4, 1.0],
        dtypes={"temperature_anomaly": "bool"},
        group_by="",
    )(BATCH)
    assert flagged["temperature_anomaly"].dtype == np.bool_
    assert flagged["temperature_anomaly"].tolist() == [False, False, False, True]


def test_windows_are_kept_per_sensor_or_for_the_whole_stream():
    per_sensor = wasm_transform(
        kernel="moving_average", columns={"temperature": {"output": "avg"}}, params=[2]
    )
    assert per_sensor(BATCH)["avg"].tolist() == [20.0, 10.0, 20.0, 20.0]
    whole = wasm_transform(
        kernel="moving_average", columns={"temperature": {"output": "avg"}}, params=[2], group_by=""
    )
    assert whole(BATCH)["avg"].tolist() == [20.0, 15.0, 10.0, 30.0]


def test_an_empty_batch_gets_the_output_columns():
    empty = BATCH.select(slice(0, 0))
    for kernel, params in [("calibrate", [1, 0]), ("moving_average", [3])]:
        out = wasm_transform(
            kernel=kernel, columns={"temperature": {"output": "x"}}, params=params
        )(empty)
        assert len(out) == 0 and "x" in out


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({}, ValueError, ["either inputs", "or columns"]),
        ({"inputs": ["t"], "columns": ["t"]}, ValueError, ["either inputs"]),
        ({"columns": "temperature"}, TypeError, ["columns must be a list of column names"]),
        ({"inputs": []}, TypeError, ["inputs must be a non-empty list"]),
        ({"columns": ["t"], "outputs": ["u"]}, ValueError, ["outputs goes with inputs"]),
        ({"columns": ["t"], "params": ["x"]}, TypeError, ["params must be a list of numbers"]),
        ({"columns": ["t"], "params": [True]}, TypeError, ["params"]),
        ({"columns": {"t": {"gain": 1}}}, TypeError, ["columns.t", "unknown key 'gain'"]),
        ({"columns": {"t": {"output": 3}}}, TypeError, ["columns.t.output"]),
        ({"columns": ["t"], "dtypes": {"t": "int8"}}, ValueError, ["dtypes.t", "bool"]),
        ({"columns": ["t"], "dtypes": {"u": "bool"}}, ValueError, ["dtypes.u", "not an output"]),
        ({"inputs": ["t"], "outputs": ["seq"]}, ValueError, ["'seq' identifies rows"]),
        ({"columns": ["t"], "timeout": "soon"}, ValueError, ["timeout"]),
        ({"columns": ["t"], "timeout": 0}, ValueError, ["timeout must be longer than zero"]),
        ({"columns": ["t"], "memory_limit": "lots"}, ValueError, ["memory_limit"]),
        ({"columns": ["t"], "memory_limit": "5GiB"}, ValueError, ["memory_limit", "4 GiB"]),
        ({"columns": ["t"], "fuel": 0}, ValueError, ["fuel must be ≥ 1, got 0"]),
        ({"columns": ["t"], "chunk_rows": 0}, ValueError, ["chunk_rows"]),
        ({"columns": ["t"], "cache_dir": 3}, TypeError, ["cache_dir"]),
        ({"columns": ["t"], "group_by": 1}, TypeError, ["group_by"]),
        (
            {"columns": ["t"], "module": "nowhere.wasm"},
            ValueError,
            ["module: no file 'nowhere.wasm'"],
        ),
        ({"columns": ["t"], "kernel": ""}, TypeError, ["kernel must be"]),
    ],
)
def test_bad_configuration_names_the_key(options, error, words):
    with pytest.raises(error) as caught:
        wasm_transform(**{"kernel": "calibrate", **options})
    for word in words:
        assert word in str(caught.value)


def test_a_pipeline_file_reports_the_key_and_the_accepted_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'windows'.*accepted keys: plugin, kernel"):
        parse_config(
            {
                "store": {"plugin": "sqlite", "path": "x.db"},
                "transforms": [{"plugin": "wasm", "kernel": "zscore", "windows": 3}],
            }
        )
    config = parse_config(
        {
            "store": {"plugin": "sqlite", "path": "x.db"},
            "transforms": [{"plugin": "wasm", "kernel": "zscore", "columns": ["t"], "params": [0]}],
        }
    )
    with pytest.raises(WasmError, match="window must be a whole number"):
        config.transforms[0].build()


def test_missing_or_text_columns_are_bad_input():
    transform = wasm_transform(kernel="calibrate", columns={"humidity": [1, 0]})
    with pytest.raises(WasmError, match="bad input: the batch has no column 'humidity'"):
        transform(BATCH)
    with pytest.raises(WasmError, match="column 'sensor_id' is not numeric"):
        wasm_transform(kernel="calibrate", inputs=["sensor_id"], outputs=["x"], params=[1, 0])(
            BATCH
        )


# -- pipelines ------------------------------------------------------------------------------------
def pipeline_toml(tmp_path, store, out, *, transforms, run=""):
    path = tmp_path / f"pipeline-{out.stem}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 2
            sensors_per_city = 3
            seed = 11
            rate_hz = 0.05
            [store]
            plugin = "sqlite"
            path = "{store}"
            {textwrap.dedent(transforms)}
            [[sinks]]
            plugin = "jsonl"
            path = "{out}"
            [run]
            duration = "2h"
            batch_size = 13
            {run}
            """
        )
    )
    return path


TRANSFORMS = """
    [[transforms]]
    plugin = "wasm"
    kernel = "celsius_to_fahrenheit"
    columns = { temperature = { output = "temperature_f" } }

    [[transforms]]
    plugin = "wasm"
    kernel = "moving_average"
    columns = { temperature = { output = "temperature_avg" } }
    params = [5]

    [[transforms]]
    plugin = "wasm"
    kernel = "valid_range"
    columns = { humidity = [0, 100] }
"""


def docs(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def column(documents, name):
    return np.array([np.nan if d.get(name) is None else d[name] for d in documents], dtype=float)


def check_outputs(documents):
    temperature = column(documents, "temperature")
    assert np.array_equal(
        column(documents, "temperature_f"), temperature * 1.8 + 32.0, equal_nan=True
    )
    sensors = np.unique([d["sensor_id"] for d in documents], return_inverse=True)[1]
    expected = ref_moving_average(temperature, sensors, 5)
    got = column(documents, "temperature_avg")
    assert np.allclose(got, expected, rtol=1e-12, equal_nan=True)  # windows span batches of 13
    humidity = column(documents, "humidity")
    assert np.nanmin(humidity) >= 0 and np.nanmax(humidity) <= 100


def test_a_pipeline_from_the_sqlite_store_through_wasm_to_jsonl(tmp_path):
    out = tmp_path / "out.jsonl"
    config = pipeline_toml(tmp_path, tmp_path / "edge.db", out, transforms=TRANSFORMS)
    with Pipeline.from_config(config, need_sensor=True, need_sinks=True) as pipeline:
        collected, forwarded = pipeline.run()
    assert forwarded.ok and forwarded.lanes[0].acked == collected.rows_added > 100
    documents = docs(out)
    assert len(documents) == collected.rows_added
    assert "seq" not in documents[0]
    check_outputs(documents)


def test_a_restarted_forwarder_continues_the_windows_where_it_stopped(tmp_path):
    """Stop after a few batches, start a new pipeline on the same store: the output is exactly
    that of a forwarder that never stopped (the windows were saved with each acknowledgement)."""
    outputs = {}
    for name, stop_after in (("straight", None), ("restarted", 40)):
        out = tmp_path / f"{name}.jsonl"
        config = pipeline_toml(tmp_path, tmp_path / f"{name}.db", out, transforms=TRANSFORMS)
        with Pipeline.from_config(config, need_sensor=True) as pipeline:
            pipeline.collect()
        holder: dict[str, Pipeline] = {}

        def progress(stage, done, total, holder=holder, stop_after=stop_after):
            if stage == "forward" and stop_after is not None and done >= stop_after:
                holder["pipeline"].stop.set()

        with Pipeline.from_config(config, need_sinks=True, progress=progress) as first:
            holder["pipeline"] = first
            report = first.forward()
        if stop_after is not None:
            assert report.lanes[0].acked < 60  # it did stop early
            with Pipeline.from_config(config, need_sinks=True) as second:
                second.forward()
        outputs[name] = docs(out)
    assert outputs["restarted"] == outputs["straight"]
    check_outputs(outputs["restarted"])


def test_the_command_line_runs_a_wasm_pipeline(tmp_path):
    out = tmp_path / "cli.jsonl"
    config = pipeline_toml(tmp_path, tmp_path / "cli.db", out, transforms=TRANSFORMS)
    run_cosmobac("run", config, timeout=120)
    check_outputs(docs(out))


def test_a_module_that_cannot_load_stops_the_pipeline_at_start(tmp_path):
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"\x00asm\x01\x00\x00\x00\x05")
    transforms = f"""
        [[transforms]]
        plugin = "wasm"
        module = "{broken}"
        kernel = "k"
        columns = ["temperature"]
    """
    config = pipeline_toml(
        tmp_path, tmp_path / "edge.db", tmp_path / "x.jsonl", transforms=transforms
    )
    Plugins().create("store", "sqlite", path=str(tmp_path / "edge.db")).close()  # forward needs one
    done = run_cosmobac("forward", config, check=False, timeout=120)
    assert done.returncode == 1
    assert "Error: wasm module" in done.stderr and "broken.wasm" in done.stderr
    assert "invalid module" in done.stderr
    assert not (tmp_path / "x.jsonl").exists()


def picky_transform(tmp_path, **options):
    """Traps on a chunk whose first temperature is negative; copies otherwise."""
    body = """
      (if (f64.lt (f64.load (local.get 1)) (f64.const 0)) (then unreachable))
      (call $copy (local.get 0) (local.get 1) (local.get 2)) (i32.const 0)"""
    module = write_wat(tmp_path, "picky", kernel_module(body))
    return wasm_transform(
        module=str(module), kernel="k", columns={"temperature": {"output": "t"}}, **options
    )


def test_a_trapping_batch_is_dead_lettered_and_the_stream_goes_on(tmp_path):
    store = MemoryStore()
    temperatures = [1.0] * 10 + [-5.0] + [1.0] * 9 + [2.0] * 10
    store.append(Batch.from_columns(
        sensor_id=["s"] * 30, timestamp=np.arange(30), temperature=temperatures,
    ))  # fmt: skip
    sink = ListSink()
    from cosmobac.config import RunConfig

    pipeline = Pipeline(
        store=store,
        lanes=[Lane("out", sink, [picky_transform(tmp_path)])],
        run=RunConfig(batch_size=10),
    )
    report = pipeline.forward()
    lane = report.lanes[0]
    assert lane.acked == 20 and lane.dead_lettered == 10
    letters = store.dead_letters("out")
    assert [d.seq for d in letters] == list(range(11, 21))
    reason = letters[0].reason
    assert (
        "picky.wasm" in reason
        and "kernel 'k'" in reason
        and "trap" in reason
        and "unreachable" in reason
    )
    assert sink.written["t"].tolist() == [1.0] * 10 + [2.0] * 10


def test_on_transform_error_stop_stops_the_forwarder(tmp_path):
    store = MemoryStore()
    store.append(
        Batch.from_columns(sensor_id=["s"] * 3, timestamp=[1, 2, 3], temperature=[-1.0, 1, 1])
    )
    from cosmobac.config import RunConfig

    pipeline = Pipeline(
        store=store,
        lanes=[Lane("out", ListSink(), [picky_transform(tmp_path)])],
        run=RunConfig(on_transform_error="stop"),
    )
    with pytest.raises(WasmError, match="trap"):
        pipeline.forward()
    assert store.stats().pending["out"] == 3  # nothing acknowledged, nothing dead-lettered


def test_saved_state_from_other_parameters_starts_cold(caplog):
    three = wasm_transform(kernel="moving_average", columns=["temperature"], params=[3])
    three(BATCH)
    four = wasm_transform(kernel="moving_average", columns=["temperature"], params=[4])
    assert isinstance(three, GroupedWasmTransform) and isinstance(four, GroupedWasmTransform)
    with caplog.at_level(logging.WARNING, logger="cosmobac.wasm"):
        four.set_state(three.get_state())
        four.set_state("{not json")
    assert "another module, kernel or parameters" in caplog.text and "unreadable" in caplog.text
    assert four(BATCH)["temperature"][0] == 20.0  # cold: the first reading alone


def test_a_failed_batch_does_not_advance_the_windows():
    windowed = wasm_transform(
        kernel="moving_average",
        columns={"temperature": {"output": "a"}, "humidity": {"output": "b"}},
        params=[3],
    )
    assert isinstance(windowed, GroupedWasmTransform)
    windowed(BATCH.with_columns(humidity=[50.0, 60, 70, 80]))
    saved = windowed.get_state()
    # the first call (temperature) runs, the second (humidity) fails: nothing may stick, not even
    # the new sensor "c"
    failing = BATCH.with_columns(sensor_id=["c", "a", "c", "b"])
    with pytest.raises(WasmError, match="no column 'humidity'"):
        windowed(failing)
    assert windowed.get_state() == saved


# -- the compile cache ----------------------------------------------------------------------------
def test_compiled_modules_are_cached_by_content_hash(tmp_path):
    cache = tmp_path / "cache"
    started = time.perf_counter()
    load_module("builtin", cache_dir=cache)
    cold = time.perf_counter() - started
    entries = list(cache.glob("*.cwasm"))
    assert len(entries) == 1
    started = time.perf_counter()
    load_module("builtin", cache_dir=cache)
    warm = time.perf_counter() - started
    assert warm < cold
    entries[0].write_bytes(b"not a compiled module")  # a damaged entry is recompiled
    transform = wasm_transform(
        kernel="calibrate", columns=["temperature"], params=[1, 1], cache_dir=str(cache)
    )
    assert transform(BATCH)["temperature"][0] == 21.0
    assert entries[0].read_bytes() != b"not a compiled module"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, caplog):
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="cosmobac.wasm"):
        load_module("builtin", cache_dir=cache)
    assert "writable by other users" in caplog.text
    assert not list(cache.iterdir())


def test_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOBAC_WASM_CACHE", str(tmp_path / "default"))
    wasm_transform(kernel="calibrate", columns=["temperature"], params=[1, 1], cache_dir=False)
    assert not (tmp_path / "default").exists()
    wasm_transform(kernel="calibrate", columns=["temperature"], params=[1, 1])
    assert list((tmp_path / "default").glob("*.cwasm"))
