"""The ``wasm`` transform: a kernel of a sandboxed WebAssembly module applied to batch columns.

Guarantees:

* the module is loaded, checked against the batch ABI and tried on an empty chunk when the
  transform is made, so a module that cannot work fails the pipeline's start, with a
  :class:`~cosmobac_wasm.errors.WasmError` naming the module, the kernel and the cause;
* per batch, a trap, an exhausted budget or a memory cap raises that same error: the forwarder
  dead-letters the batch with the message as the reason (or stops, per ``run.on_transform_error``)
  and the next batch runs in a fresh instance;
* rows are never dropped or reordered and every column (``seq`` included) travels through; the
  kernel's outputs replace or add columns;
* a chain (``kernels``, or :func:`fuse`) runs its map kernels in one sandboxed run per batch,
  with the same results, bit for bit, as one transform per kernel (:mod:`.chain`);
* grouped (windowed) kernels keep their windows per value of ``group_by`` (``sensor_id``) across
  batches; the transform is then a :class:`~cosmobac.interfaces.StatefulTransform`, so the windows
  are saved with each acknowledgement and a restarted forwarder continues where it stopped.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

from cosmobac.batch import Batch
from cosmobac.schema import IDENTITY, STORE_SEQ
from cosmobac.values import choice, duration, integer, size

from .chain import ChainRunner, ChainStep
from .errors import WasmError
from .kernels import KernelRunner
from .runtime import BUILTIN, LoadedModule, Sandbox, load_module, resolve_module

__all__ = [
    "GroupedWasmTransform",
    "KernelCall",
    "WasmChainTransform",
    "WasmError",
    "WasmTransform",
    "fuse",
    "wasm_transform",
]

log = logging.getLogger("cosmobac.wasm")

DTYPES: Final = ("float64", "bool")
_PROTECTED: Final = (STORE_SEQ, *IDENTITY)
_STATE_FORMAT: Final = "cosmobac-wasm-state"


# -- configuration checks (ValueError/TypeError naming the key) -----------------------------------
def _names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{key} must be a list of column names, got {value!r}")
    names = tuple(value)
    if not names or not all(isinstance(v, str) and v for v in names):
        raise TypeError(f"{key} must be a non-empty list of column names, got {value!r}")
    return names


def _numbers(key: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{key} must be a list of numbers, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise TypeError(f"{key} must be a list of numbers, got {item!r} in {list(value)!r}")
    return tuple(float(v) for v in value)


@attrs.frozen
class KernelCall:
    """One call of the kernel per batch: which columns go in, which come out, with what
    parameters."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[float, ...]


def _calls(inputs: Any, outputs: Any, params: Any, columns: Any) -> tuple[KernelCall, ...]:
    default = _numbers("params", params)
    if (inputs is None) == (columns is None):
        raise ValueError(
            "give either inputs (the kernel's input columns, with outputs and params) or columns "
            "(a list of columns, or a table column = [params] / {params, output}, to run a "
            "one-in, one-out kernel on each)"
        )
    if inputs is not None:
        ins = _names("inputs", inputs)
        outs = ins if outputs is None else _names("outputs", outputs)
        return (KernelCall(ins, outs, default),)
    if outputs is not None:
        raise ValueError("outputs goes with inputs; with columns, give each column an output")
    if isinstance(columns, Mapping):
        if not columns:
            raise TypeError("columns must not be empty")
        calls = []
        for name, spec in columns.items():
            key = f"columns.{name}"
            if isinstance(spec, Mapping):
                unknown = set(spec) - {"params", "output"}
                if unknown:
                    raise TypeError(
                        f"{key}: unknown key {sorted(unknown)[0]!r}; use params, output"
                    )
                own = _numbers(f"{key}.params", spec["params"]) if "params" in spec else default
                output = spec.get("output", name)
                if not isinstance(output, str) or not output:
                    raise TypeError(f"{key}.output must be a column name, got {output!r}")
            else:
                own, output = _numbers(key, spec), name
            calls.append(KernelCall((str(name),), (output,), own))
        return tuple(calls)
    return tuple(KernelCall((name,), (name,), default) for name in _names("columns", columns))


def _dtypes(value: Any, calls: Sequence[KernelCall]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f'dtypes must be a table of output column = "bool" or "float64", got {value!r}'
        )
    produced = {name for call in calls for name in call.outputs}
    out = {}
    for name, dtype in value.items():
        dtype = choice(f"dtypes.{name}", dtype, DTYPES)
        if name not in produced:
            raise ValueError(
                f"dtypes.{name}: {name!r} is not an output column ({sorted(produced)})"
            )
        out[str(name)] = str(dtype)
    return out


def _module_path(module: Any) -> str:
    if not isinstance(module, str) or not module:
        raise TypeError(f"module must be the path of a .wasm file or {BUILTIN!r}, got {module!r}")
    path, _ = resolve_module(module)
    if not path.is_file():
        raise ValueError(
            f"module: no file {module!r} (give the path of a .wasm file, or {BUILTIN!r} for the "
            "kernels shipped with cosmobac-wasm)"
        )
    return module


def _cache(value: Any) -> Path | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        return Path(value).expanduser()
    raise TypeError(
        f"cache_dir must be a folder path, true (the default folder) or false, got {value!r}"
    )


# -- the transforms -------------------------------------------------------------------------------
@attrs.define(eq=False)
class WasmTransform:
    """A map kernel applied to columns: each output row computed from the same input row.

    Made by :func:`wasm_transform` (the ``wasm`` transform of pipeline files)."""

    module: LoadedModule
    kernel: str
    calls: tuple[KernelCall, ...]
    runners: tuple[KernelRunner, ...] = attrs.field(repr=False)
    dtypes: Mapping[str, str] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    def _input(self, batch: Batch, name: str, done: Mapping[str, np.ndarray]) -> np.ndarray:
        if name in done:
            return done[name]
        column = batch.get(name)
        if column is None:
            raise self.module.error(
                self.kernel,
                "bad input",
                f"the batch has no column {name!r} (it has {list(batch.columns)})",
            )
        if column.dtype.kind not in "fiub":
            raise self.module.error(
                self.kernel, "bad input", f"column {name!r} is not numeric (dtype {column.dtype})"
            )
        return column.astype(np.float64, copy=False)

    def _finish(self, batch: Batch, done: Mapping[str, np.ndarray]) -> Batch:
        out: dict[str, np.ndarray] = {}
        for name, values in done.items():
            if self.dtypes.get(name) == "bool":
                out[name] = (values != 0) & ~np.isnan(values)
            else:
                out[name] = values
        return batch.with_columns(out)

    def _run(self, batch: Batch, states: Sequence[Mapping[str, Any]] | None = None) -> Batch:
        """Each call in turn (a later call sees the columns earlier ones wrote)."""
        done: dict[str, np.ndarray] = {}
        extras = states if states is not None else [{}] * len(self.calls)
        for call, runner, extra in zip(self.calls, self.runners, extras, strict=True):
            ins = [self._input(batch, name, done) for name in call.inputs]
            outs = runner.run(ins, **extra)
            done.update(zip(call.outputs, outs, strict=True))
        return self._finish(batch, done)

    def __call__(self, batch: Batch) -> Batch:
        with self._lock:
            return self._run(batch)

    def fuse_with(self, following: Any) -> Any:
        """This transform and ``following`` as one chain (:func:`fuse`; a pipeline merges
        consecutive transforms through it), or ``None`` when they do not fuse: another module,
        sandbox or ``chunk_rows``, ``dtypes`` on this one, a windowed kernel or another plugin's
        transform."""
        return _fused_pair(self, following)


@attrs.define(eq=False)
class GroupedWasmTransform(WasmTransform):
    """A grouped (windowed) kernel: rows keyed by ``group_by`` (``""``: one window for the whole
    stream), windows carried from batch to batch and saved with each acknowledgement
    (:class:`~cosmobac.interfaces.StatefulTransform`)."""

    group_by: str = "sensor_id"
    _keys: dict[Any, int] = attrs.field(init=False, factory=dict, repr=False)
    _tables: list[np.ndarray] = attrs.field(init=False, factory=list, repr=False)

    def __attrs_post_init__(self) -> None:
        self._tables = [np.zeros((0, r.state_width)) for r in self.runners]

    def _groups(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Each row's group index within the batch, and each such group's row in the tables."""
        n = len(batch)
        if not self.group_by:
            local: dict[Any, int] = {None: 0} if n else {}
            codes = np.zeros(n, dtype=np.int32)
        else:
            column = batch.get(self.group_by)
            if column is None:
                raise self.module.error(
                    self.kernel,
                    "bad input",
                    f"the batch has no column {self.group_by!r} to group by (`group_by`)",
                )
            local = {}
            codes = np.fromiter(
                (local.setdefault(k, len(local)) for k in column.tolist()), np.int32, count=n
            )
        rows = np.fromiter(
            (self._keys.setdefault(k, len(self._keys)) for k in local), np.intp, count=len(local)
        )
        grow = len(self._keys) - len(self._tables[0]) if self._tables else 0
        if grow > 0:
            self._tables = [
                np.concatenate([t, np.zeros((max(grow, len(t)), t.shape[1]))]) for t in self._tables
            ]
        return codes, rows

    def __call__(self, batch: Batch) -> Batch:
        with self._lock:
            if not len(batch):
                return self._run(batch)
            keys_before = len(self._keys)
            try:
                codes, rows = self._groups(batch)
                gathered = [table[rows] for table in self._tables]
                states = [
                    {"group": codes, "ngroups": len(rows), "state": state} for state in gathered
                ]
                out = self._run(batch, states=states)
            except BaseException:
                for key in list(self._keys)[keys_before:]:  # forget groups the batch introduced
                    del self._keys[key]
                raise
            for table, state in zip(self._tables, gathered, strict=True):
                table[rows] = state  # windows advance only when every call succeeded
            return out

    # -- StatefulTransform ----------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {
            "module": self.module.sha256,
            "kernel": self.kernel,
            "calls": [
                {"inputs": list(c.inputs), "params": list(c.params), "width": r.state_width}
                for c, r in zip(self.calls, self.runners, strict=True)
            ],
        }

    def get_state(self) -> str:
        """The windows of every group as text: JSON with the float64 state in base64."""
        with self._lock:
            count = len(self._keys)
            payload = {
                "format": _STATE_FORMAT,
                "version": 1,
                **self._identity(),
                "group_by": self.group_by,
                "keys": [_jsonable(k) for k in self._keys],
                "state": [
                    base64.b64encode(t[:count].astype("<f8").tobytes()).decode("ascii")
                    for t in self._tables
                ],
            }
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)

    def set_state(self, state: str) -> None:
        """Restore windows saved by :meth:`get_state`. Empty text starts cold; text saved by
        another module, kernel or parameters is ignored with a warning (the windows start
        cold), since it cannot be continued."""
        with self._lock:
            self._keys = {}
            self._tables = [np.zeros((0, r.state_width)) for r in self.runners]
            if not state:
                return
            try:
                payload = json.loads(state)
                same = payload.get("format") == _STATE_FORMAT and all(
                    payload.get(k) == v for k, v in self._identity().items()
                )
                if not same or payload.get("group_by") != self.group_by:
                    log.warning(
                        "wasm kernel %r: the saved window state is from another module, kernel "
                        "or parameters; starting with empty windows",
                        self.kernel,
                    )
                    return
                keys = list(payload["keys"])
                tables = []
                for text, runner in zip(payload["state"], self.runners, strict=True):
                    raw = np.frombuffer(base64.b64decode(text), dtype="<f8")
                    tables.append(raw.astype(np.float64).reshape(len(keys), runner.state_width))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "wasm kernel %r: the saved window state is unreadable (%s); starting with "
                    "empty windows",
                    self.kernel,
                    exc,
                )
                return
            self._keys = {k: i for i, k in enumerate(keys)}
            self._tables = tables


def _jsonable(key: Any) -> Any:
    if key is None or isinstance(key, str | bool | int):
        return key
    if isinstance(key, float):
        return key if math.isfinite(key) else repr(key)
    return str(key)


@attrs.define(eq=False)
class WasmChainTransform:
    """Map kernels of one module fused into one sandboxed run per batch (:mod:`.chain`): the
    columns the chain reads copied in once, the kernels run in turn inside the module, the
    columns it writes copied out once. The same result as the kernels' transforms one after
    another; ``timeout`` and ``fuel`` cover the whole chain.

    Made by :func:`wasm_transform` with ``kernels``, or by :func:`fuse`."""

    module: LoadedModule
    steps: tuple[ChainStep, ...]
    runner: ChainRunner = attrs.field(repr=False)
    dtypes: Mapping[str, str] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    @property
    def kernels(self) -> tuple[str, ...]:
        """The kernels of the chain, in the order they run."""
        return tuple(step.kernel for step in self.steps)

    def _input(self, batch: Batch, name: str) -> np.ndarray:
        column = batch.get(name)
        if column is not None and column.dtype.kind in "fiub":
            return column.astype(np.float64, copy=False)
        kernel = next(step.kernel for step in self.steps if name in step.inputs)
        if column is None:
            raise self.module.error(
                kernel,
                "bad input",
                f"the batch has no column {name!r} (it has {list(batch.columns)})",
            )
        raise self.module.error(
            kernel, "bad input", f"column {name!r} is not numeric (dtype {column.dtype})"
        )

    def __call__(self, batch: Batch) -> Batch:
        with self._lock:
            columns = {name: self._input(batch, name) for name in self.runner.inputs}
            return _finish(batch, self.runner.run(columns), self.dtypes)

    def fuse_with(self, following: Any) -> Any:
        """This transform and ``following`` as one chain (:func:`fuse`; a pipeline merges
        consecutive transforms through it), or ``None`` when they do not fuse: another module,
        sandbox or ``chunk_rows``, ``dtypes`` on this one, a windowed kernel or another plugin's
        transform."""
        return _fused_pair(self, following)


def _finish(batch: Batch, done: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> Batch:
    out: dict[str, np.ndarray] = {}
    for name, values in done.items():
        out[name] = (values != 0) & ~np.isnan(values) if dtypes.get(name) == "bool" else values
    return batch.with_columns(out)


def _steps_of(transform: Any) -> tuple[ChainStep, ...] | None:
    """The chain steps a map transform of this plugin runs, or ``None`` (not fusable)."""
    if isinstance(transform, WasmChainTransform):
        return transform.steps
    if type(transform) is WasmTransform:
        return tuple(
            ChainStep(transform.kernel, c.inputs, c.outputs, c.params) for c in transform.calls
        )
    return None


def _chunk_rows(transform: WasmTransform | WasmChainTransform) -> int:
    if isinstance(transform, WasmChainTransform):
        return transform.runner.chunk_rows
    return transform.runners[0].chunk_rows


def _fused_pair(first: Any, following: Any) -> Any:
    merged = fuse([first, following])
    return merged[0] if len(merged) == 1 else None


def fuse(transforms: Sequence[Any]) -> list[Any]:
    """``transforms`` with each run of consecutive map ``wasm`` transforms of the same module,
    sandbox and ``chunk_rows`` fused into one :class:`WasmChainTransform` (bit for bit the same
    results, one sandboxed run per batch). A transform with ``dtypes`` ends a run (its ``bool``
    outputs must reach the next kernel as booleans); grouped (windowed) kernels and other
    transforms are kept as they are, in their place."""
    out: list[Any] = []
    run: list[Any] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            first = run[0]
            steps = tuple(step for t in run for step in (_steps_of(t) or ()))
            chain = ChainRunner(first.module, steps, chunk_rows=_chunk_rows(first))
            out.append(WasmChainTransform(first.module, steps, chain, dict(run[-1].dtypes)))
        run.clear()

    for transform in transforms:
        if _steps_of(transform) is None:
            flush()
            out.append(transform)
            continue
        if run:
            last = run[-1]
            same = (
                last.module.sha256 == transform.module.sha256
                and last.module.sandbox == transform.module.sandbox
                and _chunk_rows(last) == _chunk_rows(transform)
                and not last.dtypes
            )
            if not same:
                flush()
        run.append(transform)
    flush()
    return out


# -- the factory ----------------------------------------------------------------------------------
def _chain_steps(kernels: Any, columns: Any) -> tuple[ChainStep, ...]:
    """The steps of a ``kernels`` list (names, or tables with ``kernel`` and the call keys);
    ``columns`` (a list of names) is the default for steps that name no columns of their own."""
    if isinstance(kernels, str | Mapping) or not isinstance(kernels, Sequence) or not kernels:
        raise TypeError(
            "kernels must be a non-empty list of kernel names or tables "
            f'({{ kernel = "calibrate", params = [1.02, -0.3] }}), got {kernels!r}'
        )
    if columns is not None and isinstance(columns, Mapping | str):
        raise TypeError(
            "with kernels, columns must be a list of column names (each kernel runs on each, in "
            "place); give a kernel its own columns, inputs/outputs or params in its table"
        )
    default = None if columns is None else _names("columns", columns)
    steps: list[ChainStep] = []
    for i, item in enumerate(kernels):
        key = f"kernels[{i}]"
        spec: Mapping[str, Any] = {"kernel": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping):
            raise TypeError(f"{key} must be a kernel name or a table, got {item!r}")
        unknown = set(spec) - {"kernel", "params", "inputs", "outputs", "columns"}
        if unknown:
            raise TypeError(
                f"{key}: unknown key {sorted(unknown)[0]!r}; use kernel, params, inputs, "
                "outputs, columns"
            )
        name = spec.get("kernel")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{key}.kernel must be the name of an exported kernel, got {name!r}")
        own = spec.get("columns")
        if own is None and spec.get("inputs") is None:
            if default is None:
                raise ValueError(
                    f"{key}: give the kernel columns or inputs, or give the transform columns "
                    "(the default for every kernel of the chain)"
                )
            own = list(default)
        try:
            calls = _calls(spec.get("inputs"), spec.get("outputs"), spec.get("params", ()), own)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{key}: {exc}") from None
        steps.extend(ChainStep(name, c.inputs, c.outputs, c.params) for c in calls)
    return tuple(steps)


def wasm_transform(
    *,
    kernel: str | None = None,
    kernels: Sequence[str | Mapping[str, Any]] | None = None,
    module: str = BUILTIN,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    params: Sequence[float] = (),
    columns: Sequence[str] | Mapping[str, Any] | None = None,
    group_by: str = "sensor_id",
    dtypes: Mapping[str, str] | None = None,
    timeout: str | float = "5s",
    memory_limit: str | int = "128MiB",
    fuel: int | None = None,
    chunk_rows: int = 65536,
    cache_dir: str | bool = True,
) -> WasmTransform | WasmChainTransform:
    """Run a kernel of a sandboxed WebAssembly module over columns (docs/wasm.md).

    Keys: ``kernel`` (an exported kernel) or ``kernels`` (a chain of map kernels fused into one
    sandboxed run per batch: names or tables of ``kernel``, ``params``, ``columns``,
    ``inputs``, ``outputs``), ``module`` (a ``.wasm`` path, default ``"builtin"``: the
    shipped kernels), either ``inputs``/``outputs``/``params`` (one call) or ``columns`` (a
    one-in, one-out kernel on each column), ``group_by`` (windowed kernels), ``dtypes``, and the
    sandbox: ``timeout`` per batch, ``memory_limit``, ``fuel``; ``chunk_rows``, ``cache_dir``.
    """
    if (kernel is None) == (kernels is None):
        raise ValueError(
            "give either kernel (one kernel) or kernels (a chain of map kernels run in one "
            "sandboxed call per batch)"
        )
    if kernels is not None:
        given = [k for k, v in (("inputs", inputs), ("outputs", outputs)) if v is not None]
        if params:
            given.append("params")
        if given:
            raise ValueError(
                f"with kernels, {given[0]} goes in each kernel's table "
                '(kernels = [{ kernel = "calibrate", params = [1.02, -0.3] }, ...])'
            )
        steps = _chain_steps(kernels, columns)
        calls = tuple(KernelCall(s.inputs, s.outputs, s.params) for s in steps)
    elif not isinstance(kernel, str) or not kernel:
        raise TypeError(f"kernel must be the name of an exported kernel, got {kernel!r}")
    else:
        calls = _calls(inputs, outputs, params, columns)
    module = _module_path(module)
    for call in calls:
        clash = [name for name in call.outputs if name in _PROTECTED]
        if clash:
            raise ValueError(f"outputs: {clash[0]!r} identifies rows and cannot be overwritten")
    types = _dtypes(dtypes, calls)
    if not isinstance(group_by, str):
        raise TypeError(f'group_by must be a column name (or "" for one window), got {group_by!r}')
    sandbox = Sandbox(
        timeout=duration("timeout", timeout, positive=True),
        memory_limit=size("memory_limit", memory_limit),
        fuel=None if fuel is None else integer("fuel", fuel, minimum=1),
    )
    chunk = integer("chunk_rows", chunk_rows, minimum=1)
    try:
        loaded = load_module(module, sandbox=sandbox, cache_dir=_cache(cache_dir))
    except OSError as exc:
        raise ValueError(f"module: cannot read {module!r}: {exc.strerror or exc}") from exc
    if kernels is not None:
        chain = ChainRunner(loaded, steps, chunk_rows=chunk)
        return WasmChainTransform(loaded, steps, chain, types)
    assert kernel is not None
    runners = tuple(
        KernelRunner(
            loaded,
            kernel,
            inputs=len(c.inputs),
            outputs=len(c.outputs),
            params=c.params,
            chunk_rows=chunk,
        )
        for c in calls
    )
    if runners[0].grouped:
        return GroupedWasmTransform(loaded, kernel, calls, runners, types, group_by=group_by)
    return WasmTransform(loaded, kernel, calls, runners, types)
