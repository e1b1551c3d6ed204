"""Registers to values and back: pure functions over numpy arrays.

A Modbus register is a 16-bit word. A value wider than one register spans 2 (32-bit types) or 4
(64-bit types) consecutive registers. How its bytes are laid out is set by two orders:

* ``byte_order``: the order of the two bytes inside each register. ``"big"`` (the Modbus
  standard): the register's value is ``high byte * 256 + low byte`` as sent on the wire;
  ``"little"``: the two bytes of every register are swapped first.
* ``word_order``: the order of the registers of one value. ``"big"`` (the default): the register
  at the lowest address holds the most significant word; ``"little"``: it holds the least
  significant one.

For the float32 value with bytes ``A B C D`` (``A`` most significant), the registers read, from
the lowest address: ``AB CD`` (big, big: the default), ``CD AB`` (word_order little), ``BA DC``
(byte_order little), ``DC BA`` (both little).

:func:`decode` turns an ``(n, words)`` array of registers into ``n`` values at once;
:func:`encode` is its inverse (for tests and simulators).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np

__all__ = ["BIT_TYPES", "ORDERS", "TYPES", "WORDS", "decode", "encode", "scaled"]

WORDS: Final = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
}
"""The register types and how many 16-bit registers a value of each spans."""

TYPES: Final = tuple(WORDS)
BIT_TYPES: Final = ("bool",)
"""The one type of coils and discrete inputs."""
ORDERS: Final = ("big", "little")

_DTYPES: Final = {
    "int16": ">i2",
    "uint16": ">u2",
    "int32": ">i4",
    "uint32": ">u4",
    "float32": ">f4",
    "float64": ">f8",
}

Order = Literal["big", "little"]


def _as_words(
    registers: Sequence[int] | Sequence[Sequence[int]] | np.ndarray, width: int
) -> np.ndarray:
    words = np.asarray(registers, dtype=np.int64)
    if words.ndim == 1:
        words = words.reshape(-1, width) if words.size else words.reshape(0, width)
    if words.ndim != 2 or words.shape[1] != width:
        raise ValueError(f"expected rows of {width} registers, got shape {words.shape}")
    if words.size and (words.min() < 0 or words.max() > 0xFFFF):
        raise ValueError("a register holds 0 to 65535")
    return words.astype(">u2")


def decode(
    registers: Sequence[int] | Sequence[Sequence[int]] | np.ndarray,
    type: str,
    *,
    word_order: str = "big",
    byte_order: str = "big",
) -> np.ndarray:
    """The values held by ``registers``: an ``(n, WORDS[type])`` array (or a flat sequence of
    ``n * WORDS[type]`` registers), lowest address first, gives ``n`` values, as float64 (every
    integer type fits exactly). A float register may hold NaN or infinity: the caller decides."""
    width = WORDS[type]
    words = _as_words(registers, width)
    if byte_order == "little":
        words = words.byteswap()
    if word_order == "little":
        words = words[:, ::-1]
    raw = np.ascontiguousarray(words).view(_DTYPES[type]).reshape(-1)
    return raw.astype(np.float64)


def encode(
    values: Sequence[float] | np.ndarray,
    type: str,
    *,
    word_order: str = "big",
    byte_order: str = "big",
) -> np.ndarray:
    """The registers holding ``values`` as ``type`` (the inverse of :func:`decode`): an
    ``(n, WORDS[type])`` array of ints, lowest address first. Integer values out of the type's
    range raise ``OverflowError``."""
    width = WORDS[type]
    dtype = np.dtype(_DTYPES[type])
    array = np.asarray(values)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise OverflowError(f"a value is out of range for {type}")
    words = np.ascontiguousarray(array.astype(dtype)).view(">u2").reshape(-1, width)
    if word_order == "little":
        words = words[:, ::-1]
    if byte_order == "little":
        words = words.byteswap()
    return np.ascontiguousarray(words).astype(np.int64)


def scaled(raw: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``raw * scale + offset``: the engineering value of a register."""
    return np.asarray(raw, dtype=np.float64) * scale + offset
