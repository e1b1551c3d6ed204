"""``ensemble``: several detectors run as one, their statistics combined.

Each member detector computes its statistic on the same rows. The members speak one unit, by
``calibrate``:

* ``threshold`` (default): each statistic divided by the member's own threshold, so 1 is "at its
  threshold" for every member (the calibration each detector's defaults already carry);
* ``likelihood``: each statistic through its own anomaly likelihood stage
  (:mod:`cosmobac.detectors.likelihood`), per sensor and column: the surprise ``−log10 p`` of a
  tail probability.

The ensemble's statistic is then, per column, either

* ``max`` (default): the largest surprise, the most confident member decides; or
* ``mean``: the mean surprise (the log of the geometric mean of the tail probabilities), which
  needs the members to agree; or
* ``fisher`` (``likelihood`` only): Fisher's combination, ``−2 Σ ln p`` (χ² with ``2m`` degrees
  of freedom when the members are independent and nothing is wrong), expressed as the surprise
  of that χ² tail.

and, as for every detector, the largest over the columns. By default the combined statistic then
goes through the alarm novelty stage (:mod:`cosmobac.detectors.novelty`, ``novelty = 200``), so
an event that several members see, or that keeps them high, alarms once.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import attrs
import numpy as np

from ..batch import Batch
from ..values import choice, real
from ._series import Part
from .base import NOVELTY_MODES, Detector
from .context import Context

__all__ = ["Ensemble", "chi2_even_log10_tail"]

log = logging.getLogger("cosmobac.detectors")

_COMBINE = ("max", "mean", "fisher")
_CALIBRATE = ("threshold", "likelihood")
_LN10 = math.log(10.0)


def chi2_even_log10_tail(x: np.ndarray, dof_half: int) -> np.ndarray:
    """``log10 P(χ²₂ₘ > x)`` with ``m = dof_half``: ``e^(−x/2) Σ_{i<m} (x/2)^i / i!``, in log
    space (finite however large ``x``)."""
    y = np.asarray(x, dtype=np.float64) / 2.0
    terms = [np.zeros_like(y)]
    log_y = np.log(np.maximum(y, 1e-300))
    for i in range(1, dof_half):
        terms.append(i * log_y - math.lgamma(i + 1))
    stacked = np.stack(terms)
    top = stacked.max(axis=0)
    log_sum = top + np.log(np.exp(stacked - top).sum(axis=0))
    return (-y + log_sum) / _LN10


def _members(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise TypeError(f"members must be a non-empty list of detector names, got {value!r}")
    from . import DETECTORS

    names = []
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"members must hold detector names (text), got {item!r}")
        if item not in DETECTORS or item == "ensemble":
            raise ValueError(f"members: unknown detector {item!r}; choose from {sorted(DETECTORS)}")
        if item in names:
            raise ValueError(f"members lists {item!r} twice")
        names.append(item)
    return tuple(names)


def _options(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in value.items()
    ):
        raise TypeError(f"options must map member names to tables of their keys, got {value!r}")
    return {k: dict(v) for k, v in value.items()}


@attrs.define(eq=False, kw_only=True)
class Ensemble(Detector):
    """Members' anomaly likelihoods combined (see the module docstring).

    Keys: ``columns``, ``members`` (detector names, default ``["context", "ewma"]``),
    ``options`` (a table per member of its own keys, e.g. ``{ ewma = { halflife = 60 } }``;
    ``columns`` is the ensemble's), ``calibrate`` (``threshold`` or ``likelihood``, default
    ``threshold``), ``combine`` (``max``, ``mean`` or ``fisher``, default ``max``),
    ``threshold`` (in members' thresholds, default 1; with ``calibrate = "likelihood"`` a
    surprise in decades of tail probability, default 4: p = 10⁻⁴), ``novelty`` (half-life of the
    alarm novelty stage, default 200 values; 0 turns it off), ``novelty_mode`` (default
    ``suppress``), ``name`` (default ``"ensemble"``)
    and ``likelihood_short``, ``likelihood_memory``, ``likelihood_warmup`` for the members'
    likelihood stages. With ``calibrate = "likelihood"``, ``likelihood`` itself must stay false:
    the ensemble's statistic already is a likelihood.

    State: each member's, under ``m<i>.``; a ``context`` member's rings go into the checkpoint
    and its count tables are rebuilt from them on restore (see :class:`Context`).
    """

    kind = "ensemble"

    members: tuple[str, ...] = attrs.field(default=("context", "ewma"), converter=_members)
    options: dict[str, dict[str, Any]] = attrs.field(factory=dict, converter=_options)
    combine: str = attrs.field(default="max", converter=lambda v: choice("combine", v, _COMBINE))
    calibrate: str = attrs.field(
        default="threshold", converter=lambda v: choice("calibrate", v, _CALIBRATE)
    )
    threshold: float | None = attrs.field(default=None)
    novelty_mode: str = attrs.field(
        default="suppress", converter=lambda v: choice("novelty_mode", v, NOVELTY_MODES)
    )
    _detectors: list[Detector] = attrs.field(init=False, factory=list, repr=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        from . import DETECTORS

        if self.threshold is None:
            self.threshold = 1.0 if self.calibrate == "threshold" else 4.0
        self.threshold = real("threshold", self.threshold, above=0)
        if self.combine == "fisher" and self.calibrate != "likelihood":
            raise ValueError(
                "combine: fisher combines tail probabilities; set calibrate to likelihood"
            )
        if self.likelihood and self.calibrate == "likelihood":
            raise ValueError(
                "likelihood: the ensemble's statistic already is a likelihood; leave it false"
            )
        unknown = set(self.options) - set(self.members)
        if unknown:
            raise ValueError(f"options: {sorted(unknown)} are not members ({list(self.members)})")
        detectors = []
        for name in self.members:
            opts = self.options.get(name, {})
            for key in ("columns", "name", "likelihood"):
                if key in opts:
                    raise ValueError(f"options.{name}.{key}: set by the ensemble, not per member")
            try:
                detectors.append(DETECTORS[name](columns=self.columns, **opts))
            except TypeError as exc:
                raise TypeError(f"options.{name}: {exc}") from None
        self._detectors = detectors

    @property
    def threshold_value(self) -> float:
        return float(self.threshold)  # type: ignore[arg-type]

    def _contexts(self) -> dict[int, Context]:
        """Members that keep their memory outside the per-sensor state (see :class:`Context`)."""
        return {i: m for i, m in enumerate(self._detectors) if isinstance(m, Context)}

    def get_state(self) -> str:
        full = self._state
        extra = {
            f"m{i}.{key}": value
            for i, member in self._contexts().items()
            for key, value in member._saved_memory(len(self._slots)).items()
        }
        self._state = {**full, **extra}
        try:
            return super().get_state()
        finally:
            self._state = full

    def set_state(self, state: str) -> None:
        super().set_state(state)
        contexts = self._contexts()
        for member in contexts.values():
            member.reset()
        if not self._state:
            return
        rings = {i: self._state.pop(f"m{i}.ring", None) for i in contexts}
        if any(ring is None for ring in rings.values()) or set(self._state) != set(
            self._initial(0, len(self.columns))
        ):
            log.warning("detector %r: saved state has another layout; starting cold", self.name)
            self.reset()
            return
        for i, member in contexts.items():
            member._restore_memory(rings[i], self._state[f"m{i}.symbols"])  # type: ignore[arg-type]

    def reset(self) -> None:
        super().reset()
        for member in self._detectors:
            member.reset()

    def _scan(self, member: Detector) -> Any:
        from .likelihood import LikelihoodScan

        return LikelihoodScan(
            member.threshold_value,
            short=self.likelihood_short,
            memory=self.likelihood_memory,
            warmup=self.likelihood_warmup,
        )

    def _initial(self, count: int, width: int) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {}
        for i, member in enumerate(self._detectors):
            for key, value in member._initial(count, width).items():
                state[f"m{i}.{key}"] = value
            if self.calibrate == "likelihood":
                for key, value in self._scan(member).initial(count * width).items():
                    state[f"m{i}.lik.{key}"] = value.reshape(count, width, *value.shape[1:])
        return state

    def _process(
        self, part: Part, x: np.ndarray, state: dict[str, np.ndarray], batch: Batch
    ) -> np.ndarray:
        g, c, length = x.shape
        surprises = []
        for i, member in enumerate(self._detectors):
            prefix = f"m{i}."
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            mstate = {k: v for k, v in own.items() if not k.startswith("lik.")}
            stat = member._process(part, x, mstate, batch)
            for key, value in mstate.items():
                state[prefix + key] = value
            if self.calibrate == "threshold":
                surprises.append(stat / member.threshold_value)
                continue
            lik = {
                k[4:]: v.reshape(g * c, *v.shape[2:])
                for k, v in own.items()
                if k.startswith("lik.")
            }
            surprise = self._scan(member).run(stat.reshape(g * c, length), lik)
            for key, value in lik.items():
                state[f"{prefix}lik.{key}"] = value.reshape(g, c, *value.shape[1:])
            surprises.append(surprise.reshape(g, c, length))
        stacked = np.stack(surprises)
        with np.errstate(invalid="ignore"):
            if self.combine == "max":
                return np.fmax.reduce(stacked, axis=0)
            if self.combine == "mean":
                present = ~np.isnan(stacked)
                total = np.where(present, stacked, 0.0).sum(axis=0)
                count = present.sum(axis=0)
                return np.where(count > 0, total / np.maximum(count, 1), np.nan)
            present = ~np.isnan(stacked)
            total = 2.0 * _LN10 * np.where(present, stacked, 0.0).sum(axis=0)
            m = present.sum(axis=0)
            out = np.full(total.shape, np.nan)
            for count in np.unique(m[m > 0]):
                where = m == count
                out[where] = -chi2_even_log10_tail(total[where], int(count))
            return out
