"""Downsampling a time series for a chart, shared by the live dashboard and the static report:
tsdownsample's MinMaxLTTB, which keeps the line's shape, its peaks and dips, with missing values
kept as gaps. tsdownsample is imported on first use (the ``report`` and ``dashboard`` extras)."""

from __future__ import annotations

import numpy as np

__all__ = ["downsample"]


def downsample(t: np.ndarray, v: np.ndarray, points: int) -> np.ndarray:
    """Positions of at most ``points`` of the time-ordered ``t``/``v`` keeping the line's shape
    (tsdownsample's MinMaxLTTB; missing values stay gaps)."""
    n = len(v)
    if n <= points:
        return np.arange(n)
    from tsdownsample import NaNMinMaxLTTBDownsampler

    index = NaNMinMaxLTTBDownsampler().downsample(
        t.astype(np.float64), v.astype(np.float64), n_out=max(points, 4)
    )
    return np.unique(np.asarray(index, dtype=np.int64))[:points]
