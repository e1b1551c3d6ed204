"""The exponentially weighted scan the detectors build on (:func:`ewm_scan`): mean and variance of
each series before each value, vectorised across series and along them, exact across batches.

Speed without a change of result: every path of the scan (one pass over the (S, L) layout; one
masked pass per block when many series cross block boundaries; a per-block loop over each of a
few long series) forms each number by the same IEEE operations on the same operands in the same
order as the value-by-value closed form: sums are accumulated value by value (``np.cumsum``, or
exact zeros added for missing values), products only change the order of their two factors,
tables are copied not recomputed, and Python floats between blocks do numpy's float64
arithmetic. So results are bit for bit the same whichever path runs and however rows are cut
into batches; no tolerance is needed (``tests/detection/test_fast_paths.py`` checks the paths
against the value-by-value form on random data).
"""

from __future__ import annotations

import functools
import math

import attrs
import numpy as np

__all__ = [
    "MEAN_KEYS",
    "STATE_KEYS",
    "Clip",
    "block_size",
    "ewm_scan",
    "ewm_state",
    "halflife_alpha",
    "unbiased",
]

_SPAN = 40.0  # a block of the closed form spans at most e^40 in weight: far from overflow
_MAX_BLOCK = 4096  # long blocks: fewer rounds (numpy calls) on long series

STATE_KEYS = ("mean0", "var0", "acc_m", "acc_v", "count")
"""Per-series state of :func:`ewm_scan`: the mean and variance where the current block began,
the block's two running sums, and how many values the series has had."""
MEAN_KEYS = ("mean0", "acc_m", "count")
"""The state of a scan of the mean alone (``variance=False``)."""


def block_size(alpha: float) -> int:
    """Values per block of the closed form for weight ``alpha`` (a function of α only, so blocks
    fall at the same places in a series however it is cut into batches)."""
    return max(1, min(_MAX_BLOCK, int(_SPAN / -math.log1p(-alpha))))


def ewm_state(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Fresh :func:`ewm_scan` state for series of ``shape``."""
    state = {key: np.zeros(shape) for key in STATE_KEYS}
    state["count"] = np.zeros(shape, dtype=np.int64)
    return state


@functools.lru_cache(maxsize=64)
def _tables(alpha: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(1−α)^−k`` and ``(1−α)^k`` for ``k = 0 … size`` (read-only; the same numbers every
    call, so cached)."""
    log_c = math.log1p(-alpha)
    steps = np.arange(size + 1, dtype=np.float64)
    grows, shrinks = np.exp(-log_c * steps), np.exp(log_c * steps)
    grows.flags.writeable = False
    shrinks.flags.writeable = False
    return grows, shrinks


@functools.lru_cache(maxsize=64)
def _padded(alpha: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The grow table ``(1−α)^−k`` and the decay table ``(1−α)^(k−1)`` at index ``k`` (1 …
    size; index 0 unused), each continued to index ``2·size`` with its last entry, so a run of up
    to ``size`` consecutive places from any place in a block is one slice (entries past ``size``
    only ever stand for places past a series' last value, whose results are discarded).
    Copies of :func:`_tables`' numbers (read-only, cached)."""
    grows, shrinks = _tables(alpha, size)
    grow = np.empty(2 * size + 1)
    grow[: size + 1] = grows
    grow[size + 1 :] = grows[size]
    decay = np.empty(2 * size + 1)
    decay[0] = np.nan
    decay[1 : size + 1] = shrinks[:-1]
    decay[size + 1 :] = shrinks[size - 1]
    grow.flags.writeable = False
    decay.flags.writeable = False
    return grow, decay


@functools.lru_cache(maxsize=64)
def _runs(alpha: float, size: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_padded`'s two tables as rows of ``length`` consecutive entries, row ``k`` from
    index ``k`` (read-only views, cached: batches tend to have the same length)."""
    span = np.lib.stride_tricks.sliding_window_view
    grows, decays = _padded(alpha, size)
    return span(grows, length), span(decays, length)


_MASKED_ROUNDS = 4
_FEW_SERIES = 8
"""With many series, batches that cross block boundaries are scanned as at most this many
masked passes over the 2-D layout (one per block, every series at once); more rounds than that
(few long series, short blocks) go round by round over the values themselves."""


def ewm_scan(
    x: np.ndarray,
    ok: np.ndarray,
    alpha: float,
    state: dict[str, np.ndarray],
    *,
    clip: Clip | None = None,
    variance: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponentially weighted mean and variance of each series of ``x`` (S, L), skipping
    positions where ``ok`` is false; vectorised across series and along each series.

    For each valid value, with ``d = x − mean``: ``mean += α·d``; ``var = (1 − α)(var + α·d²)``
    (the incremental form of West and Finch). A series' first value sets ``mean``.

    Returns the mean, variance and count *before* each position (S, L; meaningful where ``ok``),
    and updates ``state`` (arrays of shape (S,), see :data:`STATE_KEYS`) in place.

    Along a series the recursion is solved in closed form over blocks of :func:`block_size`
    values counted from the series' first value: within a block that began with mean ``m0`` and
    variance ``v0``, after ``k`` values, ``mean = m0 + cᵏ·α·Σ c^−kᵢ (xᵢ − m0)`` and
    ``var = cᵏ (v0 + α·Σ c^(1−kᵢ) dᵢ²)`` with ``c = 1 − α``. The running sums are accumulated
    value by value and kept in the state between batches, so every number is computed by the same
    operations in the same order however the series is cut into batches: results are identical,
    bit for bit.

    With ``clip``, each value is winsorised before it updates the mean and variance: to the
    block's starting mean ± ``clip.limit`` (see :class:`Clip`), so outliers barely move the
    baseline; the returned mean and variance are those of the winsorised values. With
    ``variance=False`` only the mean is computed (the variance returned is NaN, its state left
    alone).

    How the blocks are visited does not change a number: a batch inside one block per series is
    one pass over the (S, L) layout; one crossing block boundaries is one masked pass per block
    (every series at once, missing positions adding an exact 0); over more blocks, for a few
    series, one pass per block of each series on slices, or, for many series, round by round over
    the values.
    """
    mean, var, count = _ewm_scan(x, ok, alpha, state, clip=clip, variance=variance)
    if var is None:
        var = np.full(x.shape, np.nan)
    return mean, var, count


def _ewm_scan(
    x: np.ndarray,
    ok: np.ndarray,
    alpha: float,
    state: dict[str, np.ndarray],
    *,
    clip: Clip | None = None,
    variance: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`ewm_scan`; the variance is ``None`` when not asked for."""
    series, length = x.shape
    per_series = np.count_nonzero(ok, axis=1)  # as ok.sum(axis=1), without casting
    total = int(per_series.sum())
    if not total:
        return (*_unknown(x.shape, variance), np.zeros((series, length), dtype=np.int64))
    size = block_size(alpha) if clip is None else min(block_size(alpha), clip.block)
    grows, shrinks = _tables(alpha, size)
    count = state["count"]
    first_block = count // size
    last_block = (count + per_series - 1) // size
    crossing = (per_series > 0) & (last_block != first_block)
    if not crossing.any():
        # no series starts a new block in this batch: one pass over the 2-D layout
        return _dense_scan(x, ok, alpha, state, size, grows, shrinks, per_series, variance, clip)
    rounds = int((last_block - first_block)[per_series > 0].max()) + 1
    if series > 1 and rounds <= _MASKED_ROUNDS:
        return _masked_scan(x, ok, alpha, state, size, grows, shrinks, variance, clip, rounds)
    mean_before, var_before = _unknown(x.shape, variance)
    count_before = np.zeros((series, length), dtype=np.int64)
    log_c = math.log1p(-alpha)
    mean0, acc_m = state["mean0"], state["acc_m"]
    var0, acc_v = _variance_state(state)
    if series <= _FEW_SERIES:  # few long series: one tight pass per block over each one's values
        for one_row in np.flatnonzero(per_series > 0).tolist():
            where = np.flatnonzero(ok[one_row])
            # views of this series' state: updated in place
            one = {key: value[one_row : one_row + 1] for key, value in state.items()}
            one_clip = None
            if clip is not None:
                one_clip = Clip(
                    clip.limit,
                    clip.warmup,
                    clip.floor[one_row : one_row + 1],
                    clip.limits[one_row : one_row + 1],
                )
            m, v, n = _single_scan(
                x[one_row, where],
                None if clip is None else clip.floor[one_row, where],
                alpha,
                one,
                size,
                grows,
                shrinks,
                variance,
                one_clip,
            )
            mean_before[one_row, where] = m
            count_before[one_row, where] = n
            if var_before is not None:
                var_before[one_row, where] = v
        return mean_before, var_before, count_before
    values = x[ok]
    floors = clip.floor[ok] if clip is not None else None
    sid = np.repeat(np.arange(series), per_series)
    offsets = np.concatenate(([0], np.cumsum(per_series)[:-1]))
    places, blocks = _blocks(ok, count, size)
    index, rounds = places[ok], blocks[ok]
    fresh = (count == 0) & (per_series > 0)
    mean0[fresh] = values[offsets[fresh]]  # a series' first value is its first mean
    pos = index % size + 1  # 1-based place in its block
    m_prev = np.empty(total)
    v_prev = np.full(total, np.nan)
    count_rounds = int(rounds.max()) + 1
    if count_rounds == 1:
        order, bounds = np.arange(total), np.array([0, total])
    else:  # each round's values, in series order, without scanning every value each round
        order = np.argsort(rounds, kind="stable")
        bounds = np.searchsorted(rounds[order], np.arange(count_rounds + 1))
    for r in range(count_rounds):
        chosen = order[bounds[r] : bounds[r + 1]]
        s = sid[chosen]
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        members = s[starts]
        lengths = np.diff(np.append(starts, len(chosen)))
        col = np.arange(len(chosen)) - np.repeat(starts, lengths) + 1
        row = np.repeat(np.arange(len(members)), lengths)
        width = int(lengths.max()) + 1
        k = pos[chosen]
        grow = grows[k]
        decay = shrinks[k - 1]
        m0 = mean0[members]
        chunk = values[chosen]
        if clip is not None and floors is not None:
            begins = k[starts] == 1  # these series start a block here: set its limit
            if begins.any():
                first = starts[begins]
                who = members[begins]
                n0 = index[chosen][first]
                with np.errstate(divide="ignore", invalid="ignore"):
                    sd0 = np.sqrt(var0[who] / -np.expm1(log_c * (n0 - 1)))
                scale = np.fmax(np.where(n0 >= 2, sd0, np.nan), floors[chosen][first])
                clip.limits[who] = np.where(
                    (n0 >= clip.warmup) & (scale > 0), clip.limit * scale, np.inf
                )
            lim = clip.limits[members][row]
            chunk = np.clip(chunk, m0[row] - lim, m0[row] + lim)
        grid = np.zeros((len(members), width))
        grid[:, 0] = acc_m[members]
        grid[row, col] = grow * (chunk - m0[row])
        np.cumsum(grid, axis=1, out=grid)  # value by value, from the block's saved sum
        mp = m0[row] + decay * (alpha * grid[row, col - 1])
        m_prev[chosen] = mp
        last = starts + lengths - 1
        last_col = col[last]
        last_k = k[last]
        full = pos[chosen][last] == size  # the block is complete: the next one starts here
        sum_m = grid[np.arange(len(members)), last_col]
        end_mean = m0 + shrinks[last_k] * (alpha * sum_m)
        if variance:
            d = chunk - mp
            v0 = var0[members]
            vgrid = np.zeros((len(members), width))
            vgrid[:, 0] = acc_v[members]
            vgrid[row, col] = grow * (d * d)
            np.cumsum(vgrid, axis=1, out=vgrid)
            v_prev[chosen] = decay * (v0[row] + alpha * (1.0 - alpha) * vgrid[row, col - 1])
            sum_v = vgrid[np.arange(len(members)), last_col]
            end_var = shrinks[last_k] * (v0 + alpha * (1.0 - alpha) * sum_v)
            var0[members] = np.where(full, end_var, v0)
            acc_v[members] = np.where(full, 0.0, sum_v)
        mean0[members] = np.where(full, end_mean, m0)
        acc_m[members] = np.where(full, 0.0, sum_m)
    count += per_series
    mean_before[ok] = m_prev
    if var_before is not None:
        var_before[ok] = v_prev
    count_before[ok] = index
    return mean_before, var_before, count_before


def _unknown(shape: tuple[int, ...], variance: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The scan's mean and variance before it fills them in: NaN (no variance unless asked)."""
    return np.full(shape, np.nan), np.full(shape, np.nan) if variance else None


def _variance_state(state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The block's starting variance and running sum from ``state``; a scan of the mean alone
    may have none: then zeros, stand-ins that are not kept."""
    if "var0" in state:
        return state["var0"], state["acc_v"]
    return np.zeros_like(state["mean0"]), np.zeros_like(state["mean0"])


def _blocks(ok: np.ndarray, count: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each position's 0-based place in its series (meaningful where ``ok``: the series'
    ``count`` before the batch plus the values before it in the batch) and its block, counted
    from the block the series is in before the batch (0 for it, 1 for the next, …)."""
    index = np.cumsum(ok, axis=1)
    index -= ok
    index += count[:, None]
    block = index // size
    block -= (count // size)[:, None]
    return index, block


def _single_scan(
    values: np.ndarray,
    floors: np.ndarray | None,
    alpha: float,
    state: dict[str, np.ndarray],
    size: int,
    grows: np.ndarray,
    shrinks: np.ndarray,
    variance: bool,
    clip: Clip | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`ewm_scan` of one series' valid ``values`` (1-D) across any number of blocks: per
    block only what the next block depends on (the winsorising limit, the clipped values, the
    two running sums) is computed, on slices; the per-value means and variances are then formed
    for all blocks at once. Every number is the same expression of the same operands as in
    :func:`_dense_scan` (missing values dropped, as the exact zeros they add there)."""
    total = len(values)
    mean0, acc_m, count = state["mean0"], state["acc_m"], state["count"]
    var0, acc_v = _variance_state(state)
    start = int(count[0])
    index = start + np.arange(total)
    offset = start % size  # places in the block (0-based) cycle from here
    # each value's (1−α)^−k and (1−α)^(k−1), k its 1-based place in its block: the tables
    # tiled (copies of the same numbers, no gather)
    grow = np.resize(np.roll(grows[1:], -offset), total)
    decay = np.resize(np.roll(shrinks[:-1], -offset), total)
    first_cut = (size - offset) % size
    cuts = [0, *range(first_cut or size, total, size), total]
    if start == 0 and total:
        mean0[0] = values[0]
    blocks = len(cuts) - 1
    # running sums, each block from its saved sum: entry i is the sum before value i (each
    # block's final sum is read, then overwritten by the next block's saved sum)
    grid = np.empty(total + 1)
    vgrid = np.empty(total + 1) if variance else None
    clipped = values.copy() if clip is not None else values
    coef = alpha * (1.0 - alpha)
    # Python floats from here: IEEE double arithmetic, as numpy's on float64
    mean_s, var_s = float(mean0[0]), float(var0[0])
    acc_ms, acc_vs = float(acc_m[0]), float(acc_v[0])
    block_means, block_vars = [], []
    if clip is not None:
        assert floors is not None
        firsts = np.array(cuts[:-1])
        n0s = index[firsts]
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = (-np.expm1(math.log1p(-alpha) * (n0s - 1))).tolist()
        n0s_list, first_floors = n0s.tolist(), floors[firsts].tolist()
        limit = float(clip.limits[0])
    for j in range(blocks):
        a, b = cuts[j], cuts[j + 1]
        block_means.append(mean_s)
        block_vars.append(var_s)
        if clip is not None:
            n0 = n0s_list[j]
            if n0 % size == 0:  # a block begins here: set its limit
                ratio = var_s / dens[j] if dens[j] != 0 else math.nan
                sd0 = math.sqrt(ratio) if n0 >= 2 and ratio >= 0 else math.nan  # as np.sqrt
                fl = first_floors[j]
                scale = fl if math.isnan(sd0) else (sd0 if math.isnan(fl) else max(sd0, fl))
                limit = clip.limit * scale if (n0 >= clip.warmup and scale > 0) else math.inf
            np.clip(values[a:b], mean_s - limit, mean_s + limit, out=clipped[a:b])
        sums = grid[a : b + 1]
        sums[0] = acc_ms
        np.subtract(clipped[a:b], mean_s, out=sums[1:])
        sums[1:] *= grow[a:b]
        np.cumsum(sums, out=sums)
        last_k = (offset + b - 1) % size + 1
        full = last_k == size
        sum_m = float(sums[-1])
        if vgrid is not None:
            mp = sums[:-1] * alpha
            mp *= decay[a:b]
            mp += mean_s
            vs = vgrid[a : b + 1]
            vs[0] = acc_vs
            d = np.subtract(clipped[a:b], mp, out=vs[1:])
            d *= d
            d *= grow[a:b]
            np.cumsum(vs, out=vs)
            sum_v = float(vs[-1])
            if full:
                var_s, acc_vs = float(shrinks[last_k]) * (var_s + coef * sum_v), 0.0
            else:
                acc_vs = sum_v
        if full:
            mean_s, acc_ms = mean_s + float(shrinks[last_k]) * (alpha * sum_m), 0.0
        else:
            acc_ms = sum_m
    if clip is not None:
        clip.limits[0] = limit
    mean0[0], acc_m[0] = mean_s, acc_ms
    if "var0" in state:
        var0[0], acc_v[0] = var_s, acc_vs
    count += total
    lengths = np.diff(cuts)
    m0 = np.repeat(np.array(block_means), lengths)
    v0 = np.repeat(np.array(block_vars), lengths) if vgrid is not None else None
    mp = np.multiply(grid[:total], alpha)
    mp *= decay
    mp += m0
    vp = None
    if vgrid is not None:
        vp = np.multiply(vgrid[:total], coef)
        vp += v0
        vp *= decay
    return mp, vp, index


def _masked_scan(
    x: np.ndarray,
    ok: np.ndarray,
    alpha: float,
    state: dict[str, np.ndarray],
    size: int,
    grows: np.ndarray,
    shrinks: np.ndarray,
    variance: bool,
    clip: Clip | None,
    rounds: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`ewm_scan` over a batch that crosses block boundaries: one :func:`_dense_scan` per
    block, each over the whole (S, L) layout with the values of that block (of each series)
    masked in, so there is no per-series Python work and no gather of the values."""
    index, block = _blocks(ok, state["count"], size)
    mean_before, var_before = _unknown(x.shape, variance)
    for r in range(rounds):
        mask = ok & (block == r)
        per = np.count_nonzero(mask, axis=1)
        m, v, _ = _dense_scan(x, mask, alpha, state, size, grows, shrinks, per, variance, clip)
        np.copyto(mean_before, m, where=mask)
        if var_before is not None and v is not None:
            np.copyto(var_before, v, where=mask)
    index[~ok] = 0
    return mean_before, var_before, index


@attrs.define
class Clip:
    """Winsorising for :func:`ewm_scan`: when a block of the closed form begins, its limit is set
    to ``limit`` × the larger of the standard deviation then (unbiased) and ``floor`` at that
    value; until ``warmup`` values have been seen (or while that scale is 0) there is no limit.
    ``limits`` (S,) holds each series' current limit (state: it spans batches)."""

    limit: float
    warmup: int
    floor: np.ndarray  # (S, L), beside x
    limits: np.ndarray  # (S,), updated in place
    block: int = 128  # the limit is set again every this many values (blocks are this short)


def _dense_scan(
    x: np.ndarray,
    ok: np.ndarray,
    alpha: float,
    state: dict[str, np.ndarray],
    size: int,
    grows: np.ndarray,
    shrinks: np.ndarray,
    per_series: np.ndarray,
    variance: bool,
    clip: Clip | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`ewm_scan` when every series stays within one block in this batch: the same sums,
    accumulated in the same order (missing positions add an exact 0), on the (S, L) layout.
    Every product is formed with the same operands as in the value-by-value form (only their
    order within a product, which IEEE multiplication ignores, and the buffers differ)."""
    series, length = x.shape
    mean0, acc_m, count = state["mean0"], state["acc_m"], state["count"]
    var0, acc_v = _variance_state(state)
    fresh = (count == 0) & (per_series > 0)
    if fresh.any():
        mean0[fresh] = x[fresh, ok[fresh].argmax(axis=1)]
    missing = ~ok
    grow, decay, k_last, index = _places(ok, alpha, size, count, per_series)
    m0 = mean0[:, None]
    if clip is not None:
        begins = (per_series > 0) & (count % size == 0)  # a block begins here: set its limit
        if begins.any():
            who = np.flatnonzero(begins)
            n0 = count[who]
            first = ok[who].argmax(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                sd0 = np.sqrt(var0[who] / -np.expm1(math.log1p(-alpha) * (n0 - 1)))
            scale = np.fmax(np.where(n0 >= 2, sd0, np.nan), clip.floor[who, first])
            clip.limits[who] = np.where(
                (n0 >= clip.warmup) & (scale > 0), clip.limit * scale, np.inf
            )
        lim = clip.limits[:, None]
        x = np.clip(x, m0 - lim, m0 + lim)
    grid = np.empty((series, length + 1))
    grid[:, 0] = acc_m
    terms = grid[:, 1:]
    np.subtract(x, m0, out=terms)
    terms *= grow
    np.copyto(terms, 0.0, where=missing)  # (an exact 0 added for each missing value)
    np.cumsum(grid, axis=1, out=grid)
    mp = np.multiply(grid[:, :-1], alpha)
    mp *= decay
    mp += m0
    has = per_series > 0
    last_k = k_last
    full = has & (last_k == size)  # the block is complete: the next one starts after it
    sum_m = grid[:, -1]
    end_mean = mean0 + shrinks[last_k] * (alpha * sum_m)
    vp = None
    if variance:
        vgrid = np.empty((series, length + 1))
        vgrid[:, 0] = acc_v
        d = np.subtract(x, mp, out=vgrid[:, 1:])
        d *= d
        d *= grow
        np.copyto(d, 0.0, where=missing)
        np.cumsum(vgrid, axis=1, out=vgrid)
        vp = np.multiply(vgrid[:, :-1], alpha * (1.0 - alpha))
        vp += var0[:, None]
        vp *= decay
        sum_v = vgrid[:, -1]
        end_var = shrinks[last_k] * (var0 + alpha * (1.0 - alpha) * sum_v)
        var0[:] = np.where(full, end_var, var0)
        acc_v[:] = np.where(full, 0.0, np.where(has, sum_v, acc_v))
        np.copyto(vp, np.nan, where=missing)
    mean0[:] = np.where(full, end_mean, mean0)
    acc_m[:] = np.where(full, 0.0, np.where(has, sum_m, acc_m))
    count += per_series
    np.copyto(mp, np.nan, where=missing)
    return mp, vp, index


def _places(
    ok: np.ndarray, alpha: float, size: int, count: np.ndarray, per_series: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For :func:`_dense_scan` (no series leaves its block): each position's grow and decay
    factor (``(1−α)^−k`` and ``(1−α)^(k−1)``, ``k`` its 1-based place in its block; any table
    entry where ``ok`` is false), the place ``k`` of each series' last value (of its first
    position when it has none) and each value's 0-based place in its series (0 where ``ok`` is
    false).

    A series whose values all come first (missing values, such as padding, only after them) has
    its places in consecutive positions: its factors are a slice of the tables each. Only the
    other series count their places (a running count of ``ok``) and gather their factors."""
    series, length = ok.shape
    start = count % size + 1  # the place of each series' next value
    last = length - 1 - np.argmax(ok[:, ::-1], axis=1) if length else np.zeros(series, np.int64)
    np.copyto(last, 0, where=per_series == 0)
    before = count[:, None]
    if length <= size:
        grows, decays = _runs(alpha, size, length)
        grow = grows[start]
        decay = decays[start]
        index = np.add(before, np.arange(length))
        # series with a missing value before their last one
        gaps = np.flatnonzero((last + 1 != per_series) & (per_series > 0))
    else:  # (a batch longer than a block, all but a few values missing)
        grow = np.empty(ok.shape)
        decay = np.empty(ok.shape)
        index = np.empty(ok.shape, dtype=np.int64)
        gaps = np.arange(series)
    k_last = start + last
    if len(gaps):
        some = ok[gaps]
        rank = np.cumsum(some, axis=1)
        rank -= some  # 0-based place among this batch's values
        k = rank + start[gaps, None]  # 1-based place in its block
        np.minimum(k, size, out=k)  # (past a series' last value: any valid place)
        grows, shrinks = _tables(alpha, size)
        grow[gaps] = grows[k]
        decay[gaps] = np.take(shrinks, k - 1)
        k_last[gaps] = k[np.arange(len(gaps)), last[gaps]]
        rank += before[gaps]
        index[gaps] = rank
    np.copyto(index, 0, where=~ok)
    return grow, decay, k_last, index


def halflife_alpha(halflife: float) -> float:
    """The weight α of a new value for a half-life in values: ``1 − 2^(−1/halflife)``."""
    return 1.0 - 2.0 ** (-1.0 / halflife)


def unbiased(var: np.ndarray, count: np.ndarray, alpha: float) -> np.ndarray:
    """The weighted variance corrected for starting at 0: ``var / (1 − (1−α)^(count−1))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return var / -np.expm1(np.log1p(-alpha) * (count - 1))
