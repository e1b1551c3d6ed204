"""Built-in streaming anomaly detectors, registered as transforms.

=================  ==========================================================================
``zscore``         rolling z-score over the previous ``window`` values
``robust_zscore``  rolling median/MAD z-score
``ewma``           z-score against an exponentially weighted mean and variance
``spike``          spike-and-dip: a jump away from the last few values, in units of noise
``cusum``          two-sided CUSUM against a slowly adapting baseline (shifts, drifts)
``stuck``          flatline: the same value repeated
``dropout``        missing values and time gaps
``entropy``        relative entropy of the recent window's histogram against the past
``context``        novelty of the recent pattern of values (pattern memory, CAD OSE family)
=================  ==========================================================================

Each adds ``<name>_score`` (in [0, 1), 0.5 at its threshold; NaN where it cannot judge),
``<name>_detected``, and the chain's combined ``anomaly_score``, ``detected`` and ``detector``
columns (see :mod:`cosmobac.detectors.base`). Each keeps per-sensor state that the forwarder
checkpoints with every acknowledgement, so a restarted forwarder continues warm.
"""

from __future__ import annotations

from typing import Final

from ..hookspecs import Register, hookimpl
from .base import Detector
from .context import Context
from .cusum import Cusum
from .ensemble import Ensemble
from .entropy import RelativeEntropy
from .ewma import EWMA
from .flat import Dropout, Stuck
from .robust import RobustZScore, Spike
from .zscore import ZScore

__all__ = [
    "DETECTORS",
    "EWMA",
    "Context",
    "Cusum",
    "Detector",
    "Dropout",
    "Ensemble",
    "RelativeEntropy",
    "RobustZScore",
    "Spike",
    "Stuck",
    "ZScore",
    "register_transforms",
]

DETECTORS: Final[dict[str, type[Detector]]] = {
    cls.kind: cls
    for cls in (ZScore, RobustZScore, EWMA, Spike, Cusum, Stuck, Dropout, Context, RelativeEntropy)
}
"""Every built-in detector class by its plugin name (``ensemble``, which runs some of them, is
registered as a transform too but is not listed here)."""


@hookimpl
def register_transforms(register: Register) -> None:
    for name, cls in DETECTORS.items():
        register(name, cls)
    register(Ensemble.kind, Ensemble)
