"""The one exception the WebAssembly plugin raises for anything a module did or lacks."""

from __future__ import annotations

from typing import Final

from cosmobac.errors import CosmobacError

__all__ = ["CAUSES", "WasmError"]

CAUSES: Final = (
    "invalid module",  # not WebAssembly, fails validation, or imports what the sandbox lacks
    "missing export",  # memory, alloc, a kernel or _start is not exported
    "wrong signature",  # an export has another type than the ABI and the configuration say
    "trap",  # the module trapped (unreachable, out of bounds, stack overflow, proc_exit …)
    "budget exhausted",  # the time budget (epoch deadline) or fuel of one call ran out
    "memory cap",  # the module needed more linear memory than the cap allows
    "kernel error",  # the kernel returned a non-zero status (e.g. it refused its parameters)
    "bad pointer",  # alloc returned a block outside the module's memory
    "bad input",  # the batch lacks a column, or a column is not numeric
)


class WasmError(CosmobacError):
    """A WebAssembly module failed: the message names the module, the kernel (or entry point) and
    the cause, one of :data:`CAUSES`.

    Raised at construction (so a pipeline does not start with a module that cannot work) and per
    batch (so the forwarder dead-letters that batch with the message as the reason, or stops).
    """

    def __init__(self, module: str, kernel: str | None, cause: str, detail: str) -> None:
        self.module = module
        self.kernel = kernel
        self.cause = cause
        self.detail = detail
        where = f"wasm module {module}" + (f", kernel {kernel!r}" if kernel else "")
        super().__init__(f"{where}: {cause}: {detail}")
