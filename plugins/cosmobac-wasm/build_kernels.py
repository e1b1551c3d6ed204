"""Build the shipped WebAssembly kernels, reproducibly, with ``zig cc`` from the ``ziglang`` package.

Every ``kernels/*.c`` beside this file becomes ``src/cosmobac_wasm/kernels/<name>.wasm`` (committed,
so it installs with the plugin), plus ``<name>.json`` recording how it was built.

Usage::

    python plugins/cosmobac-wasm/build_kernels.py           # rebuild the committed modules
    python plugins/cosmobac-wasm/build_kernels.py --check   # rebuild elsewhere, compare the bytes

``--check`` exits 1 when a rebuilt module differs from the committed one (or is missing), naming
the file and the likely reason. Builds are byte-for-byte reproducible for one ``ziglang`` version:
debug information and names are stripped (``-s``), nothing depends on the source's location, and
``PATH`` is emptied so no ``wasm-opt`` found on it can rewrite the output. The first build on a
machine takes about 30 s (zig compiles the WASI libc once and caches it); later ones well under 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "kernels"
TARGET = HERE / "src" / "cosmobac_wasm" / "kernels"
ZIGLANG = "0.17.1"
"""The ziglang release the committed modules were built with; another one may emit other bytes."""
FLAGS = [
    "--target=wasm32-wasi",
    "-O2",
    "-msimd128",  # 128-bit SIMD: wasmtime and Bacalhau's wazero both run it
    "-ffp-contract=off",  # no fused multiply-add: results equal numpy's, bit for bit
    "-fno-math-errno",
    "-s",  # no debug info or names: smaller, and independent of paths
    "-Wall",
    "-Wextra",
    "-Werror",
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ziglang_version() -> str | None:
    try:
        return metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        return None


def compile_one(source: Path, output: Path) -> None:
    """``zig cc`` one C file to a WASI command module at ``output``."""
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "PATH": empty}  # nothing to find: no wasm-opt post-pass
        command = [sys.executable, "-m", "ziglang", "cc", *FLAGS, "-o", str(output), source.name]
        result = subprocess.run(
            command, cwd=source.parent, env=env, capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise SystemExit(f"building {source.name} failed:\n{result.stdout}{result.stderr}")


def build(target: Path) -> list[Path]:
    """Build every kernel source into ``target``; the modules written."""
    target.mkdir(parents=True, exist_ok=True)
    built = []
    for source in sorted(SOURCES.glob("*.c")):
        output = target / f"{source.stem}.wasm"
        compile_one(source, output)
        info = {
            "source": f"kernels/{source.name}",
            "source_sha256": sha256(source.read_bytes()),
            "ziglang": ziglang_version(),
            "command": ["python", "-m", "ziglang", "cc", *FLAGS, "-o", output.name, source.name],
            "wasm_sha256": sha256(output.read_bytes()),
        }
        (target / f"{source.stem}.json").write_text(json.dumps(info, indent=2) + "\n")
        built.append(output)
    return built


def check() -> list[str]:
    """Problems found rebuilding into a temporary folder and comparing with the committed files."""
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        for fresh in build(Path(scratch)):
            committed = TARGET / fresh.name
            if not committed.is_file():
                problems.append(f"{committed} is missing: run build_kernels.py and commit it")
                continue
            if fresh.read_bytes() != committed.read_bytes():
                recorded = json.loads(committed.with_suffix(".json").read_text()).get("ziglang")
                reason = (
                    f"the committed module was built with ziglang {recorded}, this is "
                    f"{ziglang_version()}"
                    if recorded != ziglang_version()
                    else "its C source changed since it was built: run build_kernels.py and commit"
                )
                problems.append(
                    f"{committed.relative_to(HERE)} differs from a rebuild "
                    f"(sha256 {sha256(committed.read_bytes())[:12]} committed, "
                    f"{sha256(fresh.read_bytes())[:12]} rebuilt): {reason}"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild elsewhere and compare with the committed bytes",
    )
    args = parser.parse_args(argv)
    version = ziglang_version()
    if version is None:
        print(f"ziglang is not installed: pip install ziglang=={ZIGLANG}", file=sys.stderr)
        return 2
    if version != ZIGLANG:
        print(
            f"warning: ziglang {version} is installed; the modules are pinned to {ZIGLANG}, "
            "whose output may differ",
            file=sys.stderr,
        )
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if not problems:
            print("kernels: the committed modules are exactly what the sources build")
        return 1 if problems else 0
    for path in build(TARGET):
        print(f"built {path.relative_to(HERE)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
