"""The committed kernels module is exactly what its C source builds to (with the pinned ziglang)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cosmobac_wasm import builtin_module_path

PLUGIN = Path(__file__).resolve().parents[1]


def test_the_build_record_matches_the_committed_module_and_its_source():
    """Without a compiler: the module's recorded hashes match the files, so an edited source that
    was not rebuilt (or a module changed by hand) is caught everywhere."""
    module = builtin_module_path()
    record = json.loads(module.with_suffix(".json").read_text())
    assert record["wasm_sha256"] == hashlib.sha256(module.read_bytes()).hexdigest()
    source = PLUGIN / record["source"]
    assert record["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest(), (
        f"{source.name} changed after the module was built: run "
        "python plugins/cosmobac-wasm/build_kernels.py and commit the module"
    )


def test_rebuilding_the_kernels_gives_the_committed_bytes():
    pytest.importorskip(
        "ziglang", reason="ziglang is not installed (pip install ziglang==0.17.1); CI installs it"
    )
    done = subprocess.run(
        [sys.executable, str(PLUGIN / "build_kernels.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,  # the first build on a machine compiles the WASI libc (about 30 s)
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
