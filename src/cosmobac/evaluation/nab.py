"""The Numenta Anomaly Benchmark's scoring, and its corpus format.

Implemented from NAB's published rules (v1.1 scorer; see ``docs/detectors.md``):

* the first 15 % of each file (at most 750 rows) is *probation*, never scored;
* a detector gives each row an anomaly score in [0, 1] without looking ahead; one threshold for
  the whole corpus is chosen per profile by trying every distinct score (and "never alarm") and
  keeping the best;
* inside a labelled window only the earliest alarm counts, weighted by a scaled sigmoid of its
  position (+TP weight at the window's left edge, about 0 at its right edge); a window without
  an alarm costs −FN weight; each alarm outside the windows costs the FP weight times a sigmoid
  of its distance past the previous window's end (the full FP weight if there is none, or it is
  more than 3 window widths back);
* normalised score = 100 · (raw − null) / (perfect − null): the null detector (a constant score,
  thresholds optimised in the same way) scores 0, a perfect one (an alarm at the left edge of
  every window) 100.

The corpus: CSV files ``timestamp,value`` (``YYYY-MM-DD HH:MM:SS``, read as UTC; duplicate times
and a clock that steps back are accepted, see :func:`clean_timestamps`) and a JSON file
mapping ``"category/file.csv"`` to its windows ``[[start, end], ...]`` (NAB's
``combined_windows.json``) or, with ``raw=True``, to its labelled anomaly timestamps (NAB's
``combined_labels.json``), from which windows are made as NAB does: 10 % of the file's length
divided by the number of anomalies, centred on each label.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np

__all__ = [
    "PROFILES",
    "NabResult",
    "NabSeries",
    "PreparedCorpus",
    "Profile",
    "clean_timestamps",
    "null_scores",
    "parse_time",
    "probation_length",
    "read_corpus",
    "scaled_sigmoid",
    "score_corpus",
    "sweep_weights",
    "windows_from_labels",
]

PROBATION: Final = 0.15
WINDOW_FRACTION: Final = 0.10
OUTSIDE: Final = -1
IN_PROBATION: Final = -2


@attrs.frozen
class Profile:
    """An application profile: the weights of a true positive, a false negative, a false
    positive."""

    name: str
    tp: float
    fn: float
    fp: float


PROFILES: Final[dict[str, Profile]] = {
    "standard": Profile("standard", 1.0, 1.0, 0.11),
    "reward_low_fp": Profile("reward_low_fp", 1.0, 1.0, 0.22),
    "reward_low_fn": Profile("reward_low_fn", 1.0, 2.0, 0.11),
}
"""NAB's three profiles."""


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid: ``2/(1 + e^(5x)) − 1`` (from +0.987 at −1 to −1), and −1 beyond 3."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, value)


_MAX_TP = float(scaled_sigmoid(-1.0))


def probation_length(rows: int) -> int:
    """Rows at the start of a file that are never scored: 15 %, at most 750."""
    return int(min(math.floor(PROBATION * rows), PROBATION * 5000))


def parse_time(text: str) -> int:
    """Epoch milliseconds of a NAB timestamp (``2014-02-14 14:27:00`` or ``...00.000000``), read
    as UTC unless it says otherwise."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return round(value.timestamp() * 1000)


@attrs.frozen
class NabSeries:
    """One data file: its name (the key in the labels file), timestamps (epoch ms), values and
    anomaly windows (epoch ms, inclusive)."""

    name: str
    timestamps: np.ndarray = attrs.field(repr=False)
    values: np.ndarray = attrs.field(repr=False)
    windows: tuple[tuple[int, int], ...] = ()
    notes: tuple[str, ...] = ()  # what the reader found and how it handled it

    def __len__(self) -> int:
        return len(self.timestamps)


def sweep_weights(
    timestamps: np.ndarray, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the weight it scores if it alarms, and its window (index into ``windows``),
    :data:`OUTSIDE` or :data:`IN_PROBATION`."""
    n = len(timestamps)
    weight = np.empty(n)
    window = np.full(n, OUTSIDE, dtype=np.int64)
    rows = np.arange(n)
    bounds = []
    for w, (start, end) in enumerate(sorted(windows)):
        left = int(np.searchsorted(timestamps, start, side="left"))
        right = int(np.searchsorted(timestamps, end, side="right")) - 1
        if right < left:
            continue
        width = right - left + 1
        span = slice(left, right + 1)
        window[span] = w
        position = -(right - rows[span] + 1) / width
        weight[span] = scaled_sigmoid(position) * profile.tp / _MAX_TP
        bounds.append((left, right, width))
    # outside windows: the cost depends on the distance past the previous window's end
    outside = window == OUTSIDE
    weight[outside] = -profile.fp
    for i, (_, right, width) in enumerate(bounds):
        stop = bounds[i + 1][0] if i + 1 < len(bounds) else n
        after = slice(right + 1, stop)
        distance = (rows[after] - right) / max(width - 1, 1)
        weight[after] = scaled_sigmoid(distance) * profile.fp
    window[: probation_length(n)] = IN_PROBATION
    return weight, window


@attrs.frozen
class NabResult:
    """A NAB score for one profile: the chosen threshold, raw, null and perfect scores, the
    normalised score, raw score per file, and the alarm counts at the threshold."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    per_series: Mapping[str, float]
    true_positives: int  # windows with an alarm
    false_negatives: int  # scored windows without one
    false_positives: int  # alarms outside windows (after probation)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _threshold_sweep(
    scores: np.ndarray, weights: np.ndarray, windows: np.ndarray, fn: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate threshold (descending, starting with "never alarm") and the corpus' raw
    score at it, alarming where ``score >= threshold``."""
    n = len(scores)
    order = np.argsort(-scores)  # ties need no order: scores are only read at their last one
    s = scores[order]
    win = windows[order]
    contribution = np.where(win == OUTSIDE, weights[order], 0.0)
    inside = np.flatnonzero(win >= 0)
    if len(inside):
        # a window's score is its best alarm so far, and a window's weights fall from left to
        # right: the best alarm is the earliest row alarmed so far. Running minimum of the row
        # per window, in exact integers (windows apart by n + 1 so the running maximum of
        # ``group·(n+1) + (n − row)`` never carries from one window to the next)
        rows = order[inside]
        by_window = np.argsort(win[inside], kind="stable")
        ids = win[inside][by_window]
        group = np.cumsum(np.concatenate(([0], ids[1:] != ids[:-1])))
        key = group * (n + 1) + (n - rows[by_window])
        np.maximum.accumulate(key, out=key)
        earliest = n - (key - group * (n + 1))
        best = np.maximum(weights[earliest], -fn)
        first = np.concatenate(([True], ids[1:] != ids[:-1]))
        before = np.empty_like(best)
        before[0] = -fn
        before[1:] = best[:-1]
        before[first] = -fn
        contribution[inside[by_window]] = best - before
    contribution[win == IN_PROBATION] = 0.0
    base = -fn * len(np.unique(windows[windows >= 0]))
    totals = base + np.cumsum(contribution)
    last_of_value = (
        np.flatnonzero(np.concatenate((s[1:] != s[:-1], [True]))) if n else np.empty(0, np.int64)
    )
    thresholds = np.concatenate(([np.inf], s[last_of_value]))
    raw = np.concatenate(([base], totals[last_of_value]))
    return thresholds, raw


def _raw_at(
    scores: np.ndarray, weights: np.ndarray, windows: np.ndarray, threshold: float, fn: float
) -> tuple[float, int, int, int]:
    alarm = (scores >= threshold) & (windows != IN_PROBATION)
    fp_rows = alarm & (windows == OUTSIDE)
    raw = float(weights[fp_rows].sum())
    tp = fn_count = 0
    for w in np.unique(windows[windows >= 0]).tolist():
        hit = alarm & (windows == w)
        if hit.any():
            raw += float(weights[hit].max())
            tp += 1
        else:
            raw -= fn
            fn_count += 1
    return raw, tp, fn_count, int(fp_rows.sum())


def null_scores(series: Sequence[NabSeries]) -> list[np.ndarray]:
    """The null detector's scores: 0.5 everywhere."""
    return [np.full(len(s), 0.5) for s in series]


@attrs.frozen
class PreparedCorpus:
    """A corpus' weights and windows for one profile (they do not depend on the detector), and its
    null and perfect raw scores: prepare once, score many detectors."""

    series: tuple[NabSeries, ...]
    profile: Profile
    weights: np.ndarray = attrs.field(repr=False)
    windows: np.ndarray = attrs.field(repr=False)  # unique across the corpus
    spans: tuple[slice, ...] = attrs.field(repr=False)
    null: float
    perfect: float

    @classmethod
    def make(
        cls, series: Sequence[NabSeries], profile: Profile | str = "standard"
    ) -> PreparedCorpus:
        if isinstance(profile, str):
            profile = PROFILES[profile]
        weights, windows, spans = [], [], []
        offset = start = 0
        for one in series:
            weight, window = sweep_weights(one.timestamps, one.windows, profile)
            weights.append(weight)
            windows.append(np.where(window >= 0, window + offset, window))
            offset += len(one.windows)
            spans.append(slice(start, start + len(one)))
            start += len(one)
        all_weights = np.concatenate(weights) if weights else np.empty(0)
        all_windows = np.concatenate(windows) if windows else np.empty(0, np.int64)
        # the null detector (a constant score) either never alarms or always does
        scored = all_windows != IN_PROBATION
        never = -profile.fn * len(np.unique(all_windows[all_windows >= 0]))
        always = float(all_weights[scored & (all_windows == OUTSIDE)].sum())
        for w in np.unique(all_windows[all_windows >= 0]).tolist():
            always += max(float(all_weights[all_windows == w].max()), -profile.fn)
        return cls(
            series=tuple(series),
            profile=profile,
            weights=all_weights,
            windows=all_windows,
            spans=tuple(spans),
            null=max(never, always),
            perfect=profile.tp * sum(len(one.windows) for one in series),
        )

    def score(self, scores: Sequence[np.ndarray]) -> NabResult:
        """The NAB result of one detector's scores (one array per series; NaN counts as 0)."""
        if len(scores) != len(self.series):
            raise ValueError(f"{len(self.series)} series but {len(scores)} score arrays")
        for one, score in zip(self.series, scores, strict=True):
            if len(score) != len(one):
                raise ValueError(f"{one.name}: {len(one)} rows but {len(score)} scores")
        profile = self.profile
        all_scores = (
            np.nan_to_num(np.concatenate([np.asarray(s, np.float64) for s in scores]), nan=0.0)
            if scores
            else np.empty(0)
        )
        thresholds, raws = _threshold_sweep(all_scores, self.weights, self.windows, profile.fn)
        best = int(np.argmax(raws))  # the first best: the highest threshold among equals
        threshold = float(thresholds[best])
        per_series = {}
        tp = fn = fp = 0
        for one, span in zip(self.series, self.spans, strict=True):
            raw, t, f, p = _raw_at(
                all_scores[span], self.weights[span], self.windows[span], threshold, profile.fn
            )
            per_series[one.name] = raw
            tp, fn, fp = tp + t, fn + f, fp + p
        raw_total = float(sum(per_series.values()))
        null, perfect = self.null, self.perfect
        normalised = 100.0 * (raw_total - null) / (perfect - null) if perfect != null else 0.0
        return NabResult(
            profile=profile.name,
            threshold=threshold,
            raw=raw_total,
            null=null,
            perfect=perfect,
            score=normalised,
            per_series=per_series,
            true_positives=tp,
            false_negatives=fn,
            false_positives=fp,
        )


def score_corpus(
    series: Sequence[NabSeries], scores: Sequence[np.ndarray], profile: Profile | str = "standard"
) -> NabResult:
    """The NAB score of a detector's ``scores`` (one array per series; NaN counts as 0)."""
    return PreparedCorpus.make(series, profile).score(scores)


# -- the corpus -----------------------------------------------------------------------------------
def windows_from_labels(
    timestamps: np.ndarray, anomalies: Iterable[int], fraction: float = WINDOW_FRACTION
) -> tuple[tuple[int, int], ...]:
    """Windows around labelled anomaly times, as NAB makes them: ``fraction`` of the file's
    length divided by the number of anomalies, centred on each label; overlapping windows merge."""
    points = sorted(int(a) for a in anomalies)
    n = len(timestamps)
    if not points or not n:
        return ()
    width = int(fraction * n / len(points))
    spans: list[list[int]] = []
    for point in points:
        i = int(np.searchsorted(timestamps, point))
        i = min(i, n - 1)
        left, right = max(i - width // 2, 0), min(i + width // 2, n - 1)
        if spans and left <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], right)
        else:
            spans.append([left, right])
    return tuple((int(timestamps[a]), int(timestamps[b])) for a, b in spans)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    times: list[int] = []
    values: list[float] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected a header 'timestamp,value', got {header}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                times.append(parse_time(row[0]))
                values.append(float(row[1]) if row[1].strip() else math.nan)
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    ts = np.array(times, dtype=np.int64)
    ts, notes = clean_timestamps(ts)
    return ts, np.array(values, dtype=np.float64), notes


def clean_timestamps(ts: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """The reader's policy for a file's clock, and notes on what it found.

    * Rows stay in file order (the order they were recorded in): detectors see them as written.
    * Duplicate timestamps: both rows are kept, as NAB's scorer keeps them (each row is scored).
    * A clock that steps back: for window placement and scoring, a row's time is the latest time
      seen so far in the file (a running maximum), so times never decrease; rows whose clock was
      behind count as recorded at that latest time. Files whose times never decrease are
      unchanged.
    """
    notes = []
    if len(ts) > 1:
        step = np.diff(ts)
        duplicates = int((step == 0).sum())
        back = np.flatnonzero(step < 0)
        if duplicates:
            notes.append(f"{duplicates} duplicate timestamp(s) kept (each row is scored)")
        if len(back):
            behind = np.maximum.accumulate(ts)
            held = int((behind != ts).sum())
            worst = int((behind - ts).max())
            notes.append(
                f"clock steps back {len(back)} time(s) (first after row {int(back[0]) + 2} of "
                f"the file, by up to {worst / 1000:g} s): rows kept in file order, {held} "
                "row(s) timed at the latest earlier time for scoring"
            )
            ts = behind
    return ts, tuple(notes)


def _find(data_dir: Path, key: str) -> Path | None:
    for candidate in (data_dir / key, data_dir / Path(key).name):
        if candidate.is_file():
            return candidate
    return None


def read_corpus(
    data_dir: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    *,
    raw: bool = False,
) -> list[NabSeries]:
    """The labelled series of a NAB corpus (or part of one).

    ``data_dir`` holds the CSV files, as ``category/file.csv`` (NAB's ``data/``) or flat.
    ``labels`` is the JSON labels file; by default ``labels.json`` in ``data_dir`` or NAB's
    ``../labels/combined_windows.json``. Files named in the labels but missing are skipped only
    if none is found at all is it an error, so a sample of the corpus can be scored."""
    data_dir = Path(data_dir)
    if labels is None:
        for candidate in (
            data_dir / "labels.json",
            data_dir.parent
            / "labels"
            / ("combined_labels.json" if raw else "combined_windows.json"),
        ):
            if candidate.is_file():
                labels = candidate
                break
        else:
            raise FileNotFoundError(
                f"no labels file found for {data_dir}: give one (a JSON map of "
                "'category/file.csv' to [[start, end], ...] windows)"
            )
    with open(labels, encoding="utf-8") as f:
        table = json.load(f)
    if not isinstance(table, Mapping):
        raise ValueError(f"{labels}: expected a JSON object of file → windows")
    out = []
    for key, entries in sorted(table.items()):
        path = _find(data_dir, key)
        if path is None:
            continue
        ts, values, notes = _read_csv(path)
        if raw:
            windows = windows_from_labels(ts, [parse_time(e) for e in entries])
        else:
            windows = tuple((parse_time(a), parse_time(b)) for a, b in entries)
        out.append(NabSeries(name=key, timestamps=ts, values=values, windows=windows, notes=notes))
    if not out:
        raise FileNotFoundError(
            f"none of the {len(table)} files named in {labels} is in {data_dir}"
        )
    return out
