"""Built-in transforms that reshape batches: ``calibrate``, ``drop_columns``, ``filter_sensors``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ..batch import Batch
from ..hookspecs import Register, hookimpl
from ..values import real


def _gains(value: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(value, Mapping) or not value:
        raise TypeError(
            "columns must be a table of column = {gain = ..., offset = ...}, "
            "e.g. columns = { temperature = { gain = 1.02, offset = -0.3 } }"
        )
    out = {}
    for column, spec in value.items():
        if not isinstance(spec, Mapping) or set(spec) - {"gain", "offset"}:
            raise TypeError(f"columns.{column} must be a table with keys gain and offset")
        out[str(column)] = (
            real(f"columns.{column}.gain", spec.get("gain", 1.0)),
            real(f"columns.{column}.offset", spec.get("offset", 0.0)),
        )
    return out


@attrs.frozen(eq=False)
class Calibrate:
    """Linear calibration ``value·gain + offset`` per column (NaN stays NaN; missing columns are
    left alone). Keys: ``columns`` — ``{name = {gain = ..., offset = ...}}``."""

    columns: Mapping[str, tuple[float, float]] = attrs.field(converter=_gains)

    def __call__(self, batch: Batch) -> Batch:
        changed = {
            name: batch[name] * gain + offset
            for name, (gain, offset) in self.columns.items()
            if name in batch
        }
        return batch.with_columns(changed) if changed else batch


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"expected a list of names, got {value!r}")
    return tuple(str(v) for v in value)


@attrs.frozen(eq=False)
class DropColumns:
    """Remove columns before the sink. Keys: ``columns`` — list of names."""

    columns: tuple[str, ...] = attrs.field(converter=_names)

    def __call__(self, batch: Batch) -> Batch:
        return batch.drop(*self.columns)


@attrs.frozen(eq=False)
class FilterSensors:
    """Keep only rows of the listed sensors or cities. Keys: ``sensors``, ``cities`` (lists)."""

    sensors: tuple[str, ...] = attrs.field(default=(), converter=_names)
    cities: tuple[str, ...] = attrs.field(default=(), converter=_names)

    def __call__(self, batch: Batch) -> Batch:
        keep = np.ones(len(batch), dtype=bool)
        if self.sensors:
            keep &= np.isin(batch["sensor_id"].astype(str), self.sensors)
        if self.cities:
            keep &= np.isin(batch["city"].astype(str), self.cities)
        return batch if keep.all() else batch.select(keep)


@hookimpl
def register_transforms(register: Register) -> None:
    register("calibrate", Calibrate)
    register("drop_columns", DropColumns)
    register("filter_sensors", FilterSensors)
