"""The kernels docs/wasm.md shows, in C (built here with ziglang) and AssemblyScript (built with
assemblyscript 0.28.20: ``npx asc scale.ts --outFile scale.wasm -O3 --runtime stub --use abort=``),
work as the guide says."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac_wasm import WasmError, wasm_transform

HERE = Path(__file__).resolve().parent


def batch(temperatures: list[float], sensors: list[str]) -> Batch:
    return Batch.from_columns(
        sensor_id=sensors, timestamp=np.arange(len(sensors)), temperature=temperatures
    )


def test_the_assemblyscript_example_scales_a_column():
    transform = wasm_transform(
        module=str(HERE / "scale.wasm"), kernel="scale", columns=["temperature"], params=[2.0]
    )
    rows = 150_000  # several chunks, and more memory than the module starts with
    values = np.linspace(-5, 5, rows)
    values[::7] = np.nan
    out = transform(batch(list(values), ["a"] * rows))["temperature"]
    assert np.array_equal(out, values * 2.0, equal_nan=True)


def ewma_reference(values: list[float], sensors: list[str], alpha: float) -> list[float]:
    average: dict[str, float] = {}
    out = []
    for value, sensor in zip(values, sensors, strict=True):
        if math.isfinite(value):
            previous = average.get(sensor)
            average[sensor] = value if previous is None else previous + alpha * (value - previous)
        out.append(average.get(sensor, math.nan))
    return out


def test_the_c_example_builds_with_ziglang_and_keeps_windows_per_sensor(tmp_path):
    pytest.importorskip(
        "ziglang", reason="ziglang is not installed (pip install ziglang==0.17.1); CI installs it"
    )
    module = tmp_path / "ewma.wasm"
    done = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-O2", "-nostdlib",
         "-Wl,--no-entry", "-o", str(module), str(HERE / "ewma.c")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    def make():
        return wasm_transform(
            module=str(module),
            kernel="ewma",
            columns={"temperature": {"output": "e"}},
            params=[0.3],
        )

    rng = np.random.default_rng(2)
    values = list(rng.normal(20, 3, 300))
    values[5] = values[40] = math.nan
    values[77] = math.inf
    sensors = [f"s{i}" for i in rng.integers(0, 5, 300)]
    expected = ewma_reference(values, sensors, 0.3)
    whole = make()(batch(values, sensors))["e"]
    assert np.allclose(whole, expected, rtol=1e-12, equal_nan=True)
    streamed = make()
    parts = [
        streamed(batch(values[a : a + 45], sensors[a : a + 45]))["e"] for a in range(0, 300, 45)
    ]
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)
    with pytest.raises(
        WasmError,
        match=r"kernel error: ewma__state refused `params` \(status -1\): alpha must be in",
    ):
        wasm_transform(module=str(module), kernel="ewma", columns=["temperature"], params=[2.0])
