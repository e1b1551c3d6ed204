"""Plots and the self-contained HTML report."""

from __future__ import annotations

import re
import sys

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


def test_the_report_is_one_self_contained_file(scored, tmp_path):
    path = write_report(scored, tmp_path / "out" / "report.html", title="Fleet <test>", sensors=2)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Fleet &lt;test&gt;" in text
    for section in ("Rows per city", "Anomalies by type", "Detector scores", "Fleet overview"):
        assert section in text
    assert "London" in text and "New York" in text
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', text)
    assert len(images) == 1 + 2 + 2  # scores, one per city, two sensors
    # nothing outside the file: no script, no external source, stylesheet or link
    assert "<script" not in text
    assert not re.search(r'(src|href)="(?!data:)', text)


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
        report_command, [str(config), "--out", str(out), "--sensors", "1"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and "ewma" in out.read_text()
