"""Evaluation metrics on hand-made cases, and ``cosmobac evaluate`` on a labelled run."""

from __future__ import annotations

import json
import math

import click
import numpy as np
import pytest
from click.testing import CliRunner

from cosmobac.batch import Batch
from cosmobac.cli import cli
from cosmobac.evaluation.commands import register_commands
from cosmobac.evaluation.metrics import Counts, detector_names, evaluate, find_events
from cosmobac.plugins import Plugins

pytestmark = pytest.mark.needs_plugins  # the sqlite store


def labelled(flags, types, detected, *, sensor="a", scores=None, start=0):
    n = len(flags)
    columns = {
        "timestamp": start + 1000 * np.arange(n),
        "sensor_id": np.full(n, sensor, dtype=object),
        "anomaly_flag": np.array(flags, dtype=bool),
        "anomaly_type": np.array(
            [t if f else None for t, f in zip(types, flags, strict=True)], dtype=object
        ),
        "x_detected": np.array(detected, dtype=bool),
        "x_score": np.array(
            scores if scores is not None else [0.9 if d else 0.1 for d in detected], dtype=float
        ),
    }
    return Batch.from_columns(columns)


def test_counts_ratios():
    c = Counts(tp=3, fp=1, fn=2)
    assert (c.precision, c.recall, c.f1) == (0.75, 0.6, pytest.approx(6 / 9))
    empty = Counts(tp=0, fp=0, fn=0)
    assert math.isnan(empty.precision) and math.isnan(empty.recall) and math.isnan(empty.f1)


def test_events_are_runs_of_one_sensor_and_type():
    sensors = np.array(["a"] * 6 + ["b"] * 3, dtype=object)
    flags = np.array([0, 1, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    types = np.array(
        [None, "spike", "drift", "drift", None, "noise", "noise", "noise", None], dtype=object
    )
    events = find_events(sensors, flags, types, 1000 * np.arange(9))
    assert events.first.tolist() == [1, 2, 5, 6]  # a type change and a sensor change split events
    assert events.last.tolist() == [1, 3, 5, 7]
    assert events.anomaly_type.tolist() == ["spike", "drift", "noise", "noise"]
    assert events.row_event.tolist() == [-1, 0, 1, 1, -1, 2, 3, 3, -1]


def test_point_point_adjusted_and_event_scores():
    #        events:  [  drift  ]       [spike]
    flags = [0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0]
    types = ["drift"] * 6 + ["spike"] * 6
    det = [0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1]
    result = evaluate(labelled(flags, types, det), profiles=["standard"]).detectors["x"]
    assert (result.point.tp, result.point.fp, result.point.fn) == (1, 4, 4)
    # the drift event counts as detected in full; the spike not at all
    assert (result.point_adjusted.tp, result.point_adjusted.fp, result.point_adjusted.fn) == (
        4,
        4,
        1,
    )
    # events: 1 of 2 caught; false alarms are runs: rows 1, 7–8, 11
    assert (result.event.tp, result.event.fn, result.event.fp) == (1, 1, 3)
    assert result.mean_delay_rows == 2.0 and result.mean_delay_s == 2.0
    assert result.by_type["drift"].event_recall == 1.0
    assert result.by_type["drift"].point_recall == 0.25
    assert result.by_type["spike"].event_recall == 0.0
    assert math.isnan(result.by_type["spike"].mean_delay_rows)


def test_event_f1_per_type_shares_the_detectors_event_precision():
    #        events:  [drift ]          [spike]         [spike]
    flags = [0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    types = ["drift"] * 5 + ["spike"] * 11
    det = [0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0]
    result = evaluate(labelled(flags, types, det), profiles=()).detectors["x"]
    # 2 of 3 events caught; false alarms (runs outside events): row 4 (the drift's alarm running
    # on past its end), row 9, rows 13-14; so event precision 2 / (2 + 3)
    assert (result.event.tp, result.event.fn, result.event.fp) == (2, 1, 3)
    precision = 2 / 5
    drift, spike = result.by_type["drift"], result.by_type["spike"]
    assert drift.event_precision == spike.event_precision == precision
    assert drift.event_recall == 1.0 and spike.event_recall == 0.5
    assert drift.event_f1 == pytest.approx(2 * precision * 1.0 / (precision + 1.0))
    assert spike.event_f1 == pytest.approx(2 * precision * 0.5 / (precision + 0.5))
    # the false alarms count against every type, so no type's F1 beats the precision's bound
    assert max(drift.event_f1, spike.event_f1) < 2 * precision / (precision + 1) + 1e-12
    assert result.event.f1 == pytest.approx(2 * 2 / (2 * 2 + 3 + 1))
    data = result.as_dict()["by_type"]["spike"]
    assert data["event_f1"] == pytest.approx(spike.event_f1)
    assert data["event_precision"] == precision


def test_event_f1_per_type_is_zero_without_hits_and_nan_without_alarms():
    flags = [0, 1, 0, 0, 1, 0]
    types = ["spike", "spike", "spike", "noise", "noise", "noise"]
    missed = evaluate(labelled(flags, types, [1, 0, 0, 0, 0, 0]), profiles=()).detectors["x"]
    assert missed.by_type["spike"].event_f1 == 0.0  # precision 0, recall 0
    silent = evaluate(labelled(flags, types, [0] * 6), profiles=()).detectors["x"]
    assert math.isnan(silent.by_type["noise"].event_f1)  # no alarm: precision undefined
    caught = evaluate(labelled(flags, types, [0, 1, 0, 0, 1, 0]), profiles=()).detectors["x"]
    assert caught.by_type["noise"].event_f1 == 1.0 and caught.event.f1 == 1.0


def test_the_table_has_event_f1_by_type():
    rows = labelled([0, 1, 0, 1, 0], ["spike"] * 3 + ["noise"] * 2, [0, 1, 1, 0, 0])
    result = evaluate(rows, profiles=())
    text = result.table()
    assert "event F1 by anomaly type" in text
    (row,) = result.type_f1_rows()
    # one event of two caught, one false alarm: precision 1/2; spike recall 1, noise recall 0
    assert row == {"detector": "x", "noise": "0.00", "spike": "0.67", "all events": "0.50"}
    assert "event F1 by anomaly type" in result._repr_html_()


def test_rows_are_ordered_by_sensor_and_time_before_scoring():
    a = labelled([0, 1, 1, 0], ["spike"] * 4, [0, 0, 1, 0], sensor="a")
    b = labelled([1, 1, 0, 0], ["noise"] * 4, [1, 0, 0, 0], sensor="b")
    rows = Batch.concat([a, b])
    shuffled = rows.select(np.random.default_rng(0).permutation(len(rows)))
    one, two = evaluate(rows), evaluate(shuffled)
    assert one.as_dict() == two.as_dict()
    assert one.detectors["x"].event.tp == 2 and one.sensors == 2


def test_nab_score_of_a_perfect_and_a_null_detector():
    flags = [0] * 30 + [1] * 5 + [0] * 30 + [1] * 5 + [0] * 30
    perfect = [1 if i in (30, 65) else 0 for i in range(100)]
    rows = labelled(flags, ["drift"] * 100, perfect, scores=perfect)
    nab = evaluate(rows).detectors["x"].nab
    assert nab["standard"].score == pytest.approx(100.0)
    null = labelled(flags, ["drift"] * 100, [0] * 100, scores=[0.5] * 100)
    assert evaluate(null).detectors["x"].nab["standard"].score == pytest.approx(0.0)


def test_detector_names_and_errors():
    rows = labelled([0, 1], ["spike", "spike"], [0, 1])
    assert detector_names(rows) == ["x"]
    assert detector_names(rows.with_columns(detected=[0, 1], anomaly_score=[0.0, 1.0])) == [
        "x",
        "all",
    ]
    with pytest.raises(ValueError, match="no detections"):
        evaluate(rows.drop("x_detected"))
    with pytest.raises(ValueError, match="anomaly_flag"):
        evaluate(rows.drop("anomaly_flag"))


# -- the command ----------------------------------------------------------------------------------
@pytest.fixture
def labelled_run(tmp_path):
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f"""
[sensor]
plugin = "simulated"
cities = 1
sensors_per_city = 2
seed = 3

[store]
plugin = "sqlite"
path = "{tmp_path / "edge.db"}"

[[transforms]]
plugin = "zscore"

[[transforms]]
plugin = "stuck"

[[transforms]]
plugin = "aggregate"

[[sinks]]
plugin = "jsonl"
path = "{tmp_path / "out.jsonl"}"

[run]
duration = "40m"
"""
    )
    return config


def invoke(*args):
    """Run ``cosmobac ARGS`` as ``cosmobac.cli.main`` does: plugins (here, built-ins) add their
    commands, evaluate and report among them."""
    group = click.Group(
        name="cosmobac", commands=dict(cli.commands), params=list(cli.params), callback=cli.callback
    )
    Plugins().add_commands(group)
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def test_register_commands_adds_evaluate_and_report():
    group = click.Group()
    register_commands(group)
    assert {"evaluate", "report"} <= set(group.commands)


def test_evaluate_a_labelled_run(labelled_run, tmp_path):
    assert invoke("collect", str(labelled_run)).exit_code == 0
    result = invoke("evaluate", str(labelled_run))
    assert result.exit_code == 0, result.output
    assert "zscore" in result.output and "event recall by anomaly type" in result.output
    assert "event F1 by anomaly type" in result.output
    data = json.loads(invoke("evaluate", str(labelled_run), "--json").output)
    assert set(data["detectors"]) == {"zscore", "stuck", "all"}
    assert (
        data["rows"] == 4800
        and data["detectors"]["stuck"]["by_type"]["stuck"]["event_recall"] == 1.0
    )
    stuck = data["detectors"]["stuck"]
    assert stuck["by_type"]["stuck"]["event_precision"] == stuck["event"]["precision"] == 1.0
    assert stuck["by_type"]["stuck"]["event_f1"] == 1.0  # every stuck event, no false alarm
    # nothing was acknowledged or left registered for any sink
    from cosmobac_sqlite import SQLiteStore

    with SQLiteStore(tmp_path / "edge.db") as store:
        assert store.consumers() == []


def test_evaluate_documents_a_sink_wrote(labelled_run, tmp_path):
    plain = labelled_run.read_text().replace('[[transforms]]\nplugin = "aggregate"\n', "")
    labelled_run.write_text(plain)
    assert invoke("run", str(labelled_run)).exit_code == 0
    from_docs = json.loads(
        invoke("evaluate", "--documents", str(tmp_path / "out.jsonl"), "--json").output
    )
    from_store = json.loads(invoke("evaluate", str(labelled_run), "--json").output)
    assert from_docs == from_store


def test_evaluate_explains_what_is_missing(tmp_path):
    result = invoke("evaluate")
    assert result.exit_code != 0 and "CONFIG" in result.output


def test_a_store_without_scan_is_read_as_a_temporary_consumer_then_forgotten():
    from cosmobac.evaluation.runs import _all_rows
    from cosmobac.testing import MemoryStore

    class Store(MemoryStore):
        scan = None  # an older store: no scan()

        def __init__(self) -> None:
            super().__init__()
            self.removed: list[str] = []

        def remove_consumer(self, consumer: str) -> bool:
            self.removed.append(consumer)
            return True

    store = Store()
    store.append(
        Batch.from_columns(timestamp=[1, 2, 3], sensor_id=["s"] * 3, temperature=[1.0, 2.0, 3.0])
    )
    assert _all_rows(store)["timestamp"].tolist() == [1, 2, 3]
    assert len(store.removed) == 1 and store.removed[0].startswith("cosmobac-evaluate-")
