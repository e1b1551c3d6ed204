"""The kernels docs/wasm.md shows, in C (built here with ziglang), AssemblyScript (built with
assemblyscript 0.28.20: ``npx asc scale.ts --outFile scale.wasm -O3 --runtime stub --use abort=``)
and Rust (built with Debian's rustc 1.63; rebuilt here when such a toolchain is installed), work as
the guide says."""

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


# -- the Rust example -------------------------------------------------------------------------------
RUST_SOURCE = HERE / "clamp_below.rs"
"""The ``src/lib.rs`` of docs/wasm.md (the docs test checks they are the same); ``clamp_below.wasm``
beside it was built from it with Debian's rustc 1.63 (``apt install rustc libstd-rust-dev-wasm32``)
by ``RUST_BUILD``."""
RUST_BUILD = [
    "--edition", "2021", "--target", "wasm32-wasi", "--crate-type", "cdylib",
    "-C", "opt-level=3", "-C", "lto", "-C", "panic=abort", "-C", "strip=symbols",
]  # fmt: skip


def check_clamp_below(module: Path) -> None:
    transform = wasm_transform(
        module=str(module), kernel="clamp_below", columns=["temperature"], params=[0.5]
    )
    values = [0.1, 0.7, math.nan, -3.0, 2.0, math.inf, -math.inf, 0.5] * 20_000
    out = transform(batch(values, ["a"] * len(values)))["temperature"]
    expected = np.where(np.isnan(values), np.nan, np.maximum(values, 0.5))
    assert np.array_equal(out, expected, equal_nan=True)


def test_the_module_built_from_the_rust_example_works():
    check_clamp_below(HERE / "clamp_below.wasm")


def rust_for_wasm() -> str | None:
    """A rustc with the WebAssembly WASI standard library installed, or None."""
    for rustc in ("/usr/bin/rustc", "rustc"):
        try:
            sysroot = subprocess.run(
                [rustc, "--print", "sysroot"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        if (Path(sysroot) / "lib" / "rustlib" / "wasm32-wasi").is_dir():
            return rustc
    return None


@pytest.mark.skipif(
    rust_for_wasm() is None,
    reason="no rustc with the wasm32-wasi standard library (apt install rustc "
    "libstd-rust-dev-wasm32)",
)
def test_the_rust_example_builds_from_the_guide(tmp_path):
    rustc = rust_for_wasm()
    assert rustc is not None
    module = tmp_path / "kernels.wasm"
    subprocess.run([rustc, *RUST_BUILD, "-o", str(module), str(RUST_SOURCE)], check=True)
    check_clamp_below(module)
