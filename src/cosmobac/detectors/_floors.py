"""Spread floors: the least spread a detector divides by (:class:`SpreadFloor`), and the
configuration keys every detector with a floor shares (:class:`FloorKeys`)."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from ..values import real
from ._ewm import MEAN_KEYS, _ewm_scan, ewm_state, halflife_alpha
from ._series import last_index, last_valid, previous_valid
from .base import Detector

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_FLOOR_HALFLIFE",
    "LEVEL_MEAN_HALFLIFE",
    "FlooredDetector",
    "SpreadFloor",
]

DEFAULT_FLOOR = 0.25
"""Default ``spread_floor``: the least spread is a quarter of what is usual for the series."""
DEFAULT_FLOOR_HALFLIFE = 2000.0
"""Default ``floor_halflife`` (values) of the long-run levels the floor measures."""


def _z(dev: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``|dev| / scale``; where the scale is 0, 0 for no deviation and ``inf`` otherwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(dev) / scale
    flat = scale == 0
    if flat.any():
        z[flat] = np.where(dev[flat] == 0, 0.0, np.inf)
    return z


LEVEL_MEAN_HALFLIFE = 300.0
"""Half-life (values) of the mean the level floor measures deviations from."""


def _carry(
    values: np.ndarray, has: np.ndarray, state: dict[str, np.ndarray], key: str, shape: Any
) -> np.ndarray:
    """``values`` (S, L) where ``has``, elsewhere the last one before (from ``state[key]`` before
    this batch); keeps the last one in ``state[key]``. A selection of the same numbers: one gather
    (the last position with a value, flat), no arithmetic."""
    series, length = values.shape
    last = state[key].reshape(series)
    if not length:
        return values.copy()
    out = values.copy()
    gaps = np.flatnonzero(~has.all(axis=1))  # only these series carry values forward
    if len(gaps):
        index = last_index(has[gaps])
        flat = index + (gaps * length)[:, None]
        some = np.take(values.reshape(-1), flat)
        before = index < 0
        if before.any():
            some[before] = np.broadcast_to(last[gaps, None], some.shape)[before]
        out[gaps] = some
    state[key] = out[:, -1].reshape(shape).copy()
    return out


def _scan_mean(
    values: np.ndarray, has: np.ndarray, alpha: float, state: dict[str, np.ndarray], prefix: str
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ewm_scan`'s mean (and count) before each value, its state under ``prefix_*``."""
    series = len(values)
    shape = state[f"{prefix}_count"].shape
    scan = {key: state[f"{prefix}_{key}"].reshape(series) for key in MEAN_KEYS}
    mean, _, count = _ewm_scan(values, has, alpha, scan, variance=False)
    for key in MEAN_KEYS:
        state[f"{prefix}_{key}"] = scan[key].reshape(shape)
    return mean, count


def _scan_means(
    items: list[tuple[np.ndarray, np.ndarray, str]],
    alpha: float,
    state: dict[str, np.ndarray],
    stacked: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_scan_mean` of several (values, has, prefix) of the same series in one scan (the
    rows are independent: the same results as one scan each). ``stacked``: the items' values and
    masks already one above the other (then not copied)."""
    if len(items) == 1:
        values, has, prefix = items[0]
        return [_scan_mean(values, has, alpha, state, prefix)]
    series, length = items[0][0].shape
    shape = state[f"{items[0][2]}_count"].shape
    scan = {
        key: np.concatenate([state[f"{prefix}_{key}"].reshape(series) for _, _, prefix in items])
        for key in MEAN_KEYS
    }
    if stacked is not None:
        values, has = stacked
    else:
        values = np.empty((len(items) * series, length))
        has = np.empty((len(items) * series, length), dtype=np.bool_)
        for i, (v, h, _) in enumerate(items):
            values[i * series : (i + 1) * series] = v
            has[i * series : (i + 1) * series] = h
    mean, _, count = _ewm_scan(values, has, alpha, scan, variance=False)
    out = []
    for i, (_, _, prefix) in enumerate(items):
        rows = slice(i * series, (i + 1) * series)
        for key in MEAN_KEYS:
            state[f"{prefix}_{key}"] = scan[key][rows].reshape(shape)
        out.append((mean[rows], count[rows]))
    return out


@attrs.define(frozen=True)
class SpreadFloor:
    """The least spread a detector divides by, so flat, quantised or repeated-value stretches do
    not make its scores explode. A detector estimates its spread (a standard deviation, a MAD,
    a noise level) from recent values; that estimate collapses towards 0 where the series is
    flat for a while, and then an ordinary step scores like a huge anomaly. The spread used is
    the largest of

    * the detector's own estimate;
    * ``fraction`` × what is usual for it on this series: the geometric mean of its earlier
      estimates (zeros left out), exponentially weighted with half-life ``halflife`` values;
    * the series' *resolution*: the smallest non-zero step between consecutive values seen so far,
      and ``fraction`` × the typical non-zero step (their geometric mean, weighted likewise). Both
      include the value's own step, so the first move of a series flat so far scores about
      ``1 / fraction``, not infinity;
    * ``level`` × the series' long-run deviation (0 by default: off): the root of the
      exponentially weighted mean (half-life ``halflife``) of squared deviations from a mean with
      a half-life of :data:`LEVEL_MEAN_HALFLIFE` values. It ranks values against the series'
      overall variation, bursts included, which suits series whose ordinary bursts should not
      alarm (NAB's); it makes a detector less sensitive to short anomalies in series that wander.

    All are taken before each value (the value itself excluded, but for its own step). The state
    is kept per series (:meth:`initial`), exact and independent of batching like
    :func:`ewm_scan`.
    """

    fraction: float
    halflife: float
    level: float = 0.0

    @staticmethod
    def initial(shape: tuple[int, ...], level: bool = False) -> dict[str, np.ndarray]:
        """Fresh state for series of ``shape`` (with ``level``: for a level floor too)."""
        state: dict[str, np.ndarray] = {}
        for prefix in ("usual", "step", *(("level_mean", "level_dev") if level else ())):
            state.update(
                {
                    f"{prefix}_{key}": value
                    for key, value in ewm_state(shape).items()
                    if key in MEAN_KEYS
                }
            )
        state["floor_res"] = np.full(shape, np.inf)
        state["floor_last"] = np.full(shape, np.nan)
        state["step_typical"] = np.full(shape, np.nan)
        return state

    def __call__(
        self,
        xs: np.ndarray,
        ok: np.ndarray,
        spread: np.ndarray,
        state: dict[str, np.ndarray],
        thin: np.ndarray | None = None,
        previous: np.ndarray | None = None,
    ) -> np.ndarray:
        """The spread to divide by at each value of ``xs`` (S, L): ``spread`` (S, L; the
        detector's estimate, NaN where it has none) raised to the floor. Where ``thin`` (the
        estimate rests on too little), it does not count towards the usual level. (It was meant
        to be raised to the whole usual level there, but the level is only known at values that
        count, so at thin values only the resolution floor applies: a known gap, kept so that
        scores stay as measured.) Updates ``state`` (arrays holding S values, replaced
        by new arrays of the same shapes). The same as :meth:`resolution` then
        :meth:`raise_spread`, with their two long-run means in one scan. ``previous``: each
        value's previous valid value, if the caller has it (looked up from the same last value
        this floor keeps), a copy it may overwrite."""
        smallest, step = self._steps(xs, ok, state, previous)
        if self.fraction <= 0:
            return self._level(xs, ok, np.fmax(spread, smallest), state)
        alpha = halflife_alpha(self.halflife)
        series = len(xs)
        # both logs, and where each counts, written straight into the two halves of one scan
        logs = np.empty((2 * series, xs.shape[1]))
        has = np.empty(logs.shape, dtype=np.bool_)
        step_logs, spread_logs = logs[:series], logs[series:]
        has_step, has_spread = has[:series], has[series:]
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(step, out=step_logs)
            np.log(spread, out=spread_logs)
        np.isfinite(logs, out=has)
        has_step &= ok
        has_spread &= ok
        if thin is not None:
            has_spread &= ~thin
        (step_before, step_count), (usual, count) = _scan_means(
            [(step_logs, has_step, "step"), (spread_logs, has_spread, "usual")],
            alpha,
            state,
            stacked=(logs, has),
        )
        resolution = np.fmax(
            smallest, self._typical(step_logs, has_step, step_before, step_count, alpha, state)
        )
        usual[count <= 0] = np.nan
        np.exp(usual, out=usual)
        if thin is None:
            usual *= self.fraction
        else:  # the whole usual level where thin (× 1: left as it is)
            np.multiply(usual, self.fraction, out=usual, where=~thin)
        np.fmax(resolution, spread, out=resolution)
        np.fmax(resolution, usual, out=resolution)
        return self._level(xs, ok, resolution, state)

    def _steps(
        self,
        xs: np.ndarray,
        ok: np.ndarray,
        state: dict[str, np.ndarray],
        previous: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The smallest non-zero step seen at each value (its own included; 0 before the first),
        and each value's step (``inf`` where it has none: a repeat, no previous value)."""
        series = len(xs)
        shape = state["floor_res"].shape
        last = state["floor_last"].reshape(series)
        step = previous_valid(xs, ok, last) if previous is None else previous
        np.subtract(xs, step, out=step)
        np.abs(step, out=step)
        np.copyto(step, np.inf, where=~(step > 0))  # NaN (no previous value, missing), repeats
        res = state["floor_res"].reshape(series)
        smallest = np.empty_like(step)
        smallest[:] = res[:, None]
        if step.shape[1]:
            # the running minimum changes only in series with a step below the smallest so far
            lower = np.flatnonzero(step.min(axis=1) < res)
            if len(lower):
                seen = np.empty((len(lower), step.shape[1] + 1))
                seen[:, 0] = res[lower]
                seen[:, 1:] = step[lower]
                np.fmin.accumulate(seen, axis=1, out=seen)  # no NaN here: as np.minimum, faster
                smallest[lower] = seen[:, 1:]
            state["floor_res"] = smallest[:, -1].reshape(shape).copy()  # not a view: zeroed below
        state["floor_last"] = last_valid(xs, ok, last).reshape(shape)
        # this value's own step included: a first step scores ~1
        np.copyto(smallest, 0.0, where=np.isinf(smallest))
        return smallest, step

    def _typical(
        self,
        logs: np.ndarray,
        has: np.ndarray,
        before: np.ndarray,
        count: np.ndarray,
        alpha: float,
        state: dict[str, np.ndarray],
    ) -> np.ndarray:
        """``fraction`` × the typical step with each value's own included, carried to values
        without a step of their own."""
        after = np.subtract(logs, before)
        after *= alpha
        after += before
        np.copyto(after, logs, where=count <= 0)
        shape = state["floor_res"].shape
        typical = _carry(after, has, state, "step_typical", shape)
        np.exp(typical, out=typical)
        typical *= self.fraction
        return typical

    def resolution(
        self, xs: np.ndarray, ok: np.ndarray, state: dict[str, np.ndarray]
    ) -> np.ndarray:
        """The least spread from the series' steps at each value of ``xs`` (S, L): the smallest
        non-zero step seen, and ``fraction`` × the typical one (0 before the first step)."""
        smallest, step = self._steps(xs, ok, state)
        if self.fraction <= 0:
            return smallest
        with np.errstate(divide="ignore"):
            logs = np.log(step)
        has = ok & np.isfinite(logs)
        alpha = halflife_alpha(self.halflife)
        ((before, count),) = _scan_means([(logs, has, "step")], alpha, state)
        return np.fmax(smallest, self._typical(logs, has, before, count, alpha, state))

    def _level(
        self, xs: np.ndarray, ok: np.ndarray, out: np.ndarray, state: dict[str, np.ndarray]
    ) -> np.ndarray:
        """``out`` raised to ``level`` × the series' long-run deviation (when ``level`` > 0)."""
        if self.level <= 0:
            return out
        alpha = halflife_alpha(self.halflife)
        mean, count = _scan_mean(xs, ok, halflife_alpha(LEVEL_MEAN_HALFLIFE), state, "level_mean")
        square = (xs - mean) ** 2
        has = ok & (count > 0)
        typical, count = _scan_mean(square, has, alpha, state, "level_dev")
        return np.fmax(out, self.level * np.sqrt(np.where(count > 0, typical, np.nan)))

    def raise_spread(
        self,
        xs: np.ndarray,
        ok: np.ndarray,
        spread: np.ndarray,
        resolution: np.ndarray,
        state: dict[str, np.ndarray],
        thin: np.ndarray | None = None,
    ) -> np.ndarray:
        """``spread`` raised to ``resolution``, to ``fraction`` × its usual level and to
        ``level`` × the series' long-run deviation. Where ``thin`` the spread does not count
        towards the usual level (and, as in :meth:`__call__`, the level is not known there)."""
        out = np.fmax(spread, resolution)
        alpha = halflife_alpha(self.halflife)
        if self.fraction > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(spread)
            has = ok & np.isfinite(logs)
            if thin is not None:
                has &= ~thin
            usual, count = _scan_mean(logs, has, alpha, state, "usual")
            usual = np.exp(np.where(count > 0, usual, np.nan))
            share = self.fraction if thin is None else np.where(thin, 1.0, self.fraction)
            out = np.fmax(out, share * usual)
        return self._level(xs, ok, out, state)


@attrs.define(eq=False, kw_only=True)
class FlooredDetector(Detector):
    """A detector that divides by a spread raised to a :class:`SpreadFloor`: the floor's keys,
    their defaults and their checks, in one place.

    Keys: ``spread_floor`` (the floor's ``fraction``, ≥ 0, default :data:`DEFAULT_FLOOR`),
    ``floor_halflife`` (its ``halflife`` in values, > 0, default :data:`DEFAULT_FLOOR_HALFLIFE`),
    ``level_floor`` (its ``level``, ≥ 0, default 0: off). A subclass may redefine a key to change
    its default.
    """

    spread_floor: float = attrs.field(
        default=DEFAULT_FLOOR, converter=lambda v: real("spread_floor", v, minimum=0)
    )
    floor_halflife: float = attrs.field(
        default=DEFAULT_FLOOR_HALFLIFE, converter=lambda v: real("floor_halflife", v, above=0)
    )
    level_floor: float = attrs.field(
        default=0.0, converter=lambda v: real("level_floor", v, minimum=0)
    )

    @property
    def _floor(self) -> SpreadFloor:
        """The floor these keys describe."""
        return SpreadFloor(self.spread_floor, self.floor_halflife, self.level_floor)

    def _floor_state(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Fresh floor state for series of ``shape``."""
        return SpreadFloor.initial(shape, self.level_floor > 0)
