"""``entropy``: relative entropy of the recent window's histogram against the series' past.

After Wang et al. (2011), "Statistical techniques for online anomaly detection in data centers":
values are binned, the histogram ``P`` of the last ``window`` values is compared with a reference
histogram ``Q`` by the relative entropy (Kullback–Leibler divergence), and ``2·n·KL(P‖Q)``, which
is approximately χ² with ``bins − 1`` degrees of freedom when the window comes from ``Q``, is the
statistic. Implemented from that description, with one reference instead of the paper's set of
hypotheses: ``Q`` is the histogram of the ``reference`` values just before the window, so it
follows slow changes of the series while a sudden change of distribution stands out.

Binning: each series' first ``learn`` values set the range, split into ``bins`` equal bins, plus
one bin below and one above it (see :class:`cosmobac.detectors.context.Quantiser`). ``Q`` is
smoothed by half a count per bin so a bin never seen before has a finite, large cost.

Vectorised across series and along them: window histograms are differences of running integer
counts, exact, so results do not depend on how rows are cut into batches. State per sensor and
column: the grid (4 numbers) and the last ``window + reference`` bins (8 bytes each).
"""

from __future__ import annotations

import attrs
import numpy as np

from ..batch import Batch
from ..values import integer, real
from ._series import Part
from .base import Detector
from .context import Quantiser, compact

__all__ = ["RelativeEntropy", "relative_entropy"]

_SMOOTH = 0.5


@attrs.define(eq=False, kw_only=True)
class RelativeEntropy(Detector):
    """Relative entropy of the recent window (see the module docstring).

    Keys: ``columns`` (default the five metrics), ``bins`` (default 10), ``window`` (values in the
    recent histogram, default 52), ``reference`` (values in the reference histogram before it,
    default 1000; scoring starts once it holds ``window`` values), ``learn`` (values that set the
    bins, default 100), ``threshold`` (on ``2·n·KL``, default 30: beyond the 0.1 % point of χ²
    with 11 degrees of freedom), ``name`` (default ``"entropy"``), and the likelihood keys.
    """

    kind = "entropy"

    bins: int = attrs.field(default=10, converter=lambda v: integer("bins", v, minimum=1))
    window: int = attrs.field(default=52, converter=lambda v: integer("window", v, minimum=2))
    reference: int = attrs.field(
        default=1000, converter=lambda v: integer("reference", v, minimum=2)
    )
    learn: int = attrs.field(default=100, converter=lambda v: integer("learn", v, minimum=1))
    threshold: float = attrs.field(default=30.0, converter=lambda v: real("threshold", v, above=0))

    @property
    def threshold_value(self) -> float:
        return self.threshold

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        state = Quantiser(self.bins, self.learn).initial((count, width))
        state["history"] = np.zeros((count, width, self.window + self.reference), dtype=np.int64)
        state["symbols"] = np.zeros((count, width), dtype=np.int64)
        return state

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        flat = {key: value.reshape(g * c, *value.shape[2:]) for key, value in state.items()}
        stat = relative_entropy(xs, flat, self.bins, self.learn, self.window, self.reference)
        state.update({key: value.reshape(g, c, *value.shape[1:]) for key, value in flat.items()})
        return stat.reshape(g, c, length)


def relative_entropy(
    xs: np.ndarray,
    state: dict[str, np.ndarray],
    bins: int,
    learn: int,
    window: int,
    reference: int,
) -> np.ndarray:
    """The statistic of :class:`RelativeEntropy` for series ``xs`` (S, L), updating ``state``."""
    series, length = xs.shape
    out = np.full((series, length), np.nan)
    ok = ~np.isnan(xs)
    if not ok.any():
        return out
    rows, cols, rank, per = compact(ok)
    quant = Quantiser(bins, learn)
    qstate = {key: state[key] for key in Quantiser.KEYS}
    index = qstate["count"][rows] + rank
    sym, scored = quant.symbols(xs[rows, cols], rows, index, qstate)
    qstate["count"] += per
    sym = np.clip(sym, -1, bins) + 1  # 0 below the range, bins + 1 above it
    hist = state["history"]
    h = hist.shape[1]
    new_per = np.bincount(rows[scored], minlength=series)
    width = int(new_per.max())
    if not width:
        return out
    categories = bins + 3  # the last one: no symbol yet
    empty = categories - 1
    seq = np.full((series, h + width), empty, dtype=np.int64)
    seq[:, :h] = hist
    before = state["symbols"]
    place = before[:, None] - h + np.arange(h)[None, :]
    seq[:, :h][place < 0] = empty
    srows = rows[scored]
    first = np.concatenate(([0], np.cumsum(new_per)[:-1]))
    srank = np.arange(len(srows)) - first[srows]
    seq[srows, h + srank] = sym[scored]
    # running counts per bin: counts[s, p, b] = symbols b among seq[s, :p]
    total = h + width
    counts = np.zeros((series, total + 1, categories), dtype=np.int32)
    np.put_along_axis(counts[:, 1:, :], seq[:, :, None], 1, axis=2)
    np.cumsum(counts, axis=1, out=counts)
    # after each new position (end = h + 1 … total): contiguous slices, no copies of indices
    at_end = counts[:, h + 1 : total + 1, :empty]
    at_mid = counts[:, h + 1 - window : total + 1 - window, :empty]
    at_start = counts[:, h + 1 - window - reference : total + 1 - window - reference, :empty]
    recent = (at_end - at_mid).astype(np.float64)
    ref = (at_mid - at_start).astype(np.float64)
    n_recent = recent.sum(axis=2)
    n_ref = ref.sum(axis=2)
    p = recent / np.maximum(n_recent, 1)[:, :, None]
    q = (ref + _SMOOTH) / (n_ref + _SMOOTH * empty)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p * np.log(p / q)
    terms[recent == 0] = 0.0
    stat = 2.0 * n_recent * terms.sum(axis=2)
    stat[(n_recent < window) | (n_ref < window)] = np.nan
    index_keep = (h + new_per)[:, None] - h + np.arange(h)[None, :]
    state["history"] = np.take_along_axis(seq, index_keep, axis=1)
    state["symbols"] = before + new_per
    out[srows, cols[scored]] = stat[srows, srank]
    return out
