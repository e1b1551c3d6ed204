"""Scoring detectors against labels: metrics on labelled runs (:mod:`.metrics`), NAB's scoring and
corpus format (:mod:`.nab`), getting rows to score (:mod:`.runs`), and the ``cosmobac evaluate``
and ``cosmobac report`` commands (:mod:`.cli`, a built-in plugin: importing it stays cheap, so the
names below load on first use)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .metrics import Counts, DetectorEvaluation, Evaluation, TypeFigures, evaluate
    from .nab import PROFILES, NabResult, NabSeries, read_corpus, score_corpus

__all__ = [
    "PROFILES",
    "Counts",
    "DetectorEvaluation",
    "Evaluation",
    "NabResult",
    "NabSeries",
    "TypeFigures",
    "evaluate",
    "read_corpus",
    "score_corpus",
]

_WHERE = {
    **dict.fromkeys(
        ("Counts", "DetectorEvaluation", "Evaluation", "TypeFigures", "evaluate"), "metrics"
    ),
    **dict.fromkeys(("PROFILES", "NabResult", "NabSeries", "read_corpus", "score_corpus"), "nab"),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
