"""``cusum``: two-sided CUSUM change detection against a slowly adapting baseline."""

from __future__ import annotations

import math

import attrs
import numpy as np

from ..batch import Batch
from ..values import integer, real
from ._ewm import STATE_KEYS, Clip, ewm_scan, ewm_state, halflife_alpha, unbiased
from ._floors import FlooredDetector
from ._series import Part

__all__ = ["Cusum", "cusum_scan"]

SEGMENT = 4096
"""A CUSUM sum restarts its running total every this many values of a series (counted from its
first value, so the places do not depend on batching), to keep the totals small and exact."""

_SUM_KEYS = ("up0", "down0", "sum_up", "min_up", "sum_down", "min_down", "seen")


def cusum_state(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Fresh :func:`cusum_scan` state for series of ``shape``."""
    state = {key: np.zeros(shape) for key in _SUM_KEYS}
    state["min_up"] = np.full(shape, np.inf)
    state["min_down"] = np.full(shape, np.inf)
    state["seen"] = np.zeros(shape, dtype=np.int64)
    return state


def cusum_scan(
    z: np.ndarray, scored: np.ndarray, slack: float, threshold: float, state: dict[str, np.ndarray]
) -> np.ndarray:
    """Page's two-sided CUSUM of ``z`` (S, L) where ``scored``, with a restart of both sums after
    each alarm: ``up = max(0, up + z − slack)``, ``down = max(0, down − z − slack)``, the statistic
    ``max(up, down)`` (NaN where not scored), and both sums back to 0 when it reaches
    ``threshold``. Updates ``state`` (arrays (S,), see :func:`cusum_state`) in place.

    Vectorised along each series as well as across series. Between restarts the recursion has a
    closed form (Lindley's): with ``T`` the running total of ``z − slack`` since the segment began
    and ``M`` its running minimum, ``up = T − min(−up₀, M)`` (and likewise for ``down``). The totals
    are accumulated value by value (``np.cumsum`` continuing from the total kept in the state), so
    they are the same however the series is cut into batches or into the chunks computed at once:
    the result is exact and independent of batching. A segment begins after each alarm and every
    :data:`SEGMENT` values of the series (the sums carried over), so totals stay small.
    """
    series, length = z.shape
    stat = np.full((series, length), np.nan)
    if not length or not scored.any():
        return stat
    step_up = np.where(scored, z - slack, 0.0).ravel()
    step_down = np.where(scored, -z - slack, 0.0).ravel()
    # a segment ends after the value that brings the series' count of scored values to a
    # multiple of SEGMENT
    seen_after = state["seen"][:, None] + np.cumsum(scored, axis=1)
    boundary = (scored & (seen_after % SEGMENT == 0)).ravel()
    flat_scored = scored.ravel()
    flat_stat = stat.reshape(-1)
    up0, down0 = state["up0"], state["down0"]
    sum_up, min_up = state["sum_up"], state["min_up"]
    sum_down, min_down = state["sum_down"], state["min_down"]
    pos = np.zeros(series, dtype=np.int64)  # next position to compute, per series
    chunk = 4096  # how much is computed at once (it does not change the result)
    a = np.arange(series)
    while len(a):
        if len(a) == 1:  # one series left (or only one): 1-D slices are cheaper
            _scan_one(
                int(a[0]),
                int(pos[a[0]]),
                length,
                step_up,
                step_down,
                flat_scored,
                boundary,
                flat_stat,
                state,
                threshold,
            )
            break
        width = int(min(chunk, length - pos[a].min()))
        grid_up = np.empty((len(a), width + 1))
        grid_up[:, 0] = sum_up[a]
        grid_down = np.empty((len(a), width + 1))
        grid_down[:, 0] = sum_down[a]
        start = int(pos[a[0]])
        aligned = len(a) == series and bool((pos == start).all())
        if aligned:  # every series from the same place (the first round): slices, no gathers
            cols = slice(start, start + width)
            inside = np.ones((series, width), dtype=np.bool_)
            index = None
            sc = scored[:, cols]
            grid_up[:, 1:] = step_up.reshape(series, length)[:, cols]
            grid_down[:, 1:] = step_down.reshape(series, length)[:, cols]
            ends = boundary.reshape(series, length)[:, cols]
        else:
            at = pos[a, None] + np.arange(width)
            inside = at < length
            index = a[:, None] * length + np.minimum(at, length - 1)
            sc = flat_scored[index] & inside
            grid_up[:, 1:] = np.where(inside, step_up[index], 0.0)
            grid_down[:, 1:] = np.where(inside, step_down[index], 0.0)
            ends = boundary[index] & inside
        np.cumsum(grid_up, axis=1, out=grid_up)
        np.cumsum(grid_down, axis=1, out=grid_down)
        low_up = grid_up.copy()
        low_up[:, 0] = min_up[a]
        np.minimum.accumulate(low_up, axis=1, out=low_up)
        low_down = grid_down.copy()
        low_down[:, 0] = min_down[a]
        np.minimum.accumulate(low_down, axis=1, out=low_down)
        up = grid_up[:, 1:] - np.minimum(-up0[a, None], low_up[:, 1:])
        down = grid_down[:, 1:] - np.minimum(-down0[a, None], low_down[:, 1:])
        s = np.maximum(up, down)
        alarm = sc & (s >= threshold)
        stop = alarm | ends | ~inside
        has = stop.any(axis=1)
        first = np.where(has, stop.argmax(axis=1), width - 1)  # last position this round
        span = (np.arange(width) <= first[:, None]) & sc
        if index is None:
            np.copyto(stat[:, start : start + width], s, where=span)
        else:
            flat_stat[index[span]] = s[span]
        r = np.arange(len(a))
        # positions past the series' end add 0: the sums there are those at its last position
        hit = alarm[r, first]
        restart = hit | ends[r, first]
        # an alarm: both sums restart from 0; a segment boundary: they carry over as its start
        up0[a] = np.where(hit, 0.0, np.where(restart, up[r, first], up0[a]))
        down0[a] = np.where(hit, 0.0, np.where(restart, down[r, first], down0[a]))
        sum_up[a] = np.where(restart, 0.0, grid_up[r, first + 1])
        sum_down[a] = np.where(restart, 0.0, grid_down[r, first + 1])
        min_up[a] = np.where(restart, np.inf, low_up[r, first + 1])
        min_down[a] = np.where(restart, np.inf, low_down[r, first + 1])
        pos[a] = np.where(inside[r, first], pos[a] + first + 1, length)
        # alarms close together: smaller chunks; a quiet stretch: larger ones
        chunk = min(4096, chunk * 2) if hit.mean() < 0.5 else max(32, chunk // 4)
        a = a[pos[a] < length]
    state["seen"] += scored.sum(axis=1)
    return stat


def _scan_one(
    row: int,
    start: int,
    length: int,
    step_up: np.ndarray,
    step_down: np.ndarray,
    scored: np.ndarray,
    boundary: np.ndarray,
    stat: np.ndarray,
    state: dict[str, np.ndarray],
    threshold: float,
) -> None:
    """:func:`cusum_scan` for one series from position ``start`` on (flat arrays, row-major):
    the same sums in the same order, on 1-D slices."""
    base = row * length
    up0, down0 = float(state["up0"][row]), float(state["down0"][row])
    sums = [float(state["sum_up"][row]), float(state["sum_down"][row])]
    mins = [float(state["min_up"][row]), float(state["min_down"][row])]
    # both sums' steps as two rows, so each chunk is one cumsum and one running minimum
    steps = np.stack(
        [step_up[base + start : base + length], step_down[base + start : base + length]]
    )
    sc_row = scored[base + start : base + length]
    ends_row = boundary[base + start : base + length]
    out_row = stat[base + start : base + length]
    grid = np.empty((2, 4097))
    low = np.empty((2, 4097))
    starts = np.empty((2, 1))
    pos, chunk, size = 0, 256, length - start
    while pos < size:
        end = min(size, pos + chunk)
        n = end - pos
        g = grid[:, : n + 1]
        g[:, 0] = sums
        g[:, 1:] = steps[:, pos:end]
        np.cumsum(g, axis=1, out=g)
        lo = low[:, : n + 1]
        lo[:, 0] = mins
        lo[:, 1:] = g[:, 1:]
        np.minimum.accumulate(lo, axis=1, out=lo)
        starts[0, 0], starts[1, 0] = -up0, -down0
        floor = np.minimum(starts, lo[:, 1:])
        np.subtract(g[:, 1:], floor, out=floor)  # up and down
        s = np.maximum(floor[0], floor[1])
        sc = sc_row[pos:end]
        alarm = s >= threshold
        alarm &= sc
        stop = alarm | ends_row[pos:end]
        first = int(stop.argmax())
        stopped = bool(stop[first])
        if not stopped:
            first = n - 1
        np.copyto(out_row[pos : pos + first + 1], s[: first + 1], where=sc[: first + 1])
        if stopped:
            if alarm[first]:  # both sums restart from 0
                up0 = down0 = 0.0
            else:  # a segment boundary: the sums carry over as its start
                up0, down0 = float(floor[0, first]), float(floor[1, first])
            sums = [0.0, 0.0]
            mins = [math.inf, math.inf]
            chunk = max(32, min(4096, 2 * (first + 1)))
        else:
            sums = [float(g[0, -1]), float(g[1, -1])]
            mins = [float(lo[0, -1]), float(lo[1, -1])]
            chunk = min(4096, chunk * 2)
        pos += first + 1
    state["up0"][row], state["down0"][row] = up0, down0
    state["sum_up"][row], state["min_up"][row] = sums[0], mins[0]
    state["sum_down"][row], state["min_down"][row] = sums[1], mins[1]


@attrs.define(eq=False, kw_only=True)
class Cusum(FlooredDetector):
    """Two-sided CUSUM (Page's cumulative sum) of standardised values: catches sustained shifts,
    drifts and oscillations that no single value gives away.

    Each value is standardised against the sensor's baseline, ``z = (x − m) / s``: ``m`` and ``s``
    are an exponentially weighted mean and standard deviation of its earlier values (both
    normalised by the weights so far, so early on they are plain averages), ``s`` at least the
    spread floor. Then ``up = max(0, up + z − slack)`` and ``down = max(0, down − z − slack)``; the
    statistic is ``max(up, down)``, and when it reaches ``threshold`` the row is detected and both
    sums restart from 0 (see :func:`cusum_scan`). Once warm, values are winsorised before they
    update the baseline, to the baseline's mean ± ``clip`` standard deviations as they were at the
    start of the current block of 128 values (see :func:`~cosmobac.detectors.ewma.ewm_scan`), so
    anomalies barely move the baseline.

    Keys: ``columns`` (default the five metrics), ``halflife`` (values, baseline memory, default
    120), ``slack`` (the ``k`` of CUSUM, in standard deviations, default 0.5), ``threshold`` (the
    ``h``, default 8.0), ``clip`` (default 3.0; 0 turns clipping off), ``min_periods`` (values
    before scoring, default 30), ``spread_floor`` and ``floor_halflife`` (the least standard
    deviation divided by, see :class:`~cosmobac.detectors._floors.SpreadFloor`), ``name`` (default
    ``"cusum"``).

    Vectorised along each series and across series; exact and independent of batching.
    """

    kind = "cusum"

    halflife: float = attrs.field(default=120.0, converter=lambda v: real("halflife", v, above=0))
    slack: float = attrs.field(default=0.5, converter=lambda v: real("slack", v, minimum=0))
    threshold: float = attrs.field(default=8.0, converter=lambda v: real("threshold", v, above=0))
    clip: float = attrs.field(default=3.0, converter=lambda v: real("clip", v, minimum=0))
    min_periods: int = attrs.field(
        default=30, converter=lambda v: integer("min_periods", v, minimum=2)
    )

    @property
    def threshold_value(self) -> float:
        return self.threshold

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        shape = (count, width)
        return {
            **ewm_state(shape),
            "limit": np.full(shape, np.inf),
            "first": np.full(shape, np.nan),
            **cusum_state(shape),
            **self._floor_state(shape),
        }

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        ok = np.isfinite(xs)
        floor = self._floor
        resolution = floor.resolution(xs, ok, state)
        alpha = halflife_alpha(self.halflife)
        scan = {key: state[key].reshape(-1) for key in STATE_KEYS}
        limits = state["limit"].reshape(-1)
        clip = Clip(self.clip, self.min_periods, resolution, limits) if self.clip > 0 else None
        first = state["first"].reshape(-1)
        fresh = np.isnan(first) & ok.any(axis=1)
        first[fresh] = xs[fresh, ok[fresh].argmax(axis=1)]
        mean, var, count = ewm_scan(xs, ok, alpha, scan, clip=clip)
        # the mean without the weight left on the first value: a weighted average of the values
        decay = np.exp(np.log1p(-alpha) * count)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (mean - decay * first[:, None]) / -np.expm1(np.log1p(-alpha) * count)
        warm = ok & (count >= self.min_periods)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(unbiased(var, count, alpha))
            sd[~warm] = np.nan
            sd = floor.raise_spread(xs, ok, sd, resolution, state)
            z = (xs - mean) / sd
        # a spread of 0 where the series has never moved (no step, so no resolution): 0
        still = warm & (sd == 0) & (resolution == 0)
        z[still] = 0.0
        scored = warm & ((sd > 0) | still)
        sums = {key: state[key].reshape(-1) for key in _SUM_KEYS}
        stat = cusum_scan(z, scored, self.slack, self.threshold, sums)
        state.update({key: value.reshape(g, c) for key, value in scan.items()})
        state.update({key: value.reshape(g, c) for key, value in sums.items()})
        state["limit"] = limits.reshape(g, c)
        state["first"] = first.reshape(g, c)
        return stat.reshape(g, c, length)
