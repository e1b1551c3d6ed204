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
from ._series import Part, take_window
from .base import NOVELTY_MODES, Detector

__all__ = ["Context", "Quantiser", "compact"]

_TABLE = 4093  # counters per order and series (a prime): contexts are counted modulo it
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # SplitMix64's multipliers, hashing a context's symbols
_MIX2 = np.uint64(0x94D049BB133111EB)
_LIMIT = 2**30  # symbols are clipped to ±this (a billion bins beyond the grid: no limit in use)


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
        state["history"] = np.zeros((count, width, self._history), dtype=np.int32)
        state["symbols"] = np.zeros((count, width), dtype=np.int64)  # symbols so far
        state["last"] = np.zeros((count, width, self.orders), dtype=np.int64)
        for k in range(1, self.orders + 1):
            state[f"table{k}"] = np.zeros((count, width, _TABLE + 2), dtype=np.int32)
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


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place: every input bit moves every output bit."""
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def _keys(seq: np.ndarray, start: int, width: int, k: int) -> np.ndarray:
    """Order-``k`` counter of each of the ``width`` positions of ``seq`` (S, T) from ``start``, in
    ``[0, _TABLE)``: for ``k = 1`` the symbol modulo ``_TABLE``; for longer contexts a hash of
    their ``k`` symbols modulo ``_TABLE``."""
    first = start - k + 1
    if k == 1:
        return seq[:, start : start + width].astype(np.int64) % _TABLE
    mixed = np.zeros((seq.shape[0], width), dtype=np.uint64)
    for j in range(k):
        mixed += seq[:, first + j : first + j + width].astype(np.int64).view(np.uint64)
        _mix(mixed)
    return (mixed % np.uint64(_TABLE)).astype(np.int64)


def _earlier(new: np.ndarray, old: np.ndarray, groups: int) -> np.ndarray:
    """For each entry ``i`` of ``new`` (S, W; values < ``groups``): how many earlier entries of its
    row hold the same value in ``new``, minus how many entries of ``old`` before place ``i`` do.
    One sort of both (keys, place, which) packed into integers."""
    series, width = new.shape
    base = (np.arange(series, dtype=np.int64) * groups)[:, None]
    place = np.arange(width, dtype=np.int64)[None, :]
    packed = np.empty((2, series, width), dtype=np.int64)
    np.add(base, new, out=packed[0])
    np.add(base, old, out=packed[1])
    packed *= width
    packed += place
    packed <<= 1
    packed[1] += 1  # at the same place a new entry sorts before an old one: not counted
    flat = np.sort(packed.ravel())
    is_old = flat & 1
    group = flat >> 1
    index = group % width
    group //= width
    ones_old = np.cumsum(is_old)
    rank = np.arange(len(flat), dtype=np.int64)
    starts = np.empty(len(flat), dtype=bool)
    starts[0] = True
    np.not_equal(group[1:], group[:-1], out=starts[1:])
    start_at = np.maximum.accumulate(np.where(starts, rank, 0))
    old_before = ones_old - is_old - (ones_old - is_old)[start_at]  # old entries before, in group
    new_before = (rank - start_at) - old_before
    out = np.empty(series * width, dtype=np.int64)
    take = is_old == 0
    out[(group[take] // groups) * width + index[take]] = (new_before - old_before)[take]
    return out.reshape(series, width)


def context_novelty(
    xs: np.ndarray, state: dict[str, np.ndarray], bins: int, learn: int, orders: int, memory: int
) -> np.ndarray:
    """The statistic of :class:`Context` for series ``xs`` (S, L), updating ``state`` (arrays with
    S first) in place.

    The count of a context within the last ``memory`` symbols is kept per series in a table; a
    batch adds its own symbols' contexts and takes away those of the symbols that leave memory,
    so the work is in proportion to the batch, not to ``memory``."""
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
    new_per = np.bincount(rows[scored], minlength=series)
    width = int(new_per.max())
    if not width:
        return out
    hist = state["history"]
    h = hist.shape[1]
    # each series' symbols: the remembered ones, then this batch's (after learning)
    seq = np.zeros((series, h + width), dtype=hist.dtype)
    seq[:, :h] = hist
    srows = rows[scored]
    first = np.concatenate(([0], np.cumsum(new_per)[:-1]))
    srank = np.arange(len(srows)) - first[srows]
    seq[srows, h + srank] = np.clip(sym[scored], -_LIMIT, _LIMIT)
    before = state["symbols"]
    step = np.arange(width, dtype=np.int64)[None, :]
    live = step < new_per[:, None]  # this batch's symbols; as many old ones leave memory
    new_place = before[:, None] + step  # place of each new symbol in its series
    old_place = new_place - memory  # place of the symbol that leaves memory as it comes
    novelty = np.zeros((series, width))
    prefix = np.minimum(new_place, memory)  # order 0: symbols within memory before each
    last = state["last"]
    rows_all = np.arange(series)
    has_new = new_per > 0
    size = _TABLE
    for k in range(1, orders + 1):
        table = state[f"table{k}"]
        new = _keys(seq, h, width, k)
        old = _keys(seq, orders - 1, width, k)
        np.copyto(new, size, where=new_place < k - 1)  # too early for a context of order k
        np.copyto(old, size, where=old_place < k - 1)
        np.copyto(new, size + 1, where=~live)
        np.copyto(old, size + 1, where=~live)
        counts = np.take_along_axis(table, new, axis=1).astype(np.int64)
        counts += _earlier(new, old, size + 2)
        np.copyto(counts, 0, where=new_place < k - 1)
        # earlier occurrences of this context / of its first k − 1 symbols, a step earlier
        if k == 1:
            surprise = np.where(counts == 0, np.log2(prefix + 2.0), 0.0)
        else:
            prev = np.empty_like(counts)
            prev[:, 0] = last[:, k - 2]
            prev[:, 1:] = prefix[:, :-1]
            # a context occurs at most as often as its first k − 1 symbols did a step earlier:
            # more means contexts share a counter (hashing); count only what can be this one's
            np.minimum(counts, prev, out=counts)
            surprise = np.log2((prev + 2.0) / (counts + 1.0))
        novelty += surprise
        grow = np.bincount(
            (rows_all[:, None] * (size + 2) + new).ravel(), minlength=series * (size + 2)
        ) - np.bincount(
            (rows_all[:, None] * (size + 2) + old).ravel(), minlength=series * (size + 2)
        )
        table += grow.reshape(series, size + 2).astype(table.dtype)
        table[:, size:] = 0
        last[has_new, k - 1] = counts[has_new, new_per[has_new] - 1]
        prefix = counts
    novelty /= orders
    novelty[new_place < orders - 1] = np.nan
    state["history"] = take_window(seq, h + new_per, h)
    state["symbols"] = before + new_per
    # back to the batch's layout
    out[srows, cols[scored]] = novelty[srows, srank]
    return out
