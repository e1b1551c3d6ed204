"""Registers to values: round trips through every type and order, the documented layouts, and
agreement with pymodbus's own encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from cosmobac_modbus.decode import TYPES, WORDS, decode, encode, scaled

orders = st.sampled_from(["big", "little"])
RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


@st.composite
def typed_values(draw):
    type_ = draw(st.sampled_from(TYPES))
    if type_ in RANGES:
        low, high = RANGES[type_]
        values = draw(st.lists(st.integers(low, high), min_size=1, max_size=8))
    else:
        width = 32 if type_ == "float32" else 64
        values = draw(
            st.lists(
                st.floats(allow_nan=False, allow_infinity=False, width=width),
                max_size=8,
                min_size=1,
            )
        )
    return type_, values


@settings(deadline=None)  # timing is not what is tested; CI machines are busy
@given(typed_values(), orders, orders)
def test_encode_then_decode_gives_the_values_back(typed, word_order, byte_order):
    type_, values = typed
    registers = encode(values, type_, word_order=word_order, byte_order=byte_order)
    assert registers.shape == (len(values), WORDS[type_])
    assert ((registers >= 0) & (registers <= 0xFFFF)).all()
    decoded = decode(registers, type_, word_order=word_order, byte_order=byte_order)
    assert decoded.tolist() == [float(v) for v in values]
    flat = decode(
        registers.reshape(-1).tolist(), type_, word_order=word_order, byte_order=byte_order
    )
    assert flat.tolist() == decoded.tolist()


@pytest.mark.parametrize(
    ("word_order", "byte_order", "registers"),
    [
        ("big", "big", [0x4048, 0xF5C3]),  # AB CD
        ("little", "big", [0xF5C3, 0x4048]),  # CD AB
        ("big", "little", [0x4840, 0xC3F5]),  # BA DC
        ("little", "little", [0xC3F5, 0x4840]),  # DC BA
    ],
)
def test_the_documented_float32_layouts(word_order, byte_order, registers):
    # 3.14 as float32 is 0x4048F5C3
    value = decode(registers, "float32", word_order=word_order, byte_order=byte_order)[0]
    assert value == pytest.approx(3.14, rel=1e-6)
    assert encode([value], "float32", word_order=word_order, byte_order=byte_order).tolist() == [
        registers
    ]


@settings(deadline=None)  # timing is not what is tested; CI machines are busy
@given(st.sampled_from(TYPES), st.integers(-(2**15), 2**15 - 1), orders)
def test_agrees_with_pymodbus(type_, number, word_order):
    value = abs(number) if type_.startswith("u") else number
    datatype = getattr(ModbusTcpClient.DATATYPE, type_.upper())
    theirs = ModbusTcpClient.convert_to_registers(value, datatype, word_order=word_order)
    assert encode([value], type_, word_order=word_order).reshape(-1).tolist() == theirs
    assert decode(theirs, type_, word_order=word_order)[0] == value


def test_nan_and_infinity_decode_as_such():
    assert math.isnan(decode([0x7FC0, 0x0000], "float32")[0])
    assert decode([0x7F80, 0x0000], "float32")[0] == math.inf


def test_many_rows_decode_at_once_and_scale():
    registers = encode(np.arange(1000), "uint32")
    values = scaled(decode(registers, "uint32"), 0.5, 10)
    assert values.tolist() == [i * 0.5 + 10 for i in range(1000)]


def test_bad_registers_are_refused():
    with pytest.raises(ValueError, match="0 to 65535"):
        decode([70000], "uint16")
    with pytest.raises(ValueError, match="rows of 2 registers"):
        decode([[1, 2, 3]], "int32")
    with pytest.raises(OverflowError, match="int16"):
        encode([40000], "int16")
