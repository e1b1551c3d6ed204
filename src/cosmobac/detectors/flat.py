"""Detectors of data that stops moving or stops arriving: ``stuck`` (flatline) and ``dropout``
(missing values and time gaps)."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from ..batch import Batch
from ..schema import METRICS
from ..values import choice, duration, integer, real
from ._series import Part, equal_runs
from .base import (
    Detector,
    columns_converter,
    last_valid,
    previous_valid,
)
from .ewma import STATE_KEYS, ewm_scan, ewm_state, halflife_alpha

__all__ = ["Dropout", "Stuck"]


def _runs(flag: np.ndarray, real: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Length of the run of ``flag`` ending at each position of each series (S, L), counting only
    ``real`` positions; ``start`` (S,) is the run carried in from before. Where ``flag`` is false
    on a real position the run is 0."""
    flag = flag & real
    counted = np.cumsum(flag, axis=1)
    breaks = real & ~flag
    last = np.where(breaks, counted, -1)
    np.maximum.accumulate(last, axis=1, out=last)
    return np.where(last >= 0, counted - last, start[:, None] + counted)


def _combine_columns(stat: np.ndarray, require: str) -> np.ndarray:
    out = stat[0].copy()
    for row in stat[1:]:
        (np.fmin if require == "all" else np.fmax)(out, row, out=out)
    return out


@attrs.define(eq=False, kw_only=True)
class Stuck(Detector):
    """Flatline: a value repeated ``min_run`` times or more in a row (a frozen sensor or a stuck
    register). The statistic is the run length: how many consecutive values (missing ones
    skipped) equal the one before them within ``tolerance``, counting the first.

    Keys: ``columns`` (default the five metrics), ``min_run`` (default 3), ``tolerance``
    (default 0.0: exactly equal), ``require`` (``"all"``, the default: every column present in the
    row is in such a run, which a quantised but healthy column rarely matches; or ``"any"``),
    ``name`` (default ``"stuck"``).

    The first reading of a frozen stretch looks normal, so it cannot be caught; the following ones
    are. Exact and independent of batching.
    """

    kind = "stuck"

    min_run: int = attrs.field(default=3, converter=lambda v: integer("min_run", v, minimum=2))
    tolerance: float = attrs.field(default=0.0, converter=lambda v: real("tolerance", v, minimum=0))
    require: str = attrs.field(
        default="all", converter=lambda v: choice("require", v, ("all", "any"))
    )

    @property
    def threshold_value(self) -> float:
        return float(self.min_run)

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        return {
            "last": np.full((count, width), np.nan),
            "run": np.zeros((count, width), dtype=np.int64),
        }

    def _combine(self, stat: np.ndarray) -> np.ndarray:
        return _combine_columns(stat, self.require)

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        ok = np.isfinite(xs)
        last = state["last"].reshape(-1)
        previous = previous_valid(xs, ok, last)
        same = ok & (np.abs(xs - previous) <= self.tolerance)
        run, end = equal_runs(same, ok, state["run"].reshape(-1))
        state["run"] = end.reshape(g, c)
        state["last"] = last_valid(xs, ok, last).reshape(g, c)
        return np.where(ok, run, np.nan).reshape(g, c, length)


def _max_gap(value: Any) -> float | None:
    if value is None or value == "auto":
        return None
    return duration("max_gap", value, positive=True)


@attrs.define(eq=False, kw_only=True)
class Dropout(Detector):
    """Dropout and gaps: readings whose values are missing, and readings that arrive after a gap.

    Per row, the statistic is the larger of ``missing run / min_missing`` (the run of consecutive
    readings of the sensor with the columns missing, counting this one) and ``interval / max_gap``
    (time since the sensor's previous reading, 0 when its clock steps back or repeats a time); a
    row is detected when it reaches 1.

    Keys: ``columns`` (default the five metrics), ``require`` (``"all"``, the default: a reading
    counts as missing when all the columns are; or ``"any"``), ``min_missing`` (default 1),
    ``max_gap`` (a duration such as ``"30s"``, or ``"auto"``, the default: ``gap_factor`` times the
    sensor's typical interval, an exponentially weighted mean of its last ~20 intervals, once it
    has seen 5), ``gap_factor`` (default 3.0), ``name`` (default ``"dropout"``).

    Unlike the other detectors it scores missing values (that is what it looks for), so its score
    is never NaN. The first reading after a gap is the one detected: a sensor that stops sending
    cannot be detected until it sends again (or by the store's ``status``).
    """

    kind = "dropout"

    columns: tuple[str, ...] = attrs.field(default=METRICS, converter=columns_converter)
    require: str = attrs.field(
        default="all", converter=lambda v: choice("require", v, ("all", "any"))
    )
    min_missing: int = attrs.field(
        default=1, converter=lambda v: integer("min_missing", v, minimum=1)
    )
    max_gap: float | None = attrs.field(default=None, converter=_max_gap)
    gap_factor: float = attrs.field(default=3.0, converter=lambda v: real("gap_factor", v, above=0))

    @property
    def threshold_value(self) -> float:
        return 1.0

    @property
    def _out_width(self) -> int:
        return 1

    def _combine(self, stat: np.ndarray) -> np.ndarray:
        return stat[0].copy()

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        return {
            "missing": np.zeros(count, dtype=np.int64),
            "last_ts": np.zeros(count, dtype=np.int64),
            "seen": np.zeros(count, dtype=np.int64),
            **{f"interval_{k}": v for k, v in ewm_state((count,)).items()},
        }

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, _, length = x.shape
        real = ~part.pad
        absent = np.isnan(x)
        missing = absent.all(axis=1) if self.require == "all" else absent.any(axis=1)
        run = _runs(missing, real, state["missing"])
        ends = np.maximum(part.lengths - 1, 0)
        rows = np.arange(g)
        state["missing"] = run[rows, ends]
        ts = part.gather1(batch["timestamp"], fill=0)
        previous = np.empty_like(ts)
        previous[:, 0] = state["last_ts"]
        previous[:, 1:] = ts[:, :-1]
        has_previous = real.copy()
        has_previous[:, 0] &= state["seen"] > 0
        # a clock that steps back (or repeats a time) makes no gap: the interval is at least 0
        interval = np.maximum(ts - previous, 0).astype(np.float64)
        if self.max_gap is None:
            scan = {k: state[f"interval_{k}"] for k in STATE_KEYS}
            mean, _, seen = ewm_scan(interval, has_previous, halflife_alpha(20.0), scan)
            state.update({f"interval_{k}": v for k, v in scan.items()})
            limit = np.where(seen >= 5, self.gap_factor * mean, np.nan)
        else:
            limit = np.full(interval.shape, self.max_gap * 1000.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.where(has_previous & (limit > 0), interval / limit, np.nan)
        stat = np.fmax(run / self.min_missing, gap)
        stat[~real] = np.nan
        state["last_ts"] = ts[rows, ends]
        state["seen"] = np.ones(g, dtype=np.int64)
        return stat.reshape(g, 1, length)
