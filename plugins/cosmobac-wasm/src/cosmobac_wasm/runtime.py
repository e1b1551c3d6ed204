"""Loading, caching and running WebAssembly modules inside the sandbox.

Guarantees:

* every store has a memory cap (``Store.set_limits``) and every call into a module runs under a
  time budget (an epoch deadline raised by a watchdog thread) and, when configured, a fuel budget;
* a module gets only what it is given: WASI with no preopened directory, no arguments, no
  environment and no stdin for transforms; the command runner adds exactly the directories it
  names; sleeping (``poll_oneoff``) is refused, since no deadline can interrupt a host call;
  creating a symlink (``path_symlink``) is refused, since a link's target could leave the folder
  it is made in (the attempts are kept in :attr:`Instance.symlinks`);
* compiled modules are cached on disk, keyed by the SHA-256 of the module's bytes, the wasmtime
  version and the engine settings; a cache entry that does not load is recompiled, and a cache
  directory others could write to is not used (a cached module is native code);
* every failure becomes one :class:`~cosmobac_wasm.errors.WasmError` naming the module, the
  kernel and the cause; ``wasmtime.Trap`` (not a ``WasmtimeError``) is caught as well.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import wasmtime

from .errors import WasmError

__all__ = [
    "BUILTIN",
    "Instance",
    "LoadedModule",
    "Sandbox",
    "builtin_module_path",
    "default_cache_dir",
    "load_module",
]

log = logging.getLogger("cosmobac.wasm")

PAGE: Final = 65536
MiB: Final = 1 << 20
BUILTIN: Final = "builtin"
"""The ``module`` value naming the kernels module shipped with this plugin."""

ENV_CACHE_DIR: Final = "COSMOBAC_WASM_CACHE"
_WASMTIME_VERSION: Final = metadata.version("wasmtime")


def builtin_module_path() -> Path:
    """The shipped kernels module (``cosmobac_kernels.wasm``, built from ``kernels/*.c``)."""
    return Path(__file__).resolve().parent / "kernels" / "cosmobac_kernels.wasm"


def default_cache_dir() -> Path:
    """Where compiled modules are cached: ``$COSMOBAC_WASM_CACHE``, else the user cache directory
    (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows) + ``cosmobac/wasm``."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "cosmobac" / "cache" / "wasm"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "cosmobac" / "wasm"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cosmobac" / "wasm"


@attrs.frozen(kw_only=True)
class Sandbox:
    """The limits every call into a module runs under.

    * ``timeout``: seconds one call (one batch, or one ``_start``) may run; enforced with an epoch
      deadline, so a module stuck in a loop traps instead of hanging the process.
    * ``memory_limit``: bytes of linear memory the module may have (growth beyond fails, and a
      module that declares more cannot be instantiated); at most 4 GiB, wasm32's own limit.
    * ``fuel``: optional instruction budget per call (deterministic, unlike time; costs speed).
    """

    timeout: float = 5.0
    memory_limit: int = 128 * MiB
    fuel: int | None = None

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if not 0 < self.memory_limit <= 4 * 1024 * MiB:
            raise ValueError(
                f"memory_limit must be above zero and at most 4 GiB (wasm32), got "
                f"{self.memory_limit} bytes"
            )
        if self.fuel is not None and (isinstance(self.fuel, bool) or self.fuel < 1):
            raise ValueError(f"fuel must be a whole number ≥ 1, got {self.fuel!r}")

    def describe(self) -> str:
        fuel = f", fuel {self.fuel}" if self.fuel is not None else ""
        return f"timeout {self.timeout:g} s, memory_limit {_human(self.memory_limit)}{fuel}"


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


# -- the watchdog ---------------------------------------------------------------------------------
class _Watchdog:
    """One daemon thread that raises an engine's epoch when a call's time budget runs out.

    wasmtime releases the GIL while wasm runs (ctypes), so the thread gets to run; the store traps
    at its next interruption check (loop back-edges, function entries). Arming and disarming are
    cheap: the thread is woken only when a new deadline is earlier than the one it sleeps until."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[int, tuple[float, wasmtime.Engine]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._sleeping_until = math.inf

    def _reset_after_fork(self) -> None:
        self._cond = threading.Condition()
        self._pending = {}
        self._thread = None
        self._sleeping_until = math.inf

    def arm(self, engine: wasmtime.Engine, seconds: float) -> int:
        with self._cond:
            token = next(self._tokens)
            deadline = time.monotonic() + seconds
            self._pending[token] = (deadline, engine)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cosmobac-wasm-watchdog", daemon=True
                )
                self._thread.start()
            elif deadline < self._sleeping_until:
                self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._pending.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, engine) in list(self._pending.items()):
                    if deadline <= now:
                        del self._pending[token]
                        engine.increment_epoch()
                self._sleeping_until = min((d for d, _ in self._pending.values()), default=math.inf)
                if self._sleeping_until == math.inf:
                    self._cond.wait()
                else:
                    self._cond.wait(self._sleeping_until - now)
                self._sleeping_until = -math.inf  # awake: arm() need not notify


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG._reset_after_fork)


# -- loading and caching --------------------------------------------------------------------------
def _engine(sandbox: Sandbox) -> tuple[wasmtime.Engine, str]:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = sandbox.fuel is not None
    config.cranelift_opt_level = "speed"
    fingerprint = f"wasmtime {_WASMTIME_VERSION}; epoch; fuel={sandbox.fuel is not None}; speed"
    return wasmtime.Engine(config), fingerprint


def _cache_usable(directory: Path) -> bool:
    """True when ``directory`` exists (or was created) and only this user can write to it."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.stat()
    except OSError as exc:
        log.warning("wasm cache %s is not usable (%s); compiling without it", directory, exc)
        return False
    if os.name == "posix" and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        log.warning(
            "wasm cache %s is writable by other users (or owned by another user); a cached "
            "module is native code, so it is not used. Fix with: chmod go-w %s",
            directory,
            directory,
        )
        return False
    return True


def _compile(
    engine: wasmtime.Engine, fingerprint: str, wasm: bytes, label: str, cache_dir: Path | None
) -> wasmtime.Module:
    digest = hashlib.sha256(wasm).hexdigest()
    entry = None
    if cache_dir is not None and _cache_usable(cache_dir):
        key = hashlib.sha256(f"{digest}\n{fingerprint}".encode()).hexdigest()
        entry = cache_dir / f"{key}.cwasm"
        if entry.is_file():
            try:
                return wasmtime.Module.deserialize_file(engine, str(entry))
            except (wasmtime.WasmtimeError, OSError) as exc:
                log.info("wasm cache entry %s does not load (%s); recompiling", entry, exc)
    try:
        module = wasmtime.Module(engine, wasm)
    except (wasmtime.WasmtimeError, wasmtime.Trap, TypeError, ValueError) as exc:
        raise WasmError(label, None, "invalid module", _first_line(exc)) from None
    if entry is not None:
        temporary = None
        try:
            with tempfile.NamedTemporaryFile(dir=entry.parent, delete=False) as tmp:
                temporary = tmp.name
                tmp.write(module.serialize())
            os.replace(temporary, entry)  # atomic: readers see the old entry or the new one
        except OSError as exc:
            log.warning("cannot write the wasm cache entry %s: %s", entry, exc)
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
    return module


def _first_line(exc: BaseException) -> str:
    """The reason in a wasmtime message: the "Caused by" lines (without the backtrace) or the
    first line."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    head, sep, causes = text.partition("Caused by:")
    if sep:
        reasons = [re.sub(r"^\d+:\s*", "", line.strip()) for line in causes.splitlines()]
        return "; ".join(r for r in reasons if r)
    return head.splitlines()[0]


@attrs.define(eq=False)
class LoadedModule:
    """A compiled module on its own engine, with the sandbox it runs under."""

    name: str  # for messages: the path as given, or "builtin"
    sha256: str
    engine: wasmtime.Engine = attrs.field(repr=False)
    module: wasmtime.Module = attrs.field(repr=False)
    sandbox: Sandbox

    @property
    def label(self) -> str:
        """The module's name and the start of its hash, as errors show it."""
        return _label(self.name, self.sha256)

    def functions(self) -> dict[str, wasmtime.FuncType]:
        """The exported functions and their types."""
        return {
            e.name: e.type for e in self.module.exports if isinstance(e.type, wasmtime.FuncType)
        }

    def has_memory_export(self) -> bool:
        return any(
            e.name == "memory" and isinstance(e.type, wasmtime.MemoryType)
            for e in self.module.exports
        )

    def error(self, kernel: str | None, cause: str, detail: str) -> WasmError:
        return WasmError(self.label, kernel, cause, detail)


def _label(name: str, sha256: str) -> str:
    return f"{name!r} (sha256 {sha256[:12]})"


def resolve_module(module: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The file of a ``module`` setting and the name messages use for it."""
    if module is None or str(module) == BUILTIN:
        return builtin_module_path(), BUILTIN
    return Path(module), str(module)


def load_module(
    module: str | os.PathLike[str] | None,
    *,
    sandbox: Sandbox | None = None,
    cache_dir: Path | bool | None = True,
) -> LoadedModule:
    """Read and compile ``module`` (a path, or ``"builtin"``/``None`` for the shipped kernels).

    ``cache_dir``: ``True`` for :func:`default_cache_dir`, a path, or ``False``/``None`` for no
    cache. A file that is not valid WebAssembly raises :class:`WasmError` (``invalid module``);
    a missing file raises ``FileNotFoundError``."""
    sandbox = sandbox or Sandbox()
    path, name = resolve_module(module)
    wasm = path.read_bytes()
    directory = default_cache_dir() if cache_dir is True else (cache_dir or None)
    engine, fingerprint = _engine(sandbox)
    digest = hashlib.sha256(wasm).hexdigest()
    compiled = _compile(engine, fingerprint, wasm, _label(name, digest), directory)
    return LoadedModule(name, digest, engine, compiled, sandbox)


# -- instances ------------------------------------------------------------------------------------
def signature(ty: wasmtime.FuncType) -> str:
    """``(i32, f64) -> i32`` for a function type."""
    params = ", ".join(str(p) for p in ty.params)
    results = ", ".join(str(r) for r in ty.results)
    return f"({params}) -> ({results})" if len(ty.results) != 1 else f"({params}) -> {results}"


class PreparedCall:
    """A prepared call of one export whose type was checked: arguments go straight into a raw
    value array (``wasmtime_func_call_unchecked``), about ten times cheaper than ``Func.__call__``,
    which matters when a batch is processed in chunks. Falls back to the public API when the
    binding's internals are not there.

    ``bind(*args)`` fixes the arguments; ``call_with_first(n)`` then calls with only the first one
    changed (a kernel over successive chunks: same pointers and parameters, another row count)."""

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, ty: wasmtime.FuncType) -> None:
        self._store = store
        self._func = func
        self._kinds = ["f64" if str(p) == "f64" else "i32" for p in ty.params]
        self._results = len(ty.results)
        self._args: list[int | float] = []
        self._fast = FAST_CALLS and self._prepare()

    def _prepare(self) -> bool:
        try:
            from wasmtime import _ffi

            self._ffi = _ffi
            self._raw = (_ffi.wasmtime_val_raw_t * max(len(self._kinds), self._results, 1))()
            self._ref = ctypes.byref(self._func._func)
            self._context = self._store._context()
            self._call = _ffi.wasmtime_func_call_unchecked
            self._trap_type = ctypes.POINTER(_ffi.wasm_trap_t)
            return callable(self._call) and hasattr(wasmtime.Trap, "_from_ptr")
        except (ImportError, AttributeError):
            return False

    def bind(self, *args: int | float) -> None:
        if len(args) != len(self._kinds):
            raise TypeError(f"expected {len(self._kinds)} arguments, got {len(args)}")
        self._args = list(args)
        if self._fast:
            for i, (kind, value) in enumerate(zip(self._kinds, args, strict=True)):
                if kind == "f64":
                    self._raw[i].f64 = value
                else:
                    self._raw[i].i32 = int(value)

    def __call__(self, *args: int | float) -> Any:
        self.bind(*args)
        return self._invoke()

    def call_with_first(self, first: int) -> Any:
        self._args[0] = first
        if self._fast:
            self._raw[0].i32 = first  # results overwrite only the first slots
        return self._invoke()

    def _invoke(self) -> Any:
        if not self._fast:
            return self._func(self._store, *self._args)
        trap = self._trap_type()
        error = self._call(self._context, self._ref, self._raw, len(self._raw), ctypes.byref(trap))
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        if not self._results:
            return None
        result = self._raw[0].i32  # results overwrite the first slots, which
        if self._results > 1:  # call_with_first sets again; more than one: bind them all again
            self.bind(*self._args)
        return result


WASI_ENOTSUP: Final = 58


def _refuse_poll(subscriptions: int, events: int, count: int, written: int) -> int:
    """WASI ``poll_oneoff`` (sleep, poll, select), refused: the epoch deadline cannot interrupt a
    host call, so a module asking to sleep for an hour would hold its thread for an hour."""
    return WASI_ENOTSUP


WASI_EFAULT: Final = 21
WASI_EPERM: Final = 63  # what wasmtime itself answers for a symlink to an absolute path
SYMLINKS_KEPT: Final = 20
"""How many refused symlinks an instance remembers by name (the count goes on)."""


class SymlinkRefusals:
    """WASI ``path_symlink``, refused with EPERM (63) and remembered. wasmtime refuses an absolute
    target but would create ``out/evil -> ../../../../etc/passwd``, which whoever reads the folder
    afterwards could follow; no module needs to make a link, so none is made.

    ``attempts`` keeps (link, target) of the first :data:`SYMLINKS_KEPT` attempts, ``count`` counts
    them all. A class of its own, so the store holding it does not hold the instance (no cycle:
    a store is freed as soon as its instance is dropped)."""

    __slots__ = ("attempts", "count")

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.count = 0

    def __call__(
        self,
        caller: wasmtime.Caller,
        target: int,
        target_length: int,
        fd: int,
        link: int,
        link_length: int,
    ) -> int:
        target_text = _guest_text(caller, target, target_length)
        link_text = _guest_text(caller, link, link_length)
        if target_text is None or link_text is None:
            return WASI_EFAULT
        self.count += 1
        if len(self.attempts) < SYMLINKS_KEPT:
            self.attempts.append((link_text, target_text))
        return WASI_EPERM


def _guest_text(caller: wasmtime.Caller, address: int, length: int) -> str | None:
    """``length`` bytes at ``address`` in the caller's memory as text (at most 200 characters
    kept); ``None`` when the range is not inside its memory."""
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return None
    if address < 0 or length < 0 or address + length > memory.data_len(caller):
        return None
    text = memory.read(caller, address, address + min(length, 800)).decode("utf-8", "replace")
    return text if len(text) <= 200 else text[:199] + "…"


FAST_CALLS = True
"""Use the prepared-call fast path when the wasmtime binding allows it (tests turn it off)."""


class _Budget:
    """The context of :meth:`Instance.budget` (a class, not a generator: it wraps every batch)."""

    __slots__ = ("_instance", "_token", "kernel")

    def __init__(self, instance: Instance, kernel: str | None) -> None:
        self._instance = instance
        self.kernel = kernel  # the kernel errors name: a chain sets it as it goes
        self._token = -1

    def __enter__(self) -> _Budget:
        instance = self._instance
        sandbox = instance.loaded.sandbox
        instance.store.set_epoch_deadline(1)
        if sandbox.fuel is not None:
            instance.store.set_fuel(sandbox.fuel)
        self._token = _WATCHDOG.arm(instance.loaded.engine, sandbox.timeout)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        _WATCHDOG.disarm(self._token)
        if isinstance(exc, (wasmtime.WasmtimeError, wasmtime.Trap)):
            raise self._instance._translate(exc, self.kernel) from None


class Instance:
    """One instantiation of a loaded module in a store of its own, under its sandbox.

    ``wasi`` configures the module's WASI view (by default: nothing at all — no files, arguments,
    environment, stdin; stdout and stderr discarded)."""

    def __init__(self, loaded: LoadedModule, *, wasi: wasmtime.WasiConfig | None = None) -> None:
        self.loaded = loaded
        sandbox = loaded.sandbox
        store = wasmtime.Store(loaded.engine)
        store.set_limits(
            memory_size=sandbox.memory_limit, table_elements=1_000_000, instances=1, memories=1
        )
        store.set_wasi(wasi or wasmtime.WasiConfig())
        store.set_epoch_deadline(1)
        if sandbox.fuel is not None:
            store.set_fuel(sandbox.fuel)
        linker = wasmtime.Linker(loaded.engine)
        linker.define_wasi()
        linker.allow_shadowing = True
        linker.define_func(  # a sleep would hold the thread beyond any time budget: refused
            "wasi_snapshot_preview1",
            "poll_oneoff",
            wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i32()]),
            _refuse_poll,
        )
        self.symlinks = SymlinkRefusals()
        linker.define_func(  # a link's target could leave its folder (../../etc/passwd): refused
            "wasi_snapshot_preview1",
            "path_symlink",
            wasmtime.FuncType([wasmtime.ValType.i32()] * 5, [wasmtime.ValType.i32()]),
            self.symlinks,
            access_caller=True,
        )
        self.store = store
        self.exports: dict[str, Any] = {}
        self.memory: wasmtime.Memory | None = None
        self._view: np.ndarray = np.empty(0, dtype=np.uint8)
        self._view_key: tuple[int | None, int] = (None, 0)
        self._memory_size: Any = (
            None  # the raw size call, once instantiated (if the binding has it)
        )
        token = _WATCHDOG.arm(loaded.engine, sandbox.timeout)
        try:
            instance = linker.instantiate(store, loaded.module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise self._instantiation_error(exc) from None
        finally:
            _WATCHDOG.disarm(token)
        self.exports = dict(instance.exports(store).items())
        memory = self.exports.get("memory")
        self.memory = memory if isinstance(memory, wasmtime.Memory) else None
        try:
            from wasmtime import _ffi

            if self.memory is not None:
                self._context = store._context()
                self._memory_ref = ctypes.byref(self.memory._memory)
                self._memory_size = _ffi.wasmtime_memory_data_size
        except (ImportError, AttributeError):
            self._memory_size = None

    def _instantiation_error(self, exc: BaseException) -> WasmError:
        text = _first_line(exc)
        lowered = text.lower()
        unknown = [
            f"{i.module}.{i.name}"
            for i in self.loaded.module.imports
            if i.module != "wasi_snapshot_preview1"
        ]
        if "unknown import" in lowered or unknown:
            return self.loaded.error(
                None,
                "invalid module",
                f"it imports {', '.join(unknown) or text}, which the sandbox does not provide "
                "(only wasi_snapshot_preview1 is linked)",
            )
        if "memory" in lowered and ("limit" in lowered or "minimum" in lowered):
            return self.loaded.error(
                None,
                "memory cap",
                f"the module needs more memory than memory_limit = "
                f"{_human(self.loaded.sandbox.memory_limit)} at start: {text}",
            )
        return self._translate(exc, None)

    # -- memory ---------------------------------------------------------------------------------
    def memory_size(self) -> int:
        """The linear memory's size in bytes (it changes only when a call into the module grows
        it, and only then may the memory move)."""
        if self._memory_size is None:
            return 0 if self.memory is None else self.memory.data_len(self.store)
        return int(self._memory_size(self._context, self._memory_ref))

    def view(self) -> np.ndarray:
        """A uint8 numpy view of the whole linear memory (valid until the next call into the
        module, which may grow and move it: ask again after each call)."""
        if self.memory is None:
            return self._view
        size = self.memory.data_len(self.store)
        pointer = self.memory.data_ptr(self.store)
        key = (ctypes.cast(pointer, ctypes.c_void_p).value, size)
        if key != self._view_key:
            self._view = (
                np.ctypeslib.as_array(pointer, shape=(size,))
                if size
                else np.empty(0, dtype=np.uint8)
            )
            self._view_key = key
        return self._view

    def read_cstring(self, address: int, limit: int = 2000) -> str:
        view = self.view()
        if not 0 < address < len(view):
            return ""
        chunk = bytes(view[address : address + limit])
        return chunk.split(b"\0", 1)[0].decode("utf-8", "replace")

    # -- calls ----------------------------------------------------------------------------------
    def prepare(self, name: str, ty: wasmtime.FuncType) -> PreparedCall:
        """A fast caller for the export ``name`` (whose type the caller has checked)."""
        return PreparedCall(self.store, self.exports[name], ty)

    def budget(self, kernel: str | None) -> _Budget:
        """Run the calls inside under one budget: ``timeout`` seconds (and ``fuel``) in total.
        Any failure inside becomes a :class:`WasmError` for ``kernel``."""
        return _Budget(self, kernel)

    def _translate(self, exc: BaseException, kernel: str | None) -> WasmError:
        sandbox = self.loaded.sandbox
        text = _first_line(exc)
        code = getattr(exc, "trap_code", None) if isinstance(exc, wasmtime.Trap) else None
        at_cap = self.memory_size() * 8 >= sandbox.memory_limit * 7  # within 1/8 of the cap
        cap_note = (
            f" (the module's memory is at or near its cap, memory_limit = "
            f"{_human(sandbox.memory_limit)})"
            if at_cap
            else ""
        )
        if code == wasmtime.TrapCode.INTERRUPT or "interrupt" in text.lower():
            return self.loaded.error(
                kernel,
                "budget exhausted",
                f"the call ran longer than its time budget of {sandbox.timeout:g} s and was "
                f"stopped{cap_note}; raise `timeout` if the work is legitimately slow",
            )
        if code == wasmtime.TrapCode.OUT_OF_FUEL or "fuel" in text.lower():
            return self.loaded.error(
                kernel,
                "budget exhausted",
                f"the call used all {sandbox.fuel} units of fuel and was stopped{cap_note}; raise "
                "`fuel` if the work is legitimately long",
            )
        if isinstance(exc, wasmtime.ExitTrap):
            return self.loaded.error(kernel, "trap", f"the module called proc_exit({exc.code})")
        if at_cap:
            return self.loaded.error(
                kernel,
                "memory cap",
                f"the module trapped with its memory at or near its cap, memory_limit = "
                f"{_human(sandbox.memory_limit)}: {text}; raise `memory_limit` if it needs more",
            )
        return self.loaded.error(kernel, "trap", text)


def check_signature(
    loaded: LoadedModule,
    kernel: str,
    export: str,
    expected_params: Sequence[str],
    expected_results: Sequence[str],
    explain: str,
) -> wasmtime.FuncType:
    """The type of the exported function ``export``, checked; ``WasmError`` when it is missing
    or differs (``explain`` says where the expected shape comes from)."""
    functions = loaded.functions()
    ty = functions.get(export)
    if ty is None:
        names = ", ".join(sorted(functions)) or "none"
        raise loaded.error(
            kernel, "missing export", f"the module exports no function {export!r} (it has: {names})"
        )
    params = [str(p) for p in ty.params]
    results = [str(r) for r in ty.results]
    if params != list(expected_params) or results != list(expected_results):
        wanted = f"({', '.join(expected_params)}) -> {', '.join(expected_results) or '()'}"
        raise loaded.error(
            kernel,
            "wrong signature",
            f"{export} is {signature(ty)}, but {explain} it must be {wanted}",
        )
    return ty
