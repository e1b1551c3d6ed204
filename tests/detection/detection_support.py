"""Helpers for the detection tests: seeded fleets, and running transforms over rows cut into
batches."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cosmobac.batch import Batch
from cosmobac.sensors.simulated import SimulatedFleet

DATA = Path(__file__).resolve().parent.parent / "data"


@functools.cache
def fleet_rows(
    cities: int = 2,
    sensors_per_city: int = 2,
    minutes: int = 30,
    seed: int = 7,
    rate_hz: float = 1.0,
) -> Batch:
    """A seeded simulated fleet's readings over ``minutes`` of sensor time (cached)."""
    fleet = SimulatedFleet(
        cities=cities, sensors_per_city=sensors_per_city, seed=seed, rate_hz=rate_hz
    )
    return fleet.read(fleet.start + minutes * 60_000)


def run(transforms: Sequence[Callable[[Batch], Batch]], rows: Batch, cuts: Sequence[int]) -> Batch:
    """``rows`` through ``transforms`` cut into batches at ``cuts`` (row positions)."""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(rows))), len(rows)]
    out = []
    for a, b in itertools.pairwise(bounds):
        part = rows.select(slice(a, b))
        for transform in transforms:
            part = transform(part)
        out.append(part)
    return Batch.concat(out)


def every(size: int, rows: Batch) -> list[int]:
    return list(range(size, len(rows), size))


def same_columns(a: Batch, b: Batch, columns: Sequence[str]) -> None:
    """The columns are identical, bit for bit (NaN where NaN)."""
    for name in columns:
        x, y = a[name], b[name]
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name
