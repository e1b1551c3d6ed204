"""The batch ABI, host side: run one kernel of a module over numpy columns.

ABI version 1 (the reference is ``docs/wasm.md``):

* the module exports ``memory`` and ``alloc(size: i32) -> i32`` (a block of ``size`` bytes aligned
  to at least 8, 0 when out of memory); optionally ``dealloc(ptr: i32)``, ``abi_version() -> i32``
  (must return 1) and ``error_message() -> i32`` (a pointer to a NUL-terminated UTF-8 message about
  the last failure);
* a *map* kernel is ``K(n: i32, in_1: i32, …, in_k: i32, out_1: i32, …, out_m: i32, p_1: f64, …,
  p_q: f64) -> i32``: ``in``/``out`` point to ``n`` float64 values each; row ``i`` of the outputs
  depends on row ``i`` of the inputs only;
* a *grouped* kernel is one for which the module also exports ``K__state(p_1: f64, …) -> i32``
  (float64 values of state per group; negative: the parameters are invalid). It is called as
  ``K(n, group: i32, ngroups: i32, state: i32, in…, out…, p…) -> i32`` where ``group`` points to
  ``n`` int32 group indices in ``[0, ngroups)`` and ``state`` to ``ngroups × K__state(p…)``
  float64 values, updated in place. A new group's state is all zeros. The host keeps the state
  between calls, so a kernel must keep everything it needs from earlier rows there;
* a kernel returns 0 on success; anything else is an error (with ``error_message``).

Because outputs depend only on the row (map) or on the row and the state (grouped), the host may
split a batch into consecutive chunks of rows and call the kernel once per chunk; it does, to keep
the working set in the CPU cache and the module's memory small. Columns move through numpy views
on the module's linear memory: one copy in, one copy out, no call per value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from .errors import WasmError
from .runtime import Instance, LoadedModule, check_signature

__all__ = ["ABI_VERSION", "KernelRunner", "allocate_block"]

ABI_VERSION: Final = 1
_ALIGN: Final = 16


def _round(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def allocate_block(
    loaded: LoadedModule,
    instance: Instance,
    kernel: str,
    size: int,
    alloc: Callable[[int], int],
    *,
    free: int = 0,
) -> int:
    """A block of ``size`` bytes in ``instance``'s memory from the module's ``alloc`` (after
    handing ``free`` back to its ``dealloc``, when not 0): its address, checked to be 8-byte
    aligned and inside the memory. A size wasm32 cannot hold, a module out of memory and a bad
    pointer are :class:`WasmError` s naming ``kernel`` and what to change."""
    if size >= 2**31:
        raise loaded.error(
            kernel, "memory cap", f"a chunk needs {size} bytes, more than wasm32 allows"
        )
    if free:
        instance.prepare("dealloc", loaded.functions()["dealloc"])(free)
    block = alloc(size)
    if block == 0:
        raise loaded.error(
            kernel,
            "memory cap",
            f"alloc({size}) returned 0: the module is out of memory (memory_limit = "
            f"{loaded.sandbox.memory_limit} bytes); raise `memory_limit` or lower `chunk_rows`",
        )
    if block < 0 or block % 8 or block + size > instance.memory_size():
        raise loaded.error(
            kernel,
            "bad pointer",
            f"alloc({size}) returned {block}, which is not an 8-byte aligned block inside "
            f"the module's {instance.memory_size()} bytes of memory",
        )
    return int(block)


class KernelRunner:
    """One kernel of a loaded module, checked against the ABI, ready to run over columns.

    Construction checks everything that can be checked without data (exports, signatures, the
    parameters, by a call with no rows) and raises :class:`WasmError` on the first problem. After
    a failed call the instance is discarded and the next call starts a fresh one (the module's
    memory may be inconsistent after a trap); a grouped kernel's state lives on the host side and
    is not lost."""

    def __init__(
        self,
        loaded: LoadedModule,
        kernel: str,
        *,
        inputs: int,
        outputs: int,
        params: Sequence[float],
        chunk_rows: int = 65536,
    ) -> None:
        self.loaded = loaded
        self.kernel = kernel
        self.inputs = inputs
        self.outputs = outputs
        self.params = tuple(float(p) for p in params)
        self.chunk_rows = chunk_rows
        functions = loaded.functions()
        if not loaded.has_memory_export():
            raise loaded.error(kernel, "missing export", "the module exports no memory 'memory'")
        check_signature(loaded, kernel, "alloc", ["i32"], ["i32"], "in the batch ABI")
        self._has_dealloc = "dealloc" in functions
        if self._has_dealloc:
            check_signature(loaded, kernel, "dealloc", ["i32"], [], "in the batch ABI")
        self._has_message = "error_message" in functions
        if self._has_message:
            check_signature(loaded, kernel, "error_message", [], ["i32"], "in the batch ABI")
        if "abi_version" in functions:
            check_signature(loaded, kernel, "abi_version", [], ["i32"], "in the batch ABI")
        self._initialize = "_initialize" in functions
        if self._initialize:
            check_signature(loaded, kernel, "_initialize", [], [], "in a WASI reactor")
        self.grouped = f"{kernel}__state" in functions
        q = len(self.params)
        if self.grouped:
            check_signature(
                loaded,
                kernel,
                f"{kernel}__state",
                ["f64"] * q,
                ["i32"],
                f"for {q} parameter(s) (`params`)",
            )
        pointers = inputs + outputs
        head = ["i32", "i32", "i32", "i32"] if self.grouped else ["i32"]
        names = "n, group, ngroups, state" if self.grouped else "n"
        self._type = check_signature(
            loaded,
            kernel,
            kernel,
            head + ["i32"] * pointers + ["f64"] * q,
            ["i32"],
            f"as a {'grouped' if self.grouped else 'map'} kernel ({names}) with {inputs} input "
            f"column(s), {outputs} output column(s) and {q} parameter(s) (`params`)",
        )
        self._instance: Instance | None = None
        self._plan: _Plan | None = None
        self._block = 0
        self._rows = 0
        self._groups = 0
        self.state_width = 0
        instance = self._ensure()
        if "abi_version" in functions:
            with instance.budget(kernel):
                version = instance.prepare("abi_version", functions["abi_version"])()
            if version != ABI_VERSION:
                raise loaded.error(
                    kernel,
                    "wrong signature",
                    f"abi_version() is {version}; this plugin speaks ABI version {ABI_VERSION}",
                )
        if self.grouped:
            with instance.budget(kernel):
                width = instance.prepare(f"{kernel}__state", functions[f"{kernel}__state"])(
                    *self.params
                )
            if width < 0:
                raise self._kernel_error(instance, width, f"{kernel}__state refused `params`")
            if width * 8 > loaded.sandbox.memory_limit:
                raise loaded.error(
                    kernel,
                    "memory cap",
                    f"{kernel}__state asks for {width} float64 values per group, more than "
                    f"memory_limit = {loaded.sandbox.memory_limit} bytes holds",
                )
            self.state_width = int(width)
        # A call with no rows checks the parameters now, not on the first batch.
        empty = np.empty(0)
        group = np.empty(0, dtype=np.int32) if self.grouped else None
        state = np.empty((0, self.state_width)) if self.grouped else None
        self.run([empty] * inputs, group=group, ngroups=0, state=state, dry=True)

    @property
    def signature(self) -> Any:
        """The kernel's checked ``wasmtime.FuncType``."""
        return self._type

    # -- the instance and its buffers -----------------------------------------------------------
    def _ensure(self) -> Instance:
        if self._instance is None:
            instance = Instance(self.loaded)
            if self._initialize:  # a WASI reactor: its libc is set up by _initialize, once
                with instance.budget(self.kernel):
                    instance.prepare("_initialize", self.loaded.functions()["_initialize"])()
            self._instance = instance
            self._caller = self._instance.prepare(self.kernel, self._type)
            self._alloc = self._instance.prepare("alloc", self.loaded.functions()["alloc"])
            self._block = 0
            self._rows = 0
            self._groups = 0
            self._plan = None
        return self._instance

    def _layout(self, rows: int, groups: int) -> tuple[list[int], int, int, int]:
        """Offsets of the input/output columns, the group indices and the state, and the size."""
        column = _round(rows * 8)
        offsets = [i * column for i in range(self.inputs + self.outputs)]
        group_at = column * (self.inputs + self.outputs)
        state_at = group_at + (_round(rows * 4) if self.grouped else 0)
        size = state_at + _round(groups * self.state_width * 8)
        return offsets, group_at, state_at, max(size, _ALIGN)

    def _reserve(self, instance: Instance, rows: int, groups: int) -> None:
        if self._block and rows <= self._rows and groups <= self._groups:
            return
        rows = max(rows, self._rows, 16)
        groups = max(groups, self._groups)
        if self._block and rows > self._rows:
            rows = max(rows, min(self.chunk_rows, 2 * self._rows))
        if self._block and groups > self._groups:
            groups = max(groups, 2 * self._groups)
        *_, size = self._layout(rows, groups)
        old, self._block = self._block, 0
        block = allocate_block(
            self.loaded,
            instance,
            self.kernel,
            size,
            self._alloc,
            free=old if self._has_dealloc else 0,
        )
        self._block, self._rows, self._groups = block, rows, groups
        self._plan = None

    def _instance_call(self, name: str, *args: int) -> Any:
        assert self._instance is not None
        return self._instance.prepare(name, self.loaded.functions()[name])(*args)

    def _kernel_error(self, instance: Instance, status: int, what: str) -> WasmError:
        message = ""
        if self._has_message:
            try:
                with instance.budget(self.kernel):  # a hostile error_message may spin too
                    message = instance.read_cstring(self._instance_call("error_message"))
            except Exception:  # the message is a courtesy; the status is the error
                message = ""
        detail = f"{what} (status {status})" + (f": {message}" if message else "")
        return self.loaded.error(self.kernel, "kernel error", detail)

    # -- running --------------------------------------------------------------------------------
    def run(
        self,
        columns: Sequence[np.ndarray],
        *,
        group: np.ndarray | None = None,
        ngroups: int = 0,
        state: np.ndarray | None = None,
        dry: bool = False,
    ) -> list[np.ndarray]:
        """The kernel's output columns for these float64 input columns (all of one length).

        Grouped kernels also take ``group`` (int32 indices in ``[0, ngroups)``, one per row) and
        ``state`` (``ngroups × state_width`` float64, updated in place when the call succeeds)."""
        if len(columns) != self.inputs:
            raise ValueError(
                f"{self.kernel} takes {self.inputs} input column(s), got {len(columns)}"
            )
        n = len(columns[0]) if columns else (len(group) if group is not None else 0)
        outs = [np.empty(n) for _ in range(self.outputs)]
        if n == 0 and not dry:
            return outs
        if self.grouped and (
            group is None or state is None or state.shape != (ngroups, self.state_width)
        ):
            raise ValueError(f"{self.kernel} is grouped: give group, ngroups and state")
        instance = self._ensure()
        try:
            with instance.budget(self.kernel):
                self._run(instance, columns, outs, n, group, ngroups, state)
        except BaseException:
            self._instance = None  # a trap may leave the module inconsistent: start afresh
            raise
        return outs

    def _run(
        self,
        instance: Instance,
        columns: Sequence[np.ndarray],
        outs: list[np.ndarray],
        n: int,
        group: np.ndarray | None,
        ngroups: int,
        state: np.ndarray | None,
    ) -> None:
        chunk = max(1, min(n, self.chunk_rows))
        self._reserve(instance, chunk, ngroups)
        plan = self._plan
        if plan is None or plan.chunk != chunk or plan.ngroups != ngroups:
            plan = self._plan = _Plan(self, instance, chunk, ngroups)
        call = self._caller
        if state is not None and plan.state.size:
            plan.state[:] = state.reshape(-1)
        start = 0
        while True:
            stop = min(n, start + chunk)
            rows = stop - start
            for column, buffer in zip(columns, plan.inputs, strict=True):
                buffer[:rows] = column[start:stop]
            if group is not None and rows:
                plan.group[:rows] = group[start:stop]
            status = call.call_with_first(rows)
            if status != 0:
                raise self._kernel_error(instance, status, f"{self.kernel} failed")
            if instance.memory_size() != plan.memory_size:  # grown: the memory may have moved
                plan = self._plan = _Plan(self, instance, chunk, ngroups)
            for out, buffer in zip(outs, plan.outputs, strict=True):
                out[start:stop] = buffer[:rows]
            start = stop
            if start >= n:
                break
        if state is not None and plan.state.size:
            state[...] = plan.state.reshape(state.shape)


class _Plan:
    """Where one chunk's columns, group indices and state sit in the module's memory, as numpy
    views, with the kernel's call bound to them. Valid while the block and the memory stay put:
    the runner makes a new plan after a new block, a new instance or a memory growth."""

    __slots__ = ("chunk", "group", "inputs", "memory_size", "ngroups", "outputs", "state")

    def __init__(self, runner: KernelRunner, instance: Instance, chunk: int, ngroups: int) -> None:
        offsets, group_at, state_at, _ = runner._layout(runner._rows, runner._groups)
        base = runner._block
        pointers = [base + o for o in offsets]
        head = [base + group_at, ngroups, base + state_at] if runner.grouped else []
        runner._caller.bind(chunk, *head, *pointers, *runner.params)
        memory = instance.view()
        views = [memory[p : p + chunk * 8].view(np.float64) for p in pointers]
        self.chunk = chunk
        self.ngroups = ngroups
        self.memory_size = instance.memory_size()
        self.inputs = views[: runner.inputs]
        self.outputs = views[runner.inputs :]
        at = base + group_at
        self.group = memory[at : at + chunk * 4].view(np.int32) if runner.grouped else memory[:0]
        at = base + state_at
        self.state = memory[at : at + ngroups * runner.state_width * 8].view(np.float64)


_SKIP: Final = {
    "alloc",
    "dealloc",
    "abi_version",
    "error_message",
    "_start",
    "_initialize",
    "cosmobac_chain",
}


def describe_kernels(loaded: LoadedModule) -> list[str]:
    """One line per exported function that looks like a kernel: name, kind, signature."""
    from .runtime import signature

    functions = loaded.functions()
    lines = []
    for name, ty in sorted(functions.items()):
        if name in _SKIP or name.endswith("__state"):
            continue
        params = [str(p) for p in ty.params]
        if [str(r) for r in ty.results] != ["i32"] or not params or params[0] != "i32":
            continue
        grouped = f"{name}__state" in functions
        pointers = params.count("i32") - (4 if grouped else 1)
        floats = params.count("f64")
        kind = "grouped" if grouped else "map"
        lines.append(
            f"{name}: {kind} kernel, {pointers} column pointers, {floats} params  {signature(ty)}"
        )
    return lines
