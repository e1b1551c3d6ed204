"""Test modules written in WAT text (compiled with ``wasmtime.wat2wasm`` at test time) and plain
numpy/Python references for the shipped kernels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import wasmtime

# -- modules --------------------------------------------------------------------------------------
ABI = """
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  ;; a bump allocator: blocks are never freed; grows memory as needed, 0 when it cannot
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (global.get $top))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 15))
                             (i32.const -16)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have))
                                               (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then (return (i32.const 0))))))
    (global.set $top (local.get $end))
    (local.get $p))
"""

COPY = """
  ;; y[i] = x[i]
  (func $copy (param $n i32) (param $x i32) (param $y i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (f64.store (i32.add (local.get $y) (i32.shl (local.get $i) (i32.const 3)))
                   (f64.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
"""


def kernel_module(body: str, *, params: str = "(param i32 i32 i32)", imports: str = "") -> str:
    """A module with the batch ABI and one map kernel ``k`` whose body is ``body``."""
    return f"""(module {imports} {ABI} {COPY}
      (func (export "k") {params} (result i32) {body}))"""


def write_wat(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm(text))
    return path


def _data(text: str) -> str:
    return "".join(f"\\{b:02x}" for b in text.encode())


WASI = """
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  ;; write len bytes at ptr to fd
  (func $put (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 40))))
"""

SYMLINK_FOLLOW = 1
O_CREAT = 1
RIGHT_READ = 2
RIGHT_WRITE = 64


def read_file_command(path: str, *, fd: int = 3, follow: bool = True) -> str:
    """A WASI command that opens ``path`` relative to preopened ``fd`` and copies it to stdout.
    Exits 20 + errno when the open fails (wasmtime allows exit codes below 126), 0 after
    copying."""
    return f"""(module {WASI}
      (data (i32.const 1024) "{_data(path)}")
      (func (export "_start")
        (local $err i32)
        (local.set $err (call $path_open (i32.const {fd}) (i32.const {int(follow)})
          (i32.const 1024) (i32.const {len(path.encode())}) (i32.const 0)
          (i64.const {RIGHT_READ}) (i64.const 0) (i32.const 0) (i32.const 8)))
        (if (local.get $err) (then (call $exit (i32.add (i32.const 20) (local.get $err)))))
        (i32.store (i32.const 16) (i32.const 8192))
        (i32.store (i32.const 20) (i32.const 4096))
        (local.set $err (call $fd_read (i32.load (i32.const 8)) (i32.const 16) (i32.const 1)
                                       (i32.const 32)))
        (if (local.get $err) (then (call $exit (i32.const 125))))
        (call $put (i32.const 1) (i32.const 8192) (i32.load (i32.const 32)))
        (call $exit (i32.const 0))))"""


def write_file_command(path: str, *, fd: int, text: str = "written") -> str:
    """A WASI command that creates ``path`` under preopened ``fd`` and writes ``text``; exits
    20 + errno when it cannot."""
    return f"""(module {WASI}
      (data (i32.const 1024) "{_data(path)}")
      (data (i32.const 2048) "{_data(text)}")
      (func (export "_start")
        (local $err i32)
        (local.set $err (call $path_open (i32.const {fd}) (i32.const 0)
          (i32.const 1024) (i32.const {len(path.encode())}) (i32.const {O_CREAT})
          (i64.const {RIGHT_WRITE}) (i64.const 0) (i32.const 0) (i32.const 8)))
        (if (local.get $err) (then (call $exit (i32.add (i32.const 20) (local.get $err)))))
        (call $put (i32.load (i32.const 8)) (i32.const 2048) (i32.const {len(text.encode())}))
        (call $exit (i32.const 0))))"""


MKDIR_COMMAND = f"""(module {WASI}
  (data (i32.const 1024) "sub")
  (func (export "_start")
    (drop (call $mkdir (i32.const 4) (i32.const 1024) (i32.const 3)))
    (call $exit (i32.const 0))))"""

ARGV_ENV_COMMAND = f"""(module {WASI}
  (func (export "_start")
    ;; argv, NUL-separated, to stdout; the environment, NUL-separated, to stderr
    (drop (call $args_sizes (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $put (i32.const 1) (i32.const 8192) (i32.load (i32.const 4)))
    (drop (call $env_sizes (i32.const 0) (i32.const 4)))
    (drop (call $env_get (i32.const 1024) (i32.const 16384)))
    (call $put (i32.const 2) (i32.const 16384) (i32.load (i32.const 4)))
    (call $exit (i32.const 0))))"""

EXIT_COMMAND = f"""(module {WASI} (func (export "_start") (call $exit (i32.const 3))))"""
RETURN_COMMAND = f"""(module {WASI} (func (export "_start")))"""
SPIN_COMMAND = f"""(module {WASI} (func (export "_start") (loop $l (br $l))))"""
BOMB_COMMAND = f"""(module {WASI}
  (func (export "_start")
    (loop $l (br_if $l (i32.ge_s (memory.grow (i32.const 16)) (i32.const 0))))
    unreachable))"""


# -- references -----------------------------------------------------------------------------------
def window_matrix(x: np.ndarray, groups: np.ndarray, window: int, *, current: bool) -> np.ndarray:
    """Row i: the values of the ``window`` rows of i's group ending with row i (``current``) or
    just before it, newest first; NaN where the group has fewer rows."""
    n = len(x)
    if n == 0:
        return np.empty((0, window))
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    position_sorted = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    position = np.empty(n, dtype=np.int64)
    position[order] = position_sorted
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    offsets = np.arange(window) + (0 if current else 1)
    index = rank[:, None] - offsets[None, :]
    present = offsets[None, :] <= position[:, None]
    values = x[order][np.clip(index, 0, None)]
    return np.where(present, values, np.nan)


def ref_moving_average(x: np.ndarray, groups: np.ndarray, window: int) -> np.ndarray:
    """Mean of the finite values among the last ``window`` rows of each row's group (itself
    included); NaN when none."""
    values = window_matrix(x, groups, window, current=True)
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    total = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def ref_zscore(x: np.ndarray, groups: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """z of each row against the finite values among the ``window`` rows of its group before it
    (sample sd), and a mask of rows where z is well conditioned enough to compare to 1e-6."""
    values = window_matrix(x, groups, window, current=False)
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, values, 0.0).sum(axis=1) / count
        deviation = np.where(finite, values - mean[:, None], 0.0)
        sd = np.sqrt((deviation**2).sum(axis=1) / (count - 1))
        z = np.where((count >= 2) & np.isfinite(x), (x - mean) / sd, np.nan)
        scale = np.where(finite, np.abs(values), 0.0).max(axis=1, initial=0.0)
        scale = np.maximum(scale, np.abs(np.where(np.isfinite(x), x, 0.0)))
    conditioned = ~((count >= 2) & np.isfinite(x)) | (sd > 1e-6 * np.maximum(scale, 1e-300))
    return z, conditioned


def close(actual: np.ndarray, expected: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Elementwise: equal (NaN equals NaN, infinities by sign) or within 1e-9 × scale."""
    both_nan = np.isnan(actual) & np.isnan(expected)
    with np.errstate(invalid="ignore"):
        equal = actual == expected
        near = np.abs(actual - expected) <= 1e-9 * np.maximum(scale, 1.0)
    return both_nan | equal | near


def window_scale(x: np.ndarray, groups: np.ndarray, window: int) -> np.ndarray:
    values = window_matrix(x, groups, window, current=True)
    return np.where(np.isfinite(values), np.abs(values), 0.0).max(axis=1, initial=0.0)


def fsum_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else math.nan


# poll_oneoff with one clock subscription of `seconds` (a sleep), its errno left on the stack;
# subscription at 2048: userdata u64, tag u8 = 0 (clock) at +8, clock id u32 at +16,
# timeout u64 at +24, precision u64 at +32, flags u16 at +40; one event written at 3072
POLL_IMPORT = """(import "wasi_snapshot_preview1" "poll_oneoff"
  (func $poll (param i32 i32 i32 i32) (result i32)))"""


def sleep_call(seconds: int) -> str:
    return f"""
    (i64.store (i32.const 2048) (i64.const 0))
    (i32.store8 (i32.const 2056) (i32.const 0))
    (i32.store (i32.const 2064) (i32.const 1))
    (i64.store (i32.const 2072) (i64.const {seconds * 1_000_000_000}))
    (i64.store (i32.const 2080) (i64.const 0))
    (i32.store16 (i32.const 2088) (i32.const 0))
    (call $poll (i32.const 2048) (i32.const 3072) (i32.const 1) (i32.const 4000))"""


SLEEP_COMMAND = f"""(module {POLL_IMPORT} {WASI}
  (func (export "_start")
    (call $exit (i32.add (i32.const 20) {sleep_call(30)}))))"""
