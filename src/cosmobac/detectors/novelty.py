"""Alarm novelty: a statistic counts only as far as it rises above the series' recent peak.

One anomalous event rarely gives one high statistic: a level shift keeps a z-score high until
the baseline adapts, a burst of noise gives dozens of high values, a daily pattern that is new
once scores high every day for a while. A consumer who alarms on every high value is told the
same thing many times; NAB, which charges every alarm outside a labelled window and rewards only
the first inside one, counts each repeat as a false alarm.

The stage keeps, per series, a *fading peak*: the largest earlier statistic, each multiplied by
``2^(−age / halflife)`` (its age in valid values). It outputs the excess of the statistic over it,

    ``s' = max(0, s − max_{a ≥ 1} s_{i−a} · 2^(−a/halflife))``

so a value counts as much as it is new: the first value of an event counts fully, the next ones
only as far as they climb higher, and after a few half-lives a series that calmed down starts
afresh. ``s'`` is in the detector's own unit. Two modes:

* ``suppress``: the statistic becomes ``s'``, so a row is detected when its statistic jumps at
  least ``threshold`` above the fading peak: one event, one alarm;
* ``rank``: what is detected does not change (``s ≥ threshold``), only how alarms rank: a row at
  or above the threshold gets ``max(threshold, s − max(0, peak − threshold))``, the threshold
  plus its rise above the part of the fading peak that was itself an alarm. Rows below the
  threshold, and alarms after a calm stretch (peak below the threshold), keep their statistic;
  an alarm that repeats a recent, larger one scores just the threshold (0.5).

Exact and vectorised: in log space the fading peak is a running maximum,
``ln peak_i = max_{j<i} (ln s_j + j·c) − i·c`` with ``c = ln 2 / halflife`` and ``j`` the value's
place in its series (counted in the state), so a cumulative maximum along each series gives it,
and the state is two numbers per series (the running maximum and the count). Rows with a missing
statistic give NaN and leave the state untouched. Statistics are capped at 1e300 (so ``inf``
fades like a very large value).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NoveltyScan"]

_CAP = 1e300


class NoveltyScan:
    """The novelty stage for a half-life (see the module docstring).

    :meth:`initial` makes state for new series, :meth:`run` turns statistics (S, L) into their
    excess over the fading peak (S, L), updating the state (arrays with S first) in place.
    """

    KEYS = ("peak", "seen")
    MODES = ("rank", "suppress")

    def __init__(self, halflife: float, mode: str = "suppress", threshold: float = 1.0) -> None:
        if mode not in self.MODES:
            raise ValueError(f"novelty mode must be one of {self.MODES}, got {mode!r}")
        self.halflife = float(halflife)
        self.rate = math.log(2.0) / self.halflife
        self.mode = mode
        self.threshold = float(threshold)

    @staticmethod
    def initial(count: int) -> dict[str, np.ndarray]:
        return {
            "peak": np.full(count, -np.inf),  # max over earlier values of ln s_j + j·c
            "seen": np.zeros(count, dtype=np.int64),  # valid statistics so far
        }

    def run(self, stat: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        series, length = stat.shape
        out = np.full((series, length), np.nan)
        ok = ~np.isnan(stat)
        if not ok.any():
            return out
        capped = np.minimum(stat, _CAP)
        place = state["seen"][:, None] + np.cumsum(ok, axis=1) - 1  # j of each valid value
        shift = place * self.rate
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.maximum(capped, 0.0)) + shift
        logs[~ok] = -np.inf
        running = np.empty((series, length + 1))
        running[:, 0] = state["peak"]
        running[:, 1:] = logs
        np.maximum.accumulate(running, axis=1, out=running)
        with np.errstate(over="ignore", invalid="ignore"):
            peak = np.exp(running[:, :-1] - shift)  # before each value: earlier ones only
        if self.mode == "suppress":
            result = np.maximum(capped - peak, 0.0)
        else:
            t = self.threshold
            lowered = np.maximum(capped - np.maximum(peak - t, 0.0), t)
            result = np.where(capped >= t, lowered, capped)
        out[ok] = result[ok]
        state["peak"] = running[:, -1].copy()
        state["seen"] = state["seen"] + ok.sum(axis=1)
        return out
