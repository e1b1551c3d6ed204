"""Symlinks in mounted folders (issue 19, item 5): a module cannot make one, and a link found in
an output folder after a run is removed without being followed.

wasmtime's WASI refuses a symlink to an absolute path but, left alone, creates
``out/evil -> ../../../../etc/passwd``; the runner refuses ``path_symlink`` altogether."""

from __future__ import annotations

import os

import pytest
from wasm_helpers import WASI, _data, read_file_command, write_wat

from cosmobac.testing import run_cosmobac
from cosmobac_wasm import run_module
from cosmobac_wasm.commands import check_outputs

SYMLINK_IMPORT = """
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $symlink (param i32 i32 i32 i32 i32) (result i32)))"""
EPERM = 63
OUTPUTS_FD = 4  # /inputs is preopened first (fd 3), /outputs second


def symlink_command(*links: tuple[str, str], exit_with: int | None = None) -> str:
    """A WASI command that asks for each (link, target) under /outputs, then exits with
    ``exit_with`` or, when not given, 20 + the errno of the last attempt."""
    data, calls, at = [], [], 1024
    for link, target in links:
        data.append(f'(data (i32.const {at}) "{_data(target)}")')
        data.append(f'(data (i32.const {at + 512}) "{_data(link)}")')
        calls.append(
            f"(local.set $err (call $symlink (i32.const {at}) (i32.const {len(target.encode())})"
            f" (i32.const {OUTPUTS_FD}) (i32.const {at + 512}) (i32.const {len(link.encode())})))"
        )
        at += 1024
    code = (
        f"(i32.const {exit_with})"
        if exit_with is not None
        else "(i32.add (i32.const 20) (local.get $err))"
    )
    return f"""(module {SYMLINK_IMPORT} {WASI}
      {" ".join(data)}
      (func (export "_start")
        (local $err i32)
        {" ".join(calls)}
        (call $exit {code})))"""


@pytest.fixture
def job(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_text("allowed")

    def run(text, **options):
        return run_module(
            write_wat(tmp_path, "job", text),
            input_dir=tmp_path / "in",
            output_dir=tmp_path / "out",
            stdout=tmp_path / "stdout",
            stderr=tmp_path / "stderr",
            timeout=5.0,
            **options,
        )

    return run


@pytest.mark.parametrize(
    "target",
    ["../../../../etc/passwd", "../secret.txt", "/etc/passwd", "data.txt", "."],
    ids=["dotdot-etc-passwd", "parent-file", "absolute", "sibling", "itself"],
)
def test_a_module_cannot_create_a_symlink_in_its_output_folder(tmp_path, job, target):
    """Every link is refused with EPERM, the one wasmtime gives an absolute target, and the run
    is an error naming the link and its target, whatever exit code the module chose."""
    result = job(symlink_command(("evil", target)))
    assert result.exit_code == 20 + EPERM, result
    assert not os.path.lexists(tmp_path / "out" / "evil")
    assert result.outputs == ()
    assert not result.ok
    assert f"symlink(s) evil -> {target}, which were refused" in (result.error or "")


def test_a_module_that_ignores_the_refusal_still_fails(tmp_path, job):
    links = [(f"l{i}", "../" * i + "etc/passwd") for i in range(5)]
    result = job(symlink_command(*links, exit_with=0))
    assert result.exit_code == 0 and not result.ok
    assert "l0 -> etc/passwd, l1 -> ../etc/passwd, l2 -> ../../etc/passwd and 2 more" in str(
        result.error
    )
    assert list((tmp_path / "out").iterdir()) == []


def test_the_command_line_exits_non_zero_with_the_reason(tmp_path):
    module = write_wat(
        tmp_path, "evil", symlink_command(("evil", "../../../../etc/passwd"), exit_with=0)
    )
    done = run_cosmobac(
        "wasm", "run", module, "--output", tmp_path / "out", check=False, timeout=60
    )
    assert done.returncode == 1, done
    assert "exit code: 0" in done.stderr
    assert "Error: the module tried to create the symlink(s) evil -> ../../../../etc/passwd" in (
        done.stderr
    )
    assert not os.path.lexists(tmp_path / "out" / "evil")


def test_a_link_in_the_inputs_is_still_not_followed_out(tmp_path, job):
    """Reading stays as before: wasmtime does not follow an input link that leaves /inputs."""
    (tmp_path / "secret.txt").write_text("s3cr3t")
    (tmp_path / "in" / "rel-link").symlink_to("../secret.txt")
    result = job(read_file_command("rel-link"))
    assert 20 < result.exit_code < 100, result
    assert "s3cr3t" not in (tmp_path / "stdout").read_text()


# -- after the run: a link found in an output folder is removed, never followed -----------------------
def test_check_outputs_removes_links_without_following_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.csv").write_text("a,b\n")
    (out / "to-file").symlink_to("../outside/keep.txt")
    (out / "to-folder").symlink_to(outside)
    (out / "dangling").symlink_to("../../../../etc/passwd")
    (out / "sub").mkdir()
    (out / "sub" / "deep").symlink_to("../../outside")

    entries, error = check_outputs([out])

    assert entries == (out / "result.csv", out / "sub")
    assert sorted(p.name for p in out.rglob("*")) == ["result.csv", "sub"]
    # the targets are untouched: links were unlinked, not followed or emptied
    assert (outside / "keep.txt").read_text() == "precious"
    assert error is not None
    assert "the module created the folder(s) sub in an output folder" in error
    for text in (
        f"{out / 'to-file'} -> ../outside/keep.txt",
        f"{out / 'to-folder'} -> {outside}",
        f"{out / 'dangling'} -> ../../../../etc/passwd",
        f"{out / 'sub' / 'deep'} -> ../../outside",
    ):
        assert text in error
    assert "results must be regular files" in error


def test_check_outputs_accepts_plain_files_and_missing_folders(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("1")
    assert check_outputs([out, tmp_path / "never-made"]) == ((out / "a.csv",), None)
