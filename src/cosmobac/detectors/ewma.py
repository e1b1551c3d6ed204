"""``ewma``: z-score of each value against an exponentially weighted mean and variance.

The scan it rests on is in :mod:`cosmobac.detectors._ewm` and the spread floors in
:mod:`cosmobac.detectors._floors`; their public names are importable from here too.
"""

from __future__ import annotations

import attrs
import numpy as np

from ..batch import Batch
from ..values import integer, real
from ._ewm import (
    MEAN_KEYS,
    STATE_KEYS,
    Clip,
    block_size,
    ewm_scan,
    ewm_state,
    halflife_alpha,
    unbiased,
)
from ._ewm import _tables as _tables
from ._floors import DEFAULT_FLOOR as DEFAULT_FLOOR
from ._floors import DEFAULT_FLOOR_HALFLIFE as DEFAULT_FLOOR_HALFLIFE
from ._floors import FlooredDetector, SpreadFloor, _z
from ._series import Part

__all__ = [
    "EWMA",
    "MEAN_KEYS",
    "STATE_KEYS",
    "Clip",
    "SpreadFloor",
    "block_size",
    "ewm_scan",
    "ewm_state",
    "halflife_alpha",
    "unbiased",
]


@attrs.define(eq=False, kw_only=True)
class EWMA(FlooredDetector):
    """EWMA z-score: ``|x − m| / s`` where ``m`` and ``s²`` are the exponentially weighted mean
    and variance of the sensor's earlier values of that column (the row itself excluded, missing
    values skipped).

    Keys: ``columns`` (default the five metrics), ``halflife`` (values after which an old value
    weighs half as much, default 100), ``min_periods`` (values seen before scoring, default 30),
    ``threshold`` (default 4.0), ``spread_floor`` and ``floor_halflife`` (the least standard
    deviation divided by, see :class:`SpreadFloor`: default 0.25 × its long-run level over a
    half-life of 2000 values, and at least the series' resolution), ``name`` (default
    ``"ewma"``).

    State per sensor and column is twelve numbers, whatever the half-life. Results are exact and do
    not depend on how rows are cut into batches (see :func:`ewm_scan`).
    """

    kind = "ewma"

    halflife: float = attrs.field(default=100.0, converter=lambda v: real("halflife", v, above=0))
    min_periods: int = attrs.field(
        default=30, converter=lambda v: integer("min_periods", v, minimum=2)
    )
    threshold: float = attrs.field(default=4.0, converter=lambda v: real("threshold", v, above=0))

    @property
    def threshold_value(self) -> float:
        return self.threshold

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        return {
            **ewm_state((count, width)),
            **self._floor_state((count, width)),
        }

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
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.sqrt(unbiased(v, n, alpha))
        unscored = n < self.min_periods
        unscored |= ~ok
        spread[unscored] = np.nan
        z = _z(xs - m, self._floor(xs, ok, spread, state))
        z[unscored] = np.nan
        return z.reshape(g, c, length)
