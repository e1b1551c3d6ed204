"""``cusum``: two-sided CUSUM change detection against a slowly adapting baseline."""

from __future__ import annotations

import attrs
import numpy as np

from ..batch import Batch
from ..values import integer, real
from ._series import Part
from .base import Detector
from .ewma import halflife_alpha

__all__ = ["Cusum"]


@attrs.define(eq=False, kw_only=True)
class Cusum(Detector):
    """Two-sided CUSUM (Page's cumulative sum) of standardised values: catches sustained shifts,
    drifts and oscillations that no single value gives away.

    Each value is standardised against the sensor's baseline, ``z = (x − m) / s``, an
    exponentially weighted mean and standard deviation of its earlier values (a plain average over
    the first values). Then ``up = max(0, up + z − slack)`` and ``down = max(0, down − z − slack)``;
    the statistic is ``max(up, down)``, and when it reaches ``threshold`` the row is detected and
    both sums restart from 0. Once warm, baseline updates are clipped to ``clip`` standard
    deviations, so anomalies barely move the baseline.

    Keys: ``columns`` (default the five metrics), ``halflife`` (values, baseline memory, default
    120), ``slack`` (the ``k`` of CUSUM, in standard deviations, default 0.5), ``threshold`` (the
    ``h``, default 8.0), ``clip`` (default 3.0; 0 turns clipping off), ``min_periods`` (values
    before scoring, default 30), ``name`` (default ``"cusum"``).

    Rows are processed one after the other for each sensor, all sensors and columns at once, so the
    result is exact and does not depend on batching; state is five numbers per sensor and column.
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
        zeros = np.zeros((count, width))
        return {
            "mean": zeros.copy(),
            "var": zeros.copy(),
            "count": np.zeros((count, width), dtype=np.int64),
            "up": zeros.copy(),
            "down": zeros.copy(),
        }

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        ok_all = np.isfinite(xs)
        mean = state["mean"].reshape(-1).copy()
        var = state["var"].reshape(-1).copy()
        count = state["count"].reshape(-1).copy()
        up = state["up"].reshape(-1).copy()
        down = state["down"].reshape(-1).copy()
        alpha = halflife_alpha(self.halflife)
        slack, h, clip, warmup = self.slack, self.threshold, self.clip, self.min_periods
        stat = np.full((g * c, length), np.nan)
        zero = np.zeros(g * c)
        for j in range(length):
            ok = ok_all[:, j]
            value = np.where(ok, xs[:, j], mean)
            sd = np.sqrt(var)
            dev = value - mean
            scored = ok & (count >= warmup) & (sd > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(scored, dev / sd, 0.0)
            np.maximum(zero, np.where(scored, up + z - slack, up), out=up)
            np.maximum(zero, np.where(scored, down - z - slack, down), out=down)
            s = np.maximum(up, down)
            stat[:, j] = np.where(scored, s, np.nan)
            alarm = scored & (s >= h)
            if alarm.any():
                up[alarm] = 0.0
                down[alarm] = 0.0
            if clip > 0:
                limit = np.where(count >= warmup, clip * sd, np.inf)
                dev = np.clip(dev, -limit, limit)
            a = np.where(ok, np.maximum(alpha, 1.0 / (count + 1)), 0.0)
            mean += a * dev
            var[:] = (1.0 - a) * (var + a * dev * dev)
            count += ok
        state.update(
            mean=mean.reshape(g, c),
            var=var.reshape(g, c),
            count=count.reshape(g, c),
            up=up.reshape(g, c),
            down=down.reshape(g, c),
        )
        return stat.reshape(g, c, length)
