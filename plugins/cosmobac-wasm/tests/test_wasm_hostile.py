"""Hostile and broken modules: each is stopped with one clear WasmError (module, kernel, cause), and
the process carries on as if nothing happened."""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import pytest
from wasm_helpers import (
    ABI,
    BOMB_COMMAND,
    POLL_IMPORT,
    SLEEP_COMMAND,
    SPIN_COMMAND,
    kernel_module,
    read_file_command,
    sleep_call,
    write_file_command,
    write_wat,
)

from cosmobac import Batch
from cosmobac.testing import run_cosmobac
from cosmobac_wasm import WasmError, run_module, runtime, wasm_transform

BATCH = Batch.from_columns(
    sensor_id=["a"] * 100,
    timestamp=np.arange(100),
    temperature=np.linspace(0, 1, 100),
    seq=np.arange(1, 101),
)


@pytest.fixture(params=["fast-calls", "public-calls"])
def call_path(request, monkeypatch):
    """Both ways into a module: the prepared raw call and wasmtime's public ``Func.__call__``."""
    monkeypatch.setattr(runtime, "FAST_CALLS", request.param == "fast-calls")


def make(path, **options):
    config = {"kernel": "k", "columns": ["temperature"], "timeout": 0.25, "memory_limit": "16MiB"}
    return wasm_transform(module=str(path), **{**config, **options})


def assert_still_works():
    """The process is intact: a good transform still gives the right answer."""
    good = wasm_transform(kernel="calibrate", columns={"temperature": [2.0, 1.0]})
    assert np.array_equal(good(BATCH)["temperature"], BATCH["temperature"] * 2.0 + 1.0)


def expect(error: pytest.ExceptionInfo[WasmError], cause: str, *words: str) -> None:
    assert error.value.cause == cause, str(error.value)
    message = str(error.value)
    assert message.startswith("wasm module "), message
    for word in words:
        assert word in message, message
    assert_still_works()


# -- per batch: the forwarder dead-letters the batch and goes on ------------------------------------
SPIN_ON_ROWS = "(if (local.get 0) (then (loop $forever (br $forever)))) (i32.const 0)"


def test_an_infinite_loop_is_stopped_by_the_time_budget(tmp_path, call_path):
    path = write_wat(tmp_path, "spin", kernel_module(SPIN_ON_ROWS))
    transform = make(path)
    started = time.monotonic()
    with pytest.raises(WasmError) as error:
        transform(BATCH)
    assert time.monotonic() - started < 5
    expect(error, "budget exhausted", "spin.wasm", "kernel 'k'", "0.25 s", "`timeout`")


def test_a_kernel_cannot_sleep_past_its_budget(tmp_path, call_path):
    """The epoch deadline cannot interrupt a host call, so sleeping (WASI poll_oneoff) is refused
    with ENOTSUP instead of holding the thread for 30 s."""
    body = f"(if (i32.eqz (local.get 0)) (then (return (i32.const 0)))) {sleep_call(30)}"
    path = write_wat(tmp_path, "sleepy", kernel_module(body, imports=POLL_IMPORT))
    started = time.monotonic()
    with pytest.raises(WasmError) as error:
        make(path)(BATCH)
    assert time.monotonic() - started < 5
    expect(error, "kernel error", "status 58")


def test_a_kernel_that_never_returns_fails_at_construction(tmp_path):
    """The transform tries the kernel on zero rows when it is made: a pipeline does not start."""
    path = write_wat(tmp_path, "spin", kernel_module("(loop $forever (br $forever)) (i32.const 0)"))
    with pytest.raises(WasmError) as error:
        make(path)
    expect(error, "budget exhausted", "spin.wasm")


def test_an_exhausted_fuel_budget_is_reported(tmp_path):
    path = write_wat(tmp_path, "spin", kernel_module(SPIN_ON_ROWS))
    with pytest.raises(WasmError) as error:
        make(path, fuel=1_000_000, timeout=30)(BATCH)
    expect(error, "budget exhausted", "1000000 units of fuel", "`fuel`")


def test_a_memory_growth_bomb_hits_the_memory_cap(tmp_path, call_path):
    bomb = """
      (loop $more (br_if $more (i32.ge_s (memory.grow (i32.const 16)) (i32.const 0))))
      unreachable"""
    path = write_wat(tmp_path, "bomb", kernel_module(bomb))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WasmError) as error:
        make(path)(BATCH)
    expect(error, "memory cap", "bomb.wasm", "16 MiB", "`memory_limit`")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64  # the host did not follow the module into gigabytes


def test_a_bomb_that_keeps_growing_is_stopped_and_the_cap_named(tmp_path):
    bomb = "(loop $more (drop (memory.grow (i32.const 16))) (br $more)) (i32.const 0)"
    path = write_wat(tmp_path, "bomb", kernel_module(bomb))
    with pytest.raises(WasmError) as error:
        make(path)(BATCH)
    expect(error, "budget exhausted", "at or near its cap")


def test_an_allocator_out_of_memory_is_a_memory_cap(tmp_path):
    path = write_wat(tmp_path, "small", kernel_module("(i32.const 0)"))
    big = Batch.from_columns(
        sensor_id=["a"] * 400_000, timestamp=np.arange(400_000), temperature=np.zeros(400_000)
    )
    with pytest.raises(WasmError) as error:
        make(path, memory_limit="1MiB", chunk_rows=400_000)(big)
    expect(error, "memory cap", "alloc(", "returned 0", "`chunk_rows`")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("(i32.store (i32.const -4) (i32.const 1)) (i32.const 0)", ["out of bounds memory access"]),
        ("unreachable", ["unreachable"]),
        ("(drop (i32.div_s (i32.const 1) (i32.const 0))) (i32.const 0)", ["divide by zero"]),
    ],
)
def test_a_trap_names_its_reason(tmp_path, body, words, call_path):
    path = write_wat(tmp_path, "trap", kernel_module(body))
    with pytest.raises(WasmError) as error:
        make(path)(BATCH)
    expect(error, "trap", *words)


def test_a_stack_overflow_is_a_trap(tmp_path):
    text = f"""(module {ABI}
      (func $deeper (param i32) (result i32) (call $deeper (local.get 0)))
      (func (export "k") (param i32 i32 i32) (result i32) (call $deeper (i32.const 0))))"""
    path = write_wat(tmp_path, "deep", text)
    with pytest.raises(WasmError) as error:
        make(path)(BATCH)
    expect(error, "trap", "call stack exhausted")


def test_proc_exit_inside_a_kernel_is_a_trap(tmp_path, call_path):
    imports = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
    path = write_wat(
        tmp_path, "quit", kernel_module("(call $exit (i32.const 3)) (i32.const 0)", imports=imports)
    )
    with pytest.raises(WasmError) as error:
        make(path)(BATCH)
    expect(error, "trap", "proc_exit(3)")


def test_a_transform_recovers_after_a_trapped_batch(tmp_path):
    # traps when the first value of the chunk is negative, copies otherwise
    body = """
      (if (f64.lt (f64.load (local.get 1)) (f64.const 0)) (then unreachable))
      (call $copy (local.get 0) (local.get 1) (local.get 2)) (i32.const 0)"""
    transform = make(write_wat(tmp_path, "picky", kernel_module(body)))
    bad = BATCH.with_columns(temperature=-BATCH["temperature"] - 1)
    with pytest.raises(WasmError):
        transform(bad)
    assert transform(BATCH).equals(BATCH)  # next batch: a fresh instance, right answer


def test_a_transform_has_no_files_at_all(tmp_path):
    """No directory is preopened for transforms: every open fails, whatever the path or fd."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    imports = """(import "wasi_snapshot_preview1" "path_open"
      (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"""
    paths = [str(secret), "../secret.txt", "/etc/passwd", "secret.txt", "."]
    data = "".join(f'(data (i32.const {4096 + 256 * i}) "{p}")' for i, p in enumerate(paths))
    opens = "".join(
        f"""(local.set $fd (i32.const 0))
            (loop $fds
              (if (i32.eqz (call $open (local.get $fd) (i32.const 1) (i32.const {4096 + 256 * i})
                              (i32.const {len(p)}) (i32.const 0) (i64.const 2) (i64.const 0)
                              (i32.const 0) (i32.const 64)))
                (then (local.set $opened (i32.add (local.get $opened) (i32.const 1)))))
              (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
              (br_if $fds (i32.lt_s (local.get $fd) (i32.const 16))))"""
        for i, p in enumerate(paths)
    )
    text = f"""(module {imports} {ABI} {data}
      (func (export "k") (param i32 i32 i32) (result i32) (local $fd i32) (local $opened i32)
        {opens}
        (local.get $opened)))"""
    transform = make(write_wat(tmp_path, "snoop", text))
    out = transform(BATCH)  # status 0: not one of 80 opens succeeded
    assert len(out) == len(BATCH)


# -- at construction: the pipeline does not start ---------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00asm\x01\x00\x00\x00\x01\xff\xff",  # a truncated section
        b"\x00asm\x02\x00\x00\x00",  # an unknown version
        os.urandom(64).replace(b"\x00", b"\x01")[:1] + os.urandom(200),
        b'(module (func $f (export "k") (unknown-instruction)))',
    ],
    ids=["empty", "truncated", "bad-version", "random-bytes", "bad-text"],
)
def test_malformed_bytes_are_an_invalid_module(tmp_path, content):
    path = tmp_path / "broken.wasm"
    path.write_bytes(content)
    with pytest.raises(WasmError) as error:
        make(path)
    expect(error, "invalid module", "broken.wasm")


@pytest.mark.parametrize(
    ("text", "cause", "words"),
    [
        (
            kernel_module("(i32.const 0)").replace('(export "k")', '(export "other")'),
            "missing export",
            ["no function 'k'", "other"],
        ),
        (
            '(module (memory (export "memory") 1) (func (export "k") (param i32 i32 i32) (result i32) (i32.const 0)))',
            "missing export",
            ["'alloc'"],
        ),
        (
            '(module (memory 1) (func (export "alloc") (param i32) (result i32) (i32.const 64)) (func (export "k") (param i32 i32 i32) (result i32) (i32.const 0)))',
            "missing export",
            ["memory"],
        ),
        (
            kernel_module("(i32.const 0)", params="(param i32 i32)"),
            "wrong signature",
            ["(i32, i32) -> i32", "(i32, i32, i32) -> i32"],
        ),
        (
            kernel_module("(i32.const 0)", params="(param i32 i32 i32 f64)"),
            "wrong signature",
            ["0 parameter(s)"],
        ),
        (
            kernel_module("", params="(param i32 i32 i32)").replace("(result i32) )", ")"),
            "wrong signature",
            ["-> ()"],
        ),
        (
            f'(module {ABI.replace("(param $n i32) (result i32)", "(param $n i64) (result i32)").replace("(local.get $n)", "(i32.wrap_i64 (local.get $n))")} (func (export "k") (param i32 i32 i32) (result i32) (i32.const 0)))',
            "wrong signature",
            ["alloc is (i64) -> i32"],
        ),
        (
            f'(module {ABI} (func (export "abi_version") (result i32) (i32.const 7)) (func (export "k") (param i32 i32 i32) (result i32) (i32.const 0)))',
            "wrong signature",
            ["abi_version() is 7"],
        ),
        (
            kernel_module("(i32.const 0)", imports='(import "env" "host_call" (func))'),
            "invalid module",
            ["env.host_call", "does not provide"],
        ),
        (
            kernel_module("(i32.const 0)").replace(
                '(memory (export "memory") 1)', '(memory (export "memory") 1000)'
            ),
            "memory cap",
            ["16 MiB"],
        ),
        (
            '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 65530)) (func (export "k") (param i32 i32 i32) (result i32) (i32.const 0)))',
            "bad pointer",
            ["returned 65530"],
        ),
        (
            kernel_module("(i32.const 7)"),
            "kernel error",
            ["k failed (status 7)"],
        ),
        (
            kernel_module("(i32.const 1)").replace(
                '(func (export "k")',
                '(func (export "error_message") (result i32) (loop $l (br $l)) (i32.const 0)) (func (export "k")',
            ),
            "kernel error",
            ["k failed (status 1)"],
        ),
        (
            kernel_module("(i32.const 0)", params="(param i32 i32 i32 i32 i32 i32)").replace(
                '(func (export "k")',
                '(func (export "k__state") (result i32) (i32.const 1000000000)) (func (export "k")',
            ),
            "memory cap",
            ["1000000000 float64 values per group"],
        ),
        (
            kernel_module("(i32.const 0)", imports="").replace(
                '(func (export "k")', '(start $s) (func $s (loop $l (br $l))) (func (export "k")'
            ),
            "budget exhausted",
            ["time budget"],
        ),
    ],
    ids=[
        "missing-kernel",
        "missing-alloc",
        "missing-memory",
        "too-few-params",
        "extra-param",
        "no-result",
        "alloc-type",
        "abi-version",
        "unknown-import",
        "memory-over-cap",
        "bad-pointer",
        "kernel-status",
        "spinning-error-message",
        "huge-state",
        "spinning-start-function",
    ],
)
def test_a_module_that_cannot_work_fails_at_construction(tmp_path, text, cause, words):
    with pytest.raises(WasmError) as error:
        make(write_wat(tmp_path, "broken", text))
    expect(error, cause, "broken.wasm", *words)


# -- the WASI runner: only the folders it was given, inputs read-only -------------------------------
@pytest.fixture
def folders(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "data.txt").write_text("allowed")
    (tmp_path / "secret.txt").write_text("s3cr3t")
    (inputs / "link").symlink_to(tmp_path / "secret.txt")
    (inputs / "rel-link").symlink_to("../secret.txt")
    return tmp_path


def run(folders, text, **options):
    module = write_wat(folders, "job", text)
    return run_module(
        module,
        input_dir=folders / "in",
        output_dir=folders / "out",
        stdout=folders / "stdout",
        stderr=folders / "stderr",
        timeout=options.pop("timeout", 5.0),
        **options,
    )


def test_the_runner_reads_what_it_was_given(folders):
    result = run(folders, read_file_command("data.txt"))
    assert result.ok, result
    assert (folders / "stdout").read_text() == "allowed"


@pytest.mark.parametrize(
    "path",
    ["../secret.txt", "data.txt/../../secret.txt", None, "link", "rel-link", "/etc/passwd"],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-absolute", "symlink-dotdot", "etc-passwd"],
)
def test_path_escapes_are_refused(folders, path):
    path = path or str(folders / "secret.txt")
    result = run(folders, read_file_command(path))
    assert 20 < result.exit_code < 100, result  # 20 + the WASI errno of the refused open
    assert "s3cr3t" not in (folders / "stdout").read_text()
    assert_still_works()


def test_inputs_are_read_only(folders):
    result = run(folders, write_file_command("new.txt", fd=3))
    assert 20 < result.exit_code < 100, result
    assert not (folders / "in" / "new.txt").exists()
    result = run_module(
        write_wat(folders, "job2", write_file_command("result.txt", fd=4)),
        input_dir=folders / "in",
        output_dir=folders / "out2",
        stdout=folders / "stdout",
        stderr=folders / "stderr",
    )
    assert result.ok and (folders / "out2" / "result.txt").read_text() == "written"


def test_an_endless_job_is_stopped_by_the_time_budget(folders):
    started = time.monotonic()
    with pytest.raises(WasmError) as error:
        run(folders, SPIN_COMMAND, timeout=0.3)
    assert time.monotonic() - started < 5
    expect(error, "budget exhausted", "'_start'", "0.3 s")


def test_a_job_cannot_sleep_past_its_budget(folders):
    started = time.monotonic()
    result = run(folders, SLEEP_COMMAND, timeout=1.0)
    assert time.monotonic() - started < 5
    assert result.exit_code == 20 + 58  # ENOTSUP, at once


def test_a_job_that_grows_without_end_hits_the_memory_cap(folders):
    result = run(folders, BOMB_COMMAND, memory_limit=8 << 20)
    assert result.exit_code == 1
    assert "memory cap" in (result.error or "")
    assert_still_works()


def test_a_hostile_job_leaves_the_command_line_process_clean(folders):
    module = write_wat(folders, "spin", SPIN_COMMAND)
    done = run_cosmobac("wasm", "run", module, "--timeout", "0.3s", check=False, timeout=60)
    assert done.returncode == 1, done  # an error exit, not a signal or a crash at exit
    assert "budget exhausted" in done.stderr
