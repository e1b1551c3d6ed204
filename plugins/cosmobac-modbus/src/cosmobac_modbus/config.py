"""The ``modbus`` sensor's settings: devices, register maps and the requests that read them.

Guarantees:

* every value is read with :mod:`cosmobac.values`; an error names the key as a path
  (``devices[1].registers[0].type``), shows the value and says what is accepted;
* a device's register map has no two registers of one kind whose spans overlap, and no register
  running past address 65535;
* :func:`group_requests` reads a device's registers in as few requests as possible: registers of
  one kind at contiguous addresses share a request, up to :data:`MAX_COUNT` registers (125) or
  coils (2000) per request.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from cosmobac.schema import CORE_FIELDS, IDENTITY, METADATA
from cosmobac.values import choice, did_you_mean, duration, integer, real

from .decode import BIT_TYPES, ORDERS, TYPES, WORDS

__all__ = [
    "KINDS",
    "MAX_COUNT",
    "Device",
    "Register",
    "Request",
    "group_requests",
    "parse_devices",
    "parse_registers",
]

KINDS: Final = ("holding", "input", "coil", "discrete")
"""Register kinds: holding and input registers (16-bit words), coils and discrete inputs (bits)."""

MAX_COUNT: Final = {"holding": 125, "input": 125, "coil": 2000, "discrete": 2000}
"""The most registers (or bits) one Modbus read request may ask for."""

REGISTER_KEYS: Final = (
    "address",
    "kind",
    "type",
    "scale",
    "offset",
    "metric",
    "word_order",
    "byte_order",
)
CONSTANT_FIELDS: Final = ("city", *METADATA)
"""Core fields a device may set to a constant, carried on each of its readings."""
DEVICE_KEYS: Final = (
    "host",
    "port",
    "unit",
    "sensor_id",
    "timeout",
    "registers",
    "word_order",
    "byte_order",
    "fields",
    *CONSTANT_FIELDS,
)

_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")
_RESERVED: Final = (*IDENTITY, "seq", *CONSTANT_FIELDS)


@attrs.frozen
class Register:
    """One value in a device's register map: read ``kind`` at ``address`` (the 0-based address
    sent on the wire), decode it as ``type`` and store ``raw * scale + offset`` as ``metric``."""

    address: int
    kind: str
    type: str
    metric: str
    scale: float = 1.0
    offset: float = 0.0
    word_order: str = "big"
    byte_order: str = "big"

    @property
    def width(self) -> int:
        """How many registers (or bits) the value spans."""
        return 1 if self.kind in ("coil", "discrete") else WORDS[self.type]

    @property
    def end(self) -> int:
        """The address just past the value."""
        return self.address + self.width


@attrs.frozen
class Request:
    """One read request: ``count`` registers of ``kind`` from ``address``, holding ``registers``
    (in address order)."""

    kind: str
    address: int
    count: int
    registers: tuple[Register, ...]


@attrs.frozen
class Device:
    """One Modbus TCP device polled by the sensor; its readings carry ``sensor_id`` and
    ``fields`` (constant columns such as ``city``)."""

    host: str
    port: int
    unit: int
    sensor_id: str
    timeout: float
    registers: tuple[Register, ...]
    requests: tuple[Request, ...]
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def origin(self) -> str:
        """How messages name the device: ``device s-1 (10.0.0.5:502 unit 1)``."""
        return f"device {self.sensor_id} ({self.host}:{self.port} unit {self.unit})"


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{key} must be a table (e.g. {{ address = 0, metric = ... }}), got {value!r}"
        )
    return value


def _tables(key: str, value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{key} must be a list of tables ([[{key}]] in TOML), got {value!r}")
    return [_table(f"{key}[{i}]", item) for i, item in enumerate(value)]


def _unknown(key: str, table: Mapping[str, Any], accepted: Sequence[str]) -> None:
    for name in table:
        if name not in accepted:
            raise ValueError(
                f"{key}: unknown key {name!r}{did_you_mean(str(name), accepted)}; "
                f"accepted keys: {', '.join(accepted)}"
            )


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{key} must be non-empty text, got {value!r}")
    return value.strip()


def _metric(key: str, value: Any) -> str:
    name = _text(key, value)
    if not _COLUMN.match(name):
        raise ValueError(
            f"{key} must be a column name in snake_case (a metric such as 'temperature', or an "
            f"extra column such as 'flow_rate'), got {value!r}"
        )
    if name in _RESERVED or (name in CORE_FIELDS and CORE_FIELDS[name].value != "float"):
        raise ValueError(
            f"{key}: {name!r} is set by the sensor or is not a number; choose another column name"
        )
    return name


def parse_register(
    key: str, table: Mapping[str, Any], *, word_order: str = "big", byte_order: str = "big"
) -> Register:
    """One ``[[registers]]`` table; ``word_order`` and ``byte_order`` are the defaults."""
    _unknown(key, table, REGISTER_KEYS)
    for required in ("address", "metric"):
        if required not in table:
            raise ValueError(f"{key}.{required} is required")
    kind = choice(f"{key}.kind", table.get("kind", "holding"), KINDS)
    bits = kind in ("coil", "discrete")
    default_type = "bool" if bits else "uint16"
    type_ = choice(f"{key}.type", table.get("type", default_type), BIT_TYPES if bits else TYPES)
    register = Register(
        address=integer(f"{key}.address", table["address"], minimum=0, maximum=65535),
        kind=kind,
        type=type_,
        metric=_metric(f"{key}.metric", table["metric"]),
        scale=real(f"{key}.scale", table.get("scale", 1.0)),
        offset=real(f"{key}.offset", table.get("offset", 0.0)),
        word_order=choice(f"{key}.word_order", table.get("word_order", word_order), ORDERS),
        byte_order=choice(f"{key}.byte_order", table.get("byte_order", byte_order), ORDERS),
    )
    if register.end > 65536:
        raise ValueError(
            f"{key}: a {type_} at address {register.address} spans {register.width} registers, "
            f"past the last address 65535; lower {key}.address"
        )
    return register


def parse_registers(
    key: str, value: Any, *, word_order: str = "big", byte_order: str = "big"
) -> tuple[Register, ...]:
    """A register map (a list of tables), checked: no two metrics alike, no overlapping spans."""
    registers = tuple(
        parse_register(f"{key}[{i}]", table, word_order=word_order, byte_order=byte_order)
        for i, table in enumerate(_tables(key, value))
    )
    seen: dict[str, int] = {}
    for i, register in enumerate(registers):
        if register.metric in seen:
            raise ValueError(
                f"{key}[{i}].metric: {register.metric!r} is already read by {key}[{seen[register.metric]}]; "
                "give each register its own metric"
            )
        seen[register.metric] = i
    ordered = sorted(range(len(registers)), key=lambda i: (registers[i].kind, registers[i].address))
    for a, b in itertools.pairwise(ordered):
        first, second = registers[a], registers[b]
        if first.kind == second.kind and second.address < first.end:
            raise ValueError(
                f"{key}[{b}]: {second.kind} register {second.address} overlaps {key}[{a}] "
                f"({first.type} at {first.address} spans {first.address}-{first.end - 1}); "
                "fix the address or the type of one of them"
            )
    return registers


def group_requests(
    registers: Sequence[Register], max_count: Mapping[str, int] = MAX_COUNT
) -> tuple[Request, ...]:
    """The fewest read requests covering ``registers``: of one kind, at contiguous addresses
    (each starting where the previous one ends), at most ``max_count[kind]`` per request. Never
    reads an address the map does not name (a device may refuse unmapped ones)."""
    requests: list[Request] = []
    for register in sorted(registers, key=lambda r: (KINDS.index(r.kind), r.address)):
        last = requests[-1] if requests else None
        if (
            last is not None
            and last.kind == register.kind
            and last.address + last.count == register.address
            and last.count + register.width <= max_count[register.kind]
        ):
            requests[-1] = Request(
                last.kind, last.address, last.count + register.width, (*last.registers, register)
            )
        else:
            requests.append(Request(register.kind, register.address, register.width, (register,)))
    return tuple(requests)


def parse_devices(
    value: Any,
    *,
    registers: Any = None,
    timeout: float = 1.0,
    word_order: str = "big",
    byte_order: str = "big",
) -> tuple[Device, ...]:
    """The ``[[devices]]`` list; ``registers`` is the shared map for devices that give none."""
    tables = _tables("devices", value)
    if not tables:
        raise ValueError(
            "devices must list at least one device ([[sensor.devices]] with host and sensor_id)"
        )
    shared = (
        None
        if registers is None
        else parse_registers("registers", registers, word_order=word_order, byte_order=byte_order)
    )
    devices: list[Device] = []
    ids: dict[str, int] = {}
    for i, table in enumerate(tables):
        key = f"devices[{i}]"
        _unknown(key, table, DEVICE_KEYS)
        for required in ("host", "sensor_id"):
            if required not in table:
                raise ValueError(f"{key}.{required} is required")
        sensor_id = _text(f"{key}.sensor_id", table["sensor_id"])
        if sensor_id in ids:
            raise ValueError(
                f"{key}.sensor_id: {sensor_id!r} is already the sensor_id of devices[{ids[sensor_id]}]; "
                "each device needs its own (readings are identified by sensor_id and timestamp)"
            )
        ids[sensor_id] = i
        device_words = choice(f"{key}.word_order", table.get("word_order", word_order), ORDERS)
        device_bytes = choice(f"{key}.byte_order", table.get("byte_order", byte_order), ORDERS)
        if "registers" in table:
            own = parse_registers(
                f"{key}.registers",
                table["registers"],
                word_order=device_words,
                byte_order=device_bytes,
            )
        elif shared is not None:
            own = shared
            if "word_order" in table or "byte_order" in table:
                own = parse_registers(
                    "registers", registers, word_order=device_words, byte_order=device_bytes
                )
        else:
            raise ValueError(
                f"{key} has no registers: give it [[sensor.devices.registers]] or give the sensor "
                "a shared [[sensor.registers]] list"
            )
        if not own:
            raise ValueError(f"{key}.registers is empty: list at least one register to read")
        fields: dict[str, Any] = {}
        for name in CONSTANT_FIELDS:
            if name in table:
                kind = CORE_FIELDS[name].value
                fields[name] = (
                    real(f"{key}.{name}", table[name])
                    if kind == "float"
                    else _text(f"{key}.{name}", table[name])
                )
        extra = _table(f"{key}.fields", table.get("fields", {}))
        for name, constant in extra.items():
            column = _metric(f"{key}.fields.{name}", name)
            if column in {r.metric for r in own}:
                raise ValueError(f"{key}.fields.{name}: a register already fills {name!r}")
            if isinstance(constant, bool) or not isinstance(constant, str | int | float):
                raise TypeError(f"{key}.fields.{name} must be text or a number, got {constant!r}")
            fields[column] = constant
        devices.append(
            Device(
                host=_text(f"{key}.host", table["host"]),
                port=integer(f"{key}.port", table.get("port", 502), minimum=1, maximum=65535),
                unit=integer(f"{key}.unit", table.get("unit", 1), minimum=0, maximum=255),
                sensor_id=sensor_id,
                timeout=duration(f"{key}.timeout", table.get("timeout", timeout), positive=True),
                registers=own,
                requests=group_requests(own),
                fields=fields,
            )
        )
    return tuple(devices)
