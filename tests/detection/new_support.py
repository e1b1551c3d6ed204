"""Helpers of the tests of the likelihood stage, the context, entropy and ensemble detectors."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from cosmobac.batch import Batch


def one_series(values, sensor="s-1"):
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    return Batch.from_columns(
        timestamp=1000 * np.arange(n),
        sensor_id=np.full(n, sensor, dtype=object),
        value=values,
    )


def run_cut(detector, batch, cuts):
    """``detector`` over ``batch`` cut at ``cuts`` (sorted row indices), outputs concatenated."""
    edges = [0, *sorted(set(c for c in cuts if 0 < c < len(batch))), len(batch)]
    return Batch.concat([detector(batch.select(slice(a, b))) for a, b in pairwise(edges)])


def periodic(n, period=24, seed=0, noise=0.05):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * t / period) + rng.normal(0, noise, n)
