"""Core field names and their kinds.

Every name here is snake_case and is used unchanged as a SQLite column, a batch field and a document
field. Columns not listed are *extra* columns: they are allowed anywhere and travel through unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """How a column is held in a batch (see :mod:`cosmobac.batch`)."""

    TIMESTAMP = "timestamp"  # int64 epoch milliseconds, UTC
    FLOAT = "float"  # float64, NaN when missing
    INT = "int"  # int64
    BOOL = "bool"  # bool
    STR = "str"  # object array of str, None when missing


METRICS: Final = ("temperature", "humidity", "pressure", "vibration", "voltage")
"""The five sensor metrics, float64, NaN when missing."""

METADATA: Final = ("latitude", "longitude", "firmware_version", "model", "manufacturer")
"""Sensor identity carried on every reading."""

LABELS: Final = ("anomaly_flag", "anomaly_type")
"""Ground truth written by the simulator (absent for real sensors)."""

CORE_FIELDS: Final[dict[str, Kind]] = {
    "timestamp": Kind.TIMESTAMP,
    "sensor_id": Kind.STR,
    "city": Kind.STR,
    **{name: Kind.FLOAT for name in METRICS},
    "latitude": Kind.FLOAT,
    "longitude": Kind.FLOAT,
    "firmware_version": Kind.STR,
    "model": Kind.STR,
    "manufacturer": Kind.STR,
    "anomaly_flag": Kind.BOOL,
    "anomaly_type": Kind.STR,
}
"""Every core field and its kind, in canonical column order."""

IDENTITY: Final = ("sensor_id", "timestamp")
"""A reading is identified by these two fields; document ids derive from them."""

STORE_SEQ: Final = "seq"
"""Column a store adds to the batches it returns, so rows can be acknowledged. Sinks receive it in
their batches (it says which rows they wrote); it is never written into a document."""


def kind_of(dtype_kind: str) -> Kind:
    """The :class:`Kind` an extra column with numpy dtype kind ``dtype_kind`` is held as."""
    return {
        "f": Kind.FLOAT,
        "i": Kind.INT,
        "u": Kind.INT,
        "b": Kind.BOOL,
        "M": Kind.TIMESTAMP,
    }.get(dtype_kind, Kind.STR)
