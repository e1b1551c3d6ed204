"""``context``: novelty of the recent pattern of values (a pattern-memory detector, CAD OSE family).

After a learning period each value becomes a symbol, its bin on a fixed grid. The *context of
order k* at a row is the run of the last ``k`` symbols ending at it: the current symbol together
with the ``k − 1`` before it. For every order ``k = 1 … orders`` the detector counts ``n``, the
earlier occurrences of this context among the series' last ``memory`` symbols, and ``n_prefix``,
those of its first ``k − 1`` symbols a step earlier, and scores the surprise
``log2((n_prefix + 2) / (n + 1))`` (for order 1 only a symbol not seen within memory counts:
``log2(min(symbols so far, memory) + 2)``). The statistic is the mean over the orders, in bits:
high for a value in a bin not seen within memory, or a familiar value in an unfamiliar order (a
pattern broken); low for a context that recurs.

Memory: per sensor and column, a ring of the last ``memory + orders − 1`` symbols and, per order,
a table of 4096 counters holding how many contexts within memory fall on each. A batch adds its
contexts and takes away those of the symbols leaving memory as it goes; one sort of the batch's
entering and leaving contexts gives each row its count. The work is in proportion to the batch,
not to ``memory``, and the counts are integers updated value by value, so results do not depend
on how rows are cut into batches. Order 1 counts a symbol by its bin number modulo 4096 (exact
for any grid a series stays within); longer contexts by a hash, so two contexts may share a
counter. A shared counter only ever makes a context look more familiar, and a context's count is
capped at its prefix's (which it cannot exceed), so the surprise stays ≥ 0.

This follows the Contextual Anomaly Detector's idea (Smirnov and Bogachev's CAD OSE for NAB:
quantise recent values into a context, remember which contexts were seen, score how new the
current one is), implemented from that description with a different, vectorisable memory:
counts of hashed contexts over a sliding window instead of CAD's learned dictionary of
semi-contexts.
"""

from __future__ import annotations

import logging

import attrs
import numpy as np

from ..batch import Batch
from ..values import choice, integer, real
from ._series import Part
from .base import NOVELTY_MODES, Detector

__all__ = ["Context", "Quantiser", "compact"]

log = logging.getLogger("cosmobac.detectors")

_TABLE_BITS = 12
_TABLE = 1 << _TABLE_BITS  # counters per order and series; one more counts nothing (padding)
_GROUP_BITS = _TABLE_BITS + 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio (odd): Fibonacci hashing
_FOLD = np.uint64(0xBF58476D1CE4E5B9)  # odd multiplier folding a fifth and later symbol in


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
        if len(index) and int(index.min()) >= self.learn:  # every series past learning
            with np.errstate(invalid="ignore", over="ignore"):
                q = np.floor((values - lo[sid]) / width[sid])
            np.clip(q, -(2**62), 2**62, out=q)
            return q.astype(np.int64), np.ones(len(values), dtype=bool)
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
    default 10), ``orders`` (longest context, in values, default 2), ``memory`` (values
    remembered, default 10000), ``learn`` (values that set the grid before scoring, default 100),
    ``threshold`` (default 0.9 bits), ``novelty`` (half-life of the alarm novelty stage, default
    200 values; 0 turns it off) and ``novelty_mode`` (default ``suppress``: a novel stretch alarms
    once), ``name`` (default ``"context"``), and the likelihood keys of every detector.

    State per sensor and column: the grid (4 numbers), counts, the last ``memory + orders − 1``
    symbols (2 bytes each, in a ring) and ``orders`` tables of 4097 counters (2 bytes each while
    ``memory`` < 65536, else 4). Ring and tables stay in place from batch to batch (a batch reads
    and writes only its own rows' entries); a checkpoint holds the ring, and the tables, which are
    the ring's contexts counted, are rebuilt from it on restore. Counts are integers updated
    symbol by symbol, so results do not depend on how rows are cut into batches, and a restored
    state goes on exactly.
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
    # ring and tables by slot (sensor × column), grown as sensors come: not copied per batch
    _big: dict[str, np.ndarray] = attrs.field(init=False, factory=dict, repr=False)

    @property
    def threshold_value(self) -> float:
        return self.threshold

    @property
    def _counter(self) -> type[np.unsignedinteger]:
        return np.uint16 if self.memory < 2**16 else np.uint32

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        state = Quantiser(self.bins, self.learn).initial((count, width))
        state["symbols"] = np.zeros((count, width), dtype=np.int64)  # symbols so far
        state["last"] = np.zeros((count, width, self.orders), dtype=np.int64)
        return state

    def _memory(self, sensors: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Ring (≥ sensors, width, memory + orders − 1) and tables (…, orders, 4097), grown
        (doubling) with zeros when fewer sensors have them."""
        have = len(self._big["ring"]) if self._big else 0
        if sensors > have:
            more = max(sensors, 2 * have) - have
            size = self.memory + self.orders - 1
            fresh = {
                "ring": np.zeros((more, width, size), dtype=np.uint16),
                "tables": np.zeros((more, width, self.orders, _TABLE + 1), dtype=self._counter),
            }
            self._big = (
                {key: np.concatenate([self._big[key], fresh[key]]) for key in fresh}
                if self._big
                else fresh
            )
        return self._big["ring"], self._big["tables"]

    def _saved_memory(self, sensors: int) -> dict[str, np.ndarray]:
        """What a checkpoint holds besides the per-sensor state: the first ``sensors`` rings."""
        return {"ring": self._big["ring"][:sensors]} if self._big and sensors else {}

    def _restore_memory(self, ring: np.ndarray, symbols: np.ndarray) -> None:
        self._big = {"ring": ring, "tables": self.recount(ring, symbols)}

    def get_state(self) -> str:
        full = self._state
        self._state = {**full, **self._saved_memory(len(self._slots))}
        try:
            return super().get_state()
        finally:
            self._state = full

    def set_state(self, state: str) -> None:
        super().set_state(state)
        self._big = {}
        if not self._state:
            return
        ring = self._state.pop("ring", None)
        if ring is None or set(self._state) != set(self._initial(0, len(self.columns))):
            log.warning("detector %r: saved state has another layout; starting cold", self.name)
            self.reset()
            return
        self._restore_memory(ring, self._state["symbols"])

    def reset(self) -> None:
        super().reset()
        self._big = {}

    def recount(self, ring: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """The count tables (…, orders, 4097) of rings (…, memory + orders − 1) holding
        ``symbols`` (…) symbols so far: each order's contexts among the last ``memory``."""
        shape = symbols.shape
        size = ring.shape[-1]
        rings = ring.reshape(-1, size)
        count = len(rings)
        places = symbols.reshape(-1, 1) - size + np.arange(size)
        ordered = np.take_along_axis(rings, places % size, axis=1)  # oldest first
        tables = np.zeros((count, self.orders, _TABLE + 1), dtype=self._counter)
        row = (np.arange(count, dtype=np.int64) * (_TABLE + 1))[:, None]
        for k in range(1, self.orders + 1):
            keys = _keys(ordered[:, self.orders - k :], k)  # at places symbols − memory + i
            valid = places[:, self.orders - 1 :] >= k - 1
            counts = np.bincount((keys + row)[valid], minlength=count * (_TABLE + 1))
            tables[:, k - 1, :] = counts.reshape(count, _TABLE + 1)
        tables[:, :, _TABLE] = 0
        return tables.reshape(*shape, self.orders, _TABLE + 1)

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        ring, tables = self._memory(int(part.slots.max()) + 1, c)
        slots = (part.slots[:, None] * c + np.arange(c)).reshape(-1)
        xs = x.reshape(g * c, length)
        flat = {key: value.reshape(g * c, *value.shape[2:]) for key, value in state.items()}
        stat = context_novelty(
            xs,
            flat,
            ring.reshape(-1, ring.shape[-1]),
            tables.reshape(-1, self.orders, _TABLE + 1),
            slots,
            self.bins,
            self.learn,
            self.orders,
            self.memory,
        )
        state.update({key: value.reshape(g, c, *value.shape[1:]) for key, value in flat.items()})
        return stat.reshape(g, c, length)


def _keys(seq: np.ndarray, k: int, dtype: type[np.signedinteger] = np.int64) -> np.ndarray:
    """Order-``k`` counter (in ``[0, _TABLE)``) of each position of ``seq`` (S, W + k − 1, 16-bit
    symbols) from its ``k``-th: the symbol itself for ``k = 1`` (symbols ``_TABLE`` apart share
    one); for longer contexts the ``k`` symbols ending there packed into 64 bits (exactly up to 4,
    mixed by a multiplication beyond), then Fibonacci hashing (the top bits of a product with
    2⁶⁴ / golden ratio), which spreads the lattice of neighbouring contexts evenly. As
    ``dtype``."""
    width = seq.shape[1] - k + 1
    if k == 1:
        return seq.astype(dtype) & (_TABLE - 1)
    packed = seq[:, :width].astype(np.uint64)
    for j in range(1, k):
        if j < 4:
            packed <<= np.uint64(16)
        else:
            packed *= _FOLD
        packed ^= seq[:, j : j + width]
    packed *= _GOLDEN
    packed >>= np.uint64(64 - _TABLE_BITS)
    return packed.view(np.int64).astype(dtype, copy=False)


def _earlier(
    new: np.ndarray, old: np.ndarray, shift: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each entry ``i`` of ``new`` (S, W; counters ≤ ``_TABLE``): how many earlier entries of
    its row hold the same counter in ``new``, less how many entries of ``old`` before place ``i``
    do. Also each (row, counter) present, as rows and counters, and its entries in ``new`` less
    those in ``old``. One sort of both, packed into integers of ``new``'s type as ``counter <<
    shift | (row · W + place) << 1 | which`` (``2 ** (shift − 1) ≥ S · W``; a new entry sorts
    before an old one at the same place: the one leaving as it comes is not earlier)."""
    series, width = new.shape
    where = np.arange(series * width, dtype=new.dtype).reshape(series, width) << 1
    packed = np.empty((2, series, width), dtype=new.dtype)
    np.left_shift(new, shift, out=packed[0])
    np.left_shift(old, shift, out=packed[1])
    packed |= where
    packed[1] |= 1
    flat = np.sort(packed.ravel())
    step = 1 - ((flat & 1) << 1)  # +1 for a new entry, −1 for an old one
    key = flat >> shift
    row = ((flat >> 1) & ((1 << (shift - 1)) - 1)) // width
    starts = np.empty(len(flat), dtype=bool)
    starts[0] = True
    np.not_equal(key[1:], key[:-1], out=starts[1:])
    starts[1:] |= row[1:] != row[:-1]
    first = np.flatnonzero(starts)
    change = np.add.reduceat(step, first)  # per group: entering − leaving
    # a running sum that restarts at each group: take the previous group's total off its start
    run = step.copy()
    run[first[1:]] -= change[:-1]
    np.cumsum(run, out=run)
    run -= step  # before each entry, within its group
    # back to (row · W + place) · 2 + which: the sorted entries are a permutation of the packed
    out = np.empty(2 * series * width, dtype=run.dtype)
    out[flat & ((1 << shift) - 1)] = run
    return out[::2].reshape(series, width), row[first], key[first], change


def _gather_ring(ring: np.ndarray, slots: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    """``width`` symbols of rings ``slots`` of ``ring`` (N, R) from place ``start`` (S,) on
    (places modulo R)."""
    size = ring.shape[1]
    index = (start[:, None] + np.arange(width)[None, :]) % size
    index += (slots * size)[:, None]
    return ring.reshape(-1).take(index)


def context_novelty(
    xs: np.ndarray,
    state: dict[str, np.ndarray],
    ring: np.ndarray,
    tables: np.ndarray,
    slots: np.ndarray,
    bins: int,
    learn: int,
    orders: int,
    memory: int,
) -> np.ndarray:
    """The statistic of :class:`Context` for series ``xs`` (S, L), updating ``state`` (arrays with
    S first) in place, and the series' rings and tables: rows ``slots`` (S,) of ``ring`` (N,
    memory + orders − 1; C-contiguous) and ``tables`` (N, orders, 4097; C-contiguous).

    Each series' counts of contexts within its last ``memory`` symbols are kept in tables; a batch
    adds its own symbols' contexts and takes away those of the symbols that leave memory, so the
    work is in proportion to the batch, not to ``memory``."""
    series, length = xs.shape
    out = np.full((series, length), np.nan)
    ok = ~np.isnan(xs)
    if not ok.any():
        return out
    if ok.all():  # no gaps: the layout is the batch's
        rows = np.repeat(np.arange(series), length)
        rank = cols = np.tile(np.arange(length), series)
        per = np.full(series, length)
        values = xs.reshape(-1)
    else:
        rows, cols, rank, per = compact(ok)
        values = xs[rows, cols]
    quant = Quantiser(bins, learn)
    qstate = {key: state[key] for key in Quantiser.KEYS}
    index = qstate["count"][rows] + rank
    sym, scored = quant.symbols(values, rows, index, qstate)
    qstate["count"] += per
    dense = bool(scored.all()) and len(sym) == series * length  # every value a new symbol
    new_per = per if dense else np.bincount(rows[scored], minlength=series)
    width = int(new_per.max())
    if not width:
        return out
    last = state["last"]
    last_before = last.copy()  # each order's count at the symbol before this batch's first
    size = ring.shape[1]  # memory + orders − 1
    before = state["symbols"]
    lead = orders - 1
    # this batch's symbols (the low 16 bits: symbols 65536 bins apart look alike), after the
    # last orders − 1 before them
    fresh = np.zeros((series, lead + width), dtype=np.uint16)
    fresh[:, :lead] = _gather_ring(ring, slots, before - lead, lead)
    if dense:
        fresh[:, lead:] = sym.reshape(series, width)  # modulo 2**16
    else:
        srows = rows[scored]
        first = np.concatenate(([0], np.cumsum(new_per)[:-1]))
        srank = np.arange(len(srows)) - first[srows]
        fresh[srows, lead + srank] = sym[scored].astype(np.uint16)
    # the symbols that leave memory as each new one comes, after the orders − 1 before them
    leaving = _gather_ring(ring, slots, before - size, lead + width)
    if lead + width > size:  # more new symbols than memory: some leave within this batch
        leaving[:, size:] = fresh[:, lead : lead + width - memory]
    step = np.arange(width, dtype=np.int64)[None, :]
    live = step < new_per[:, None]  # this batch's symbols; as many old ones leave memory
    new_place = before[:, None] + step  # place of each new symbol in its series
    old_place = new_place - memory  # place of the symbol that leaves memory as it comes
    novelty = np.zeros((series, width))
    prefix = np.minimum(new_place, memory)  # order 0: symbols within memory before each
    has_new = new_per > 0
    early_new = new_place < orders - 1  # too early for the longest context
    shift = int(series * width).bit_length() + 1
    dtype = np.int32 if shift + _GROUP_BITS <= 31 else np.int64  # packed keys fit: half the work
    row_at = slots[:, None] * (orders * (_TABLE + 1))
    groups = _TABLE + 1
    view = tables.reshape(-1)  # a view: tables is contiguous
    for k in range(1, orders + 1):
        new = _keys(fresh[:, lead - k + 1 :], k, dtype)
        old = _keys(leaving[:, lead - k + 1 :], k, dtype)
        # too early for a context of order k, or padding: the spare counter, counting nothing
        if k > 1:
            np.copyto(new, _TABLE, where=new_place < k - 1)
        np.copyto(old, _TABLE, where=old_place < k - 1)
        if not live.all():
            np.copyto(new, _TABLE, where=~live)
            np.copyto(old, _TABLE, where=~live)
        counts = view.take(new + (row_at + (k - 1) * groups)).astype(np.int64)
        earlier, at_row, at_key, change = _earlier(new, old, shift)
        counts += earlier
        if not live.all():
            np.copyto(counts, 0, where=~live)  # padding: its counts are no one's
        # earlier occurrences of this context / of its first k − 1 symbols, a step earlier
        if k == 1:
            surprise = np.where(counts == 0, np.log2(prefix + 2.0), 0.0)
        else:
            np.copyto(counts, 0, where=new_place < k - 1)
            prev = np.empty_like(counts)
            prev[:, 0] = last_before[:, k - 2]
            prev[:, 1:] = prefix[:, :-1]
            # a context occurs at most as often as its first k − 1 symbols did a step earlier:
            # more means contexts share a counter (hashing); count only what can be this one's
            np.minimum(counts, prev, out=counts)
            surprise = np.log2((prev + 2.0) / (counts + 1.0))
        novelty += surprise
        # the tables after the batch: each counter present changes by its entering − leaving
        at = slots[at_row] * (orders * groups) + (k - 1) * groups
        at += at_key
        view[at] = (view[at].astype(np.int64) + change).astype(tables.dtype)
        last[has_new, k - 1] = counts[has_new, new_per[has_new] - 1]
        prefix = counts
    tables[slots, :, _TABLE] = 0  # the counters of "no context yet" and of padding
    novelty /= orders
    novelty[early_new] = np.nan
    # remember the last symbols: each new one at its place modulo the ring's size
    if dense and width <= size:
        at = new_place % size
        at += (slots * size)[:, None]
        ring.reshape(-1)[at] = fresh[:, lead:]  # a view: ring is contiguous
    else:
        keep = live & (step >= new_per[:, None] - size)
        kept = np.nonzero(keep)
        ring[slots[kept[0]], (new_place[kept]) % size] = fresh[:, lead:][kept]
    state["symbols"] = before + new_per
    if dense:
        return novelty
    # back to the batch's layout
    out[srows, cols[scored]] = novelty[srows, srank]
    return out
