"""``zscore``: rolling z-score of each value against the previous ``window`` rows of its sensor."""

from __future__ import annotations

import attrs
import numpy as np

from ..batch import Batch
from ..values import flag, integer, real
from ._series import Part, equal_runs, take_window
from .base import (
    Detector,
    last_valid,
    previous_valid,
    warmup,
)
from .ewma import DEFAULT_FLOOR, DEFAULT_FLOOR_HALFLIFE, SpreadFloor, _z

__all__ = ["ZScore"]


def counted_values(
    xs: np.ndarray, ok: np.ndarray, state: dict[str, np.ndarray], cap: int
) -> np.ndarray:
    """Which values of ``xs`` (S, L) go into a window when repeats are skipped: every valid value
    except one equal to the previous value whose run of equal values (counting the first) is at
    most ``cap + 1`` long. A value that keeps repeating becomes the new normal and counts again,
    so a long flat stretch never empties the window. Uses and updates ``state["last"]`` and
    ``state["run"]``."""
    shape = state["last"].shape
    series = len(xs)
    last = state["last"].reshape(series)
    same = ok & (xs == previous_valid(xs, ok, last))
    run, end = equal_runs(same, ok, state["run"].reshape(series))
    state["last"] = last_valid(xs, ok, last).reshape(shape)
    state["run"] = end.reshape(shape)
    return ok & ~(same & (run <= cap + 1))


@attrs.define(eq=False, kw_only=True)
class ZScore(Detector):
    """Rolling z-score: ``|x − mean| / std`` over the previous ``window`` rows of the same sensor
    and column (the row itself excluded, missing values skipped).

    Keys: ``columns`` (default the five metrics), ``window`` (rows, default 60), ``min_periods``
    (values needed in the window before scoring, default ``window // 2``; at least 2),
    ``threshold`` (default 4.0), ``skip_repeats`` (default true: a value equal to the sensor's
    previous value of that column is scored but not added to the window, so a stuck sensor does
    not shrink the spread, until its run of equal values is longer than ``window − min_periods``
    + 1: from then on the value counts, so a long flat stretch does not empty the window),
    ``spread_floor`` and ``floor_halflife`` (the least standard deviation divided by, see
    :class:`~cosmobac.detectors.ewma.SpreadFloor`: default 0.5 × its long-run level over a
    half-life of 2000 values, and at least the series' resolution), ``name`` (default
    ``"zscore"``: prefix of its columns).

    Exact and independent of how rows are cut into batches: window sums are differences of running
    sums accumulated row by row from the sensor's first reading (of deviations from that reading,
    for precision). The per-sensor state is the running sums as they were ``window`` rows ago and
    those rows' deviations, from which the sums are accumulated again, in the same order.
    """

    kind = "zscore"

    window: int = attrs.field(default=60, converter=lambda v: integer("window", v, minimum=2))
    min_periods: int | None = attrs.field(
        default=None,
        converter=lambda v: None if v is None else integer("min_periods", v, minimum=2),
    )
    threshold: float = attrs.field(default=4.0, converter=lambda v: real("threshold", v, above=0))
    skip_repeats: bool = attrs.field(default=True, converter=lambda v: flag("skip_repeats", v))
    spread_floor: float = attrs.field(
        default=DEFAULT_FLOOR, converter=lambda v: real("spread_floor", v, minimum=0)
    )
    floor_halflife: float = attrs.field(
        default=DEFAULT_FLOOR_HALFLIFE, converter=lambda v: real("floor_halflife", v, above=0)
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        warmup(self.window, self.min_periods)  # refuses min_periods > window

    @property
    def threshold_value(self) -> float:
        return self.threshold

    @property
    def _min(self) -> int:
        return warmup(self.window, self.min_periods)

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        w = self.window
        return {
            "ref": np.full((count, width), np.nan),
            "last": np.full((count, width), np.nan),
            "run": np.zeros((count, width), dtype=np.int64),
            # running sums just before the last ``window`` rows, and those rows' addends
            "base_s": np.zeros((count, width)),
            "base_q": np.zeros((count, width)),
            "base_n": np.zeros((count, width), dtype=np.int64),
            "dev": np.zeros((count, width, w)),
            "used": np.zeros((count, width, w), dtype=np.bool_),
            **SpreadFloor.initial((count, width)),
        }

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        w = self.window
        series = g * c
        xs = x.reshape(series, length)
        ok = np.isfinite(xs)
        ref = state["ref"].reshape(series)
        need = np.isnan(ref) & ok.any(axis=1)
        if need.any():
            first = ok.argmax(axis=1)
            ref[need] = xs[need, first[need]]
        used = ok
        if self.skip_repeats:
            used = counted_values(xs, ok, state, self.window)
        dev = np.where(ok, xs - ref[:, None], 0.0)
        # the addends of the running sums: the kept rows' (then the new rows') deviations
        addends = np.empty((series, w + length))
        addends[:, :w] = state["dev"].reshape(series, w)
        addends[:, w:] = np.where(used, dev, 0.0)
        counted = np.empty((series, w + length), dtype=np.bool_)
        counted[:, :w] = state["used"].reshape(series, w)
        counted[:, w:] = used
        # running sums from before the kept rows, accumulated row after row (exact, and the same
        # however the rows are cut into batches): full[:, k] is the sum after k addends
        ends = np.repeat(part.lengths, c) + w + 1
        sums = []
        for key, values in (
            ("base_s", addends),
            ("base_q", addends * addends),
            ("base_n", counted.astype(np.int64)),
        ):
            full = np.empty((series, w + 1 + length), dtype=values.dtype)
            full[:, 0] = state[key].reshape(series)
            full[:, 1:] = values
            np.cumsum(full, axis=1, out=full)
            sums.append(full[:, w : w + length] - full[:, :length])  # the window before each row
            state[key] = full[np.arange(series), ends - w - 1].reshape(g, c)
        state["dev"] = take_window(addends, ends - 1, w).reshape(g, c, w)
        state["used"] = take_window(counted, ends - 1, w).reshape(g, c, w)
        s, q, n = sums
        state["ref"] = ref.reshape(g, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s / n
            var = np.maximum((q - s * mean) / (n - 1), 0.0)
        spread = np.sqrt(var)
        spread[~ok | (n < self._min)] = np.nan
        floor = SpreadFloor(self.spread_floor, self.floor_halflife)
        z = _z(dev - mean, floor(xs, ok, spread, state))
        z[~ok | (n < self._min)] = np.nan
        return z.reshape(g, c, length)
