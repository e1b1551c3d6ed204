"""``ewma``: z-score of each value against an exponentially weighted mean and variance."""

from __future__ import annotations

import math

import attrs
import numpy as np

from ..batch import Batch
from ..values import integer, real
from ._series import Part
from .base import Detector
from .zscore import _z

__all__ = ["EWMA", "ewm_scan", "ewm_state", "halflife_alpha"]

_SPAN = 40.0  # a block of the closed form spans at most e^40 in weight: far from overflow
_MAX_BLOCK = 256

STATE_KEYS = ("mean0", "var0", "acc_m", "acc_v", "count")
"""Per-series state of :func:`ewm_scan`: the mean and variance where the current block began,
the block's two running sums, and how many values the series has had."""


def block_size(alpha: float) -> int:
    """Values per block of the closed form for weight ``alpha`` (a function of α only, so blocks
    fall at the same places in a series however it is cut into batches)."""
    return max(1, min(_MAX_BLOCK, int(_SPAN / -math.log1p(-alpha))))


def ewm_state(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Fresh :func:`ewm_scan` state for series of ``shape``."""
    state = {key: np.zeros(shape) for key in STATE_KEYS}
    state["count"] = np.zeros(shape, dtype=np.int64)
    return state


def ewm_scan(
    x: np.ndarray, ok: np.ndarray, alpha: float, state: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponentially weighted mean and variance of each series of ``x`` (S, L), skipping
    positions where ``ok`` is false; vectorised across series and along each series.

    For each valid value, with ``d = x − mean``: ``mean += α·d``; ``var = (1 − α)(var + α·d²)``
    (the incremental form of West and Finch). A series' first value sets ``mean``.

    Returns the mean, variance and count *before* each position (S, L; meaningful where ``ok``),
    and updates ``state`` (arrays of shape (S,), see :data:`STATE_KEYS`) in place.

    Along a series the recursion is solved in closed form over blocks of :func:`block_size`
    values counted from the series' first value: within a block that began with mean ``m0`` and
    variance ``v0``, after ``k`` values, ``mean = m0 + cᵏ·α·Σ c^−kᵢ (xᵢ − m0)`` and
    ``var = cᵏ (v0 + α·Σ c^(1−kᵢ) dᵢ²)`` with ``c = 1 − α``. The running sums are accumulated
    value by value and kept in the state between batches, so every number is computed by the same
    operations in the same order however the series is cut into batches: results are identical,
    bit for bit.
    """
    series, length = x.shape
    mean_before = np.full((series, length), np.nan)
    var_before = np.full((series, length), np.nan)
    count_before = np.zeros((series, length), dtype=np.int64)
    per_series = ok.sum(axis=1)
    total = int(per_series.sum())
    if not total:
        return mean_before, var_before, count_before
    log_c = math.log1p(-alpha)
    steps = np.arange(block_size(alpha) + 1, dtype=np.float64)
    grows, shrinks = np.exp(-log_c * steps), np.exp(log_c * steps)  # (1−α)^−k and (1−α)^k
    size = block_size(alpha)
    mean0, var0 = state["mean0"], state["var0"]
    acc_m, acc_v, count = state["acc_m"], state["acc_v"], state["count"]
    values = x[ok]
    sid = np.repeat(np.arange(series), per_series)
    offsets = np.concatenate(([0], np.cumsum(per_series)[:-1]))
    index = count[sid] + (np.arange(total) - offsets[sid])  # 0-based place in the series
    fresh = (count == 0) & (per_series > 0)
    mean0[fresh] = values[offsets[fresh]]  # a series' first value is its first mean
    pos = index % size + 1  # 1-based place in its block
    rounds = index // size - count[sid] // size
    m_prev = np.empty(total)
    v_prev = np.empty(total)
    for r in range(int(rounds.max()) + 1):
        chosen = np.flatnonzero(rounds == r)
        s = sid[chosen]
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        members = s[starts]
        lengths = np.diff(np.append(starts, len(chosen)))
        col = np.arange(len(chosen)) - np.repeat(starts, lengths) + 1
        row = np.repeat(np.arange(len(members)), lengths)
        width = int(lengths.max()) + 1
        k = pos[chosen]
        grow = grows[k]
        decay = shrinks[k - 1]
        m0 = mean0[members]
        grid = np.zeros((len(members), width))
        grid[:, 0] = acc_m[members]
        grid[row, col] = grow * (values[chosen] - m0[row])
        np.cumsum(grid, axis=1, out=grid)  # value by value, from the block's saved sum
        mp = m0[row] + decay * (alpha * grid[row, col - 1])
        d = values[chosen] - mp
        v0 = var0[members]
        vgrid = np.zeros((len(members), width))
        vgrid[:, 0] = acc_v[members]
        vgrid[row, col] = grow * (d * d)
        np.cumsum(vgrid, axis=1, out=vgrid)
        vp = decay * (v0[row] + alpha * (1.0 - alpha) * vgrid[row, col - 1])
        m_prev[chosen] = mp
        v_prev[chosen] = vp
        last = starts + lengths - 1
        last_col = col[last]
        last_k = k[last]
        full = pos[chosen][last] == size  # the block is complete: the next one starts here
        sum_m = grid[np.arange(len(members)), last_col]
        sum_v = vgrid[np.arange(len(members)), last_col]
        end_mean = m0 + shrinks[last_k] * (alpha * sum_m)
        end_var = shrinks[last_k] * (v0 + alpha * (1.0 - alpha) * sum_v)
        mean0[members] = np.where(full, end_mean, m0)
        var0[members] = np.where(full, end_var, v0)
        acc_m[members] = np.where(full, 0.0, sum_m)
        acc_v[members] = np.where(full, 0.0, sum_v)
    count += per_series
    mean_before[ok] = m_prev
    var_before[ok] = v_prev
    count_before[ok] = index
    return mean_before, var_before, count_before


def halflife_alpha(halflife: float) -> float:
    """The weight α of a new value for a half-life in values: ``1 − 2^(−1/halflife)``."""
    return 1.0 - 2.0 ** (-1.0 / halflife)


def unbiased(var: np.ndarray, count: np.ndarray, alpha: float) -> np.ndarray:
    """The weighted variance corrected for starting at 0: ``var / (1 − (1−α)^(count−1))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return var / -np.expm1(np.log1p(-alpha) * (count - 1))


@attrs.define(eq=False, kw_only=True)
class EWMA(Detector):
    """EWMA z-score: ``|x − m| / s`` where ``m`` and ``s²`` are the exponentially weighted mean
    and variance of the sensor's earlier values of that column (the row itself excluded, missing
    values skipped).

    Keys: ``columns`` (default the five metrics), ``halflife`` (values after which an old value
    weighs half as much, default 30), ``min_periods`` (values seen before scoring, default 30),
    ``threshold`` (default 4.0), ``name`` (default ``"ewma"``).

    State per sensor and column is five numbers, whatever the half-life. Results are exact and do
    not depend on how rows are cut into batches (see :func:`ewm_scan`).
    """

    kind = "ewma"

    halflife: float = attrs.field(default=30.0, converter=lambda v: real("halflife", v, above=0))
    min_periods: int = attrs.field(
        default=30, converter=lambda v: integer("min_periods", v, minimum=2)
    )
    threshold: float = attrs.field(default=4.0, converter=lambda v: real("threshold", v, above=0))

    @property
    def threshold_value(self) -> float:
        return self.threshold

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        return ewm_state((count, width))

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        ok = np.isfinite(xs)
        alpha = halflife_alpha(self.halflife)
        flat = {key: state[key].reshape(-1) for key in STATE_KEYS}
        m, v, n = ewm_scan(xs, ok, alpha, flat)
        state.update({key: value.reshape(g, c) for key, value in flat.items()})
        z = _z(xs - m, np.sqrt(unbiased(v, n, alpha)))
        z[~ok | (n < self.min_periods)] = np.nan
        return z.reshape(g, c, length)
