"""Shared plumbing of the conformance kit: sample readings, the checker that names broken
guarantees, and comparisons of rows and batches."""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ..batch import Batch
from ..interfaces import (
    Closeable,
    missing_members,
)
from ..schema import STORE_SEQ

SAMPLE_START = 1_700_000_000_000
"""Where :func:`sample_readings` begins (2023-11-14, epoch ms): old enough for any retention."""

ALL_ROWS = 1_000_000  # a read limit above anything the checks store

Key = tuple[str, int]
ReadBack = Callable[[Any], Iterable[Mapping[str, Any]]]


def sample_readings(
    rows: int = 12, *, start: int = SAMPLE_START, sensors: int = 3, offset: int = 0
) -> Batch:
    """``rows`` readings the checks use: ``sensors`` sensors in two cities, one reading a second
    each from ``start`` (the ``offset`` -th reading first), the five metrics (one temperature and one
    humidity missing: NaN), and two extra columns, ``score`` (float) and ``tag`` (text)."""
    index = np.arange(offset, offset + rows)
    sensor = index % sensors
    step = index // sensors
    temperature = 20.0 + 0.5 * step + sensor
    humidity = 40.0 + np.sin(index)
    if rows > 1:
        temperature[1] = np.nan
        humidity[rows // 2] = np.nan
    return Batch.from_columns(
        timestamp=start + step * 1000,
        sensor_id=[f"conformance-{s}" for s in sensor],
        city=["Lisbon" if s % 2 else "Porto" for s in sensor],
        temperature=temperature,
        humidity=humidity,
        pressure=1013.0 + np.cos(index),
        vibration=0.01 * (index % 7),
        voltage=np.full(rows, 3.3),
        score=index / 10.0,
        tag=[f"t{i % 4}" for i in index],
    )


# -- plumbing ---------------------------------------------------------------------------------------
class Checker:
    def __init__(self, kind: str, factory: Callable[[], Any]) -> None:
        self.kind = kind
        self.factory = factory
        plain = isinstance(factory, type | types.FunctionType)
        self.name = factory.__qualname__ if plain else repr(factory)
        self.ran: list[str] = []

    def fail(self, guarantee: str, detail: str) -> AssertionError:
        return AssertionError(f"{self.kind} from {self.name}: {guarantee}: {detail}")

    def expect(self, ok: bool, guarantee: str, detail: str) -> None:
        if not ok:
            raise self.fail(guarantee, detail)

    @contextlib.contextmanager
    def fresh(self, protocol: Any, check: str) -> Iterator[Any]:
        """A new component from the factory, checked to be a ``protocol`` and closed after; a
        failure inside names ``check``. (``protocol`` is a Protocol class, which mypy does not let
        a ``type[T]`` parameter take.)"""
        component = self.factory()
        if not isinstance(component, protocol):
            raise self.fail(
                f"it is a {protocol.__name__}",
                f"{type(component).__name__} lacks {', '.join(missing_members(component, protocol))}",
            )
        try:
            yield component
        except AssertionError:
            raise
        except Exception as exc:
            raise self.fail(check, f"raised {type(exc).__name__}: {exc}") from exc
        finally:
            if isinstance(component, Closeable):
                try:
                    component.close()
                except Exception as exc:
                    raise self.fail(check, f"close raised {type(exc).__name__}: {exc}") from exc
        self.ran.append(check)


def keys_of(batch: Batch) -> list[Key]:
    if not len(batch):
        return []
    return list(zip(batch["sensor_id"].tolist(), batch["timestamp"].tolist(), strict=True))


def seqs_of(batch: Batch) -> list[int]:
    return batch[STORE_SEQ].tolist() if len(batch) else []


def same_value(a: Any, b: Any) -> bool:
    """Values equal, NaN and None counting as the same missing value."""
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, float) or isinstance(b, float):
        return bool(math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12))
    return bool(a == b)


def batch_difference(a: Batch, b: Batch) -> str | None:
    """Why two batches differ, or None when they hold the same columns and values."""
    if set(a.columns) != set(b.columns):
        return f"columns {sorted(a.columns)} vs {sorted(b.columns)}"
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for name in a.columns:
        for i, (x, y) in enumerate(zip(a[name].tolist(), b[name].tolist(), strict=True)):
            if not same_value(x, y):
                return f"column {name!r} row {i}: {x!r} vs {y!r}"
    return None
