"""Each detector catches the anomaly types it is meant for, at the rates documented in
docs/detectors.md ("Detection rates"), on a seeded fleet: 3 cities × 4 sensors at 1 Hz for 3 hours
of sensor time (seed 7), default settings, batches of 5000 rows. The figures asserted are lower
bounds: the measured ones are in the docs."""

from __future__ import annotations

import functools

import pytest
from detection_support import every, fleet_rows, run

from cosmobac.detectors import DETECTORS
from cosmobac.evaluation.metrics import evaluate

# detector → anomaly type → minimum event recall (share of events with a detected row)
EVENT_RECALL = {
    "zscore": {"spike": 0.95, "dip": 0.95, "noise": 0.90, "pattern": 0.95},
    "robust_zscore": {"spike": 0.95, "dip": 0.95, "noise": 0.95, "pattern": 0.95},
    "ewma": {"spike": 0.95, "dip": 0.95, "noise": 0.90, "pattern": 0.95},
    "spike": {"spike": 0.95, "dip": 0.95},
    "cusum": {"drift": 0.95, "pattern": 0.95, "noise": 0.95, "stuck": 0.85},
    "stuck": {"stuck": 0.95},
    "dropout": {"dropout": 0.95},
    "all": {t: 0.95 for t in ("spike", "dip", "drift", "pattern", "stuck", "dropout", "noise")},
}

# detector → minimum point-adjusted precision
PRECISION = {
    "zscore": 0.95,
    "robust_zscore": 0.90,
    "ewma": 0.95,
    "spike": 0.95,
    "cusum": 0.95,
    "stuck": 0.99,
    "dropout": 0.99,
    "all": 0.90,
}


@functools.cache
def evaluation():
    rows = fleet_rows(3, 4, 180)
    seven = ("zscore", "robust_zscore", "ewma", "spike", "cusum", "stuck", "dropout")
    scored = run([DETECTORS[name]() for name in seven], rows, every(5000, rows))  # 'all seven'
    return evaluate(scored)


def test_the_fleet_has_every_anomaly_type():
    counts = evaluation().events_by_type
    assert set(counts) == {"spike", "dip", "drift", "pattern", "stuck", "dropout", "noise"}
    assert min(counts.values()) >= 20


@pytest.mark.parametrize(
    ("detector", "kind", "minimum"),
    [(d, t, m) for d, types in EVENT_RECALL.items() for t, m in types.items()],
)
def test_detectors_catch_their_anomaly_types(detector, kind, minimum):
    figures = evaluation().detectors[detector].by_type[kind]
    assert figures.event_recall >= minimum, (
        f"{detector} caught {figures.detected_events} of {figures.events} {kind} events"
    )


@pytest.mark.parametrize(("detector", "minimum"), PRECISION.items())
def test_point_adjusted_precision(detector, minimum):
    assert evaluation().detectors[detector].point_adjusted.precision >= minimum


def test_flatline_and_dropout_detectors_raise_no_false_alarm():
    for name in ("stuck", "dropout"):
        assert evaluation().detectors[name].event.fp == 0
