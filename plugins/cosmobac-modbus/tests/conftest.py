"""Real pymodbus TCP servers on loopback, each on its own event loop thread, to poll in tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from cosmobac_modbus import ModbusSensor, encode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def words(value: float, type: str, **orders: str) -> list[int]:
    return [int(w) for w in encode([value], type, **orders).reshape(-1)]


class Simulator:
    """A Modbus TCP device on 127.0.0.1: holding and input registers, coils and discrete inputs
    given as ``{address: [values]}`` (non-shared blocks), answering for ``unit``. ``start`` and
    ``stop`` can be called again (same port); ``requests`` counts the read requests received."""

    def __init__(
        self,
        *,
        holding: dict[int, list[int]] | None = None,
        input: dict[int, list[int]] | None = None,
        coil: dict[int, list[bool]] | None = None,
        discrete: dict[int, list[bool]] | None = None,
        unit: int = 1,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.unit = unit
        self.blocks: dict[str, dict[int, Any]] = {
            "coil": coil or {},
            "discrete": discrete or {},
            "holding": holding or {},
            "input": input or {},
        }
        self.requests: list[tuple[int, int, int]] = []  # (function code, address, count)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ModbusTcpServer | None = None

    def _simdata(self, kind: str) -> list[SimData]:
        bits = kind in ("coil", "discrete")
        blocks = self.blocks[kind] or {60000: [False] if bits else [0]}  # pymodbus needs one
        return [
            SimData(
                address, values=list(values), datatype=DataType.BITS if bits else DataType.REGISTERS
            )
            for address, values in sorted(blocks.items())
        ]

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    async def _serve(self) -> None:
        blocks = tuple(self._simdata(k) for k in ("coil", "discrete", "holding", "input"))
        device = SimDevice(id=self.unit, simdata=blocks)  # type: ignore[arg-type]
        self._server = ModbusTcpServer(
            [device], address=("127.0.0.1", self.port), trace_pdu=self._trace
        )
        await self._server.serve_forever(background=True)

    def start(self) -> Simulator:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._server = self._thread = None

    @property
    def address(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "unit": self.unit}


# The map every standard simulator holds, and the values it decodes to.
REGISTERS = [
    {"address": 0, "type": "float32", "metric": "temperature"},
    {"address": 2, "type": "uint16", "metric": "humidity", "scale": 0.1},
    {"address": 3, "type": "int16", "metric": "offset_c", "offset": 100},
    {"address": 4, "kind": "input", "type": "uint32", "metric": "pressure", "scale": 0.01},
    {"address": 0, "kind": "coil", "metric": "pump_on"},
]


def standard(temperature: float, **more: Any) -> Simulator:
    return Simulator(
        holding={0: [*words(temperature, "float32"), 455, *words(-5, "int16")]},
        input={4: words(101325, "uint32")},
        coil={0: [True, False]},
        **more,
    )


@pytest.fixture
def simulators() -> Iterator[list[Simulator]]:
    """Three running devices, temperatures 20.5, 21.5 and 22.5."""
    sims = [standard(20.5 + i).start() for i in range(3)]
    yield sims
    for sim in sims:
        sim.stop()


@pytest.fixture
def make_sensor() -> Iterator[Any]:
    """Builds :class:`ModbusSensor` s (fast polling) and closes them after the test."""
    made: list[ModbusSensor] = []

    def make(**keys: Any) -> ModbusSensor:
        keys.setdefault("interval", 0.05)
        keys.setdefault("timeout", 0.5)
        keys.setdefault("max_backoff", 0.2)
        sensor = ModbusSensor(**keys)
        made.append(sensor)
        return sensor

    yield make
    for sensor in made:
        sensor.close()
