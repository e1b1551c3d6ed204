"""Per-sensor series inside a batch, and the state they carry from batch to batch.

The detectors and ``aggregate`` keep state per sensor. Within a batch they work on all sensors at
once: rows are grouped by sensor (stable, so each sensor's rows keep their order in the batch) and
laid out as a 2-D array ``(sensors, rows)``, padded with NaN, so that one numpy operation along the
last axis advances every sensor's series.

* :class:`Slots` numbers sensors (``sensor_id`` → slot) in the order they are first seen;
* :class:`Groups` splits a batch's rows into :class:`Part` s, each a set of sensors with a 2-D
  layout (sensors with very different row counts go to different parts, so padding stays below
  half of each part);
* :func:`encode_arrays` / :func:`decode_arrays` turn numpy arrays into JSON-safe text exactly (the
  bytes, base64-encoded), so a checkpointed state restores bit for bit.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Groups",
    "Part",
    "Slots",
    "decode_arrays",
    "encode_arrays",
    "equal_runs",
    "last_index",
    "last_valid",
    "previous_valid",
    "take_window",
]


class Slots:
    """Sensor ids numbered in the order they are first seen."""

    def __init__(self, ids: Sequence[str] = ()) -> None:
        self.ids: list[str] = [str(i) for i in ids]
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def codes(self, sensor_ids: np.ndarray) -> np.ndarray:
        """The slot of every row (int64), adding sensors seen for the first time."""
        values = sensor_ids.tolist()
        if values and values[0] == values[-1] and values.count(values[0]) == len(values):
            # one sensor: one look-up
            key = str(values[0])
            if key not in self.index:
                self.index[key] = len(self.ids)
                self.ids.append(key)
            return np.full(len(values), self.index[key], dtype=np.int64)
        try:
            return np.fromiter(map(self.index.__getitem__, values), np.int64, count=len(values))
        except KeyError:
            pass
        for sensor in values:
            key = str(sensor)
            if key not in self.index:
                self.index[key] = len(self.ids)
                self.ids.append(key)
        return np.fromiter((self.index[str(v)] for v in values), np.int64, count=len(values))


class Part:
    """Some sensors of a batch laid out as ``(sensors, L)``: ``rows[g, j]`` is the batch row of the
    ``j``-th reading of sensor ``slots[g]`` in this batch, or -1 past its last one."""

    __slots__ = ("flat", "lengths", "members", "pad", "rows", "slots")

    def __init__(
        self,
        slots: np.ndarray,
        lengths: np.ndarray,
        rows: np.ndarray,
        members: np.ndarray,
        flat: np.ndarray,
    ) -> None:
        self.slots = slots
        self.lengths = lengths
        self.rows = rows
        self.pad = rows < 0
        self.members = members  # batch rows of this part
        self.flat = flat  # where each of them is in the flattened (g·L) layout

    @property
    def width(self) -> int:
        return int(self.rows.shape[1])

    def gather(self, columns: list[np.ndarray], fill: Any = np.nan) -> np.ndarray:
        """Columns (each of the batch's length) as one ``(sensors, C, L)`` array; padding holds
        ``fill``."""
        g, width = self.rows.shape
        out = np.empty((g, len(columns), width), dtype=columns[0].dtype if columns else float)
        padded = width * g > len(self.members)
        index = np.maximum(self.rows, 0) if padded else self.rows
        for i, column in enumerate(columns):
            np.take(column, index, out=out[:, i, :])
        if padded:
            out[np.broadcast_to(self.pad[:, None, :], out.shape)] = fill
        return out

    def gather1(self, values: np.ndarray, fill: Any) -> np.ndarray:
        """A single column ``values`` (rows,) as ``(sensors, L)``; padding holds ``fill``."""
        out = values[np.maximum(self.rows, 0)]
        out[self.pad] = fill
        return out

    def scatter(self, out: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` (sensors, C, L) into ``out`` (C, rows) at the rows they came from."""
        g, c, width = values.shape
        flat = values.reshape(g, c, width).transpose(1, 0, 2).reshape(c, g * width)
        if len(self.members) == g * width:  # no padding: every entry is a row, in order
            out[:, self.members] = flat
        else:
            out[:, self.members] = flat[:, self.flat]


class Groups:
    """A batch's rows grouped by slot, in :class:`Part` s of similar row counts."""

    def __init__(self, codes: np.ndarray) -> None:
        n = len(codes)
        small = codes.astype(np.int32) if len(codes) and codes.max() < 2**31 else codes
        order = np.argsort(small, kind="stable")
        ordered = codes[order]
        bounds = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        starts = np.concatenate(([0], bounds)).astype(np.int64)
        lengths = np.diff(np.concatenate((starts, [n]))).astype(np.int64)
        self.order = order
        self.slots = ordered[starts] if n else np.empty(0, np.int64)
        self.starts = starts if n else np.empty(0, np.int64)
        self.lengths = lengths if n else np.empty(0, np.int64)

    def parts(self) -> Iterator[Part]:
        if not len(self.slots):
            return
        lengths = self.lengths
        total = int(lengths.sum())
        if total * 2 >= len(lengths) * int(lengths.max()):
            yield self._part(np.arange(len(lengths)))
            return
        classes = np.ceil(np.log2(lengths)).astype(np.int64)  # padding < 1/2 within a class
        for value in np.unique(classes):
            yield self._part(np.flatnonzero(classes == value))

    def _part(self, chosen: np.ndarray) -> Part:
        lengths = self.lengths[chosen]
        starts = self.starts[chosen]
        width = int(lengths.max())
        g = len(chosen)
        rows = np.full((g, width), -1, dtype=np.int64)
        group = np.repeat(np.arange(g), lengths)
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        rank = np.arange(len(group)) - np.repeat(offsets, lengths)
        members = self.order[np.repeat(starts, lengths) + rank]
        rows[group, rank] = members
        return Part(self.slots[chosen], lengths, rows, members, group * width + rank)


def take_window(full: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """For each row ``s`` of ``full`` (S, T), the ``width`` entries ending just before
    ``ends[s]``: ``full[s, ends[s] - width : ends[s]]`` (a copy). One slice when every row ends at
    the same place (no padding), else one gather of whole windows: no index array per entry."""
    if not len(full):
        return full[:, :width].copy()
    end = int(ends[0])
    if np.all(ends == end):
        return full[:, end - width : end].copy()
    windows = np.lib.stride_tricks.sliding_window_view(full, width, axis=1)
    return windows[np.arange(len(full)), ends - width]


def last_index(ok: np.ndarray) -> np.ndarray:
    """For each position of ``ok`` (S, L), the position of the last true entry at or before it
    (-1 if none)."""
    index = np.where(ok, np.arange(ok.shape[1]), -1)
    np.maximum.accumulate(index, axis=1, out=index)
    return index


def previous_valid(x: np.ndarray, ok: np.ndarray, last: np.ndarray) -> np.ndarray:
    """:func:`cosmobac.detectors.base.previous_valid`, faster: each position's previous valid
    value (``last`` (S,) before the first), a pure selection of the same values. Series with no
    missing value are a shifted copy; only the others are forward-filled."""
    length = x.shape[1]
    out = np.empty_like(x)
    if not length:
        return out
    out[:, 0] = last
    out[:, 1:] = x[:, :-1]
    gaps = ~ok[:, :-1]
    if gaps.any():
        rows = np.flatnonzero(gaps.any(axis=1))
        index = last_index(ok[rows, :-1])
        none = index < 0
        index += (rows * length)[:, None]
        picked = np.take(x.reshape(-1), index)
        if none.any():
            picked[none] = np.broadcast_to(last[rows, None], picked.shape)[none]
        out[rows, 1:] = picked
    return out


def last_valid(x: np.ndarray, ok: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Each series' last valid value after ``x`` (S, L), or ``last`` where it has none (as
    :func:`cosmobac.detectors.base.last_valid`)."""
    length = x.shape[1]
    if not length:
        return last.copy()
    if ok[:, -1].all():
        return x[:, -1].copy()
    index = length - 1 - np.argmax(ok[:, ::-1], axis=1)
    has = ok[np.arange(len(x)), index]
    return np.where(has, x[np.arange(len(x)), index], last)


def equal_runs(
    same: np.ndarray, ok: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal values: for each position of each series (S, L), how many consecutive values
    (counting the first; positions where ``ok`` is false skipped) equal the one before them, given
    ``same`` (the value equals the previous valid one) and ``start`` (S,), the run carried in from
    before this batch. Returns the runs (meaningful where ``ok``) and each series' run after the
    batch."""
    length = same.shape[1]
    if not length:
        return np.zeros(same.shape, dtype=np.int64), start.copy()
    repeats = np.flatnonzero(same.any(axis=1))
    if len(repeats) < len(same):
        # a series without a repeat: its run is 1 from its first value on, ``start`` before it
        has = ok.any(axis=1)
        first = np.where(has, ok.argmax(axis=1), length)
        run = np.where(np.arange(length) >= first[:, None], 1, start[:, None])
        end = np.where(has, 1, start)
        if len(repeats):
            run[repeats], end[repeats] = _equal_runs(same[repeats], ok[repeats], start[repeats])
        return run, end
    return _equal_runs(same, ok, start)


def _equal_runs(
    same: np.ndarray, ok: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`equal_runs` of series with at least one value."""
    counted = np.cumsum(same, axis=1)
    breaks = ok & ~same
    # the count at the last break so far (-1 before any: counts are ≥ 0)
    base = np.where(breaks, counted, -1)
    np.maximum.accumulate(base, axis=1, out=base)
    after_break = base >= 0
    run = counted + start[:, None]
    np.subtract(counted, base, out=base)
    base += 1
    np.copyto(run, base, where=after_break)
    end = last_valid(run, ok, start)
    return run, end


# -- state as text --------------------------------------------------------------------------------
COMPRESS_ABOVE = 64 * 1024
"""Integer arrays of more bytes than this are stored deflated (zlib, fastest level) in a
checkpoint: a ``context`` memory of symbols (100 sensors × 5 columns: 10 MB) shrinks about
tenfold, and that is what the store writes with every acknowledgement. Floating-point state
hardly compresses, and small arrays are not worth the time."""


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """JSON-safe form of numeric arrays, exact to the bit (large integer ones deflated)."""
    out: dict[str, Any] = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        raw = array.tobytes()
        spec: dict[str, Any] = {"dtype": array.dtype.str, "shape": list(array.shape)}
        if array.dtype.kind in "iub" and len(raw) > COMPRESS_ABOVE:
            packed = zlib.compress(raw, 1)
            if len(packed) < len(raw):
                spec["codec"], raw = "zlib", packed
        spec["data"] = base64.b64encode(raw).decode("ascii")
        out[name] = spec
    return out


def decode_arrays(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays :func:`encode_arrays` encoded (writable copies)."""
    out: dict[str, np.ndarray] = {}
    for name, spec in data.items():
        raw = base64.b64decode(spec["data"])
        if spec.get("codec") == "zlib":
            raw = zlib.decompress(raw)
        elif "codec" in spec:
            raise ValueError(f"state array {name!r}: unknown codec {spec['codec']!r}")
        array = np.frombuffer(raw, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
        out[name] = array.copy()
    return out
