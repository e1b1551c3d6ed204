"""``zscore``: rolling z-score of each value against the previous ``window`` rows of its sensor."""

from __future__ import annotations

import attrs
import numpy as np

from ..batch import Batch
from ..values import flag, integer, real
from ._floors import FlooredDetector, _z
from ._series import Part, equal_runs, last_valid, previous_valid, take_window
from .base import warmup

__all__ = ["ZScore"]


@attrs.define(eq=False, kw_only=True)
class ZScore(FlooredDetector):
    """Rolling z-score: ``|x − mean| / std`` over the previous ``window`` rows of the same sensor
    and column (the row itself excluded, missing values skipped).

    Keys: ``columns`` (default the five metrics), ``window`` (rows, default 60), ``min_periods``
    (values needed in the window before scoring, default ``window // 2``; at least 2),
    ``threshold`` (default 4.0), ``skip_repeats`` (default true: a value equal to the sensor's
    previous value of that column is scored but not added to the window, so a stuck sensor does
    not shrink the spread. A value repeated for more than ``window`` rows counts again (the new
    normal). Where the window holds fewer than ``min_periods`` values besides repeats, as on a
    quantised series, every value in it counts (and the spread is at least the usual one, the
    whole ``spread_floor`` level), so such a series is scored rather than left NaN; except
    within ``window`` rows of a flatline (``min_periods`` equal values or more), whose frozen
    value must not stand in for the level: there rows stay unscored until the window refills),
    ``spread_floor`` and ``floor_halflife`` (the least standard deviation divided by, see
    :class:`~cosmobac.detectors._floors.SpreadFloor`: default 0.25 × its long-run level over a
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
        state = {
            "ref": np.full((count, width), np.nan),
            "last": np.full((count, width), np.nan),
            # running sums just before the last ``window`` rows, and those rows' deviations
            "base_s": np.zeros((count, width)),
            "base_q": np.zeros((count, width)),
            "base_n": np.zeros((count, width), dtype=np.int64),
            "dev": np.zeros((count, width, w)),
            "used": np.zeros((count, width, w), dtype=np.bool_),
            **self._floor_state((count, width)),
        }
        if self.skip_repeats:  # which of the last rows had a value, repeats included
            state["run"] = np.zeros((count, width), dtype=np.int64)
            state["since"] = np.full((count, width), 2**62, dtype=np.int64)
            state["valid"] = np.zeros((count, width, w), dtype=np.bool_)
        return state

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        w = self.window
        series = g * c
        xs = x.reshape(series, length)
        ok = np.isfinite(xs)
        missing = ~ok
        ref = state["ref"].reshape(series)
        need = np.isnan(ref) & ok.any(axis=1)
        if need.any():
            first = ok.argmax(axis=1)
            ref[need] = xs[need, first[need]]
        used = ok
        thin = None
        previous = None
        if self.skip_repeats:
            # the floor's last value is this detector's (both the last valid one): one look-up
            shared = np.array_equal(state["last"], state["floor_last"], equal_nan=True)
            used, flatline, before = self._counted(xs, ok, state, np.repeat(part.lengths, c))
            previous = before if shared else None
        dev = np.subtract(xs, ref[:, None])
        dev[missing] = 0.0
        # the kept rows' (then the new rows') deviations, and which of them count
        devs = np.empty((series, w + length))
        devs[:, :w] = state["dev"].reshape(series, w)
        devs[:, w:] = dev
        counted = np.empty((series, w + length), dtype=np.bool_)
        counted[:, :w] = state["used"].reshape(series, w)
        counted[:, w:] = used
        ends = np.repeat(part.lengths, c) + w + 1
        s, q, n = self._window_sums(devs, counted, state, ends)
        if self.skip_repeats:
            valid = np.empty((series, w + length), dtype=np.bool_)
            valid[:, :w] = state["valid"].reshape(series, w)
            valid[:, w:] = ok
            state["valid"] = take_window(valid, ends - 1, w).reshape(g, c, w)
            # too few values besides repeats, as on a quantised series: all of them count (not
            # just after a flatline, whose frozen value would stand in for the level). Summed
            # directly over the window (the same values in the same order whatever the batches)
            thin = ok & (n < self._min) & ~flatline
            rows, cols = np.nonzero(thin)
            if len(rows):
                # the window before (rows, cols): views of whole windows, gathered once each
                span = np.lib.stride_tricks.sliding_window_view
                kept = span(valid, w, axis=1)[rows, cols]
                values = span(devs, w, axis=1)[rows, cols]
                values[~kept] = 0.0
                s[rows, cols] = values.sum(axis=1)
                np.multiply(values, values, out=values)
                q[rows, cols] = values.sum(axis=1)
                n[rows, cols] = kept.sum(axis=1)
        state["dev"] = take_window(devs, ends - 1, w).reshape(g, c, w)
        state["used"] = take_window(counted, ends - 1, w).reshape(g, c, w)
        state["ref"] = ref.reshape(g, c)
        unscored = n < self._min
        unscored |= missing
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s / n
            spread = s * mean
            np.subtract(q, spread, out=spread)
            n -= 1
            spread /= n
            np.maximum(spread, 0.0, out=spread)
        np.sqrt(spread, out=spread)
        spread[unscored] = np.nan
        floor = self._floor
        np.subtract(dev, mean, out=dev)
        z = _z(dev, floor(xs, ok, spread, state, thin, previous))
        z[unscored] = np.nan
        return z.reshape(g, c, length)

    def _counted(
        self, xs: np.ndarray, ok: np.ndarray, state: dict[str, np.ndarray], lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which values of ``xs`` (S, L) count in the window when repeats are skipped, which
        rows are within ``window`` rows of a flatline (a run of ``min_periods`` or more equal
        values), and each value's previous valid value (a copy the caller may overwrite). A
        repeat is skipped while its run of equal values (counting the first) is at
        most ``window + 1`` long: a value that keeps repeating becomes the new normal and counts
        again, so a constant series is scored (0) rather than left NaN."""
        series, length = xs.shape
        shape = state["last"].shape
        last = state["last"].reshape(series)
        previous = previous_valid(xs, ok, last)
        same = ok & (xs == previous)
        run, end = equal_runs(same, ok, state["run"].reshape(series))
        state["last"] = last_valid(xs, ok, last).reshape(shape)
        state["run"] = end.reshape(shape)
        used = ok & ~(same & (run <= self.window + 1))
        # rows since the last row of a flatline (carried from batch to batch)
        since = state["since"].reshape(series)
        columns = np.arange(length)
        # the last flatline row so far, as a column (-(since + 1) for the one before the batch)
        flat = ok & (run >= self.window)
        flat_at = np.where(flat, columns, -(since + 1)[:, None])
        # only series with a flatline row in this batch move their last one
        moved = np.flatnonzero(flat.any(axis=1))
        if len(moved):
            flat_at[moved] = np.maximum.accumulate(flat_at[moved], axis=1)
        distance = np.subtract(columns, flat_at, out=flat_at)
        ends = np.maximum(lengths - 1, 0)
        rows = np.arange(series)
        state["since"] = np.where(lengths > 0, distance[rows, ends], since).reshape(shape)
        return used, distance <= self.window, previous

    def _window_sums(
        self,
        devs: np.ndarray,
        counted: np.ndarray,
        state: dict[str, np.ndarray],
        ends: np.ndarray,
    ) -> list[np.ndarray]:
        """Sum, sum of squares and count of the ``counted`` deviations in the ``window`` rows
        before each new row, from running sums accumulated row after row since the series began
        (exact, and the same however the rows are cut into batches): ``full[:, k]`` is the sum
        after ``k`` addends. Keeps the sums as they were ``window`` rows before the end in
        ``state``."""
        w = self.window
        series, total = devs.shape
        length = total - w
        at = ends - w - 1
        rows = np.arange(series)
        full_s = np.zeros((series, total + 1))
        full_s[:, 0] = state["base_s"].reshape(series)
        np.copyto(full_s[:, 1:], devs, where=counted)
        full_q = np.empty((series, total + 1))
        full_q[:, 0] = state["base_q"].reshape(series)
        np.multiply(full_s[:, 1:], full_s[:, 1:], out=full_q[:, 1:])
        sums = []
        for key, full in (("base_s", full_s), ("base_q", full_q)):
            np.cumsum(full, axis=1, out=full)
            sums.append(np.subtract(full[:, w : w + length], full[:, :length]))
            state[key] = full[rows, at].reshape(state[key].shape)
        # counts: from 0 in int32 (a window's count is a difference, whatever the base), the
        # base added back for the state. A series whose rows all count (up to its last one:
        # padding after it is never scored) has ``window`` in every window and ``at`` rows
        # counted before ``at``: only the others are counted
        n = np.full((series, length), w, dtype=np.int64)
        before_at = at.copy()
        partial = np.flatnonzero(np.count_nonzero(counted, axis=1) != ends - 1)
        if len(partial):
            full_n = np.zeros((len(partial), total + 1), dtype=np.int32)
            full_n[:, 1:] = counted[partial]
            np.cumsum(full_n, axis=1, out=full_n)
            n[partial] = np.subtract(full_n[:, w : w + length], full_n[:, :length])
            before_at[partial] = full_n[np.arange(len(partial)), at[partial]]
        sums.append(n)
        base_n = state["base_n"].reshape(series) + before_at
        state["base_n"] = base_n.reshape(state["base_n"].shape)
        return sums
