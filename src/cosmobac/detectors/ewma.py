"""``ewma``: z-score of each value against an exponentially weighted mean and variance."""

from __future__ import annotations

import math

import attrs
import numpy as np

from ..batch import Batch
from ._series import Part
from .base import Detector, positive, positive_int
from .zscore import _z

__all__ = ["EWMA", "ewm_scan"]

_SPAN = 40.0  # a block of the closed form spans at most e^40 in weight: far from overflow


def ewm_scan(
    x: np.ndarray,
    ok: np.ndarray,
    alpha: float,
    mean: np.ndarray,
    var: np.ndarray,
    count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponentially weighted mean and variance of each series of ``x`` (S, L), skipping
    positions where ``ok`` is false, vectorised across series and along each series.

    For each valid value, with ``d = x − mean``: ``mean += α·d``; ``var = (1 − α)(var + α·d²)``
    (the incremental form of West/Finch). A series' first value sets ``mean`` (``var`` stays 0).

    ``mean``, ``var``, ``count`` (S,) are the state before ``x``; they are updated in place to the
    state after it. Returns the mean, variance and count *before* each position (S, L).

    Along a series the recursion is solved in closed form over blocks (``mean_j = mean_0 +
    (1−α)^k_j · α · Σ (1−α)^−k_i (x_i − mean_0)``), so the result equals the row-by-row recursion up
    to floating-point rounding.
    """
    series, length = x.shape
    c = 1.0 - alpha
    log_c = math.log(c)
    block = max(1, min(length, int(_SPAN / -log_c))) if length else 1
    mean_before = np.empty((series, length))
    var_before = np.empty((series, length))
    count_before = np.empty((series, length), dtype=np.int64)
    for b0 in range(0, length, block):
        xb = x[:, b0 : b0 + block]
        okb = ok[:, b0 : b0 + block]
        if not okb.any():
            mean_before[:, b0 : b0 + block] = mean[:, None]
            var_before[:, b0 : b0 + block] = var[:, None]
            count_before[:, b0 : b0 + block] = count[:, None]
            continue
        fresh = (count == 0) & okb.any(axis=1)
        if fresh.any():
            first = okb.argmax(axis=1)
            mean[fresh] = xb[fresh, first[fresh]]
        k = np.cumsum(okb, axis=1)
        grow = np.exp(-log_c * k)  # (1-α)^-k
        shrink = np.exp(log_c * k)  # (1-α)^k
        dev = np.where(okb, xb - mean[:, None], 0.0)
        m_after = mean[:, None] + shrink * (alpha * np.cumsum(dev * grow, axis=1))
        m_prev = np.empty_like(m_after)
        m_prev[:, 0] = mean
        m_prev[:, 1:] = m_after[:, :-1]
        d = np.where(okb, xb - m_prev, 0.0)
        v_after = shrink * (var[:, None] + alpha * c * np.cumsum(d * d * grow, axis=1))
        v_prev = np.empty_like(v_after)
        v_prev[:, 0] = var
        v_prev[:, 1:] = v_after[:, :-1]
        n_after = count[:, None] + k
        mean_before[:, b0 : b0 + block] = m_prev
        var_before[:, b0 : b0 + block] = v_prev
        count_before[:, b0 : b0 + block] = n_after - okb
        mean[:] = m_after[:, -1]
        var[:] = v_after[:, -1]
        count[:] = n_after[:, -1]
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

    State per sensor and column is three numbers (mean, variance, count), whatever the half-life.
    Results do not depend on how rows are cut into batches, up to floating-point rounding.
    """

    kind = "ewma"

    halflife: float = attrs.field(default=30.0, converter=positive("halflife"))
    min_periods: int = attrs.field(default=30, converter=positive_int("min_periods", minimum=2))
    threshold: float = attrs.field(default=4.0, converter=positive("threshold"))

    @property
    def threshold_value(self) -> float:
        return self.threshold

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        return {
            "mean": np.zeros((count, width)),
            "var": np.zeros((count, width)),
            "count": np.zeros((count, width), dtype=np.int64),
        }

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        ok = np.isfinite(xs)
        alpha = halflife_alpha(self.halflife)
        mean = state["mean"].reshape(-1)
        var = state["var"].reshape(-1)
        count = state["count"].reshape(-1)
        m, v, n = ewm_scan(xs, ok, alpha, mean, var, count)
        state.update(mean=mean.reshape(g, c), var=var.reshape(g, c), count=count.reshape(g, c))
        z = _z(xs - m, np.sqrt(unbiased(v, n, alpha)))
        z[~ok | (n < self.min_periods)] = np.nan
        return z.reshape(g, c, length)
