"""NAB scoring (the rules in docs/detectors.md) and the NAB sample in tests/data/nab."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from detection_support import DATA

from cosmobac.evaluation.commands import evaluate_command
from cosmobac.evaluation.nab import (
    IN_PROBATION,
    OUTSIDE,
    PROFILES,
    NabSeries,
    _raw_at,
    _threshold_sweep,
    null_scores,
    parse_time,
    probation_length,
    read_corpus,
    scaled_sigmoid,
    score_corpus,
    sweep_weights,
    windows_from_labels,
)
from cosmobac.evaluation.runs import score_series

NAB = DATA / "nab"

# NAB standard-profile scores of the built-in detectors (default settings) on the sample; the
# measured values are in docs/detectors.md, these are the lower bounds the tests hold them to
# one file, two windows: a lucky alarm moves these a lot (cusum: 73.2 before the novelty stage
# ranked its alarms, 55.2 after; on the 31 files of the dev half it went from 10.0 to 39.5)
SAMPLE_SCORES = {"zscore": 45.0, "ewma": 50.0, "cusum": 50.0}


def test_scaled_sigmoid():
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.9866142981514305)
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert float(scaled_sigmoid(3.5)) == -1.0
    assert float(scaled_sigmoid(2.0)) == pytest.approx(2 / (1 + np.exp(10)) - 1)


def test_probation_is_15_percent_at_most_750_rows():
    assert probation_length(1000) == 150
    assert probation_length(7267) == 750
    assert probation_length(3) == 0


def test_parse_time_reads_nab_timestamps_as_utc():
    assert parse_time("1970-01-01 00:00:01") == 1000
    assert parse_time("2013-12-15 07:00:00.000000") == parse_time("2013-12-15T07:00:00+00:00")


def toy(n=100, windows=((40, 49),), step=1):
    ts = np.arange(n, dtype=np.int64) * step
    return NabSeries(
        "toy.csv", ts, np.zeros(n), tuple((int(ts[a]), int(ts[b])) for a, b in windows)
    )


def test_sweep_weights_follow_the_window_rules():
    series = toy()
    weight, window = sweep_weights(series.timestamps, series.windows, PROFILES["standard"])
    assert (window[:15] == IN_PROBATION).all()  # 15 % of 100 rows
    assert (window[40:50] == 0).all() and window[39] == OUTSIDE and window[50] == OUTSIDE
    assert weight[40] == pytest.approx(1.0)  # the left edge: the full TP weight
    assert weight[49] == pytest.approx(scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0))
    assert np.all(np.diff(weight[40:50]) < 0)  # earlier is better
    assert weight[20] == pytest.approx(-0.11)  # before any window: the full FP cost
    assert -0.11 < weight[50] < 0  # just after a window: less
    assert weight[99] == pytest.approx(0.11 * scaled_sigmoid(50 / 9))


def test_only_the_earliest_alarm_in_a_window_counts():
    series = toy()
    profile = PROFILES["standard"]
    weight, window = sweep_weights(series.timestamps, series.windows, profile)
    early = np.zeros(100)
    early[[42, 45, 48]] = 1.0
    raw, tp, fn, fp = _raw_at(early, weight, window, 1.0, profile.fn)
    assert (tp, fn, fp) == (1, 0, 0) and raw == pytest.approx(weight[42])


def test_the_threshold_sweep_matches_scoring_each_threshold():
    series = read_corpus(NAB)[0]
    rng = np.random.default_rng(3)
    for profile in PROFILES.values():
        weight, window = sweep_weights(series.timestamps, series.windows, profile)
        scores = np.round(rng.random(len(series)), 2)
        thresholds, raws = _threshold_sweep(scores, weight, window, profile.fn)
        assert thresholds[0] == np.inf and raws[0] == -profile.fn * 2  # never alarm
        for t, r in zip(thresholds, raws, strict=True):
            assert r == pytest.approx(_raw_at(scores, weight, window, t, profile.fn)[0])


def test_perfect_null_and_normalisation():
    corpus = read_corpus(NAB)
    series = corpus[0]
    perfect = np.zeros(len(series))
    for start, _ in series.windows:
        perfect[np.searchsorted(series.timestamps, start)] = 1.0
    for name in PROFILES:
        assert score_corpus(corpus, [perfect], name).score == pytest.approx(100.0)
        null = score_corpus(corpus, null_scores(corpus), name)
        assert null.score == 0.0 and null.threshold == np.inf
        assert null.raw == null.null == -PROFILES[name].fn * 2


def test_a_late_detection_scores_less_and_false_positives_cost():
    corpus = read_corpus(NAB)
    series = corpus[0]
    ts = series.timestamps
    late = np.zeros(len(series))
    for start, end in series.windows:
        late[(np.searchsorted(ts, start) + np.searchsorted(ts, end)) // 2] = 1.0
    half = score_corpus(corpus, [late], "standard")
    assert 0 < half.score < 100 and half.true_positives == 2
    noisy = late.copy()
    noisy[1000:1010] = 1.0  # ten alarms outside the windows
    worse = score_corpus(corpus, [noisy], "standard")
    assert worse.score < half.score and worse.false_positives == 10
    low_fp = score_corpus(corpus, [noisy], "reward_low_fp")
    assert low_fp.score < worse.score


def test_read_corpus_and_labels_formats(tmp_path):
    corpus = read_corpus(NAB)
    assert [s.name for s in corpus] == ["realKnownCause/ambient_temperature_system_failure.csv"]
    series = corpus[0]
    assert len(series) == 7267 and not np.isnan(series.values).any()
    assert series.windows[0] == (
        parse_time("2013-12-15 07:00:00"),
        parse_time("2013-12-30 09:00:00"),
    )
    # raw labels: NAB makes windows of 10 % of the file / number of anomalies around each
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps({series.name: ["2013-12-22 20:00:00", "2014-04-13 09:00:00"]}))
    made = read_corpus(NAB, raw, raw=True)[0].windows
    width = int(0.1 * 7267 / 2)
    first = int(np.searchsorted(series.timestamps, parse_time("2013-12-22 20:00:00")))
    assert made[0] == (
        int(series.timestamps[first - width // 2]),
        int(series.timestamps[first + width // 2]),
    )
    assert windows_from_labels(series.timestamps, []) == ()
    with pytest.raises(FileNotFoundError, match="none of the"):
        read_corpus(tmp_path, NAB / "labels.json")


def test_the_nab_sample_scores_of_the_detectors():
    corpus = read_corpus(NAB)
    scores = score_series(corpus, {name: {} for name in SAMPLE_SCORES}, chunk=500)
    for name, minimum in SAMPLE_SCORES.items():
        result = score_corpus(corpus, scores[name], "standard")
        assert result.score >= minimum, (name, result.score)
        assert result.true_positives >= 1


def test_evaluate_nab_command():
    result = CliRunner().invoke(
        evaluate_command,
        [
            "--nab",
            str(NAB),
            "--detector",
            "zscore",
            "--detector",
            "cusum",
            "--set",
            "zscore.window=120",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["detectors"]) == {"zscore", "cusum"}
    assert set(data["detectors"]["cusum"]) == set(PROFILES)
    text = CliRunner().invoke(evaluate_command, ["--nab", str(NAB), "--detector", "cusum"]).output
    assert "cusum" in text and "standard" in text
    bad = CliRunner().invoke(evaluate_command, ["--nab", str(NAB), "--set", "zscore"])
    assert bad.exit_code != 0 and "DETECTOR.KEY=VALUE" in bad.output


def test_the_reader_accepts_a_clock_that_steps_back_and_duplicate_times(tmp_path):
    rows = [f"2020-01-01 00:{m:02d}:00" for m in range(40)]
    rows[10] = rows[9]  # a duplicate timestamp
    rows[11] = rows[9]  # and another
    rows[25:28] = ["2020-01-01 00:20:00", "2020-01-01 00:21:00", "2020-01-01 00:22:00"]  # back
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    (data / "f.csv").write_text(
        "timestamp,value\n" + "".join(f"{t},{i}.5\n" for i, t in enumerate(rows))
    )
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"cat/f.csv": [["2020-01-01 00:30:00", "2020-01-01 00:33:00"]]}))
    (series,) = read_corpus(tmp_path / "data", labels)
    assert len(series) == 40
    assert series.values.tolist() == [i + 0.5 for i in range(40)]  # file order kept, every row
    assert (np.diff(series.timestamps) >= 0).all()  # times for scoring never decrease
    assert series.timestamps[25] == series.timestamps[24] == parse_time(rows[24])
    assert series.timestamps[28] == parse_time(rows[28])
    assert len(series.notes) == 2
    assert "2 duplicate" in series.notes[0] and "steps back 1 time" in series.notes[1]
    _weight, window = sweep_weights(series.timestamps, series.windows, PROFILES["standard"])
    assert np.flatnonzero(window == 0).tolist() == [30, 31, 32, 33]
    out = CliRunner().invoke(
        evaluate_command, ["--nab", str(tmp_path / "data"), "--labels", str(labels)]
    )
    assert out.exit_code == 0, out.output
    assert "reader: cat/f.csv: 2 duplicate timestamp(s) kept" in out.output
    assert "clock steps back 1 time(s)" in out.output
    data_json = json.loads(
        CliRunner()
        .invoke(
            evaluate_command, ["--nab", str(tmp_path / "data"), "--labels", str(labels), "--json"]
        )
        .output
    )
    assert len(data_json["reader_notes"]["cat/f.csv"]) == 2
    scores = score_series([series], {name: {} for name in ("zscore", "ewma", "dropout")})
    for per_series in scores.values():
        finite = per_series[0][np.isfinite(per_series[0])]
        assert ((finite >= 0) & (finite <= 1)).all()
