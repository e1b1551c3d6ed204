"""Built-in transform ``validate``: types and physical ranges. An invalid value becomes NaN (never
0.0) and the row says why in a reason column."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
import numpy as np

from ..batch import Batch
from ..hookspecs import Register, hookimpl
from ..values import real

__all__ = ["DEFAULT_RANGES", "Validate"]

DEFAULT_RANGES: Final[Mapping[str, tuple[float | None, float | None]]] = {
    "temperature": (-80.0, 80.0),  # °C: wider than Earth's recorded extremes (−89.2 is Antarctic)
    "humidity": (0.0, 100.0),  # % relative humidity
    "pressure": (300.0, 1100.0),  # hPa: about 9 km of altitude, up to above the sea-level record
    "vibration": (0.0, None),  # mm/s: a magnitude
    "voltage": (0.0, None),  # V: a supply voltage
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
}
"""Physical ranges checked unless ``ranges`` says otherwise: column → (min, max), ``None`` for no
bound."""


def _bound(key: str, value: Any) -> float | None:
    if value is None:
        return None
    return real(key, value)


def _ranges(value: Any) -> dict[str, tuple[float | None, float | None]]:
    if not isinstance(value, Mapping):
        raise TypeError(
            "ranges must be a table of column = {min = ..., max = ...} (or false to not check a "
            f"column), e.g. ranges = {{ humidity = {{ min = 0, max = 100 }} }}; got {value!r}"
        )
    out = dict(DEFAULT_RANGES)
    for column, spec in value.items():
        key = f"ranges.{column}"
        if not isinstance(column, str) or not column:
            raise TypeError(f"ranges: column names must be text, got {column!r}")
        if spec is False:
            out.pop(column, None)
            continue
        if not isinstance(spec, Mapping) or set(spec) - {"min", "max"}:
            raise TypeError(f"{key} must be a table with keys min and/or max, or false")
        lo, hi = _bound(f"{key}.min", spec.get("min")), _bound(f"{key}.max", spec.get("max"))
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{key}: min ({lo:g}) must be ≤ max ({hi:g})")
        out[column] = (lo, hi)
    return out


def _reason_column(value: Any) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"reason_column must be a column name, got {value!r}")
    return value


def _parse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from an object column: (float64 values, mask of entries that are not numbers)."""
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, item in enumerate(values.tolist()):
        if item is None:
            continue
        if isinstance(item, bool):
            bad[i] = True
            continue
        try:
            out[i] = float(item)
        except (TypeError, ValueError):
            bad[i] = True
    return out, bad


def _text(value: float) -> str:
    return f"{value:.6g}"


@attrs.frozen(eq=False)
class Validate:
    """Check types and physical ranges; invalid values become NaN with the reason in a column.

    For each column with a range (by default temperature −80…80 °C, humidity 0…100 %, pressure
    300…1100 hPa, vibration ≥ 0, voltage ≥ 0, latitude ±90, longitude ±180) that the batch has:

    * text that is not a number, a boolean, or a non-finite number (±inf) is invalid;
    * a number outside ``[min, max]`` is invalid;
    * a missing value (NaN, ``None``) stays missing and is not a reason.

    Invalid values become NaN, never 0.0; the row's ``reason_column`` (default
    ``"invalid_reason"``) lists each, e.g. ``"humidity: 165.2 above max 100"``, joined by
    ``"; "`` (``None`` when the row is valid; reasons already there are kept). Rows are never
    dropped. Keys: ``ranges`` — ``{column = {min = ..., max = ...}}`` merged over the defaults
    (``column = false`` stops checking a default one); ``reason_column``.
    """

    ranges: dict[str, tuple[float | None, float | None]] = attrs.field(
        factory=dict, converter=_ranges
    )
    reason_column: str = attrs.field(default="invalid_reason", converter=_reason_column)

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch)
        changed: dict[str, np.ndarray] = {}
        problems: list[tuple[np.ndarray, list[str]]] = []  # (rows, message per row)
        for column, (lo, hi) in self.ranges.items():
            raw = batch.get(column)
            if raw is None:
                continue
            if raw.dtype.kind == "f":
                values = raw.astype(np.float64, copy=True)
                not_number = np.zeros(n, dtype=bool)
            elif raw.dtype.kind in "iu":
                values = raw.astype(np.float64)
                not_number = np.zeros(n, dtype=bool)
            elif raw.dtype.kind == "O":
                values, not_number = _parse(raw)
            else:  # booleans, timestamps, bytes: not a measurement
                values = np.full(n, np.nan)
                not_number = np.ones(n, dtype=bool)
            infinite = np.isinf(values)
            with np.errstate(invalid="ignore"):
                below = values < lo if lo is not None else np.zeros(n, dtype=bool)
                above = values > hi if hi is not None else np.zeros(n, dtype=bool)
            invalid = not_number | infinite | below | above
            if not invalid.any():
                if values.dtype != raw.dtype or raw.dtype.kind == "O":
                    changed[column] = values
                continue
            rows = np.flatnonzero(invalid)
            messages = []
            raw_list = raw[rows].tolist()
            for i, row in enumerate(rows.tolist()):
                if not_number[row]:
                    messages.append(f"{column}: not a number ({raw_list[i]!r})")
                elif infinite[row]:
                    messages.append(f"{column}: not finite ({values[row]})")
                elif below[row]:
                    messages.append(f"{column}: {_text(values[row])} below min {_text(lo)}")  # type: ignore[arg-type]
                else:
                    messages.append(f"{column}: {_text(values[row])} above max {_text(hi)}")  # type: ignore[arg-type]
            values[invalid] = np.nan
            changed[column] = values
            problems.append((rows, messages))
        reasons = np.full(n, None, dtype=object)
        existing = batch.get(self.reason_column)
        if existing is not None and existing.dtype.kind == "O":
            reasons[:] = existing
        for rows, messages in problems:
            for row, message in zip(rows.tolist(), messages, strict=True):
                before = reasons[row]
                reasons[row] = message if before is None else f"{before}; {message}"
        changed[self.reason_column] = reasons
        return batch.with_columns(changed)


@hookimpl
def register_transforms(register: Register) -> None:
    register("validate", Validate)
