"""Configuration values from TOML or from ``${VAR}`` text: numbers, whole numbers and flags.

Every function names the key in its error, so a user can find what to fix. Text is accepted
wherever a number or flag is, because values expanded from environment variables are always text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["flag", "integer", "real"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def real(key: str, value: Any) -> float:
    """A finite float from a number or numeric text."""
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.integer | np.floating | str
    ):
        raise TypeError(f"{key} must be a number, got {value!r} ({type(value).__name__})")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return number


def integer(key: str, value: Any) -> int:
    """An int from an integer or integer text."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer | str):
        raise TypeError(f"{key} must be an integer, got {value!r} ({type(value).__name__})")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
    return int(value)


def flag(key: str, value: Any) -> bool:
    """A bool from a bool or text: true/false, yes/no, on/off, 1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise TypeError(f"{key} must be true or false, got {value!r}")
