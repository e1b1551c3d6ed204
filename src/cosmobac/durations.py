"""Durations written as text in configuration: ``"6h"``, ``"1h30m"``, ``"250ms"``, ``"7d"``, or a
number of seconds (a number, or text such as ``"30"``)."""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["parse_duration"]

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: str | float | int, *, key: str = "duration") -> float:
    """Seconds in ``value``; ``ValueError`` naming ``key`` when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a duration such as '6h' or a number of seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a finite number of seconds ≥ 0, got {value}")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    try:
        return parse_duration(float(text), key=key)  # a bare number (e.g. from ${VAR}): seconds
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"{key}: {value!r} is not a duration; write e.g. '30s', '15m', '6h', '1h30m', '7d'"
        )
    return sum(float(n) * _UNITS[u] for n, u in parts)
