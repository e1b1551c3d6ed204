"""Anomaly likelihood: raw detector statistics turned into a calibrated tail probability.

A detector's statistic ranks rows within one series, but its scale differs from series to series:
a z-score of 5 is rare on a smooth temperature and common on bursty network traffic. The
*anomaly likelihood* (the idea of Numenta HTM's "anomaly likelihood", implemented here from its
published description) asks instead how unusual the detector's *recent* output is compared with
its own long-run behaviour on that series:

1. each valid statistic ``s`` becomes a bounded raw score ``u = s / (s + threshold)`` in [0, 1)
   (the detector's ``<name>_score`` without likelihood);
2. a short average ``a`` of the last ``short`` raw scores (the row itself included);
3. the long-run mean ``μ`` and variance ``σ²`` of ``a`` over the series' earlier rows, as an
   exponentially weighted mean and variance with a half-life of ``memory`` values (the row itself
   excluded);
4. ``z = (a − μ) / max(σ, floor)`` and the Gaussian tail probability ``p = Q(z) = P(Z > z)``;
5. the output is the *surprise* ``−log10 p``: 0.3 at the mean, 4 for a one-in-ten-thousand
   average. It keeps ranking far into the tail (computed in log space, no saturation), and since
   it is a probability it means the same on every series, so one threshold works across series.

Rows with a missing statistic are skipped (NaN out, state untouched); the first ``warmup`` valid
statistics of a series give NaN while the long-run estimate settles.

Everything is vectorised across series and along them, and exact however rows are cut into
batches: the short average sums the same values in the same order (the last ``short − 1`` raw
scores are carried in the state) and the long-run mean and variance come from
:func:`cosmobac.detectors.ewma.ewm_scan`, which is exact across batches.
"""

from __future__ import annotations

import math

import numpy as np

from .ewma import ewm_scan, ewm_state, halflife_alpha, unbiased

__all__ = ["LikelihoodScan", "log10_tail", "surprise_to_p"]

_LOG10 = math.log(10.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Börjesson & Sundberg (1979): Q(x) ≈ φ(x) / ((1 − a)x + a·√(x² + b)) for x ≥ 0, relative error
# below 0.3 % everywhere, and usable in log space arbitrarily far into the tail.
_BS_A = 0.339
_BS_B = 5.510


def log10_tail(z: np.ndarray) -> np.ndarray:
    """``log10 P(Z > z)`` for a standard normal ``Z``, elementwise, finite for every finite ``z``
    (about −z²/(2·ln 10) far in the upper tail), monotone decreasing; NaN stays NaN."""
    z = np.asarray(z, dtype=np.float64)
    x = np.abs(z)
    with np.errstate(invalid="ignore", over="ignore"):
        log_q = (
            -0.5 * x * x
            - _HALF_LOG_2PI
            - np.log((1.0 - _BS_A) * x + _BS_A * np.sqrt(x * x + _BS_B))
        )
        lower = z < 0  # P(Z > z) = 1 − Q(|z|)
        if lower.any():
            log_q[lower] = np.log1p(-np.exp(log_q[lower]))
    return log_q / _LOG10


def surprise_to_p(surprise: np.ndarray | float) -> np.ndarray:
    """The tail probability a surprise stands for: ``10^−surprise``."""
    return np.power(10.0, -np.asarray(surprise, dtype=np.float64))


class LikelihoodScan:
    """The likelihood stage for a fixed set of parameters (see the module docstring).

    :meth:`initial` makes state for new series, :meth:`run` turns statistics (S, L) into
    surprises (S, L), updating the state (arrays with S as their first axis) in place.
    """

    KEYS = ("mean0", "var0", "acc_m", "acc_v", "count", "recent", "seen")

    def __init__(
        self,
        threshold: float,
        short: int = 10,
        memory: float = 1000.0,
        warmup: int = 100,
        floor: float = 0.01,
    ) -> None:
        self.threshold = float(threshold)
        self.short = int(short)
        self.memory = float(memory)
        self.warmup = int(warmup)
        self.floor = float(floor)
        self.alpha = halflife_alpha(self.memory)

    def initial(self, count: int) -> dict[str, np.ndarray]:
        state = ewm_state((count,))
        state["recent"] = np.full((count, max(self.short - 1, 0)), np.nan)
        state["seen"] = np.zeros(count, dtype=np.int64)  # valid statistics so far
        return state

    def run(self, stat: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        series, length = stat.shape
        out = np.full((series, length), np.nan)
        ok = ~np.isnan(stat)
        if not ok.any():
            return out
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.log1p(np.minimum(stat, 1e300) / self.threshold)
        # compact each series' valid raw scores after the carried recent ones
        k = self.short
        per = ok.sum(axis=1)
        width = int(per.max())
        keep = k - 1
        seq = np.full((series, keep + width), np.nan)
        if keep:
            seq[:, :keep] = state["recent"]
        rank = np.cumsum(ok, axis=1) - 1
        rows, cols = np.nonzero(ok)
        seq[rows, keep + rank[rows, cols]] = raw[rows, cols]
        total = np.zeros((series, width))
        count = np.zeros((series, width))
        for j in range(k):  # the window's values in a fixed order: exact across batches
            part = seq[:, j : j + width]
            present = ~np.isnan(part)
            total += np.where(present, part, 0.0)
            count += present
        avg = total / np.maximum(count, 1)
        if keep:
            ends = keep + per
            index = ends[:, None] - keep + np.arange(keep)
            state["recent"] = np.take_along_axis(seq, index, axis=1)
        # long-run mean and variance of the averages, before each of them
        a = np.full((series, length), np.nan)
        a[rows, cols] = avg[rows, rank[rows, cols]]
        ewm = {key: state[key] for key in ("mean0", "var0", "acc_m", "acc_v", "count")}
        mean, var, n = ewm_scan(a, ok, self.alpha, ewm)
        state.update(ewm)
        sd = np.sqrt(np.maximum(unbiased(var, n, self.alpha), 0.0))
        sd = np.where(np.isfinite(sd), np.maximum(sd, self.floor), self.floor)
        z = (a - mean) / sd
        surprise = -log10_tail(z)
        seen = state["seen"][:, None] + rank + 1  # valid statistics up to and including this one
        surprise[~ok | (seen <= self.warmup)] = np.nan
        state["seen"] = state["seen"] + per
        return surprise
