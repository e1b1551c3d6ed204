"""What every built-in detector shares: configuration keys, per-sensor state, output columns.

A detector is a stateful transform (:class:`cosmobac.interfaces.StatefulTransform`). For each row
it computes a non-negative *statistic* per configured column (how unusual the value is, in the
detector's own unit), combines the columns (by default the largest), and adds:

* ``<name>_score``: the statistic mapped to [0, 1) as ``s / (s + threshold)``, so 0.5 is exactly
  the threshold, the order of rows is kept (no clipping, no saturation) and ``inf`` maps to 1.0;
  NaN where the detector cannot judge the row (a missing value, or still warming up);
* ``<name>_detected``: ``s >= threshold`` (false where the score is NaN);
* ``anomaly_score``, ``detected``, ``detector``: the chain's combined view: the largest score of
  the detectors so far, whether any of them fired, and the names of those that fired, comma
  separated (``None`` when none did).

State is kept per sensor and per column, and rows are processed in the order the batch gives them
(the store's order). It is saved and restored through :meth:`get_state` / :meth:`set_state`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from ..batch import Batch
from ..schema import METRICS
from ..values import choice, flag, integer, real
from ._series import Groups, Part, Slots, decode_arrays, encode_arrays

__all__ = [
    "Detector",
    "columns_converter",
    "name_validator",
    "warmup",
]

log = logging.getLogger("cosmobac.detectors")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STATE_VERSION = 1

DEFAULT_NOVELTY = 200.0
"""Default half-life (values) of the alarm novelty stage (:mod:`cosmobac.detectors.novelty`). An
anomaly window of NAB spans 10 % of a file over its anomalies, some 100 to 400 values; 200 is the
middle of that range, a round number (dev-half NAB, ``context``: 61.5 at 100 and 200, 61.1 at
400, 63.1 at 800: not sensitive to it)."""
NOVELTY_MODES = ("rank", "suppress")


def columns_converter(value: Any) -> tuple[str, ...]:
    """``columns``: a non-empty list of column names (a single name is accepted too)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise TypeError(f"columns must be a non-empty list of column names, got {value!r}")
    names = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise TypeError(f"columns must hold column names (text), got {item!r}")
        if item in names:
            raise ValueError(f"columns lists {item!r} twice")
        names.append(item)
    return tuple(names)


def name_validator(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"name must be snake_case text (letters, digits, '_', starting with a letter), "
            f"got {value!r}"
        )


def warmup(window: int, min_periods: int | None) -> int:
    """The values a detector scoring over the last ``window`` values needs first: ``min_periods``,
    by default half the window (at least 2); ``ValueError`` when ``min_periods`` exceeds it."""
    if min_periods is None:
        return max(2, window // 2)
    if min_periods > window:
        raise ValueError(f"min_periods must be ≤ window ({window}), got {min_periods}")
    return min_periods


def previous_valid(x: np.ndarray, ok: np.ndarray, last: np.ndarray) -> np.ndarray:
    """For each position of ``x`` (S, L), the series' previous valid value (``ok``), looking back
    into ``last`` (S,) (the last valid value before this batch, NaN if none)."""
    length = x.shape[1]
    index = np.where(ok, np.arange(length), -1)
    np.maximum.accumulate(index, axis=1, out=index)
    before = np.empty_like(index)
    before[:, 0] = -1
    before[:, 1:] = index[:, :-1]
    picked = np.take_along_axis(x, np.maximum(before, 0), axis=1)
    return np.where(before >= 0, picked, last[:, None])


def last_valid(x: np.ndarray, ok: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Each series' last valid value after ``x`` (S, L), or ``last`` where it has none."""
    length = x.shape[1]
    index = np.where(ok, np.arange(length), -1).max(axis=1) if length else np.full(len(x), -1)
    picked = x[np.arange(len(x)), np.maximum(index, 0)] if length else last
    return np.where(index >= 0, picked, last)


@attrs.define(eq=False, kw_only=True)
class Detector:
    """Base class of the built-in detectors (see the module docstring)."""

    kind: ClassVar[str] = "detector"

    columns: tuple[str, ...] = attrs.field(default=METRICS, converter=columns_converter)
    name: str | None = attrs.field(default=None, validator=name_validator)
    # the anomaly likelihood stage (see cosmobac.detectors.likelihood), off by default
    likelihood: bool = attrs.field(default=False, converter=lambda v: flag("likelihood", v))
    likelihood_threshold: float = attrs.field(
        default=4.0, converter=lambda v: real("likelihood_threshold", v, above=0)
    )
    likelihood_short: int = attrs.field(
        default=1, converter=lambda v: integer("likelihood_short", v, minimum=1)
    )
    likelihood_memory: float = attrs.field(
        default=1000.0, converter=lambda v: real("likelihood_memory", v, above=0)
    )
    likelihood_warmup: int = attrs.field(
        default=100, converter=lambda v: integer("likelihood_warmup", v, minimum=2)
    )
    # the alarm novelty stage (see cosmobac.detectors.novelty): half-life in values, 0 = off
    novelty: float = attrs.field(
        default=DEFAULT_NOVELTY, converter=lambda v: real("novelty", v, minimum=0)
    )
    novelty_mode: str = attrs.field(
        default="rank", converter=lambda v: choice("novelty_mode", v, NOVELTY_MODES)
    )

    _slots: Slots = attrs.field(init=False, factory=Slots, repr=False)
    _state: dict[str, np.ndarray] = attrs.field(init=False, factory=dict, repr=False)
    _version: int = attrs.field(init=False, default=0, repr=False)
    _cached: tuple[int, str] | None = attrs.field(init=False, default=None, repr=False)
    _lik_state: dict[str, np.ndarray] = attrs.field(init=False, factory=dict, repr=False)
    _nov_state: dict[str, np.ndarray] = attrs.field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.name is None:
            self.name = self.kind

    # -- what subclasses provide --------------------------------------------------------------
    @property
    def threshold_value(self) -> float:
        """The statistic at which a row counts as detected."""
        raise NotImplementedError

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        """State arrays for ``count`` new sensors with ``width`` columns each."""
        raise NotImplementedError

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        """The statistic ``(g, C, L)`` for ``x`` (g, C, L; NaN for missing and padding), updating
        ``state`` (this part's sensors' arrays) in place."""
        raise NotImplementedError

    def _combine(self, stat: np.ndarray) -> np.ndarray:
        """One statistic per row from one per column (``stat`` is (C, rows)): the largest, NaN
        only if all are NaN."""
        out = stat[0].copy()
        for row in stat[1:]:
            np.fmax(out, row, out=out)
        return out

    @property
    def _out_width(self) -> int:
        return len(self.columns)

    # -- the transform --------------------------------------------------------------------------
    def __call__(self, batch: Batch) -> Batch:
        self._version += 1
        n = len(batch)
        present = [c for c in self.columns if c in batch]
        if n and not present:
            raise ValueError(
                f"detector {self.name!r}: the batch has none of the columns {list(self.columns)}; "
                f"set columns to some of {list(batch.columns)}"
            )
        stat_rows = np.full((self._out_width, n), np.nan)
        parts: list[Part] = []
        if n:
            missing = np.full(n, np.nan)
            values = [
                batch[c].astype(np.float64, copy=False) if c in batch else missing
                for c in self.columns
            ]
            codes = self._slots.codes(batch["sensor_id"])
            self._grow()
            parts = list(Groups(codes).parts())
            for part in parts:
                x = part.gather(values)
                state = {k: v[part.slots] for k, v in self._state.items()}
                stat = self._process(part, x, state, batch)
                for key, array in state.items():
                    self._state[key][part.slots] = array
                part.scatter(stat_rows, stat)
        stat = self._combine(stat_rows)
        return self._emit(batch, stat, parts)

    def _grow(self) -> None:
        have = len(next(iter(self._state.values()))) if self._state else 0
        need = len(self._slots)
        if need > have:
            fresh = self._initial(need - have, len(self.columns))
            if not self._state:
                self._state = fresh
            else:
                self._state = {k: np.concatenate([self._state[k], fresh[k]]) for k in fresh}

    def _likelihood_scan(self) -> Any:
        from .likelihood import LikelihoodScan  # it builds on .ewma, which imports this module

        return LikelihoodScan(
            self.threshold_value,
            short=self.likelihood_short,
            memory=self.likelihood_memory,
            warmup=self.likelihood_warmup,
        )

    def _per_sensor(self, parts: list[Part], stat: np.ndarray, scan: Any, store: str) -> np.ndarray:
        """``scan`` (a stage with ``initial(count)`` and ``run(x, state)``) over each sensor's
        statistics (the batch's rows grouped in ``parts``), with its state in the attribute
        ``store`` (slots as in ``_slots``)."""
        out = np.full(len(stat), np.nan)
        if not len(stat):
            return out
        held: dict[str, np.ndarray] = getattr(self, store)
        have = len(next(iter(held.values()))) if held else 0
        if len(self._slots) > have:
            fresh = scan.initial(len(self._slots) - have)
            held = {k: np.concatenate([held[k], fresh[k]]) for k in fresh} if held else fresh
            setattr(self, store, held)
        rows = out[None, :]
        for part in parts:
            x = part.gather1(stat, np.nan)
            state = {k: v[part.slots] for k, v in held.items()}
            result = scan.run(x, state)
            for key, array in state.items():
                held[key][part.slots] = array
            part.scatter(rows, result[:, None, :])
        return out

    def _likelihood(self, parts: list[Part], stat: np.ndarray) -> np.ndarray:
        """The surprise ``−log10 p`` of each row's statistic (see :mod:`.likelihood`), per sensor,
        with the stage's state in ``_lik_state`` (slots as in ``_slots``)."""
        return self._per_sensor(parts, stat, self._likelihood_scan(), "_lik_state")

    def _novelty(self, parts: list[Part], stat: np.ndarray) -> np.ndarray:
        """Each row's statistic in excess of its sensor's fading peak (see :mod:`.novelty`),
        with the stage's state in ``_nov_state``."""
        from .novelty import NoveltyScan

        threshold = self.likelihood_threshold if self.likelihood else self.threshold_value
        scan = NoveltyScan(self.novelty, self.novelty_mode, threshold)
        return self._per_sensor(parts, stat, scan, "_nov_state")

    def _emit(self, batch: Batch, stat: np.ndarray, parts: list[Part]) -> Batch:
        threshold = self.threshold_value
        if self.likelihood:
            stat = self._likelihood(parts, stat)
            threshold = self.likelihood_threshold
        if self.novelty > 0:
            stat = self._novelty(parts, stat)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = stat / (stat + threshold)
        score[np.isposinf(stat)] = 1.0
        detected = stat >= threshold
        name = str(self.name)
        out: dict[str, Any] = {f"{name}_score": score, f"{name}_detected": detected}
        prev_score = batch.get("anomaly_score")
        prev_detected = batch.get("detected")
        prev_names = batch.get("detector")
        combined_score = score
        if prev_score is not None and prev_score.dtype.kind == "f":
            combined_score = np.fmax(prev_score, score)
        combined = detected
        if prev_detected is not None and prev_detected.dtype.kind == "b":
            combined = prev_detected | detected
        names = np.full(len(batch), None, dtype=object)
        if prev_names is not None and prev_names.dtype.kind == "O":
            names[:] = prev_names
        hit = np.flatnonzero(detected)
        if len(hit):
            names[hit] = [name if v is None else f"{v},{name}" for v in names[hit].tolist()]
        out.update(anomaly_score=combined_score, detected=combined, detector=names)
        return batch.with_columns(out)

    # -- state ----------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for field in attrs.fields(type(self)):
            if field.init and field.name != "name":
                value = getattr(self, field.name)
                params[field.name] = list(value) if isinstance(value, tuple) else value
        return params

    def get_state(self) -> str:
        if self._cached is not None and self._cached[0] == self._version:
            return self._cached[1]
        text = json.dumps(
            {
                "version": STATE_VERSION,
                "detector": self.kind,
                "params": self._params(),
                "sensors": self._slots.ids,
                "arrays": encode_arrays(self._state),
                **({"likelihood": encode_arrays(self._lik_state)} if self.likelihood else {}),
                **({"novelty": encode_arrays(self._nov_state)} if self.novelty > 0 else {}),
            },
            separators=(",", ":"),
        )
        self._cached = (self._version, text)
        return text

    def set_state(self, state: str) -> None:
        self._version += 1
        data = json.loads(state)
        if (
            data.get("version") != STATE_VERSION
            or data.get("detector") != self.kind
            or data.get("params") != json.loads(json.dumps(self._params()))
        ):
            log.warning(
                "detector %r: saved state was made with other settings (%s); starting cold",
                self.name,
                data.get("params"),
            )
            self.reset()
            return
        self._slots = Slots(data["sensors"])
        self._state = decode_arrays(data["arrays"])
        self._lik_state = decode_arrays(data.get("likelihood", {}))
        self._nov_state = decode_arrays(data.get("novelty", {}))
        self._cached = (self._version, state)  # this text is the state: no need to encode it

    def reset(self) -> None:
        """Forget every sensor's state (as if newly made)."""
        self._version += 1
        self._slots = Slots()
        self._state = {}
        self._lik_state = {}
        self._nov_state = {}

    @property
    def sensors(self) -> list[str]:
        """Sensor ids this detector holds state for."""
        return list(self._slots.ids)
