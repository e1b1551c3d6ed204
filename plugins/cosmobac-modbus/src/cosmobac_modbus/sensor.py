"""The ``modbus`` sensor: polls Modbus TCP devices and hands their readings to the collector.

Guarantees:

* each poll of each device that decodes at least one value gives one reading: ``sensor_id`` and
  the device's constant fields, ``timestamp`` the wall clock (epoch ms) when the poll began
  (strictly increasing per device), one column per register, NaN where a value could not be read;
* a device that cannot be reached (refused, timed out, closed) does not stop or delay the others.
  It is logged once when it goes offline and once when it is back (with how many polls it missed),
  retried on the polling interval, doubling up to ``max_backoff``, and counted (:meth:`status`);
* a value that cannot be decoded (NaN or infinity in float registers) and a Modbus exception
  response (illegal address, ...) become :class:`~cosmobac.interfaces.InputReject` s from
  :meth:`take_rejects`, naming the device and the register. An exception response is recorded (and
  logged, with what to fix) when it starts, and again only after that register has read fine in
  between, so a wrong address gives one reject, not one per poll. A request of several registers
  answered with an exception is then read register by register, so the bad address costs only its
  own value;
* ``close()`` stops polling and closes every connection; calling it again does nothing.

How it runs: one asyncio event loop on one background thread, one task per device, each with its
own pymodbus ``AsyncModbusTcpClient``. A device waiting on a timeout blocks only its own task, so
devices are polled concurrently, and N devices cost N sockets, not N threads. The loop starts on
the first ``wait`` or ``read`` (building the sensor from a pipeline file opens no connection).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from cosmobac.batch import Batch
from cosmobac.interfaces import InputReject, SourceStatus
from cosmobac.values import duration, integer

from .config import Device, Register, Request, parse_devices
from .decode import ORDERS, decode, scaled

__all__ = ["ModbusSensor"]

log = logging.getLogger("cosmobac.modbus")

_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
_UNREACHABLE = (10, 11)  # a gateway answering for a device it cannot reach: the device is offline
_HINTS = {
    1: "the device does not support reading {kind} registers; check its kind",
    2: "the device has no {kind} register {address}; check its address (0-based, as sent on "
    "the wire: holding register 40001 is address 0) and kind",
    3: "the device refused the count or address; check the register's type and address",
}
_READERS = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.define(eq=False)
class _State:
    device: Device
    online: bool = True
    polls: int = 0
    readings: int = 0
    failed_polls: int = 0
    failures_in_a_row: int = 0
    down_since: float = 0.0
    last_error: str | None = None
    last_timestamp: int = 0
    split: set[Request] = attrs.field(factory=set)
    failing: dict[tuple[str, int], str] = attrs.field(factory=dict)

    def snapshot(self) -> SourceStatus:
        return SourceStatus(
            source=self.device.sensor_id,
            up=self.online,
            polls=self.polls,
            readings=self.readings,
            failures=self.failed_polls,
            last_error=self.last_error,
        )


class _Offline(Exception):
    """The device could not be polled (refused, timed out, disconnected)."""


class _QuietThread(logging.Filter):
    """Drops pymodbus's own log records made on the polling thread: it logs every failed connect,
    and the sensor reports a device going offline and back itself, once each."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: int | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or record.levelno >= logging.CRITICAL


class ModbusSensor:
    """Poll Modbus TCP devices' registers every ``interval``: one reading per device and poll.

    Keys: ``devices`` (list of tables: ``host``, ``port``, ``unit``, ``sensor_id``, ``registers``,
    ``timeout``, constant fields), ``registers`` (shared register map), ``interval`` (``"1s"``),
    ``timeout`` (``"1s"``), ``word_order`` and ``byte_order`` (``"big"``), ``max_backoff``
    (``"30s"``), ``max_buffered`` (100000). See docs/reference/config-modbus.md.
    """

    def __init__(
        self,
        devices: Any,
        registers: Any = None,
        interval: Any = 1.0,
        timeout: Any = 1.0,
        word_order: Any = "big",
        byte_order: Any = "big",
        max_backoff: Any = 30.0,
        max_buffered: Any = 100_000,
    ) -> None:
        from cosmobac.values import choice

        self.interval = duration("interval", interval, minimum=0.001)
        self.max_backoff = max(duration("max_backoff", max_backoff), self.interval)
        self.max_buffered = integer("max_buffered", max_buffered, minimum=1)
        self.devices = parse_devices(
            devices,
            registers=registers,
            timeout=duration("timeout", timeout, positive=True),
            word_order=choice("word_order", word_order, ORDERS),
            byte_order=choice("byte_order", byte_order, ORDERS),
        )
        self._states = [_State(device) for device in self.devices]
        self._cond = threading.Condition()
        self._rows: collections.deque[dict[str, Any]] = collections.deque()
        self._rejects: list[InputReject] = []
        self._dropped = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._closed = False
        self._quiet = _QuietThread()

    # -- the LiveSensor, RejectingSensor and Closeable contract ---------------------------------
    @property
    def finished(self) -> bool:
        """Never: devices are polled until the sensor is closed."""
        return False

    def wait(self, timeout: float, rows: int) -> bool:
        """Block until ``rows`` readings wait to be read (True) or ``timeout`` seconds passed."""
        self.start()
        with self._cond:
            return self._cond.wait_for(lambda: len(self._rows) >= rows, timeout)

    def read(self, until: int) -> Batch:
        """The readings polled since the last ``read`` (``until`` is not needed: every reading
        was taken before it was handed over)."""
        self.start()
        with self._cond:
            rows = list(self._rows)
            self._rows.clear()
        return Batch.from_records(rows) if rows else Batch.empty()

    def take_rejects(self) -> Sequence[InputReject]:
        """The values and responses set aside since the last call."""
        with self._cond:
            rejects, self._rejects = self._rejects, []
        return rejects

    def sources(self) -> tuple[SourceStatus, ...]:
        """Each device's counters (:class:`~cosmobac.interfaces.SourceStatus`, named by the
        device's sensor id; ``failures`` are polls that could not reach it), in the order of
        ``devices``. The collector exports them as ``cosmobac_source_*`` metrics."""
        with self._cond:
            return tuple(state.snapshot() for state in self._states)

    @property
    def dropped(self) -> int:
        """Readings dropped, oldest first, because ``max_buffered`` were waiting unread."""
        return self._dropped

    def start(self) -> None:
        """Start polling (``wait`` and ``read`` do it on first use); does nothing once started
        or closed."""
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="cosmobac-modbus", daemon=True)
            self._thread.start()
        self._started.wait(10)

    def close(self) -> None:
        """Stop polling and close every connection; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._started.wait(10)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        logging.getLogger("pymodbus.logging").removeFilter(self._quiet)

    def __enter__(self) -> ModbusSensor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the polling thread ----------------------------------------------------------------------
    def _run(self) -> None:
        self._quiet.thread = threading.get_ident()
        logging.getLogger("pymodbus.logging").addFilter(self._quiet)
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        tasks = [asyncio.create_task(self._poll_forever(state)) for state in self._states]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll_forever(self, state: _State) -> None:
        from pymodbus.client import AsyncModbusTcpClient

        device = state.device
        client: Any = None
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                delay = self.interval
                try:
                    if client is None or not client.connected:
                        if client is not None:
                            client.close()
                        client = AsyncModbusTcpClient(
                            device.host,
                            port=device.port,
                            timeout=device.timeout,
                            retries=0,
                            reconnect_delay=0,
                        )
                        connected = await asyncio.wait_for(client.connect(), device.timeout * 2)
                        if not connected:
                            raise _Offline(f"cannot connect to {device.host}:{device.port}")
                    await self._poll(client, state)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure to talk to the device: it is offline
                    if client is not None:
                        client.close()
                        client = None
                    delay = self._went_offline(state, exc)
                next_at += delay
                now = loop.time()
                if next_at < now:  # a poll took longer than the interval: skip what was missed
                    next_at = now
                await asyncio.sleep(next_at - now)
        finally:
            if client is not None:
                client.close()

    def _went_offline(self, state: _State, exc: BaseException) -> float:
        reason = _reason(exc, state.device.timeout)
        with self._cond:
            state.polls += 1
            state.failed_polls += 1
            state.failures_in_a_row += 1
            state.last_error = reason
            first = state.online
            state.online = False
            if first:
                state.down_since = time.monotonic()
        delay = min(self.interval * 2 ** (state.failures_in_a_row - 1), self.max_backoff)
        if first:
            log.warning(
                "%s is offline: %s; retrying every %gs, backing off to %gs",
                state.device.origin,
                reason,
                self.interval,
                self.max_backoff,
            )
        return delay

    async def _poll(self, client: Any, state: _State) -> None:
        device = state.device
        timestamp = max(_now_ms(), state.last_timestamp + 1)
        values: dict[str, float] = {r.metric: math.nan for r in device.registers}
        rejects: list[InputReject] = []
        parts: collections.deque[Request] = collections.deque()
        for request in device.requests:
            parts.extend(_singles(request) if request in state.split else [request])
        unit = {_unit_keyword(): device.unit}
        while parts:
            part = parts.popleft()
            response = await asyncio.wait_for(
                getattr(client, _READERS[part.kind])(part.address, count=part.count, **unit),
                device.timeout * 2,
            )
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                if code in _UNREACHABLE:
                    raise _Offline(f"Modbus exception {code} ({_EXCEPTIONS[code]})")
                if len(part.registers) > 1:
                    state.split.add(part)
                    parts.extend(_singles(part))
                else:
                    rejects.extend(self._exception(state, part.registers[0], code, timestamp))
                continue
            self._decode(state, part, response, values, rejects, timestamp)
        with self._cond:
            state.polls += 1
            if state.online is False:
                missed = max(1, round((time.monotonic() - state.down_since) / self.interval))
                log.warning(
                    "%s is back after %.1fs offline: %d polls missed (%d attempts failed)",
                    device.origin,
                    time.monotonic() - state.down_since,
                    missed,
                    state.failures_in_a_row,
                )
            state.online = True
            state.failures_in_a_row = 0
            state.last_error = None
            self._rejects.extend(rejects)
            if any(not math.isnan(v) for v in values.values()):
                state.readings += 1
                state.last_timestamp = timestamp
                row = {"sensor_id": device.sensor_id, "timestamp": timestamp, **device.fields}
                row.update(values)
                if len(self._rows) >= self.max_buffered:
                    self._rows.popleft()
                    self._dropped += 1
                    if self._dropped == 1 or self._dropped % 10_000 == 0:
                        log.warning(
                            "%d readings dropped: %d waited unread (max_buffered); is the "
                            "collector stalled?",
                            self._dropped,
                            self.max_buffered,
                        )
                self._rows.append(row)
                self._cond.notify_all()

    def _decode(
        self,
        state: _State,
        part: Request,
        response: Any,
        values: dict[str, float],
        rejects: list[InputReject],
        timestamp: int,
    ) -> None:
        device = state.device
        if part.kind in ("coil", "discrete"):
            bits = np.asarray(response.bits[: part.count], dtype=np.float64)
            for register in part.registers:
                state.failing.pop((register.kind, register.address), None)
                offset = register.address - part.address
                values[register.metric] = float(
                    scaled(bits[offset : offset + 1], register.scale, register.offset)[0]
                )
            return
        words = list(response.registers)
        for register in part.registers:
            state.failing.pop((register.kind, register.address), None)
            offset = register.address - part.address
            raw_words = words[offset : offset + register.width]
            raw = decode(
                raw_words,
                register.type,
                word_order=register.word_order,
                byte_order=register.byte_order,
            )
            value = float(scaled(raw, register.scale, register.offset)[0])
            if math.isfinite(value):
                values[register.metric] = value
            else:
                rejects.append(
                    InputReject(
                        origin=_origin(device, register),
                        reason=f"{register.metric}: {register.type} value is {float(raw[0])!r}, not a number",
                        raw=" ".join(f"0x{w:04x}" for w in raw_words),
                        created_at=timestamp,
                    )
                )

    def _exception(
        self, state: _State, register: Register, code: int, timestamp: int
    ) -> list[InputReject]:
        name = _EXCEPTIONS.get(code, "unknown exception")
        key = (register.kind, register.address)
        if state.failing.get(key) == name:
            return []
        state.failing[key] = name
        hint = _HINTS.get(code, "").format(kind=register.kind, address=register.address)
        reason = f"{register.metric}: Modbus exception {code} ({name})" + (
            f": {hint}" if hint else ""
        )
        log.error("%s register %d: %s", state.device.origin, register.address, reason)
        return [
            InputReject(
                origin=_origin(state.device, register),
                reason=reason,
                raw=f"{register.kind} {register.address} count {register.width}",
                created_at=timestamp,
            )
        ]


def _origin(device: Device, register: Register) -> str:
    return f"{device.origin} register {register.address}"


def _singles(request: Request) -> list[Request]:
    return [Request(r.kind, r.address, r.width, (r,)) for r in request.registers]


def _reason(exc: BaseException, timeout: float) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) or "No response received" in text:
        return f"no answer within {timeout:g}s"
    return text.removeprefix("Modbus Error: ")


@functools.cache
def _unit_keyword() -> str:
    """pymodbus 3.10 renamed the unit keyword of its requests from ``slave`` to ``device_id``."""
    from pymodbus.client import AsyncModbusTcpClient

    parameters = inspect.signature(AsyncModbusTcpClient.read_coils).parameters
    return "device_id" if "device_id" in parameters else "slave"
