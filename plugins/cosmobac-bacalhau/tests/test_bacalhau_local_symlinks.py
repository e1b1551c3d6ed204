"""``run_local`` and ``cosmobac bacalhau run-local`` with a module that makes symlinks in its result
folder (issue 19, item 5): refused, the run is an error, nothing in the results leads out."""

from __future__ import annotations

import json
import os

import pytest
from test_bacalhau_local import module_job

from cosmobac.testing import run_cosmobac
from cosmobac_bacalhau.local import run_local

pytest.importorskip("cosmobac_wasm")


def _data(text: str) -> str:
    return "".join(f"\\{b:02x}" for b in text.encode())


# fd 3 is /app (the module's own input), fd 4 is /outputs, the result path
EVIL = "../../../../etc/passwd"
SYMLINK = f"""
(module
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{_data(EVIL)}")
  (data (i32.const 256) "evil")
  (data (i32.const 512) "made")
  (func (export "_start")
    (if (i32.eqz (call $symlink (i32.const 64) (i32.const {len(EVIL)}) (i32.const 4)
                                (i32.const 256) (i32.const 4)))
      (then  ;; say on stdout that the link was made
        (i32.store (i32.const 16) (i32.const 512))
        (i32.store (i32.const 20) (i32.const 4))
        (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))))
    (call $exit (i32.const 0))))
"""


def test_a_symlink_out_of_the_result_folder_is_refused(tmp_path):
    result = run_local(module_job(SYMLINK), result_dir=tmp_path / "r")
    assert result.stdout.read_text() == ""  # the module saw its call fail
    assert not os.path.lexists(tmp_path / "r" / "outputs" / "evil")
    assert result.outputs == ()
    assert result.exit_code == 0 and not result.ok
    assert f"the module tried to create the symlink(s) evil -> {EVIL}, which were refused" in (
        result.error or ""
    )
    assert (tmp_path / "r" / "exitCode").read_text() == "0\n"


def test_run_local_exits_non_zero_and_names_the_link(tmp_path):
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(module_job(SYMLINK).to_wire()))
    done = run_cosmobac(
        "bacalhau", "run-local", spec, "-o", tmp_path / "r", check=False, timeout=60
    )
    assert done.returncode == 1, done
    assert f"Error: the module tried to create the symlink(s) evil -> {EVIL}" in done.stderr
    assert not os.path.lexists(tmp_path / "r" / "outputs" / "evil")
