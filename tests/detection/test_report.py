"""Plots and the self-contained HTML report."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from detection_support import fleet_rows, run

from cosmobac.detectors import Cusum, Dropout, Stuck, ZScore
from cosmobac.evaluation.commands import report_command
from cosmobac.evaluation.metrics import evaluate
from cosmobac.report import (
    ReportError,
    figure_png,
    plot_city,
    plot_scores,
    plot_sensor,
    render_report,
    write_report,
)

pytestmark = pytest.mark.needs_plugins  # the sqlite store


@pytest.fixture(scope="module")
def scored():
    rows = fleet_rows(2, 2, 20)
    return run([ZScore(), Cusum(), Stuck(), Dropout()], rows, [3000])


def test_plots_render(scored):
    sensor = scored["sensor_id"][0]
    for figure in (
        plot_sensor(scored, sensor),
        plot_sensor(scored, sensor, columns=["temperature"], detector="zscore"),
        plot_city(scored, "London"),
        plot_scores(evaluate(scored)),
    ):
        png = figure_png(figure)
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_plots_explain_what_is_missing(scored):
    with pytest.raises(ReportError, match="no rows of sensor"):
        plot_sensor(scored, "nowhere-001")
    with pytest.raises(ReportError, match="columns"):
        plot_sensor(scored, scored["sensor_id"][0], columns=["co2"])
    with pytest.raises(ReportError, match="city"):
        plot_city(scored, "Atlantis")


def _series(text: str) -> list[dict]:
    found = re.search(r'<script type="application/json" id="cosmobac-series">(.*?)</script>', text)
    assert found
    return json.loads(found.group(1))


def test_the_report_is_one_self_contained_file(scored, tmp_path):
    path = write_report(scored, tmp_path / "out" / "report.html", title="Fleet <test>", sensors=2)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Fleet &lt;test&gt;" in text
    for section in ("Rows per city", "Anomalies by type", "Detector scores", "Fleet overview"):
        assert section in text
    assert "London" in text and "New York" in text
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', text)
    assert len(images) == 1  # the detector scores; the time series are charts
    charts = re.findall(r'<div class="chart" data-index="(\d+)"', text)
    assert len(charts) == 2 * 2 + 2 * 5  # every sensor of both cities, then two sensors' metrics
    assert [int(i) for i in charts] == list(range(len(charts)))
    # nothing outside the file: every script and style inline, no external source or link
    assert not re.search(r"<script[^>]*\ssrc=", text) and '<link rel="stylesheet"' not in text
    assert not re.search(r'(src|href)="(?!data:)', text)
    # the dashboard's own charts.js and uPlot, with uPlot's licence notice
    assert "cosmobacCharts" in text and "Copyright (c) 2022 Leon Sorokin" in text
    assert ".uplot" in text  # uPlot's stylesheet
    assert len(_series(text)) == len(charts)


def test_the_charts_keep_every_label_and_detection(scored):
    text = render_report(scored, sensors=4, points=300)
    series = _series(text)
    sensors = sorted(set(scored["sensor_id"].tolist()))
    overview, per_sensor = series[: len(sensors)], series[len(sensors) :]
    assert [s["sensor_id"] for s in overview] == sensors
    assert {s["metric"] for s in overview} == {"temperature"}
    assert len(per_sensor) == 4 * 5
    for s in series:
        rows = scored.select(scored["sensor_id"] == s["sensor_id"])
        rows = rows.select(np.argsort(rows["timestamp"], kind="stable"))
        assert s["rows"] == len(rows) > 300 and len(s["t"]) == len(s["v"]) <= 300
        values = rows[s["metric"]]
        shown = [v for v in s["v"] if v is not None]
        span = np.nanmax(values) - np.nanmin(values)  # MinMaxLTTB keeps the shape's extremes
        assert max(shown) >= np.nanmax(values) - 0.05 * span
        assert min(shown) <= np.nanmin(values) + 0.05 * span
        assert s["t"] == sorted(s["t"])
        flags = rows["anomaly_flag"].astype(bool)
        starts = flags & ~np.r_[False, flags[:-1]]
        assert len(s["labels"]) >= int(starts.sum())  # each run, split where the type changes
        labelled = sum(
            int(((rows["timestamp"] >= r["start"]) & (rows["timestamp"] <= r["end"])).sum())
            for r in s["labels"]
        )
        assert labelled == int(flags.sum())
    for sensor in sensors:
        detected = scored.select(scored["sensor_id"] == sensor)
        times = sorted(detected["timestamp"][detected["detected"].astype(bool)].tolist())
        (city,) = [s for s in overview if s["sensor_id"] == sensor]
        assert sorted(d["t"] for d in city["detections"]) == times  # all of them, on the overview
        mine = [s for s in per_sensor if s["sensor_id"] == sensor]
        if mine:  # each detection on the metric(s) that triggered it: every one at least once
            assert sorted({d["t"] for s in mine for d in s["detections"]}) == times
            assert all(d["detectors"] for s in mine for d in s["detections"])


def test_the_report_and_the_dashboard_downsample_alike():
    from cosmobac import downsample
    from cosmobac.dashboard import cache
    from cosmobac.report import plots

    assert cache.downsample is downsample.downsample
    t = np.arange(10_000, dtype=np.int64) * 1000
    v = np.sin(np.arange(10_000) / 50.0)
    v[5000:5100] = np.nan
    assert np.array_equal(plots._downsample(t, v, 500), downsample.downsample(t, v, 500))


def test_a_report_without_detections_or_labels(scored):
    plain = scored.drop(*[c for c in scored.columns if "detect" in c or "score" in c])
    text = render_report(plain, sensors=1)
    assert "No detector columns" in text and "Detector scores" not in text
    unlabelled = plain.drop("anomaly_flag", "anomaly_type")
    assert "carry no labels" in render_report(unlabelled, sensors=0)


def test_missing_matplotlib_says_how_to_install(scored, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ReportError, match=r"cosmobac\[report\]"):
        render_report(scored)
    monkeypatch.delitem(sys.modules, "matplotlib.figure")
    monkeypatch.setitem(sys.modules, "tsdownsample", None)
    with pytest.raises(ReportError, match=r"tsdownsample"):
        plot_sensor(scored, scored["sensor_id"][0])


def test_report_command(tmp_path):
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f"""
[sensor]
plugin = "simulated"
cities = 1
sensors_per_city = 2

[store]
plugin = "sqlite"
path = "{tmp_path / "edge.db"}"

[[transforms]]
plugin = "ewma"

[[transforms]]
plugin = "stuck"

[run]
duration = "20m"
"""
    )
    from cosmobac.pipeline import Pipeline

    with Pipeline.from_config(str(config), need_sensor=True) as pipeline:
        pipeline.collect()
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        report_command,
        [str(config), "--out", str(out), "--sensors", "1", "--points", "200"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert out.is_file() and "ewma" in text
    assert max(len(s["t"]) for s in _series(text)) == 200  # 1,200 rows a sensor, cut to 200
