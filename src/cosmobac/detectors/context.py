"""``context``: novelty of the recent pattern of values (a pattern-memory detector, CAD OSE family).

After a learning period each value becomes a symbol, its bin on a fixed grid. The *context of
order k* at a row is the run of the last ``k`` symbols ending at it: the current symbol together
with the ``k − 1`` before it. The detector remembers, per sensor and column, the symbols of the
last ``memory`` values, and asks of every order ``k = 1 … orders`` when that same context last
occurred. A context never seen within memory is novel (1); one seen ``gap`` values ago counts
``log(gap) / log(memory)`` (a context that recurs every day is less novel than one last seen a
month ago, more than one that repeats all the time). The statistic is the mean over the orders,
in [0, 1]: 1 for a value in a bin never seen before, high for a familiar value in an unfamiliar
order (a pattern broken), 0 for a context that just occurred.

This follows the Contextual Anomaly Detector's idea (Smirnov and Bogachev's CAD OSE for NAB:
quantise recent values into a context, remember which contexts were seen, score how new the
current one is), implemented from that description with a different, vectorisable memory: exact
recency lookup of hashed contexts instead of CAD's learned dictionary of semi-contexts.
"""

from __future__ import annotations

import attrs
import numpy as np

from ..batch import Batch
from ..values import choice, integer, real
from ._series import Part
from .base import NOVELTY_MODES, Detector

__all__ = ["Context", "Quantiser", "compact"]

_PRIME = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the rolling context hash
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def compact(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each series' valid positions packed to the left: ``rows, cols`` of the valid entries (in
    order), their rank within their series, and the valid count per series."""
    rows, cols = np.nonzero(ok)
    per = ok.sum(axis=1)
    rank = np.cumsum(ok, axis=1)[rows, cols] - 1
    return rows, cols, rank, per


class Quantiser:
    """Symbols from values on a grid learned from each series' first ``learn`` values: their
    range split into ``bins`` equal bins, extended without bound on both sides (a value far out
    gets a symbol of its own). A series whose first values are all equal gets bins 1 % of that
    value wide (1 wide around 0).

    State per series: ``lo``/``hi`` (the learning values' range, exact whatever the batches),
    ``width`` (0 until learned) and ``count`` (valid values seen)."""

    KEYS = ("lo", "hi", "width", "count")

    def __init__(self, bins: int, learn: int) -> None:
        self.bins = bins
        self.learn = learn

    def initial(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        return {
            "lo": np.full(shape, np.inf),
            "hi": np.full(shape, -np.inf),
            "width": np.zeros(shape),
            "count": np.zeros(shape, dtype=np.int64),
        }

    def symbols(
        self, values: np.ndarray, sid: np.ndarray, index: np.ndarray, state: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Symbols of the valid ``values`` (1-D, grouped by series ``sid`` in order; ``index`` is
        each one's place in its series), and which of them come after the learning period."""
        lo, hi, width = state["lo"], state["hi"], state["width"]
        learning = index < self.learn
        if learning.any():
            ls, lv = sid[learning], values[learning]
            np.minimum.at(lo, ls, lv)
            np.maximum.at(hi, ls, lv)
            done = np.unique(ls[index[learning] == self.learn - 1])
            span = (hi[done] - lo[done]) / self.bins
            fallback = np.where(lo[done] == 0, 1.0, np.abs(lo[done]) * 0.01)
            width[done] = np.where(span > 0, span, fallback)
        after = ~learning
        sym = np.zeros(len(values), dtype=np.int64)
        if after.any():
            s = sid[after]
            with np.errstate(invalid="ignore", over="ignore"):
                q = np.floor((values[after] - lo[s]) / width[s])
            sym[after] = np.clip(q, -(2**62), 2**62).astype(np.int64)
        return sym, after


@attrs.define(eq=False, kw_only=True)
class Context(Detector):
    """Context novelty (see the module docstring).

    Keys: ``columns`` (default the five metrics), ``bins`` (bins the learned range is split into,
    default 12), ``orders`` (longest context, in values, default 4), ``memory`` (values
    remembered, default 2000), ``learn`` (values that set the grid before scoring, default 100),
    ``threshold`` (default 0.9: nearly every order novel), ``novelty`` (half-life of the alarm
    novelty stage, default 200 values; 0 turns it off) and ``novelty_mode`` (default
    ``suppress``: a novel stretch alarms once), ``name`` (default ``"context"``), and
    the likelihood keys of every detector.

    State per sensor and column: the grid (4 numbers) and the last ``memory + orders − 1``
    symbols (8 bytes each). Symbols are integers and the recency lookup is exact, so results do
    not depend on how rows are cut into batches.
    """

    kind = "context"

    bins: int = attrs.field(default=10, converter=lambda v: integer("bins", v, minimum=1))
    orders: int = attrs.field(
        default=2, converter=lambda v: integer("orders", v, minimum=1, maximum=32)
    )
    memory: int = attrs.field(default=10000, converter=lambda v: integer("memory", v, minimum=2))
    learn: int = attrs.field(default=100, converter=lambda v: integer("learn", v, minimum=1))
    threshold: float = attrs.field(default=0.9, converter=lambda v: real("threshold", v, above=0))
    # a context is news once: repeats of a novel stretch count only as far as they are newer
    novelty_mode: str = attrs.field(
        default="suppress", converter=lambda v: choice("novelty_mode", v, NOVELTY_MODES)
    )

    @property
    def threshold_value(self) -> float:
        return self.threshold

    @property
    def _history(self) -> int:
        return self.memory + self.orders - 1

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        state = Quantiser(self.bins, self.learn).initial((count, width))
        state["history"] = np.zeros((count, width, self._history), dtype=np.int64)
        state["symbols"] = np.zeros((count, width), dtype=np.int64)  # symbols so far
        return state

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        flat = {key: value.reshape(g * c, *value.shape[2:]) for key, value in state.items()}
        stat = context_novelty(xs, flat, self.bins, self.learn, self.orders, self.memory)
        state.update({key: value.reshape(g, c, *value.shape[1:]) for key, value in flat.items()})
        return stat.reshape(g, c, length)


def context_novelty(
    xs: np.ndarray, state: dict[str, np.ndarray], bins: int, learn: int, orders: int, memory: int
) -> np.ndarray:
    """The statistic of :class:`Context` for series ``xs`` (S, L), updating ``state`` (arrays with
    S first) in place."""
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
    # each series' symbols: the remembered ones, then this batch's (after learning)
    hist = state["history"]
    h = hist.shape[1]
    new_per = np.bincount(rows[scored], minlength=series)
    width = int(new_per.max())
    if not width:
        return out
    seq = np.zeros((series, h + width), dtype=np.int64)
    seq[:, :h] = hist
    srows = rows[scored]
    first = np.concatenate(([0], np.cumsum(new_per)[:-1]))
    srank = np.arange(len(srows)) - first[srows]
    seq[srows, h + srank] = sym[scored]
    # global place of each seq entry in its series' symbol sequence (negative: none yet)
    before = state["symbols"]
    place = before[:, None] - h + np.arange(h + width)[None, :]
    filled = np.arange(h + width)[None, :] < (h + new_per)[:, None]
    novelty = np.zeros((series, width))
    key = np.zeros((series, h + width), dtype=np.uint64)
    series_salt = (np.arange(series, dtype=np.uint64) + np.uint64(1)) * _MIX
    total = h + width
    pos = np.broadcast_to(np.arange(total, dtype=np.int64), (series, total))
    # order 0: symbols within memory before each position
    prefix = np.minimum(np.maximum(place, 0), memory).astype(np.float64)
    for k in range(1, orders + 1):
        # rolling hash of the k symbols ending at each position
        shifted = np.zeros_like(key)
        shifted[:, k - 1 :] = seq[:, : total - k + 1].astype(np.uint64)
        key = key * _PRIME + shifted + np.uint64(k)
        valid = filled & (place >= k - 1) & (pos >= k - 1)
        flat_valid = np.flatnonzero(valid.ravel())
        keys = (key ^ series_salt[:, None]).ravel()[flat_valid]
        order = np.argsort(keys, kind="stable")  # equal keys keep their places' order
        sorted_keys = keys[order]
        sorted_pos = pos.ravel()[flat_valid][order]
        group = np.zeros(len(order), dtype=np.int64)
        group[1:] = np.cumsum(sorted_keys[1:] != sorted_keys[:-1])
        stride = total + memory + 1
        composite = group * stride + sorted_pos + memory
        earliest = np.searchsorted(composite, composite - memory)  # first within memory
        counts = np.full(series * total, np.nan)
        counts[flat_valid[order]] = np.arange(len(order)) - earliest
        counts = counts.reshape(series, total)
        # earlier occurrences of this context / of its first k − 1 symbols, a step earlier
        before_prefix = np.full((series, total), np.nan)
        before_prefix[:, 1:] = prefix[:, :-1] if k > 1 else prefix[:, 1:]
        surprise = np.log2((before_prefix[:, h:] + 2.0) / (counts[:, h:] + 1.0))
        if k == 1:  # the marginal: only a value never seen within memory counts
            surprise = np.where(counts[:, h:] == 0, surprise, 0.0)
        novelty += surprise
        prefix = counts
    novelty /= orders
    # keep the last h symbols
    ends = h + new_per
    index_keep = ends[:, None] - h + np.arange(h)[None, :]
    state["history"] = np.take_along_axis(seq, index_keep, axis=1)
    state["symbols"] = before + new_per
    # back to the batch's layout
    out[rows[scored], cols[scored]] = novelty[srows, srank]
    return out
