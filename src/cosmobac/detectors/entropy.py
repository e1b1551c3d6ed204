"""``entropy``: is the recent window's histogram one of the distributions the series has shown?

After Wang et al. (2011), "Statistical techniques for online anomaly detection in data centers",
implemented from the paper's description. Values are binned; the histogram ``P`` of the last
``window`` values is tested against a set of *hypotheses*, histograms of earlier windows. Against
each hypothesis ``Q`` the statistic is ``2·n·KL(P‖Q)`` (``n`` = ``window``), approximately χ²
with ``bins − 1`` degrees of freedom when the window comes from ``Q``. The detector's statistic is
the smallest one over the hypotheses: how far the window is from the nearest distribution seen
before. Below the χ² point of ``significance`` the window matches its nearest hypothesis; at or
above it (or with no hypothesis yet) the window is a distribution never seen before: it is
detected and becomes a hypothesis itself, so the next windows of the same regime match it and a
new regime alarms once, not for as long as it lasts. A bin a hypothesis never saw counts as
probability 1e-9 (not 0), so the statistic stays finite and ranks by how much of the window
falls there. The first full window only becomes the first hypothesis (NaN: nothing to compare).

Binning that adapts: each series' first ``learn`` values set a grid: their range (smallest to
largest, both included) split into ``bins`` equal bins. A later value outside the
grid *doubles* the bin width (pairs of bins merge, the grid extends towards the value) until it
fits, and every hypothesis is merged the same way, exactly; so the grid always spans the range
seen so far, at most twice as coarse as needed, and never looks ahead. Internally values are
integers on the learned grid (clipped to ±2⁴⁰ steps), and the current grid is ``(v + shift) >>
level``, integer arithmetic.

At most ``hypotheses`` are kept; when full, the one matched least recently is replaced.

Vectorised across series and along them: a batch is swept in steps; each step tests a stretch
of windows against all hypotheses at once and ends at the first event (a new hypothesis or a grid
doubling), which is rare; the stretch doubles while no event comes (64 to 4096 windows). The
hypothesis part of the statistic is a running sum of integers (``−ln q`` in units of 2⁻³²), the
window's own part a sum over its bins in a fixed order, so results do not depend on how rows are
cut into batches or steps.
"""

from __future__ import annotations

import functools
import math

import attrs
import numpy as np

from ..batch import Batch
from ..values import integer, real
from ._series import Part
from .base import Detector
from .context import Quantiser, compact

__all__ = ["RelativeEntropy", "chi2_isf", "relative_entropy"]

_FLOOR = 1e-9  # probability of a bin a hypothesis never saw
_LIMIT = 2**40  # values beyond this many learned steps are clipped (keeps shifts in int64)
_SEGMENT = (64, 4096)  # positions tested per sweep step: fewest, most
_BUDGET = 2**22  # most numbers per hypothesis table of a step
_FIXED = 2.0**32  # −ln q in units of 2⁻³², as integers


@functools.lru_cache(maxsize=64)
def chi2_isf(alpha: float, dof: int) -> float:
    """The χ² value with ``dof`` degrees of freedom whose upper tail probability is ``alpha``
    (0 < alpha < 1), to about 1e-10 relative."""
    if not 0 < alpha < 1:
        raise ValueError(f"the tail probability must be between 0 and 1, got {alpha}")
    a = dof / 2.0

    def upper_tail(x: float) -> float:  # 1 − P(a, x/2), P by its power series
        z = x / 2.0
        if z <= 0:
            return 1.0
        term = total = 1.0 / a
        k = 1
        while term > 1e-17 * total and k < 100000:
            term *= z / (a + k)
            total += term
            k += 1
        return 1.0 - math.exp(-z + a * math.log(z) - math.lgamma(a)) * total

    lo, hi = 0.0, 1.0
    while upper_tail(hi) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if upper_tail(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@attrs.define(eq=False, kw_only=True)
class RelativeEntropy(Detector):
    """Relative entropy against a set of hypotheses (see the module docstring).

    Keys: ``columns`` (default the five metrics), ``bins`` (bins of the grid, 2 to 64, default
    5), ``window`` (values in the tested histogram, default 52), ``learn`` (values that set the
    first grid, default 100), ``significance`` (tail probability of the χ² test, default 0.01;
    the threshold is its χ² point with ``bins − 1`` degrees of freedom, 13.28 by default),
    ``hypotheses`` (histograms remembered, default 32), ``name`` (default ``"entropy"``), and
    the likelihood and novelty keys of every detector.

    State per sensor and column: the grid (7 numbers), the last ``window − 1`` values as grid
    integers and ``hypotheses`` histograms (``bins`` counts each) with their last use.
    """

    kind = "entropy"

    bins: int = attrs.field(
        default=5, converter=lambda v: integer("bins", v, minimum=2, maximum=64)
    )
    window: int = attrs.field(
        default=52, converter=lambda v: integer("window", v, minimum=2, maximum=1_000_000)
    )
    learn: int = attrs.field(default=100, converter=lambda v: integer("learn", v, minimum=2))
    significance: float = attrs.field(
        default=0.01, converter=lambda v: real("significance", v, above=0, maximum=0.5)
    )
    hypotheses: int = attrs.field(
        default=32, converter=lambda v: integer("hypotheses", v, minimum=1)
    )

    @property
    def threshold_value(self) -> float:
        return chi2_isf(self.significance, self.bins - 1)

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        shape = (count, width)
        state = Quantiser(self.bins - 1, self.learn).initial(shape)
        state["history"] = np.zeros((*shape, self.window - 1), dtype=np.int64)
        state["symbols"] = np.zeros(shape, dtype=np.int64)  # values after learning so far
        state["shift"] = np.zeros(shape, dtype=np.int64)
        state["level"] = np.zeros(shape, dtype=np.int64)
        state["hyp"] = np.zeros((*shape, self.hypotheses, self.bins), dtype=np.int32)
        state["used"] = np.full((*shape, self.hypotheses), -1, dtype=np.int64)
        return state

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        xs = x.reshape(g * c, length)
        flat = {key: value.reshape(g * c, *value.shape[2:]) for key, value in state.items()}
        stat = relative_entropy(xs, flat, self.bins, self.learn, self.window, self.threshold_value)
        state.update({key: value.reshape(g, c, *value.shape[1:]) for key, value in flat.items()})
        return stat.reshape(g, c, length)


def _grid_symbols(
    xs: np.ndarray, state: dict[str, np.ndarray], bins: int, learn: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Learn the grid from each series' first values; the later values as integers on it:
    ``rows, cols`` of those values (in order), their integers, and how many each series has."""
    series = xs.shape[0]
    ok = ~np.isnan(xs)
    rows, cols, rank, per = compact(ok)
    qstate = {key: state[key] for key in Quantiser.KEYS}
    index = qstate["count"][rows] + rank
    values = xs[rows, cols]
    _, after = Quantiser(bins, learn).symbols(values, rows, index, qstate)
    qstate["count"] += per
    rows, cols, values = rows[after], cols[after], values[after]
    lo, width = qstate["lo"][rows], qstate["width"][rows]
    with np.errstate(invalid="ignore", over="ignore"):
        steps = np.floor((values - lo) / width)
    hi = qstate["hi"][rows]
    steps[(values == hi) & (hi > lo)] = bins - 1  # the learned range is closed
    sym = np.clip(steps, -_LIMIT, _LIMIT).astype(np.int64)
    return rows, cols, sym, np.bincount(rows, minlength=series)


def _widen(sym: np.ndarray, who: np.ndarray, state: dict[str, np.ndarray], bins: int) -> None:
    """Double the grid of series ``who`` until integer ``sym`` of each fits, merging their
    hypotheses' bins the same way."""
    shift, level, hyp = state["shift"], state["level"], state["hyp"]
    while len(who):
        b = (sym + shift[who]) >> level[who]
        out = (b < 0) | (b >= bins)
        who, sym, b = who[out], sym[out], b[out]
        if not len(who):
            return
        down = b < 0
        offset = np.where(down, bins, 0)
        shift[who] += np.where(down, np.int64(bins) << level[who], 0)
        level[who] += 1
        old = hyp[who]
        merged = np.zeros_like(old)
        at = np.arange(len(who))
        for i in range(bins):
            merged[at, :, (i + offset) >> 1] += old[:, :, i]
        hyp[who] = merged


def relative_entropy(
    xs: np.ndarray,
    state: dict[str, np.ndarray],
    bins: int,
    learn: int,
    window: int,
    threshold: float,
) -> np.ndarray:
    """The statistic of :class:`RelativeEntropy` for series ``xs`` (S, L), updating ``state``
    (arrays with S first) in place."""
    series, length = xs.shape
    out = np.full((series, length), np.nan)
    if not length:
        return out
    rows, cols, sym, new_per = _grid_symbols(xs, state, bins, learn)
    width = int(new_per.max()) if series else 0
    if not width:
        return out
    h = window - 1
    seq = np.zeros((series, h + width), dtype=np.int64)
    seq[:, :h] = state["history"]
    first = np.concatenate(([0], np.cumsum(new_per)[:-1]))
    rank = np.arange(len(rows)) - first[rows]
    seq[rows, h + rank] = sym
    stat = np.full((series, width), np.nan)
    _sweep(seq, new_per, stat, state, bins, window, threshold)
    keep = (h + new_per)[:, None] - h + np.arange(h)[None, :]
    state["history"] = np.take_along_axis(seq, keep, axis=1)
    state["symbols"] = state["symbols"] + new_per
    out[rows, cols] = stat[rows, rank]
    return out


def _sweep(
    seq: np.ndarray,
    new_per: np.ndarray,
    stat: np.ndarray,
    state: dict[str, np.ndarray],
    bins: int,
    window: int,
    threshold: float,
) -> None:
    """Test every new window (``seq``'s positions after the first ``window − 1``) in order,
    writing ``stat`` and updating the grid and hypotheses in ``state``."""
    h = window - 1
    hyp, used = state["hyp"], state["used"]
    memory = hyp.shape[1]
    before = state["symbols"]
    count = np.count_nonzero(used >= 0, axis=1)  # hypotheses held
    log_count = np.log(np.maximum(np.arange(window + 1), 1)) - math.log(window)
    pos = np.zeros(len(seq), dtype=np.int64)  # next new position to test, per series
    reach = _SEGMENT[0]  # positions to test next: doubles while no event comes
    while True:
        act = np.flatnonzero(pos < new_per)
        if not len(act):
            return
        left = new_per[act] - pos[act]
        room = _BUDGET // (len(act) * max(int(count[act].max()), 1))
        span = int(min(reach, max(_SEGMENT[0], room), left.max()))
        k = np.arange(span)
        valid = k[None, :] < left[:, None]
        index = np.minimum(pos[act, None] + np.arange(h + span)[None, :], seq.shape[1] - 1)
        raw = np.take_along_axis(seq[act], index, axis=1)
        b = (raw + state["shift"][act, None]) >> state["level"][act, None]
        newest = b[:, h:]
        bad = ((newest < 0) | (newest >= bins)) & valid
        first_bad = np.where(bad.any(axis=1), bad.argmax(axis=1), span)
        # window histograms: differences of running counts (bins clipped: a window reaching a
        # value outside the grid is never used, its event comes first)
        onehot = np.zeros((len(act), h + span + 1, bins), dtype=np.int32)
        np.put_along_axis(onehot[:, 1:, :], np.clip(b, 0, bins - 1)[:, :, None], 1, axis=2)
        np.cumsum(onehot, axis=1, out=onehot)
        counts = onehot[:, window:, :] - onehot[:, :span, :]
        place = before[act, None] + pos[act, None] + k[None, :]
        full = (place >= h) & valid
        held = count[act]
        most = int(held.max())
        if most:
            # 2·n·KL = 2·Σ c·ln(c/n) − 2·Σ c·ln q: the first part per window (bins summed in a
            # fixed order), the second per hypothesis: the sum over the window's values of
            # −ln q of their bins, in exact fixed point (running sums of integers, so the same
            # wherever a segment or batch starts)
            own = np.zeros((len(act), span))
            for j in range(bins):
                c = counts[:, :, j]
                own += c * log_count[c]
            q = np.maximum(hyp[act, :most, :] / window, _FLOOR)
            cost = np.rint(-np.log(q) * _FIXED).astype(np.int64).transpose(0, 2, 1)
            per_value = cost[np.arange(len(act))[:, None], np.clip(b, 0, bins - 1)]
            running = np.zeros((len(act), h + span + 1, most), dtype=np.int64)
            np.cumsum(per_value, axis=1, out=running[:, 1:, :])
            far = running[:, window:, :] - running[:, :span, :]
            if (held < most).any():
                far[
                    np.broadcast_to(
                        (np.arange(most)[None, :] >= held[:, None])[:, None, :], far.shape
                    )
                ] = np.iinfo(np.int64).max
            nearest = far.argmin(axis=2)
            nearest_far = np.take_along_axis(far, nearest[:, :, None], axis=2)[:, :, 0]
            best = 2.0 * (own + nearest_far / _FIXED)
        else:
            nearest = np.zeros((len(act), span), dtype=np.int64)
            best = np.full((len(act), span), np.inf)
        best[held == 0] = np.nan
        novel = full & ~(best < threshold)
        first_novel = np.where(novel.any(axis=1), novel.argmax(axis=1), span)
        event = np.minimum(first_bad, first_novel)
        # positions before the event are final
        done = full & (k[None, :] < event[:, None])
        r, kk = np.nonzero(done)
        stat[act[r], pos[act[r]] + kk] = best[r, kk]
        flat_used = used.reshape(-1)
        np.maximum.at(flat_used, act[r] * memory + nearest[r, kk], place[r, kk])
        # a value outside the grid: widen it, test from there again
        widen = first_bad < span
        wide = np.flatnonzero(widen & (first_bad <= first_novel))
        if len(wide):
            _widen(raw[wide, h + first_bad[wide]], act[wide], state, bins)
        # a window never seen: detected, and a new hypothesis
        news = np.flatnonzero((first_novel < span) & (first_novel < first_bad))
        if len(news):
            at = first_novel[news]
            s = act[news]
            stat[s, pos[s] + at] = best[news, at]
            slot = np.where(count[s] < memory, count[s], used[s].argmin(axis=1))
            hyp[s, slot] = counts[news, at]
            used[s, slot] = place[news, at]
            count[s] = np.minimum(count[s] + 1, memory)
        step = np.where(event < span, event, span)
        step[news] += 1
        pos[act] += step
        reach = min(_SEGMENT[1], max(_SEGMENT[0], 2 * int(step.max())))
