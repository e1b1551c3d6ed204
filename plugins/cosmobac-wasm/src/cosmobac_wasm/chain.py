"""Fused chains: several map kernels of one module run over the same rows in one instance.

Guarantees:

* per batch, the columns the chain reads from the batch are copied into the module once, every
  kernel runs in turn on buffers inside the module (a kernel's outputs are the next one's inputs,
  without leaving the module), and each column the chain writes is copied out once, at its last
  value;
* the results are bit for bit those of running the kernels one after another (the same exports on
  the same float64 values): only the copies between the kernels are saved;
* the sandbox's limits (``timeout``, ``fuel``) cover the whole chain for the whole batch, and the
  memory cap the one instance; a failure raises :class:`~cosmobac_wasm.errors.WasmError` naming
  the kernel that failed and its step in the chain;
* no two buffers a kernel is given overlap: an output never aliases an input of the same call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np

from .errors import WasmError
from .kernels import KernelRunner, allocate_block
from .runtime import Instance, LoadedModule, PreparedCall

__all__ = ["ChainRunner", "ChainStep"]

_ALIGN: Final = 16
CHAIN_EXPORT: Final = "cosmobac_chain"
"""The optional export that runs a whole chain inside the module (docs/wasm.md, ABI reference)."""
CHAIN_STEPS: Final = 64

log = logging.getLogger("cosmobac.wasm")


def _round(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def _stride(rows: int) -> int:
    """Bytes from one buffer to the next: whole 4 KiB pages plus half a page, so that a kernel
    reading one buffer and writing another never has its loads and stores at the same offset
    within a page (which CPUs take for a dependency, "4K aliasing", and stall on)."""
    return (rows * 8 + 4095) // 4096 * 4096 + 2048


@attrs.frozen
class ChainStep:
    """One kernel of a chain: its input and output columns (by name) and its parameters."""

    kernel: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[float, ...] = ()


@attrs.frozen
class _Slots:
    """Where every value of the chain lives: buffer indices for the batch's columns copied in,
    each step's inputs and outputs, and each written column's last value."""

    count: int
    sources: tuple[tuple[str, int], ...]
    steps: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    finals: tuple[tuple[str, int], ...]


def _plan_slots(steps: Sequence[ChainStep]) -> _Slots:
    """Give each value a buffer, reusing the buffer of a value no later step reads (and never the
    buffer of one of the same step's inputs)."""
    current: dict[str, int] = {}  # column -> value id holding its latest value
    sources: dict[str, int] = {}
    io: list[tuple[list[int], list[int]]] = []
    last_read: list[int] = []
    for i, step in enumerate(steps):
        ins = []
        for name in step.inputs:
            if name not in current:
                current[name] = sources[name] = len(last_read)
                last_read.append(-1)
            last_read[current[name]] = i
            ins.append(current[name])
        outs = []
        for name in step.outputs:
            current[name] = len(last_read)
            last_read.append(-1)
            outs.append(current[name])
        io.append((ins, outs))
    written = dict.fromkeys(name for step in steps for name in step.outputs)  # in write order
    finals = {current[name] for name in written}
    where: dict[int, int] = {}
    free: list[int] = []
    count = 0

    def place(value: int) -> None:
        nonlocal count
        if free:
            where[value] = free.pop()
        else:
            where[value], count = count, count + 1

    for value in sources.values():
        place(value)
    for i, (ins, outs) in enumerate(io):
        for value in outs:
            place(value)
        for value in dict.fromkeys([*ins, *outs]):  # dead after this step: its buffer is free
            if last_read[value] <= i and value not in finals and where[value] not in free:
                free.append(where[value])
    return _Slots(
        count=count,
        sources=tuple((name, where[v]) for name, v in sources.items()),
        steps=tuple(
            (tuple(where[v] for v in ins), tuple(where[v] for v in outs)) for ins, outs in io
        ),
        finals=tuple((name, where[current[name]]) for name in written),
    )


class ChainRunner:
    """Map kernels of one loaded module, checked against the ABI, run in sequence over columns.

    Construction checks each kernel as :class:`~cosmobac_wasm.kernels.KernelRunner` does
    (exports, signatures, parameters) and refuses grouped (windowed) kernels. After a failed batch
    the instance is discarded and the next batch starts a fresh one."""

    def __init__(
        self,
        loaded: LoadedModule,
        steps: Sequence[ChainStep],
        *,
        chunk_rows: int = 65536,
        in_module: bool = True,
    ) -> None:
        """``in_module``: run the chain through the module's ``cosmobac_chain`` export when it
        has one that accepts these kernels (False: the host calls each kernel in turn, still in
        one instance under one budget, without copies between them)."""
        if not steps:
            raise ValueError("a chain needs at least one kernel")
        self.loaded = loaded
        self.steps = tuple(steps)
        self.chunk_rows = chunk_rows
        self.names = " → ".join(step.kernel for step in self.steps)
        checked = []
        functions = loaded.functions()
        for i, step in enumerate(self.steps):
            if f"{step.kernel}__state" in functions:
                raise self._at(
                    loaded.error(
                        step.kernel,
                        "wrong signature",
                        f"{step.kernel} is a grouped (windowed) kernel; a chain (`kernels`) takes "
                        "map kernels only: run it in a transform of its own after the chain",
                    ),
                    i,
                )
            try:
                runner = KernelRunner(
                    loaded,
                    step.kernel,
                    inputs=len(step.inputs),
                    outputs=len(step.outputs),
                    params=step.params,
                    chunk_rows=chunk_rows,
                )
            except WasmError as exc:
                raise self._at(exc, i) from None
            checked.append(runner)
        self._types = [runner.signature for runner in checked]
        chain_type = functions.get(CHAIN_EXPORT)
        self.in_module = (
            in_module
            and chain_type is not None
            and [str(t) for t in chain_type.params] == ["i32", "i32"]
            and [str(t) for t in chain_type.results] == ["i32"]
            and all(len(s.inputs) == len(s.outputs) == 1 for s in self.steps)
            and len(self.steps) <= CHAIN_STEPS
        )
        self._has_message = "error_message" in functions
        self._has_dealloc = "dealloc" in functions
        self._initialize = "_initialize" in functions
        self.slots = _plan_slots(self.steps)
        self._names = [step.kernel.encode() + b"\0" for step in self.steps]
        self._program_size = _round(
            sum(8 * len(step.params) for step in self.steps)
            + 4 * (2 + 7 * len(self.steps))
            + sum(len(name) for name in self._names)
        )
        self.inputs = tuple(name for name, _ in self.slots.sources)
        self.outputs = tuple(name for name, _ in self.slots.finals)
        self._instance: Instance | None = None
        self._block = 0
        self._rows = 0
        self._bound = 0  # the chunk length the calls are bound for (0: not bound)
        self._calls: list[PreparedCall] = []
        self._views: list[np.ndarray] = []
        self._memory_size = -1
        if self.in_module:
            self._probe()

    def _probe(self) -> None:
        """Ask the module's ``cosmobac_chain`` to run the chain on no rows; when it refuses (a
        kernel it does not know), the host calls the kernels in turn instead."""
        instance = self._ensure()
        with instance.budget(self.steps[0].kernel):
            self._reserve(instance, 16)
            self._bind(instance, 16)
            status = self._chain.call_with_first(0)
        if status != 0:
            error = self._kernel_error(instance, 0, status)
            log.info("%s; the host runs the chain's kernels one after another", error.detail)
            self.in_module = False
            self._instance = None

    def _at(self, exc: WasmError, step: int) -> WasmError:
        """``exc`` with the step of the chain it happened at."""
        if len(self.steps) == 1:
            return exc
        where = f" (step {step + 1} of {len(self.steps)} in the chain {self.names})"
        return WasmError(exc.module, exc.kernel, exc.cause or "", exc.detail + where)

    # -- the instance and its buffers -----------------------------------------------------------
    def _ensure(self) -> Instance:
        if self._instance is None:
            instance = Instance(self.loaded)
            if self._initialize:
                with instance.budget(self.steps[0].kernel):
                    instance.prepare("_initialize", self.loaded.functions()["_initialize"])()
            self._calls = [
                instance.prepare(step.kernel, ty)
                for step, ty in zip(self.steps, self._types, strict=True)
            ]
            self._alloc = instance.prepare("alloc", self.loaded.functions()["alloc"])
            if self.in_module:
                self._chain = instance.prepare(CHAIN_EXPORT, self.loaded.functions()[CHAIN_EXPORT])
            self._instance = instance
            self._block = self._rows = self._bound = 0
            self._memory_size = -1
        return self._instance

    def _reserve(self, instance: Instance, rows: int) -> None:
        if self._block and rows <= self._rows:
            return
        rows = max(rows, 16)
        if self._block:
            rows = max(rows, min(self.chunk_rows, 2 * self._rows))
        size = max(_stride(rows) * self.slots.count + self._program_size, _ALIGN)
        old, self._block = self._block, 0
        block = allocate_block(
            self.loaded,
            instance,
            self.steps[0].kernel,
            size,
            self._alloc,
            free=old if self._has_dealloc else 0,
        )
        self._block, self._rows, self._bound = block, rows, 0

    def _bind(self, instance: Instance, chunk: int) -> None:
        """Bind every call to its buffers for chunks of ``chunk`` rows, and map the buffers."""
        stride = _stride(self._rows)
        pointers = [self._block + i * stride for i in range(self.slots.count)]
        for step, call, (ins, outs) in zip(self.steps, self._calls, self.slots.steps, strict=True):
            call.bind(chunk, *(pointers[s] for s in (*ins, *outs)), *step.params)
        self._bound = chunk
        self._map(instance)
        if self.in_module:
            self._write_program(instance, self._block + stride * self.slots.count, pointers)
            self._chain.bind(chunk, self._program)

    def _write_program(self, instance: Instance, at: int, pointers: list[int]) -> None:
        """The chain's program for ``cosmobac_chain`` at ``at``: parameters, then the int32
        records, then the kernels' names."""
        memory = instance.view()
        params = [p for step in self.steps for p in step.params]
        memory[at : at + 8 * len(params)].view(np.float64)[:] = params
        self._program = at + 8 * len(params)
        names_at = self._program + 4 * (2 + 7 * len(self.steps))
        record = [len(self.steps), 0]
        param_at = at
        for step, name, (ins, outs) in zip(self.steps, self._names, self.slots.steps, strict=True):
            memory[names_at : names_at + len(name)] = np.frombuffer(name, dtype=np.uint8)
            record += [names_at, 1, 1, len(step.params), param_at]
            record += [pointers[ins[0]], pointers[outs[0]]]
            names_at += len(name)
            param_at += 8 * len(step.params)
        memory[self._program : self._program + 4 * len(record)].view(np.int32)[:] = record

    def _map(self, instance: Instance) -> None:
        stride = _stride(self._rows)
        memory = instance.view()
        self._views = [
            memory[self._block + i * stride : self._block + i * stride + self._rows * 8].view(
                np.float64
            )
            for i in range(self.slots.count)
        ]
        self._memory_size = instance.memory_size()

    def _kernel_error(self, instance: Instance, step: int, status: int) -> WasmError:
        kernel = self.steps[step].kernel
        message = ""
        if self._has_message:
            try:
                with instance.budget(kernel):
                    call = instance.prepare(
                        "error_message", self.loaded.functions()["error_message"]
                    )
                    message = instance.read_cstring(call())
            except Exception:  # the message is a courtesy; the status is the error
                message = ""
        detail = f"{kernel} failed (status {status})" + (f": {message}" if message else "")
        return self.loaded.error(kernel, "kernel error", detail)

    def _failed_step(self, instance: Instance) -> int:
        """The step ``cosmobac_chain`` says failed (0 when it says nothing sensible)."""
        if not self._bound:  # failed before this instance had a program
            return 0
        at = self._program + 4
        raw = instance.view()[at : at + 4]
        step = int(raw.view(np.int32)[0]) if len(raw) == 4 else 0
        return step if 0 <= step < len(self.steps) else 0

    # -- running --------------------------------------------------------------------------------
    def run(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The last value of every column the chain writes, from the float64 columns it reads
        (:attr:`inputs`, all of one length)."""
        missing = [name for name in self.inputs if name not in columns]
        if missing:
            raise ValueError(f"the chain {self.names} reads {missing[0]!r}, which was not given")
        n = len(columns[self.inputs[0]]) if self.inputs else 0
        outs = {name: np.empty(n) for name in self.outputs}
        if n == 0:
            return outs
        instance = self._ensure()
        step = [0]
        try:
            with instance.budget(self.steps[0].kernel) as budget:
                self._run(instance, budget, step, columns, outs, n)
        except WasmError as exc:
            if self.in_module and exc.cause != "kernel error":  # a trap or a budget: where?
                step[0] = self._failed_step(instance)
                exc = WasmError(exc.module, self.steps[step[0]].kernel, exc.cause or "", exc.detail)
            self._instance = None  # a trap may leave the module inconsistent: start afresh
            raise self._at(exc, step[0]) from None
        except BaseException:
            self._instance = None
            raise
        return outs

    def _run(
        self,
        instance: Instance,
        budget: Any,
        step: list[int],
        columns: Mapping[str, np.ndarray],
        outs: dict[str, np.ndarray],
        n: int,
    ) -> None:
        chunk = max(1, min(n, self.chunk_rows))
        self._reserve(instance, chunk)
        if self._bound != chunk:
            self._bind(instance, chunk)
        elif instance.memory_size() != self._memory_size:
            self._map(instance)
        sources = [(columns[name], s) for name, s in self.slots.sources]
        finals = [(outs[name], s) for name, s in self.slots.finals]
        calls = self._calls
        start = 0
        while start < n:
            stop = min(n, start + chunk)
            rows = stop - start
            views = self._views
            for column, s in sources:
                views[s][:rows] = column[start:stop]
            if self.in_module:
                status = self._chain.call_with_first(rows)
                if status != 0:
                    step[0] = self._failed_step(instance)
                    raise self._kernel_error(instance, step[0], status)
            else:
                for i, call in enumerate(calls):
                    step[0] = i
                    budget.kernel = self.steps[i].kernel
                    status = call.call_with_first(rows)
                    if status != 0:
                        raise self._kernel_error(instance, i, status)
            if instance.memory_size() != self._memory_size:  # grown: the memory may have moved
                self._map(instance)
            views = self._views
            for out, s in finals:
                out[start:stop] = views[s][:rows]
            start = stop
