"""cosmobac-wasm: sandboxed WebAssembly transforms, registered as the transform plugin ``wasm``, and
the ``cosmobac wasm`` commands (``run`` a WASI job locally as Bacalhau would, list ``kernels``,
print the shipped module's ``path``).

In a pipeline file::

    [[transforms]]
    plugin = "wasm"
    kernel = "moving_average"
    columns = { temperature = { output = "temperature_avg" } }
    params = [16]

Directly::

    from cosmobac_wasm import wasm_transform

    smooth = wasm_transform(kernel="moving_average", columns={"temperature": [16]})
    batch = smooth(batch)

See docs/wasm.md for the ABI, the shipped kernels and the sandbox.
"""

from __future__ import annotations

import click

from cosmobac.hookspecs import Register, hookimpl

from .chain import ChainRunner, ChainStep
from .commands import RunResult, run_module, wasm_group
from .errors import CAUSES, WasmError
from .kernels import ABI_VERSION, KernelRunner
from .runtime import BUILTIN, Sandbox, builtin_module_path, default_cache_dir, load_module
from .transform import (
    GroupedWasmTransform,
    WasmChainTransform,
    WasmTransform,
    fuse,
    wasm_transform,
)

__all__ = [
    "ABI_VERSION",
    "BUILTIN",
    "CAUSES",
    "ChainRunner",
    "ChainStep",
    "GroupedWasmTransform",
    "KernelRunner",
    "RunResult",
    "Sandbox",
    "WasmChainTransform",
    "WasmError",
    "WasmTransform",
    "builtin_module_path",
    "default_cache_dir",
    "fuse",
    "load_module",
    "register_commands",
    "register_transforms",
    "run_module",
    "wasm_transform",
]


@hookimpl
def register_transforms(register: Register) -> None:
    register("wasm", wasm_transform)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(wasm_group)
