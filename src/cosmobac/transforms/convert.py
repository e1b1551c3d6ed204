"""Built-in transform ``convert``: change the units of columns (°C → °F, hPa → kPa, …)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..batch import Batch
from ..hookspecs import Register, hookimpl

__all__ = ["CANONICAL_UNITS", "UNITS", "Convert", "convert_values"]

# quantity → unit → (scale, offset) to the quantity's base unit: base = value · scale + offset
UNITS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "temperature": {
        "degC": (1.0, 0.0),
        "degF": (5.0 / 9.0, -160.0 / 9.0),
        "K": (1.0, -273.15),
    },
    "pressure": {
        "hPa": (1.0, 0.0),
        "mbar": (1.0, 0.0),
        "Pa": (0.01, 0.0),
        "kPa": (10.0, 0.0),
        "bar": (1000.0, 0.0),
        "atm": (1013.25, 0.0),
        "psi": (68.94757293168361, 0.0),
        "mmHg": (1.3332236842105263, 0.0),
        "inHg": (33.86388157894737, 0.0),
    },
    "fraction": {"%": (1.0, 0.0), "fraction": (100.0, 0.0)},
    "velocity": {
        "mm/s": (1.0, 0.0),
        "cm/s": (10.0, 0.0),
        "m/s": (1000.0, 0.0),
        "in/s": (25.4, 0.0),
    },
    "voltage": {"V": (1.0, 0.0), "mV": (0.001, 0.0), "kV": (1000.0, 0.0)},
}
"""Known units by quantity, as (scale, offset) to the quantity's first unit."""

_ALIASES: Final = {
    "C": "degC",
    "°C": "degC",
    "celsius": "degC",
    "F": "degF",
    "°F": "degF",
    "fahrenheit": "degF",
    "kelvin": "K",
    "percent": "%",
    "millibar": "mbar",
}

CANONICAL_UNITS: Final = {
    "temperature": "degC",
    "humidity": "%",
    "pressure": "hPa",
    "vibration": "mm/s",
    "voltage": "V",
}
"""The units cosmobac's metrics are in (what the simulated fleet produces)."""


def _unit(key: str, name: Any) -> tuple[str, str]:
    """(quantity, unit) of a unit name; the error lists the known units."""
    if not isinstance(name, str):
        raise TypeError(f"{key} must be a unit name (text), got {name!r}")
    unit = _ALIASES.get(name.strip(), name.strip())
    for quantity, units in UNITS.items():
        if unit in units:
            return quantity, unit
    known = ", ".join(u for units in UNITS.values() for u in units)
    raise ValueError(f"{key}: unknown unit {name!r}; known units: {known}")


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a table of column = unit, got {value!r}")
    for column in value:
        if not isinstance(column, str) or not column:
            raise TypeError(f"{key}: column names must be text, got {column!r}")
    return value


def convert_values(values: Any, source: str, target: str) -> Any:
    """``values`` (a number or array) from unit ``source`` to ``target`` (same quantity)."""
    q1, u1 = _unit("source", source)
    q2, u2 = _unit("target", target)
    if q1 != q2:
        raise ValueError(f"cannot convert {source} ({q1}) to {target} ({q2})")
    s1, o1 = UNITS[q1][u1]
    s2, o2 = UNITS[q2][u2]
    return ((values * s1 + o1) - o2) / s2


@attrs.frozen(eq=False)
class Convert:
    """Convert columns to other units (NaN stays NaN; columns the batch lacks are left alone).

    Keys: ``units`` (required) — ``{column = target unit}``; ``source_units`` — ``{column =
    unit}`` for columns not in cosmobac's own units (by default temperature ``degC``, humidity
    ``%``, pressure ``hPa``, vibration ``mm/s``, voltage ``V``); ``suffix`` (default ``""``: replace
    the column; e.g. ``"_f"`` writes ``temperature_f`` and keeps ``temperature``).

    Units: temperature ``degC`` (``C``), ``degF`` (``F``), ``K``; pressure ``hPa``, ``mbar``,
    ``Pa``, ``kPa``, ``bar``, ``atm``, ``psi``, ``mmHg``, ``inHg``; humidity ``%``, ``fraction``;
    vibration ``mm/s``, ``cm/s``, ``m/s``, ``in/s``; voltage ``V``, ``mV``, ``kV``.
    """

    units: Mapping[str, str] = attrs.field(converter=lambda v: dict(_table("units", v)))
    source_units: Mapping[str, str] = attrs.field(
        factory=dict, converter=lambda v: dict(_table("source_units", v))
    )
    suffix: str = attrs.field(default="")
    _plan: dict[str, tuple[str, str]] = attrs.field(init=False, repr=False)

    @suffix.validator
    def _check_suffix(self, attribute: Any, value: Any) -> None:
        if not isinstance(value, str) or (value and not ("x" + value).isidentifier()):
            raise ValueError(f"suffix must be text usable in a column name, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if not self.units:
            raise ValueError(
                "units must name at least one column, e.g. units = {temperature = 'degF'}"
            )
        plan: dict[str, tuple[str, str]] = {}
        for column, target in self.units.items():
            source = self.source_units.get(column, CANONICAL_UNITS.get(column))
            if source is None:
                raise ValueError(
                    f"source_units.{column}: the unit {column!r} is in is unknown; give it, "
                    f"e.g. source_units = {{ {column} = 'degC' }}"
                )
            q1, u1 = _unit(f"source_units.{column}", source)
            q2, u2 = _unit(f"units.{column}", target)
            if q1 != q2:
                raise ValueError(f"units.{column}: cannot convert {u1} ({q1}) to {u2} ({q2})")
            plan[column] = (u1, u2)
        for column in self.source_units:
            if column not in self.units:
                raise ValueError(f"source_units.{column}: {column!r} is not in units")
        object.__setattr__(self, "_plan", plan)

    def __call__(self, batch: Batch) -> Batch:
        changed = {
            f"{column}{self.suffix}": convert_values(
                batch[column].astype("float64", copy=False), source, target
            )
            for column, (source, target) in self._plan.items()
            if column in batch
        }
        return batch.with_columns(changed) if changed else batch


@hookimpl
def register_transforms(register: Register) -> None:
    register("convert", Convert)
